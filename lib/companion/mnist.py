"""MNIST as tensors, from the SHA-256-checked files of `companion.data`.

Offline, only the 10,000 MNIST *test* images are available, so the deep-grokking chapter
draws both of its sets from them with a fixed seed: first a test subset, then the training
set from the remaining images (the paper uses the first N of the 60,000 training images and
the full test set). Pixels are scaled to [0, 1] and not normalised, as in the official code.
"""
import gzip
import struct

import torch

from companion.data import DataError, path


def read_idx(name: str) -> torch.Tensor:
    """An IDX file (the MNIST format: big-endian magic, dimension sizes, then uint8 data)."""
    blob = gzip.decompress(path(name).read_bytes())
    zero, dtype, ndim = struct.unpack(">HBB", blob[:4])
    if zero != 0 or dtype != 0x08:
        raise DataError(f"dataset {name!r} is not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", blob[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(blob[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def mnist_test_set():
    """(images (10000, 28, 28) uint8, labels (10000,) int64)."""
    return read_idx("mnist-test-images"), read_idx("mnist-test-labels").long()


def split_indices(n_train: int, n_test: int, seed: int, n: int = 10000):
    """(train, test) indices: a random permutation of n with `seed`, its first n_test for
    testing and the next n_train for training, so the sets are disjoint and the test set
    does not depend on n_train."""
    if n_train + n_test > n:
        raise DataError(f"n_train + n_test = {n_train + n_test} exceeds the {n} MNIST test images available offline")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:n_test + n_train], perm[:n_test]


def seeded_split(n_train: int, n_test: int = 2000, seed: int = 0, dtype=torch.float32):
    """(x_train, y_train, x_test, y_test) from the 10,000 MNIST test images (split_indices);
    images flattened to 784 values in [0, 1]."""
    images, labels = mnist_test_set()
    train, test = split_indices(n_train, n_test, seed, len(labels))
    x = images.flatten(1).to(dtype) / 255.0
    return x[train], labels[train], x[test], labels[test]
