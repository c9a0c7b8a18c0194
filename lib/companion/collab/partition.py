"""Client data with a hidden cluster structure (CoBo's experimental set-ups, Hashemi et al. 2024).

* `permuted_clusters`: every cluster k relabels the classes by its own permutation pi_k
  (pi_0 = identity), like the paper's cross-silo CIFAR-100 set-up (the official code shifts
  labels cyclically); clients of one cluster get disjoint slices of the training pool, so
  they share a task but not data.
* `class_group_clusters`: every cluster owns a disjoint group of classes, renumbered from 0,
  so that label spaces *collide* across clusters (the paper's 80-client set-up: 10 disjoint
  CIFAR-100 classes per cluster, labels taken modulo 10).

Every client holds the same number of training points, so client data stack into tensors
(n, m, d); its test set is the test split seen through its cluster's labelling.
"""
from dataclasses import dataclass

import torch

from companion.params import ParamError


@dataclass
class Federation:
    x: torch.Tensor        # (n, m, d) training inputs per client
    y: torch.Tensor        # (n, m) training labels per client
    x_test: torch.Tensor   # (n, N, d) test inputs per client
    y_test: torch.Tensor   # (n, N) test labels per client
    cluster: torch.Tensor  # (n,) the hidden cluster of every client
    n_classes: int

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def batch(self, size: int, gen: torch.Generator, clients=None):
        """A fresh minibatch (sampled with replacement) of every client in `clients` (default:
        all): x (k, size, d), y (k, size)."""
        clients = torch.arange(self.n) if clients is None else clients
        idx = torch.randint(0, self.x.shape[1], (len(clients), size), generator=gen)
        return self.x[clients[:, None], idx], self.y[clients[:, None], idx]

    def same_cluster(self) -> torch.Tensor:
        """(n, n) bool: the oracle collaboration graph (diagonal included)."""
        return self.cluster[:, None] == self.cluster[None, :]


def _slices(pool: torch.Tensor, sizes, per_client: int, gen, what: str):
    """Disjoint slices of `per_client` indices of `pool` for each client of each cluster; pool
    order is redrawn per cluster, so clusters are drawn independently."""
    out = []
    for k, size in enumerate(sizes):
        if size * per_client > len(pool):
            raise ParamError(f"{size} clients x {per_client} points exceed the {len(pool)} training points of {what} "
                             f"(cluster {k}); lower per_client or the cluster size")
        order = pool[torch.randperm(len(pool), generator=gen)]
        out += [order[i * per_client:(i + 1) * per_client] for i in range(size)]
    return out


def permuted_clusters(x, y, x_test, y_test, sizes, per_client: int, seed: int) -> Federation:
    """Clusters of `sizes[k]` clients; cluster k sees labels pi_k(y) (pi_0 = identity)."""
    gen = torch.Generator().manual_seed(seed)
    n_classes = int(y.max()) + 1
    perms = [torch.arange(n_classes)] + [torch.randperm(n_classes, generator=gen) for _ in sizes[1:]]
    slices = _slices(torch.arange(len(y)), sizes, per_client, gen, "the data set")
    cluster = torch.cat([torch.full((s,), k) for k, s in enumerate(sizes)])
    pi = torch.stack([perms[k] for k in cluster.tolist()])  # (n, C)
    idx = torch.stack(slices)
    rows = torch.arange(len(cluster))[:, None]
    return Federation(x[idx], pi[rows, y[idx]], x_test.expand(len(cluster), *x_test.shape),
                      pi[rows, y_test[None, :].expand(len(cluster), -1)], cluster, n_classes)


def class_group_clusters(x, y, x_test, y_test, sizes, per_client: int, classes_per_cluster: int,
                         seed: int) -> Federation:
    """Cluster k owns classes k*c .. k*c + c - 1, relabelled 0 .. c - 1 (labels collide across
    clusters); its clients' test set is the test points of its classes (truncated to the
    smallest such set, so that test sets stack)."""
    gen = torch.Generator().manual_seed(seed)
    c = classes_per_cluster
    if len(sizes) * c > int(y.max()) + 1:
        raise ParamError(f"{len(sizes)} clusters x {c} classes exceed the {int(y.max()) + 1} classes")
    groups = [torch.arange(k * c, (k + 1) * c) for k in range(len(sizes))]
    slices, tests = [], []
    for k, (size, g) in enumerate(zip(sizes, groups)):
        slices += _slices(torch.nonzero(torch.isin(y, g)).flatten(), [size], per_client, gen, f"classes {g.tolist()}")
        tests.append(torch.nonzero(torch.isin(y_test, g)).flatten())
    n_test = min(len(t) for t in tests)
    cluster = torch.cat([torch.full((s,), k) for k, s in enumerate(sizes)])
    idx = torch.stack(slices)
    tidx = torch.stack([tests[k][:n_test] for k in cluster.tolist()])
    return Federation(x[idx], y[idx] % c, x_test[tidx], y_test[tidx] % c, cluster, c)
