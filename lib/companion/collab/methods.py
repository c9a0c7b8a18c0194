"""Personalised training of n clients at once: CoBo and the baselines of its paper.

Every method keeps one model per client (stacked, see `stacked`) and runs `steps` rounds; in
each round every client draws a fresh minibatch. Momentum is the official code's EMA,
m <- beta m + (1 - beta) g (m = g at a model's first step), then x <- x - eta m.

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
  estimates its cluster's gradient by `fc_iters` rounds of averaging the k gradients nearest
  to its current estimate, starting from its own; k is the true (smallest) cluster size,
  which the paper gives FC.
* cobo: `cobo.update_weights` on sampled pairs (at the current models), then
  x_i <- x_i - eta (m_i + rho sum_j w_ij (x_i - x_j)) with the new weights.
local, fedavg, ft_fedavg and oracle are one rule: the gradients are mixed by a row-stochastic
matrix A before the momentum (A = I, 11^T/n, or the cluster blocks).
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
    fc_iters: int = 10
    ft_frac: float = 0.1
    eval_every: int = 100
    snapshots: tuple = field(default_factory=tuple)  # rounds at which CoBo's W is stored


class _Momentum:
    """EMA momentum per model; models not in `mask` keep their buffer, and a model's first
    step sets m = g."""

    def __init__(self, beta: float):
        self.beta, self.m, self.started = beta, None, None

    def __call__(self, g: dict, mask=None) -> dict:
        first = next(iter(g.values()))
        if self.m is None:
            self.m = {k: torch.zeros_like(v) for k, v in g.items()}
            self.started = torch.zeros(len(first), dtype=torch.bool)
        if mask is None and bool(self.started.all()):  # the common case, in place
            for k, v in g.items():
                self.m[k].mul_(self.beta).add_(v, alpha=1 - self.beta)
            return self.m
        mask = torch.ones(len(first), dtype=torch.bool) if mask is None else mask
        for k, v in g.items():
            shape = (-1,) + (1,) * (v.dim() - 1)
            ema = self.beta * self.m[k] + (1 - self.beta) * v
            new = torch.where(self.started.view(shape), ema, v)
            self.m[k] = torch.where(mask.view(shape), new, self.m[k])
        self.started |= mask
        return self.m


def _mix(A: torch.Tensor, tree: dict) -> dict:
    """Row i of the result: sum_j A_ij tree_j, for every tensor of the tree."""
    return {k: torch.einsum("ij,j...->i...", A, v) for k, v in tree.items()}


def _threshold_average(G: torch.Tensor, k: int, iters: int) -> torch.Tensor:
    """Federated Clustering's robust estimate of every client's cluster gradient: from e_i = g_i,
    repeat e_i <- mean of the k gradients nearest to e_i (its own included; the brief's
    "within a distance quantile", with the quantile set to k clients)."""
    est, sq = G, (G * G).sum(1)
    for _ in range(iters):
        D2 = (est * est).sum(1, keepdim=True) + sq - 2 * est @ G.T  # squared distances, as cdist but faster
        est = G[D2.topk(k, dim=1, largest=False).indices].mean(1)
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


class _Run:
    """The state of one training run: the clients' models X (and, per method, the shared
    models), the momentum, CoBo's W, the random streams and the cost counters."""

    def __init__(self, method: str, fed: Federation, hp: Hyper, seed: int):
        self.method, self.fed, self.hp = method, fed, hp
        self.dims = (fed.x.shape[-1], *hp.hidden, fed.n_classes)
        self.X = S.init(fed.n, self.dims, seed)
        self.mom = _Momentum(hp.beta)
        self.gen = torch.Generator().manual_seed(seed + 1)  # minibatches
        # pair sampling (and IFCA's client sampling) and the midpoint batches have their own
        # streams: ablations over the schedule keep every client's minibatch sequence
        self.pair_gen = torch.Generator().manual_seed(seed + 2)
        self.mid_gen = torch.Generator().manual_seed(seed + 3)
        n = fed.n
        self.W = torch.ones(n, n) if hp.variant == "box" else (torch.ones(n, n) - torch.eye(n)) / (n - 1)
        self.pairs = self.grads = 0
        if method == "ditto":
            self.Xg, self.mom_g = S.init(1, self.dims, seed), _Momentum(hp.beta)
        if method == "ifca":
            self.K = hp.ifca_k or int(fed.cluster.max()) + 1
            inits = [S.init(1, self.dims, seed + 1000 * (c + 1)) for c in range(self.K)]  # K distinct models
            self.C = {k: torch.cat([m[k] for m in inits]) for k in self.X}
            self.assign = torch.zeros(n, dtype=torch.long)
        if method == "fc":
            self.fc_k = int(torch.bincount(fed.cluster).min())
        same = fed.same_cluster().float()
        self.A = {"local": torch.eye(n), "fedavg": torch.full((n, n), 1 / n), "ft_fedavg": torch.full((n, n), 1 / n),
                  "oracle": same / same.sum(1, keepdim=True)}.get(method)

    def models(self) -> dict:
        """The model every client would use now."""
        return S.select(self.C, self.assign) if self.method == "ifca" else self.X

    def client_grads(self, x, y) -> dict:
        _, g = S.loss_and_grads(self.X, x, y)
        self.grads += self.fed.n
        return g

    def descend(self, m: dict, extra=None):
        """x <- x - eta (m + extra)."""
        self.X = {k: v - self.hp.lr * (m[k] + (0 if extra is None else extra[k])) for k, v in self.X.items()}


def _step_mixing(r: _Run, t: int, x, y):
    """local, fedavg, ft_fedavg and oracle: x <- x - eta EMA(A g)."""
    if r.method == "ft_fedavg" and t == round((1 - r.hp.ft_frac) * r.hp.steps):
        r.A = torch.eye(r.fed.n)
    r.descend(r.mom(_mix(r.A, r.client_grads(x, y))))


def _step_fc(r: _Run, t: int, x, y):
    g = r.client_grads(x, y)
    r.descend(r.mom(S.unflat(_threshold_average(S.flat(g), r.fc_k, r.hp.fc_iters), g)))


def _step_ditto(r: _Run, t: int, x, y):
    m = r.mom(r.client_grads(x, y))
    _, gg = S.loss_and_grads(S.select(r.Xg, torch.zeros(r.fed.n, dtype=torch.long)), x, y)
    r.grads += r.fed.n
    pull = {k: r.hp.ditto_lambda * (v - r.Xg[k]) for k, v in r.X.items()}
    mg = r.mom_g({k: v.mean(0, keepdim=True) for k, v in gg.items()})
    r.descend(m, pull)
    r.Xg = {k: v - r.hp.lr * mg[k] for k, v in r.Xg.items()}


def _step_ifca(r: _Run, t: int, x, y):
    n, K = r.fed.n, r.K
    k = max(1, round(r.hp.ifca_frac * n))
    part = torch.arange(n) if k == n else torch.randperm(n, generator=r.pair_gen)[:k]
    xs, ys = x[part], y[part]
    with torch.no_grad():
        losses = torch.stack([S.evaluate(S.select(r.C, torch.full((k,), c)), xs, ys)[1] for c in range(K)])
    r.assign[part] = losses.argmin(0)
    _, g = S.loss_and_grads(S.select(r.C, r.assign[part]), xs, ys)
    r.grads += k * (K + 1)
    counts = torch.bincount(r.assign[part], minlength=K)
    mean = {key: torch.zeros_like(r.C[key]).index_add_(0, r.assign[part], v)
            / counts.clamp_min(1).view(-1, *[1] * (v.dim() - 1)) for key, v in g.items()}
    used = counts > 0  # a model no sampled client took neither moves nor decays its momentum
    m = r.mom(mean, used)
    r.C = {key: v - r.hp.lr * m[key] * used.view(-1, *[1] * (v.dim() - 1)) for key, v in r.C.items()}


def _step_cobo(r: _Run, t: int, x, y):
    """Algorithm 1: the weights of the sampled pairs move at the current models, then the
    models take the consensus-regularised step with the new weights."""
    m = r.mom(r.client_grads(x, y))
    hp = r.hp
    i, j = cobo.sample_pairs(r.fed.n, cobo.pair_probability(hp.schedule, t, r.fed.n, hp.steps, hp.pair_c),
                             r.pair_gen)
    if len(i):
        inner = _midpoint_inner(r.X, r.fed, i, j, hp.batch, r.mid_gen)
        r.W = cobo.update_weights(r.W, i, j, inner, hp.gamma, hp.variant)
    r.pairs += len(i)
    r.grads += 2 * len(i)
    r.descend(m, {k: hp.rho * v for k, v in _mix(cobo.laplacian(r.W), r.X).items()})


STEPS = {"local": _step_mixing, "fedavg": _step_mixing, "ft_fedavg": _step_mixing, "oracle": _step_mixing,
         "fc": _step_fc, "ditto": _step_ditto, "ifca": _step_ifca, "cobo": _step_cobo}


def train(method: str, fed: Federation, hp: Hyper, seed: int) -> dict:
    """Run `method` for hp.steps rounds. Returns the evaluation history (round, mean test
    accuracy and loss, and for CoBo the cluster recovery of W), the final per-client test
    accuracy and loss, CoBo's W at hp.snapshots and at the end, and the cost counters."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    r = _Run(method, fed, hp, seed)
    same = fed.same_cluster()
    history, snapshots = [], {}

    def evaluate(t):
        acc, loss = S.evaluate(r.models(), fed.x_test, fed.y_test)
        row = dict(t=t, acc=acc.mean().item(), loss=loss.mean().item())
        if method == "cobo":
            row["recovery"] = cobo.recovery(r.W, same)
            row["within"], row["cross"] = cobo.within_cross(r.W, same)
        history.append(row)
        return acc, loss

    t0 = time.perf_counter()
    for t in range(hp.steps):
        if t % hp.eval_every == 0:
            evaluate(t)
        if method == "cobo" and t in hp.snapshots:
            snapshots[t] = r.W.clone()
        x, y = fed.batch(hp.batch, r.gen)
        STEPS[method](r, t, x, y)
    acc, loss = evaluate(hp.steps)
    if method == "cobo":
        snapshots[hp.steps] = r.W.clone()
    return dict(history=history, snapshots=snapshots, acc=acc, loss=loss, W=r.W if method == "cobo" else None,
                pairs=r.pairs, grads=r.grads, seconds=time.perf_counter() - t0)
