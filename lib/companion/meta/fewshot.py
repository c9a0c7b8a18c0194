"""Few-shot classification tasks on MNIST-1D (Greydanus, 2020) for meta-learning a 1D CNN.

The data are generated on this machine by the `mnist1d` package's own generator
(`make_dataset(get_dataset_args())`: 5,000 signals of length 40, 10 digit classes, its seed 42),
never by its downloader. The protocol is ours (the paper's was not readable): a task is an
n_way-way, k_shot-shot problem on n_way of the sampler's classes, their labels permuted at random,
with `query` further signals per class to score the adapted network. A sampler draws from one part
of the signals (the package's training or held-out split) and from the classes it is given; the
fo-maml chapter uses all ten classes on both sides and separates meta-train from meta-test by signal.

`Episodes` is one batch of tasks in the interface the estimators of `companion.meta.estimators`
use (`T`, `batch`, `inner`, `outer`, `grad_inner`, `grad_outer`): theta is a flat parameter vector
of `companion.models.cnn1d.CNN1d`, X is one theta per task (n, P), and a task's data are its
support set (inner loss) and its query set (outer loss). It has no `hess_inner`: MAML on it is
differentiated through the unrolled inner steps, as in Finn et al. (2017).
"""
import functools
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from companion.models.cnn1d import CNN1d


@functools.cache
def mnist1d(part: str = "all"):
    """(signals (n, 40) float32, labels (n,) int64) of MNIST-1D, generated offline: part "train"
    (its first 4,000), "test" (its last 1,000) or "all"; the generator's global numpy/random seeding
    is undone afterwards."""
    from mnist1d.data import get_dataset_args, make_dataset
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = {"train": d["x"], "test": d["x_test"], "all": np.concatenate([d["x"], d["x_test"]])}[part]
    y = {"train": d["y"], "test": d["y_test"], "all": np.concatenate([d["y"], d["y_test"]])}[part]
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


@dataclass(frozen=True)
class Episodes:
    net: CNN1d
    xs: torch.Tensor  # (n, n_way * k_shot, L) support signals
    ys: torch.Tensor  # (n, n_way * k_shot) support labels in 0 .. n_way - 1
    xq: torch.Tensor  # (n, n_way * query, L)
    yq: torch.Tensor

    @property
    def T(self) -> int:
        return self.xs.shape[0]

    def to(self, dev) -> "Episodes":
        if dev is None:
            return self
        return Episodes(self.net, self.xs.to(dev), self.ys.to(dev), self.xq.to(dev), self.yq.to(dev))

    def batch(self, idx=None):
        """(support, query) of the tasks idx (None: all), each a (signals, labels) pair."""
        if idx is None:
            return (self.xs, self.ys), (self.xq, self.yq)
        return (self.xs[idx], self.ys[idx]), (self.xq[idx], self.yq[idx])

    def loss(self, theta, data):
        x, y = data
        return F.cross_entropy(self.net(theta, x), y)

    def inner(self, theta, support, query):
        return self.loss(theta, support)

    def outer(self, theta, support, query):
        return self.loss(theta, query)

    def grad_inner(self, X, support, query):
        return vmap(grad(self.loss))(X, support)

    def grad_outer(self, X, support, query):
        return vmap(grad(self.loss))(X, query)

    def accuracy(self, X) -> torch.Tensor:
        """Query accuracy of each task's parameters X (n, P): (n,)."""
        logits = vmap(self.net)(X, self.xq)
        return (logits.argmax(-1) == self.yq).float().mean(-1)


@dataclass(frozen=True)
class Sampler:
    """Draws Episodes of n_way-way k_shot-shot tasks over `classes` (module docstring)."""
    classes: tuple
    part: str = "all"  # which of MNIST-1D's signals: "train", "test" or "all"
    n_way: int = 3
    k_shot: int = 5
    query: int = 15
    net: CNN1d = CNN1d()

    def __post_init__(self):
        if self.n_way > len(self.classes):
            raise ValueError(f"n_way ({self.n_way}) must not exceed the {len(self.classes)} classes {self.classes}")

    @functools.cached_property
    def by_class(self) -> list:
        x, y = mnist1d(self.part)
        return [x[y == c] for c in self.classes]

    def sample(self, n: int, generator: torch.Generator) -> Episodes:
        xs, ys, xq, yq = [], [], [], []
        for _ in range(n):
            chosen = torch.randperm(len(self.classes), generator=generator)[:self.n_way]
            s_x, s_y, q_x, q_y = [], [], [], []
            for label, c in enumerate(chosen.tolist()):  # the order drawn is the label permutation
                pool = self.by_class[c]
                pick = torch.randperm(len(pool), generator=generator)[:self.k_shot + self.query]
                s_x.append(pool[pick[:self.k_shot]])
                q_x.append(pool[pick[self.k_shot:]])
                s_y.append(torch.full((self.k_shot,), label))
                q_y.append(torch.full((self.query,), label))
            xs.append(torch.cat(s_x))
            ys.append(torch.cat(s_y))
            xq.append(torch.cat(q_x))
            yq.append(torch.cat(q_y))
        return Episodes(self.net, torch.stack(xs), torch.stack(ys), torch.stack(xq), torch.stack(yq))
