"""Image classification sets as tensors: MNIST from the SHA-256-checked files of
`companion.data`, and scikit-learn's 8x8 digits for smoke runs.

Offline, only the 10,000 MNIST *test* images are available, so by default the deep-grokking
chapter draws both of its sets from them with a fixed seed: first a test subset, then the
training set from the remaining images (`mnist-test-split`). With the 60,000 training
images at hand (online, or in COMPANION_DATA), `mnist` is the paper's data: the first N
training images and the first n_test test images. Pixels are scaled to [0, 1] and not
normalised, as in the official code.
"""
import gzip
import struct

import torch

from companion.data import DataError, path

SOURCES = ("mnist-test-split", "mnist", "digits")


def read_idx(name: str) -> torch.Tensor:
    """An IDX file (the MNIST format: big-endian magic, dimension sizes, then uint8 data)."""
    blob = gzip.decompress(path(name).read_bytes())
    zero, dtype, ndim = struct.unpack(">HBB", blob[:4])
    if zero != 0 or dtype != 0x08:
        raise DataError(f"dataset {name!r} is not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(blob[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def mnist_set(split: str = "test"):
    """(images (n, 28, 28) uint8, labels (n,) int64) of MNIST's 'train' or 'test' split."""
    return read_idx(f"mnist-{split}-images"), read_idx(f"mnist-{split}-labels").long()


def split_indices(n_train: int, n_test: int, seed: int, n: int = 10000):
    """(train, test) indices: a random permutation of n with `seed`, its first n_test for
    testing and the next n_train for training, so the sets are disjoint and the test set
    does not depend on n_train."""
    if n_train + n_test > n:
        raise DataError(f"n_train + n_test = {n_train + n_test} exceeds the {n} images available "
                        "(offline, the 10,000 MNIST test images)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:n_test + n_train], perm[:n_test]


def seeded_split(n_train: int, n_test: int = 2000, seed: int = 0, dtype=torch.float32):
    """(x_train, y_train, x_test, y_test) from the 10,000 MNIST test images (split_indices);
    images flattened to 784 values in [0, 1]."""
    images, labels = mnist_set("test")
    train, test = split_indices(n_train, n_test, seed, len(labels))
    x = images.flatten(1).to(dtype) / 255.0
    return x[train], labels[train], x[test], labels[test]


def paper_split(n_train: int, n_test: int = 10000, dtype=torch.float32):
    """The paper's data: the first n_train MNIST training images, the first n_test test images."""
    if n_train > 60000 or n_test > 10000:
        raise DataError(f"MNIST has 60,000 training and 10,000 test images; asked for {n_train} and {n_test}")
    (xa, ya), (xb, yb) = mnist_set("train"), mnist_set("test")
    return (xa[:n_train].flatten(1).to(dtype) / 255.0, ya[:n_train],
            xb[:n_test].flatten(1).to(dtype) / 255.0, yb[:n_test])


def digits_split(n_train: int, n_test: int, seed: int = 0, dtype=torch.float32):
    """scikit-learn's 1,797 8x8 digits (bundled with the package, no download), split like
    seeded_split; pixels (0..16) scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=dtype) / 16.0, torch.tensor(d.target, dtype=torch.long)
    train, test = split_indices(n_train, n_test, seed, len(y))
    return x[train], y[train], x[test], y[test]


def load(source: str, n_train: int, n_test: int, seed: int = 0, dtype=torch.float32):
    """(x_train, y_train, x_test, y_test) of `source` (one of SOURCES)."""
    if source == "mnist-test-split":
        return seeded_split(n_train, n_test, seed, dtype)
    if source == "mnist":
        return paper_split(n_train, n_test, dtype)
    if source == "digits":
        return digits_split(n_train, n_test, seed, dtype)
    raise DataError(f"unknown image source {source!r}; known: {', '.join(SOURCES)}")
