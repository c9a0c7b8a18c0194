"""Datasets: named, SHA-256-checked files found offline or downloaded once.

A dataset name resolves to a file in the data directory given by the environment
variable COMPANION_DATA (CI and developers point it at an offline copy). Without it,
the file is downloaded from its canonical URL into `_build/data/` and verified; either
way a wrong checksum or a missing file raises DataError with one line saying what to do.
"""
import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from companion.results import atomic_write_bytes, repo_root


class DataError(Exception):
    """A dataset is missing or corrupted; the message says where to put the file."""


@dataclass(frozen=True)
class Dataset:
    file: str
    sha256: str
    url: str
    what: str
    licence: str = ""


DATASETS = {
    "tinyshakespeare": Dataset(
        "tinyshakespeare.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "Tiny Shakespeare, 1,115,394 characters",
    ),
    "mnist-test-images": Dataset(
        "mnist/t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        "MNIST test images",
    ),
    "mnist-test-labels": Dataset(
        "mnist/t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        "MNIST test labels",
    ),
    "nlp4education-courses": Dataset(
        "nlp4education/courses.json",
        "6caa1746b255518c74113b2a304676ab395a44c430b2dc6ed5256cbcd67d112e",
        "https://raw.githubusercontent.com/epfl-nlp/NLP4Education/6330c50/data/courses.json",
        "the 54 anonymised course records of Borges et al. (PNAS 2024), unmodified",
        licence="CC BY-NC-ND 4.0 (online courses: CC BY 4.0)",
    ),
    # the 60,000 training images: not available offline (../shared/data/README.md)
    "mnist-train-images": Dataset(
        "mnist/train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        "MNIST training images",
    ),
    "mnist-train-labels": Dataset(
        "mnist/train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        "MNIST training labels",
    ),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path(name: str) -> Path:
    """The verified local path of dataset `name` (see the module docstring)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    ds = DATASETS[name]
    env = os.environ.get("COMPANION_DATA")
    if env:
        p = Path(env).expanduser() / ds.file
        if not p.is_file():
            raise DataError(f"dataset {name!r} not found: expected {p} (COMPANION_DATA={env}); "
                            f"put {ds.what} there (from {ds.url}) or unset COMPANION_DATA to download it")
    else:
        p = repo_root() / "_build" / "data" / ds.file
        if not p.is_file():
            try:
                with urllib.request.urlopen(ds.url, timeout=60) as r:
                    blob = r.read()
            except OSError as e:
                raise DataError(f"dataset {name!r} is not available offline and its download from {ds.url} "
                                f"failed ({e.__class__.__name__}); set COMPANION_DATA to a folder holding "
                                f"{ds.file}") from None
            if hashlib.sha256(blob).hexdigest() != ds.sha256:
                raise DataError(f"download of dataset {name!r} from {ds.url} has the wrong SHA-256; not saved")
            atomic_write_bytes(p, blob)
    digest = sha256(p)
    if digest != ds.sha256:
        raise DataError(f"dataset {name!r} at {p} is corrupted: SHA-256 {digest[:12]}… != expected "
                        f"{ds.sha256[:12]}…; replace it with the file from {ds.url}")
    return p


class CharCorpus:
    """A character-level corpus split into train and validation (last `val_frac`), as in
    nanoGPT's shakespeare_char. Batches are a pure function of (seed, step), so a run
    restarted or branched at step s sees exactly the data the uninterrupted run saw."""

    def __init__(self, text: str, val_frac: float = 0.1):
        self.vocab = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.vocab)}
        data = torch.tensor([self.stoi[c] for c in text], dtype=torch.uint8 if len(self.vocab) < 256 else torch.int32)
        n = int(len(data) * (1 - val_frac))
        self.train, self.val = data[:n], data[n:]

    @classmethod
    def load(cls, name: str = "tinyshakespeare", val_frac: float = 0.1):
        return cls(path(name).read_text(encoding="utf-8"), val_frac)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def _take(self, data, starts, T):
        idx = starts[:, None] + torch.arange(T + 1)
        chunk = data[idx].long()
        return chunk[:, :-1], chunk[:, 1:]

    def train_batch(self, step: int, batch_size: int, seq_len: int, seed: int = 0):
        """Random windows of the training split for optimizer step `step`."""
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(len(self.train) - seq_len - 1, (batch_size,), generator=g)
        return self._take(self.train, starts, seq_len)

    def val_batches(self, n_batches: int, batch_size: int, seq_len: int):
        """A fixed validation set: n_batches x batch_size windows at evenly spaced offsets
        (no RNG, so every run and seed is evaluated on the same text)."""
        n = n_batches * batch_size
        starts = torch.linspace(0, len(self.val) - seq_len - 2, n).long()
        x, y = self._take(self.val, starts, seq_len)
        return list(zip(x.split(batch_size), y.split(batch_size)))
