"""companion.data: checksums, missing files, deterministic batches."""
import pytest
import torch

from companion import data


def test_missing_file_names_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path))
    with pytest.raises(data.DataError, match=r"not found: expected .*tinyshakespeare.txt"):
        data.path("tinyshakespeare")


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    (tmp_path / "tinyshakespeare.txt").write_text("To be, or not to be")
    monkeypatch.setenv("COMPANION_DATA", str(tmp_path))
    with pytest.raises(data.DataError, match="corrupted: SHA-256"):
        data.path("tinyshakespeare")


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="unknown dataset"):
        data.path("imagenet")


def test_verified_file_and_sha256(data_dir, monkeypatch):
    monkeypatch.setenv("COMPANION_DATA", str(data_dir))
    p = data.path("tinyshakespeare")
    assert data.sha256(p) == data.DATASETS["tinyshakespeare"].sha256


def test_char_corpus_batches_are_a_function_of_the_step():
    c = data.CharCorpus("abcdefghij" * 50, val_frac=0.2)
    assert c.vocab_size == 10 and len(c.train) == 400 and len(c.val) == 100
    x1, y1 = c.train_batch(7, 4, 8, seed=3)
    x2, y2 = c.train_batch(7, 4, 8, seed=3)
    assert (x1 == x2).all() and (y1 == y2).all()
    assert (y1[:, :-1] == x1[:, 1:]).all()  # targets are inputs shifted by one
    assert not (c.train_batch(8, 4, 8, seed=3)[0] == x1).all()
    v1, v2 = c.val_batches(2, 3, 8), c.val_batches(2, 3, 8)
    assert len(v1) == 2 and all((a[0] == b[0]).all() for a, b in zip(v1, v2))
    assert c.decode(x1[0]) in "abcdefghij" * 50


def test_mnist_split_indices_are_disjoint_and_seeded():
    from companion import mnist
    train, test = mnist.split_indices(1000, 2000, seed=3)
    assert len(train) == 1000 and len(test) == 2000
    assert not set(train.tolist()) & set(test.tolist())
    assert torch.equal(mnist.split_indices(5000, 2000, seed=3)[1], test)  # the test set does not depend on N
    assert torch.equal(mnist.split_indices(1000, 2000, seed=3)[0], train)
    assert not torch.equal(mnist.split_indices(1000, 2000, seed=4)[0], train)
    with pytest.raises(data.DataError, match="exceeds"):
        mnist.split_indices(9000, 2000, seed=0)


def test_mnist_seeded_split(data_dir):
    from companion import mnist
    images, labels = mnist.mnist_set("test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,) and images.dtype == torch.uint8
    assert sorted(labels.unique().tolist()) == list(range(10))
    xtr, ytr, xte, yte = mnist.seeded_split(1000, 2000, seed=3)
    assert xtr.shape == (1000, 784) and xte.shape == (2000, 784) and ytr.shape == (1000,)
    assert 0.0 <= float(xtr.min()) and float(xtr.max()) == 1.0
    train, test = mnist.split_indices(1000, 2000, seed=3)
    assert torch.equal(xtr, images[train].flatten(1).float() / 255.0) and torch.equal(yte, labels[test])


def test_digits_split_is_seeded_and_scaled():
    from companion import mnist
    xtr, ytr, xte, yte = mnist.load("digits", 500, 1000, seed=1)
    assert xtr.shape == (500, 64) and xte.shape == (1000, 64) and yte.dtype == torch.long
    assert float(xtr.min()) == 0.0 and float(xtr.max()) == 1.0
    assert torch.equal(mnist.load("digits", 500, 1000, seed=1)[0], xtr)
    with pytest.raises(data.DataError, match="exceeds the 1797"):
        mnist.load("digits", 1000, 1000)


def test_paper_mnist_needs_the_training_file(data_dir):
    """Offline (COMPANION_DATA without the 60k training images) the paper's source fails with
    one line saying where the file goes; the offline default works."""
    from companion import mnist
    with pytest.raises(data.DataError, match=r"mnist-train-images.*train-images-idx3-ubyte.gz"):
        mnist.load("mnist", 1000, 2000)
    assert mnist.load("mnist-test-split", 10, 20)[0].shape == (10, 784)
    with pytest.raises(data.DataError, match="unknown image source"):
        mnist.load("cifar", 10, 10)
