"""Hashemi, He & Jaggi (2024), CoBo: clients of unknown clusters learn whom to collaborate with
(the weights W of a bilevel problem) while they train.

Groups of runs, every training run cached by its configuration:

* quadratic clusters (the paper's Example / Fig. 1 setting): f_i(x) = (a_i/2)||x - mu_k(i)||^2
  with noisy gradients, two clusters; CoBo against Local, FedAvg and the cluster Oracle;
* cross-silo (Table 2, Figs. 2b and 3): 4 clusters x 4 clients on scikit-learn's digits, each
  cluster with its own label permutation, scarce data per client; every method, n_seeds seeds;
* pair-sampling schedules (Table 1): CoBo with each schedule;
* robustness (Fig. 2a): data per client, number of clusters, clients per cluster;
* consensus strength: CoBo at several rho (too strong a pull delays the separation);
* cross-device (Table 2's 80-client column): many clients in clusters of unequal sizes.
Metrics, claims and figures are in `companion.reports.cobo`.
"""
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from companion import mnist
from companion.collab import cobo
from companion.collab import methods as M
from companion.collab import partition as P
from companion.params import ParamError, param
from companion.results import cached

CHAPTER = "cobo"


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "first seed (client data, label permutations, initialisation, minibatches, pairs)",
                   range=(0, 2**31 - 1))
    n_seeds: int = param(2, "seeds of every cross-silo, sampling and cross-device comparison", range=(1, 100))
    # the quadratic example
    quad_clients: int = param(8, "clients of the quadratic example (two equal clusters)", range=(4, 1000))
    quad_dim: int = param(20, "dimension of the quadratic example", range=(2, 10**5))
    quad_sep: float = param(5.0, "distance ||mu_1 - mu_2|| between the two clusters' optima", range=(0.0, 1e4))
    quad_noise: float = param(0.5, "standard deviation of the gradient noise (per coordinate)", range=(0.0, 100.0))
    quad_steps: int = param(300, "rounds of the quadratic example", range=(10, 10**6))
    quad_lr: float = param(0.1, "step size eta of the quadratic example", range=(1e-6, 1.0))
    quad_rho: float = param(0.5, "consensus strength rho of the quadratic example", range=(0.0, 100.0))
    quad_gamma: float = param(0.01, "weight step gamma of the quadratic example (the vision code's)", range=(0.0, 10.0))
    # cross-silo
    data: str = param("digits", "images: digits (scikit-learn 8x8, stratified 75/25 split) or mnist-test-split (the "
                   "10,000 MNIST test images as our own 8,000/2,000 split)", choices=("digits", "mnist-test-split"))
    clusters: int = param(4, "clusters of the cross-silo set-up (each its own label permutation)", range=(1, 100))
    clients_per_cluster: int = param(4, "clients per cluster", range=(1, 1000))
    per_client: int = param(168, "training points per client (disjoint within a cluster)", range=(4, 10**6))
    hidden: tuple[int, ...] = param((64,), "hidden widths of every client's MLP", range=(1, 10**5))
    batch: int = param(32, "minibatch per client and round", range=(1, 10**5))
    steps: int = param(4000, "rounds of every cross-silo run", range=(10, 10**7))
    lr: float = param(0.05, "step size eta", range=(1e-6, 10.0))
    beta: float = param(0.9, "EMA momentum m <- beta m + (1 - beta) g (the official code's)", range=(0.0, 0.999))
    rho: float = param(0.1, "CoBo consensus strength rho", range=(0.0, 100.0))
    gamma: float = param(0.05, "CoBo weight step gamma (raw inner products: retune with the model size)",
                      range=(0.0, 100.0))
    schedule: str = param("mixed_code", "CoBo pair sampling: const (2/n), inv_t (min(1, pair_c/(t+1))), mixed_paper "
                       "(2/n for 0.2% of the rounds, then min(2/n, pair_c/(t+1))), mixed_code (2/n for 800 rounds, "
                       "then 1/sqrt(t)), none (every pair)", choices=cobo.SCHEDULES)
    pair_c: float = param(100.0, "constant c of the O(1/t) schedules", range=(1e-3, 1e9))
    ditto_lambda: float = param(1.0, "Ditto's proximal strength lambda (the paper's vision value)", range=(0.0, 1e3))
    ifca_frac: float = param(1.0, "IFCA: fraction of the clients sampled per round (the paper's cross-silo: all)",
                          range=(0.0, 1.0))
    ft_frac: float = param(0.1, "fine-tuned FedAvg: fraction of the rounds spent fine-tuning locally",
                        range=(0.0, 1.0))
    methods: tuple[str, ...] = param(M.METHODS, "methods of the cross-silo comparison", choices=M.METHODS)
    snapshots: tuple[int, ...] = param((0, 100, 300, 1000, 2000), "rounds at which CoBo's W is drawn (and the end)",
                                    range=(0, 10**7))
    eval_every: int = param(100, "rounds between two test evaluations", range=(1, 10**6))
    # Table 1
    schedules: tuple[str, ...] = param(cobo.SCHEDULES, "pair-sampling schedules of the sampling table",
                                    choices=cobo.SCHEDULES)
    # Fig. 2a
    sweep_steps: int = param(2000, "rounds of every robustness run", range=(10, 10**7))
    sweep_per_client: tuple[int, ...] = param((42, 84, 168, 336), "training points per client (4 x 4 clients)",
                                           range=(4, 10**6))
    sweep_clusters: tuple[int, ...] = param((2, 4, 8), "numbers of clusters (2 clients each)", range=(1, 100))
    sweep_clients: tuple[int, ...] = param((2, 4, 6), "clients per cluster (4 clusters)", range=(1, 1000))
    sweep_methods: tuple[str, ...] = param(("local", "cobo", "oracle"), "methods of the robustness sweeps",
                                        choices=M.METHODS)
    rho_values: tuple[float, ...] = param((0.1, 0.3, 1.0), "consensus strengths of the rho figure (cross-silo set-up, "
                                       "sweep_steps rounds, first seed)", range=(0.0, 100.0))
    # cross-device
    device_sizes: tuple[int, ...] = param((2, 2, 3, 3, 4, 4, 5, 5, 6, 6), "cross-device cluster sizes (unequal, like "
                                       "the paper's 6, 6, 7, ..., 10)", range=(1, 1000))
    device_per_client: int = param(40, "cross-device training points per client", range=(4, 10**6))
    device_partition: str = param("permuted", "cross-device clusters: permuted (a label permutation each) or "
                               "class_groups (each cluster owns device_classes classes, renumbered from 0, so that "
                               "labels collide across clusters as in the paper's 80-client set-up)",
                               choices=("permuted", "class_groups"))
    device_classes: int = param(2, "classes per cluster of device_partition=class_groups", range=(2, 10))
    device_steps: int = param(3000, "cross-device rounds", range=(10, 10**7))
    device_methods: tuple[str, ...] = param(("local", "fedavg", "ft_fedavg", "ditto", "ifca", "cobo", "oracle"),
                                         "methods of the cross-device comparison (the paper omits FC, O(n²))",
                                         choices=M.METHODS)
    device_ifca_frac: float = param(0.1, "cross-device IFCA: fraction of the clients sampled per round (the paper's)",
                                 range=(0.0, 1.0))

    def validate(self):
        for name in ("methods", "sweep_methods", "device_methods"):
            if "cobo" not in getattr(self, name) or "local" not in getattr(self, name):
                raise ParamError(f"parameter {name!r} must include cobo and local (the comparisons need both); got "
                                 f"{','.join(getattr(self, name))}")
        if self.quad_clients % 2:
            raise ParamError(f"parameter 'quad_clients' must be even (two equal clusters); got {self.quad_clients}")
        if self.device_partition == "class_groups" and len(self.device_sizes) * self.device_classes > 10:
            raise ParamError(f"device_partition=class_groups: {len(self.device_sizes)} clusters x "
                             f"{self.device_classes} classes exceed the 10 classes; give at most "
                             f"{10 // self.device_classes} device_sizes")
        pool = 8000 if self.data == "mnist-test-split" else 1347
        for what, size, per in (("clients_per_cluster", self.clients_per_cluster, self.per_client),
                                ("sweep_clients", max(self.sweep_clients), self.per_client),
                                ("sweep_clusters", 2, self.per_client),
                                ("sweep_per_client", self.clients_per_cluster, max(self.sweep_per_client)),
                                ("device_sizes", max(self.device_sizes), self.device_per_client)):
            if size * per > pool:
                raise ParamError(f"{what}: {size} clients x {per} points exceed the {pool} training points of "
                                 f"data={self.data}")

    def datasets(self) -> tuple:
        """The data files this configuration reads (checked by the CLI before a run starts)."""
        return ("mnist-test-images", "mnist-test-labels") if self.data == "mnist-test-split" else ()

    def hyper(self, steps: int, **kw) -> M.Hyper:
        hp = dict(steps=steps, batch=self.batch, lr=self.lr, beta=self.beta, hidden=self.hidden, rho=self.rho,
                  gamma=self.gamma, schedule=self.schedule, pair_c=self.pair_c, ditto_lambda=self.ditto_lambda,
                  ft_frac=self.ft_frac, ifca_frac=self.ifca_frac, eval_every=self.eval_every,
                  snapshots=tuple(s for s in self.snapshots if s < steps))
        return M.Hyper(**hp | kw)


SCALES = {
    # plumbing: every group of runs, short
    "smoke": Config(n_seeds=1, steps=400, snapshots=(0, 100, 200), eval_every=50, methods=("local", "fedavg", "cobo",
                    "oracle"), schedules=("const", "none"), sweep_steps=200, sweep_per_client=(42, 168),
                    sweep_clusters=(2, 4), sweep_clients=(2, 4), sweep_methods=("local", "cobo"), rho_values=(0.1, 1.0),
                    device_steps=300, device_methods=("local", "cobo", "oracle")),
    "cpu": Config(),
    # proposal for one H100 (brief, gpu; unmeasured): MNIST, the paper's 80 clients in clusters of 6..10
    "gpu": Config(data="mnist-test-split", hidden=(256,), per_client=400, n_seeds=3, device_sizes=(6, 6, 7, 7, 8, 8,
                  9, 9, 10, 10), device_per_client=100, device_steps=5000, gamma=0.005),
}


# ---------------------------------------------------------------- the quadratic example

def quadratic(cfg: Config, method: str, seed: int) -> dict:
    """f_i(x) = (a_i/2)||x - mu_k(i)||^2, a_i ~ U[0.5, 1.5], two clusters with ||mu_1 - mu_2|| =
    quad_sep, gradient noise N(0, quad_noise^2 I), x^0 = 0, plain SGD; CoBo samples every pair
    (p = 1). Returns the distance of every client to its optimum and W per round."""
    n, d = cfg.quad_clients, cfg.quad_dim
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    mu = torch.stack([u, -u]) * (cfg.quad_sep / 2) / u.norm()
    cluster = torch.arange(n) // (n // 2)
    a = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
    target = mu[cluster]
    same = cluster[:, None] == cluster[None, :]
    x = torch.zeros(n, d, dtype=torch.float64)
    W = torch.ones(n, n, dtype=torch.float64)
    noise = torch.Generator().manual_seed(seed + 1)
    grad = lambda z, k: a[k, None] * (z - target[k]) + cfg.quad_noise * torch.randn(  # noqa: E731
        z.shape, generator=noise, dtype=torch.float64)
    dist, Ws = [], []
    for t in range(cfg.quad_steps):
        dist.append((x - target).norm(dim=1))
        if method == "cobo":
            i, j = torch.triu_indices(n, n, 1)
            z = (x[i] + x[j]) / 2
            W = cobo.update_weights(W, i, j, (grad(z, i) * grad(z, j)).sum(1), cfg.quad_gamma)
            Ws.append(W.clone())
        gx = grad(x, torch.arange(n))
        if method == "fedavg":
            gx = gx.mean(0, keepdim=True).expand(n, d)
        elif method == "oracle":
            gx = (same.double() @ gx) / same.sum(1, keepdim=True)
        step = gx + (cfg.quad_rho * cobo.laplacian(W) @ x if method == "cobo" else 0)
        x = x - cfg.quad_lr * step
    dist.append((x - target).norm(dim=1))
    out = dict(dist=torch.stack(dist), cluster=cluster, mu=mu, x=x, a=a)
    if method == "cobo":
        out["W"] = torch.stack(Ws)
    return out


# ---------------------------------------------------------------- image federations

def _images(cfg: Config):
    if cfg.data == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        d = load_digits()
        x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
        tr, te = train_test_split(torch.arange(len(y)).numpy(), test_size=0.25, stratify=d.target, random_state=0)
        return x[tr], y[tr], x[te], y[te]
    return mnist.seeded_split(8000, 2000, 0)


class _Runner:
    def __init__(self, cfg: Config, progress: bool):
        self.cfg, self.progress = cfg, progress
        self.images = _images(cfg)
        self.bar = None

    def federation(self, sizes, per_client: int, seed: int, partition: str) -> P.Federation:
        if partition == "class_groups":
            return P.class_group_clusters(*self.images, tuple(sizes), per_client, self.cfg.device_classes, seed)
        return P.permuted_clusters(*self.images, tuple(sizes), per_client, seed)

    def train(self, method: str, sizes, per_client: int, hp: M.Hyper, seed: int, partition: str) -> dict:
        key = dict(data=self.cfg.data, sizes=tuple(sizes), per_client=per_client, hyper=asdict(hp), method=method,
                   seed=seed) | ({"partition": partition, "classes": self.cfg.device_classes}
                                 if partition != "permuted" else {})

        def compute(ckpt):
            fed = self.federation(sizes, per_client, seed, partition)
            return M.train(method, fed, hp, seed) | {"same": fed.same_cluster(), "cluster": fed.cluster}
        name = f"{method}-{hp.schedule}-s{seed}"  # the key tells runs apart; equal runs of two groups are shared
        out = cached(CHAPTER, name, key, compute)
        if self.bar is not None:
            self.bar.update(1)
        return out


def plan(cfg: Config) -> dict:
    """The runs of every group: name -> list of (method, cluster sizes, per_client, steps, seed, Hyper
    overrides); every group uses permuted clusters except `device`, which uses device_partition."""
    seeds = [cfg.seed + s for s in range(cfg.n_seeds)]
    silo = (cfg.clients_per_cluster,) * cfg.clusters
    p = {"silo": [(m, silo, cfg.per_client, cfg.steps, s, {}) for s in seeds for m in cfg.methods],
         "sampling": [("cobo", silo, cfg.per_client, cfg.steps, s, {"schedule": sch}) for s in seeds
                      for sch in cfg.schedules],
         "sweep_data": [(m, silo, n, cfg.sweep_steps, cfg.seed, {}) for n in cfg.sweep_per_client
                        for m in cfg.sweep_methods],
         "sweep_clusters": [(m, (2,) * k, cfg.per_client, cfg.sweep_steps, cfg.seed, {}) for k in cfg.sweep_clusters
                            for m in cfg.sweep_methods],
         "sweep_clients": [(m, (c,) * 4, cfg.per_client, cfg.sweep_steps, cfg.seed, {}) for c in cfg.sweep_clients
                           for m in cfg.sweep_methods],
         "rho": [("cobo", silo, cfg.per_client, cfg.sweep_steps, cfg.seed, {"rho": r}) for r in cfg.rho_values],
         "device": [(m, cfg.device_sizes, cfg.device_per_client, cfg.device_steps, s,
                     {"ifca_frac": cfg.device_ifca_frac}) for s in seeds for m in cfg.device_methods]}
    return p


def run(cfg: Config, dev=None, progress: bool = True) -> dict:
    """Everything the chapter shows, in the order of its sections (CPU only: the models are
    tiny and batched over clients)."""
    torch.set_flush_denormal(True)  # decaying momentum buffers otherwise slow the runs 20-80x
    quad = {k: v for k, v in asdict(cfg).items() if k.startswith("quad_")} | {"seed": cfg.seed}
    out = {"quadratic": {m: cached(CHAPTER, f"quadratic-{m}", quad | {"method": m},
                                   lambda ckpt, m=m: quadratic(cfg, m, cfg.seed))
                         for m in ("local", "fedavg", "oracle", "cobo")}}
    r = _Runner(cfg, progress)
    runs = plan(cfg)
    r.bar = tqdm(total=sum(map(len, runs.values())), desc="cobo runs", disable=not progress, leave=False)
    for group, specs in runs.items():
        partition = cfg.device_partition if group == "device" else "permuted"
        out[group] = [dict(method=method, sizes=tuple(sizes), per_client=per_client, steps=steps, seed=seed, **over,
                           result=r.train(method, sizes, per_client, cfg.hyper(steps, **over), seed, partition))
                      for method, sizes, per_client, steps, seed, over in specs]
    r.bar.close()
    return out
