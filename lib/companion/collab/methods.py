"""Personalised training of n clients at once: CoBo and the baselines of its paper.

Every method keeps one model per client (stacked, see `stacked`) and runs `steps` rounds; in
each round every client draws a fresh minibatch. Momentum is the official code's EMA,
m <- beta m + (1 - beta) g (m = g at the first step), then x <- x - eta m.

* local: every client on its own data.
* fedavg: one model, the clients' gradients averaged (all clients every round).
* ft_fedavg: fedavg, then every client alone for the last `ft_frac` of the rounds.
* oracle: fedavg within each true cluster.
* ditto (Li et al. 2021): a fedavg model x_g, and personal models with a proximal pull,
  x_i <- x_i - eta (m_i + lambda (x_i - x_g)).
* ifca (Ghosh et al. 2020): K models; each round a fraction `ifca_frac` of the clients take the
  one with the lowest loss on their batch, and each model moves with the mean gradient of the
  sampled clients that took it; a client's model is the one it took last.
* fc (Federated Clustering, Werner et al. 2023, as the CoBo paper runs it): every client
  estimates its cluster's gradient by `fc_iters` rounds of averaging the gradients within the
  `fc_quantile` quantile of distance to its current estimate, starting from its own.
* cobo: `cobo.update_weights` on sampled pairs, then
  x_i <- x_i - eta (m_i + rho sum_j w_ij (x_i - x_j)).
local, fedavg and oracle are one rule: the gradients are mixed by a row-stochastic matrix A
before the momentum (A = I, 11^T/n, or the cluster blocks).
"""
import time
from dataclasses import dataclass, field

import torch

from companion.collab import cobo
from companion.collab import stacked as S
from companion.collab.partition import Federation

METHODS = ("local", "fedavg", "ft_fedavg", "ditto", "ifca", "fc", "cobo", "oracle")


@dataclass(frozen=True)
class Hyper:
    steps: int = 4000
    batch: int = 32
    lr: float = 0.05
    beta: float = 0.9            # EMA momentum
    hidden: tuple = (64,)
    rho: float = 0.1             # consensus strength (CoBo)
    gamma: float = 0.05          # step of the weights' ascent (CoBo)
    schedule: str = "mixed_code"
    pair_c: float = 100.0        # constant of the O(1/t) schedules
    variant: str = "box"
    ditto_lambda: float = 1.0
    ifca_k: int = 0              # 0: the true number of clusters
    ifca_frac: float = 1.0       # clients sampled per round (the paper: all in cross-silo, 10% cross-device)
    fc_quantile: float = 0.2
    fc_iters: int = 10
    ft_frac: float = 0.1
    eval_every: int = 100
    snapshots: tuple = field(default_factory=tuple)  # rounds at which CoBo's W is stored


def _mix_matrix(method: str, fed: Federation) -> torch.Tensor:
    n = fed.n
    if method == "local":
        return torch.eye(n)
    if method == "fedavg":
        return torch.full((n, n), 1 / n)
    same = fed.same_cluster().float()
    return same / same.sum(1, keepdim=True)  # oracle


def _mix(A: torch.Tensor, tree: dict) -> dict:
    return {k: torch.einsum("ij,j...->i...", A, v) for k, v in tree.items()}


class _Momentum:
    def __init__(self, beta: float):
        self.beta, self.m = beta, None

    def __call__(self, g: dict) -> dict:
        if self.m is None:
            self.m = {k: v.clone() for k, v in g.items()}
        else:
            for k, v in g.items():
                self.m[k].mul_(self.beta).add_(v, alpha=1 - self.beta)
        return self.m


def _threshold_average(G: torch.Tensor, q: float, iters: int) -> torch.Tensor:
    """Federated Clustering's robust estimate of every client's cluster gradient: from e_i = g_i,
    repeat e_i <- mean of the g_j whose distance to e_i is within the q-quantile of the
    distances from e_i to all the gradients."""
    est = G
    for _ in range(iters):
        D = ((est * est).sum(1, keepdim=True) + (G * G).sum(1) - 2 * est @ G.T).clamp_min(0).sqrt()  # cdist, faster
        near = (D <= D.quantile(q, dim=1, keepdim=True)).float()
        est = near @ G / near.sum(1, keepdim=True)
    return est


def _midpoint_inner(X: dict, fed: Federation, i, j, batch: int, gen) -> torch.Tensor:
    """<g_i(z_ij), g_j(z_ij)> for every sampled pair: the averaged model evaluated on a fresh
    batch of client i and one of client j (the paper's rule; the released LLM code uses
    client i's data twice)."""
    P = torch.zeros(2 * len(i), fed.n)  # row p: z of pair p, twice (once per client's batch)
    rows = torch.arange(2 * len(i))
    P[rows, torch.cat([i, i])] += 0.5
    P[rows, torch.cat([j, j])] += 0.5
    x, y = fed.batch(batch, gen, torch.cat([i, j]))
    _, g = S.loss_and_grads(_mix(P, X), x, y)
    G = S.flat(g)
    return (G[:len(i)] * G[len(i):]).sum(1)


def train(method: str, fed: Federation, hp: Hyper, seed: int) -> dict:
    """Run `method` for hp.steps rounds. Returns the evaluation history (round, mean test
    accuracy and loss, and for CoBo the cluster recovery of W), the final per-client test
    accuracy and loss, CoBo's W at hp.snapshots and at the end, and the cost counters."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    dims = (fed.x.shape[-1], *hp.hidden, fed.n_classes)
    X = S.init(fed.n, dims, seed)
    gen = torch.Generator().manual_seed(seed + 1)          # minibatches
    # CoBo's pair sampling and midpoint batches have their own streams: ablations over the
    # schedule keep every client's minibatch sequence
    pair_gen = torch.Generator().manual_seed(seed + 2)
    mid_gen = torch.Generator().manual_seed(seed + 3)
    mom = _Momentum(hp.beta)
    same = fed.same_cluster()
    out = dict(history=[], snapshots={}, pairs=0, grads=0)
    W = torch.ones(fed.n, fed.n)
    if method == "ditto":
        Xg, mom_g = S.init(1, dims, seed), _Momentum(hp.beta)
    if method == "ifca":
        K = hp.ifca_k or int(fed.cluster.max()) + 1
        C = {k: torch.cat([S.init(1, dims, seed + 1000 * (c + 1))[k] for c in range(K)]) for k in X}
        assign = torch.zeros(fed.n, dtype=torch.long)
    A = _mix_matrix(method if method != "ft_fedavg" else "fedavg", fed) if method in (
        "local", "fedavg", "oracle", "ft_fedavg") else None

    def models():
        return S.select(C, assign) if method == "ifca" else X

    def evaluate(t):
        acc, loss = S.evaluate(models(), fed.x_test, fed.y_test)
        row = dict(t=t, acc=acc.mean().item(), loss=loss.mean().item())
        if method == "cobo":
            row["recovery"] = cobo.recovery(W, same)
            row["within"], row["cross"] = cobo.within_cross(W, same)
        out["history"].append(row)
        return acc, loss

    t0 = time.perf_counter()
    for t in range(hp.steps):
        if t % hp.eval_every == 0:
            evaluate(t)
        if method == "cobo" and t in hp.snapshots:
            out["snapshots"][t] = W.clone()
        x, y = fed.batch(hp.batch, gen)
        if method == "ifca":
            k = max(1, round(hp.ifca_frac * fed.n))
            part = torch.arange(fed.n) if k == fed.n else torch.randperm(fed.n, generator=pair_gen)[:k]
            xs, ys = x[part], y[part]
            with torch.no_grad():
                losses = torch.stack([S.evaluate(S.select(C, torch.full((k,), c)), xs, ys)[1] for c in range(K)])
            assign[part] = losses.argmin(0)
            _, g = S.loss_and_grads(S.select(C, assign[part]), xs, ys)
            counts = torch.bincount(assign[part], minlength=K)
            gc = {key: torch.zeros_like(C[key]).index_add_(0, assign[part], v)
                  / counts.clamp_min(1).view(-1, *[1] * (v.dim() - 1)) for key, v in g.items()}
            m = mom(gc)
            used = (counts > 0).float()
            C = {key: v - hp.lr * m[key] * used.view(-1, *[1] * (v.dim() - 1)) for key, v in C.items()}
            out["grads"] += k * (K + 1)
            continue
        _, g = S.loss_and_grads(X, x, y)
        out["grads"] += fed.n
        if method == "ft_fedavg" and t == round((1 - hp.ft_frac) * hp.steps):
            A = torch.eye(fed.n)
        if A is not None:
            g = _mix(A, g)
        if method == "fc":
            g = S.unflat(_threshold_average(S.flat(g), hp.fc_quantile, hp.fc_iters), g)
        m = mom(g)
        if method == "ditto":
            _, gg = S.loss_and_grads(S.select(Xg, torch.zeros(fed.n, dtype=torch.long)), x, y)
            mg = mom_g({k: v.mean(0, keepdim=True) for k, v in gg.items()})
            X = {k: v - hp.lr * (m[k] + hp.ditto_lambda * (v - Xg[k])) for k, v in X.items()}
            Xg = {k: v - hp.lr * mg[k] for k, v in Xg.items()}
            out["grads"] += fed.n
            continue
        if method == "cobo":
            i, j = cobo.sample_pairs(fed.n, cobo.pair_probability(hp.schedule, t, fed.n, hp.steps, hp.pair_c),
                                     pair_gen)
            if len(i):
                W = cobo.update_weights(W, i, j, _midpoint_inner(X, fed, i, j, hp.batch, mid_gen), hp.gamma,
                                        hp.variant)
            out["pairs"] += len(i)
            out["grads"] += 2 * len(i)
            L = cobo.laplacian(W)
            X = {k: v - hp.lr * (m[k] + hp.rho * torch.einsum("ij,j...->i...", L, v)) for k, v in X.items()}
            continue
        X = {k: v - hp.lr * m[k] for k, v in X.items()}
    acc, loss = evaluate(hp.steps)
    out.update(acc=acc, loss=loss, W=W if method == "cobo" else None, seconds=time.perf_counter() - t0)
    if method == "cobo":
        out["snapshots"][hp.steps] = W.clone()
    return out
