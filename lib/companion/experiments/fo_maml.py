"""Chayti & Jaggi, A New First-Order Meta-Learning Algorithm with Convergence Guarantees
(arXiv 2409.03682; revised as FO-B-MAML for TMLR).

Synthetic one-step MAML on task families of companion.meta.tasks (d-dimensional, T tasks);
every study, per seed (a seed draws the task family and the starting points):

* errors: the relative error ||g_hat - grad F|| / ||grad F|| of every estimator at random points,
  the finite-difference ones per delta (the error-vs-delta figure and slopes);
* full: exact ||grad F|| along full-batch gradient descent with each estimator;
* bias_vs_delta: the final exact ||grad F|| of full-batch FO-B-MAML per delta (its stationarity gap);
* stochastic: the same under task sampling (task_batch of T per step, a decaying step);
* control: FO-MAML and Reptile on a family whose tasks share one minimiser (no bias expected);
* smoothness: ||grad^2 F|| against ||grad F|| at points x_c + s v over radii s and directions v, for
  the quadratic family (F is then quadratic: flat), the sine family and the quartic family;
* far (far_control): from a far start on the quartic (sine) family, plain gradient descent at a fraction of the
  critical step 2 / lambda_max(grad^2 F(x*)) against clipped and normalized steps.

MNIST-1D (the TMLR version's experiments; protocol ours, companion.meta.fewshot): a 1D CNN
meta-trained on n_way-way k_shot-shot tasks over MNIST-1D's training signals and scored on tasks
drawn from its held-out signals:

* mnist: meta-test accuracy (after one inner step) against meta-iterations for MAML, FO-MAML,
  Reptile-5 and FO-B-MAML-sym, Adam outer steps, per seed (a seed draws the initialisation and
  the tasks), beside the untrained initialisation adapted the same way (the control);
* mnist_smooth: the same with GELU units instead of ReLU (MAML, FO-MAML, FO-B-MAML-sym), added
  after the first run showed the ReLU network's finite differences failing (below);
* mnist_errors: the relative error of FO-MAML's and FO-B-MAML's meta-gradients against MAML's
  (autograd) at the initialisation, on a few task batches per seed, per delta of mnist_deltas and
  for K = mnist_K and the synthetic study's K. On a ReLU network the gradient jumps where a unit
  changes sign, so a finite difference is only accurate for deltas small enough that no unit
  crosses zero, and float32 round-off bounds delta from below;
* memory: the peak tensor memory of one meta-gradient (companion.metrics.memory) against the
  CNN's channels, and against the inner steps (FO-B-MAML: its fixed-point iterations K). It is
  a count of bytes, the same on every run and seed, so it is measured once.

The estimators of the paper are our reconstruction from its abstracts (companion.meta.estimators).
"""
import sys
from dataclasses import dataclass

import torch

from companion.meta import estimators as est
from companion.meta.fewshot import Sampler
from companion.meta.outer import Outer, fit, train
from companion.meta.tasks import make_tasks
from companion.metrics.memory import peak_tensor_bytes
from companion.models.cnn1d import CNN1d
from companion.params import ParamError, param
from companion.results import cached, config_key

CHAPTER = "fo-maml"
# name -> (estimator, its keyword arguments beyond delta/K): the methods of the curves
METHODS = {"MAML": ("maml", {}), "FO-MAML": ("fomaml", {}), "Reptile-1": ("reptile", {"inner_steps": 1}),
           "Reptile-5": ("reptile", {"inner_steps": 5}), "HF-MAML": ("hfmaml", {}), "FO-B-MAML-fwd": ("fwd", {}),
           "FO-B-MAML-sym": ("sym", {})}
MNIST_METHODS = ("MAML", "FO-MAML", "Reptile-5", "FO-B-MAML-sym")
SMOOTH_METHODS = ("MAML", "FO-MAML", "FO-B-MAML-sym")  # the GELU network's runs
MEMORY_METHODS = ("MAML", "FO-MAML", "Reptile", "FO-B-MAML-sym")


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "first seed (task family and starting points); seeds seed .. seed + n_seeds - 1",
                      range=(0, 2**31 - 1))
    n_seeds: int = param(3, "seeds per configuration", range=(1, 100))
    d: int = param(10, "dimension of the meta-parameters", range=(1, 1000))
    T: int = param(20, "tasks per family", range=(2, 10**5))
    alpha: float = param(0.1, "inner step size alpha (y = x - alpha grad f)", range=(1e-6, 1.0))
    amp: float = param(0.5, "amplitude of the sine terms of the non-quadratic family", range=(0.0, 100.0))
    omega: float = param(1.0, "scale of the sine directions (training family)", range=(1e-3, 100.0))
    omega_scan: float = param(2.0, "scale of the sine directions (smoothness scan)", range=(1e-3, 100.0))
    quartic: float = param(0.01, "weight of the quartic term of the outer losses (far-start family)",
                           range=(0.0, 100.0))
    delta: float = param(0.01, "finite-difference delta of HF-MAML and FO-B-MAML in training", range=(1e-8, 1.0))
    K: int = param(5, "fixed-point iterations of the perturbed problem in training", range=(1, 100))
    deltas: tuple[float, ...] = param((0.04, 0.02, 0.01, 0.005, 0.0025), "deltas of the error study",
                                      range=(1e-8, 1.0))
    K_errors: int = param(8, "fixed-point iterations in the error study", range=(1, 100))
    n_points: int = param(4, "random points per seed in the error study", range=(1, 1000))
    steps: int = param(1000, "outer steps of full-batch training", range=(1, 10**6))
    lr: float = param(0.5, "outer step size of full-batch training", range=(1e-8, 100.0))
    stoch_steps: int = param(10000, "outer steps under task sampling (cpu: set after a 3000-step calibration, "
                             "disclosed)", range=(1, 10**7))
    task_batch: int = param(5, "tasks per outer step under task sampling", range=(1, 10**5))
    tau: float = param(50.0, "step decay under task sampling: eta_t = lr / (1 + t / tau)", range=(0.0, 1e9))
    log_every: int = param(10, "outer steps between logged exact ||grad F||", range=(1, 10**6))
    radii: tuple[float, ...] = param((0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0), "radii s of the smoothness scan",
                                     range=(0.0, 1e6))
    directions: int = param(8, "random directions per radius in the smoothness scan", range=(1, 1000))
    far_radius: float = param(20.0, "distance of the far start from the family's centre", range=(0.0, 1e6))
    far_steps: int = param(1000, "outer steps of the far-start study", range=(1, 10**6))
    far_fraction: float = param(0.9, "plain step of the far start as a fraction of the critical step 2 / L",
                                range=(1e-3, 10.0))
    clip: float = param(1.0, "clipping threshold gamma (and the normalized step's length scale)", range=(1e-8, 1e6))
    channels: int = param(32, "channels of the MNIST-1D CNN (accuracy study)", range=(1, 4096))
    n_way: int = param(5, "classes per MNIST-1D task", range=(2, 10))
    # k_shot + query signals of one class must fit in MNIST-1D's smallest held-out class (89 signals)
    k_shot: int = param(5, "support signals per class", range=(1, 44))
    query: int = param(10, "query signals per class", range=(1, 44))
    mnist_alpha: float = param(0.4, "inner step size on MNIST-1D", range=(1e-6, 10.0))
    meta_batch: int = param(8, "tasks per meta-iteration", range=(1, 10**4))
    meta_iters: int = param(1000, "meta-iterations per method and seed", range=(1, 10**6))
    meta_lr: float = param(1e-3, "Adam step size of the outer loop on MNIST-1D", range=(1e-8, 1.0))
    mnist_delta: float = param(0.01, "finite-difference delta of FO-B-MAML on MNIST-1D", range=(1e-8, 1.0))
    mnist_deltas: tuple[float, ...] = param((1e-2, 1e-3, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6), "deltas of the MNIST-1D "
                                            "error sweep", range=(1e-12, 1.0))
    mnist_K: int = param(2, "fixed-point iterations of FO-B-MAML on MNIST-1D (cpu: 2 rather than 5, for time; set "
                         "after a one-seed timing run, disclosed)", range=(1, 100))
    eval_every: int = param(100, "meta-iterations between meta-test evaluations", range=(1, 10**6))
    eval_tasks: int = param(300, "meta-test tasks (fixed per seed)", range=(1, 10**5))
    memory_channels: tuple[int, ...] = param((16, 32, 64, 128, 250), "CNN channels of the memory study",
                                             range=(1, 4096))
    memory_steps: tuple[int, ...] = param((1, 2, 4, 8), "inner steps (FO-B-MAML: fixed-point iterations) of the "
                                          "memory study", range=(1, 1000))
    memory_width: int = param(64, "CNN channels of the memory study's inner-step sweep", range=(1, 4096))

    def validate(self):
        for name in ("deltas", "mnist_deltas", "radii", "memory_channels", "memory_steps"):
            v = getattr(self, name)
            if list(v) != sorted(set(v), reverse="deltas" in name):
                order = "strictly decreasing" if "deltas" in name else "strictly increasing"
                raise ParamError(f"parameter {name!r} must be {order}; got {','.join(map(str, v))}")
        if self.task_batch > self.T:
            raise ParamError(f"task_batch ({self.task_batch}) must not exceed T ({self.T})")
        if self.log_every > min(self.steps, self.stoch_steps):
            raise ParamError(f"log_every ({self.log_every}) must not exceed steps and stoch_steps")
        if self.eval_every > self.meta_iters:
            raise ParamError(f"eval_every ({self.eval_every}) must not exceed meta_iters ({self.meta_iters})")
        if len(self.memory_channels) < 2 or len(self.memory_steps) < 2:
            raise ParamError("memory_channels and memory_steps need at least two values each (a growth is a ratio)")


SCALES = {
    "smoke": Config(n_seeds=1, steps=200, stoch_steps=300, far_steps=200, n_points=2, deltas=(0.04, 0.02, 0.01),
                    radii=(1.0, 4.0, 16.0), directions=3, channels=8, meta_iters=20, eval_every=10, eval_tasks=40,
                    memory_channels=(8, 16), memory_steps=(1, 2), memory_width=8),
    "cpu": Config(),
    # Proposal for one GPU (unmeasured): more seeds, a longer stochastic run, a wider CNN meta-trained
    # longer on more tasks per step, FO-B-MAML at the synthetic study's K.
    "gpu": Config(n_seeds=5, stoch_steps=30000, channels=64, meta_batch=32, meta_iters=3000, mnist_K=5,
                  eval_every=200, eval_tasks=1000),
}

FAMILY = ("seed", "n_seeds", "d", "T", "alpha")


def seeds(cfg) -> list:
    return list(range(cfg.seed, cfg.seed + cfg.n_seeds))


def family(cfg, s: int, kind: str = "sine"):
    """The task family of seed s: sine (training), quadratic, scan (sine, omega_scan), quartic, shared."""
    kw = {"sine": lambda: dict(amp=cfg.amp, omega=cfg.omega), "quadratic": dict,
          "scan": lambda: dict(amp=cfg.amp, omega=cfg.omega_scan), "quartic": lambda: dict(quartic=cfg.quartic),
          "shared": lambda: dict(amp=0.0, same_centre=True)}[kind]()  # lazily: a study reads only its family's fields
    return make_tasks(d=cfg.d, T=cfg.T, seed=s, **kw)


def start(cfg, s: int, d: int, scale: float = 2.0):
    return scale * torch.randn(d, generator=torch.Generator().manual_seed(7_919 + s), dtype=torch.float64)


def _kw(cfg, name, delta=None):
    """(estimator, its keyword arguments) of a named method, at the training delta unless given."""
    e, kw = METHODS[name]
    return e, {**kw, "delta": cfg.delta if delta is None else delta, "K": cfg.K}


def _logged(log: dict) -> dict:
    """A training log without its final iterate (what the studies keep)."""
    return {k: v for k, v in log.items() if k != "x"}


def errors(cfg):
    out = []
    for s in seeds(cfg):
        tasks, gen = family(cfg, s), torch.Generator().manual_seed(31 + s)
        for _ in range(cfg.n_points):
            x = 2.0 * torch.randn(cfg.d, generator=gen, dtype=torch.float64)
            exact = est.meta_gradient("maml", tasks, x, cfg.alpha)

            def rel(name, **kw):
                return float((est.meta_gradient(name, tasks, x, cfg.alpha, **kw) - exact).norm() / exact.norm())
            out.append({"seed": s,
                        "flat": {"FO-MAML": rel("fomaml"), "Reptile-1": rel("reptile", inner_steps=1),
                                 "Reptile-5": rel("reptile", inner_steps=5)},
                        "by_delta": {name: [rel(e, delta=dl, K=cfg.K_errors) for dl in cfg.deltas]
                                     for name, e in (("HF-MAML", "hfmaml"), ("FO-B-MAML-fwd", "fwd"),
                                                     ("FO-B-MAML-sym", "sym"))}})
    return out


def _train_all(cfg, kind, outer, steps, task_batch=None, names=tuple(METHODS)):
    out = {}
    for name in names:
        runs = []
        for s in seeds(cfg):
            tasks = family(cfg, s, kind)
            e, kw = _kw(cfg, name)
            log = train(tasks, e, outer, start(cfg, s, cfg.d), steps, cfg.alpha, task_batch=task_batch, seed=s,
                        log_every=cfg.log_every, **kw)
            runs.append(_logged(log))
        out[name] = runs
    return out


def full(cfg):
    return _train_all(cfg, "sine", Outer("sgd", lr=cfg.lr), cfg.steps)


def bias_vs_delta(cfg):
    """Final exact ||grad F|| of full-batch FO-B-MAML per delta: where its stationary point lands."""
    out = {}
    for name in ("FO-B-MAML-fwd", "FO-B-MAML-sym"):
        out[name] = {}
        for dl in cfg.deltas:
            runs = []
            for s in seeds(cfg):
                e, kw = _kw(cfg, name, delta=dl)
                log = train(family(cfg, s), e, Outer("sgd", lr=cfg.lr), start(cfg, s, cfg.d), cfg.steps, cfg.alpha,
                            log_every=cfg.steps, **kw)
                runs.append(log["gnorm"][-1])
            out[name][dl] = runs
    return out


def stochastic(cfg):
    return _train_all(cfg, "sine", Outer("sgd", lr=cfg.lr, tau=cfg.tau), cfg.stoch_steps, task_batch=cfg.task_batch,
                      names=("MAML", "FO-MAML", "Reptile-1", "FO-B-MAML-fwd", "FO-B-MAML-sym"))


def control(cfg):
    return _train_all(cfg, "shared", Outer("sgd", lr=cfg.lr), cfg.steps, names=("MAML", "FO-MAML", "Reptile-1"))


def smoothness(cfg):
    out = {}
    for kind in ("quadratic", "scan", "quartic"):
        pts = []
        for s in seeds(cfg):
            tasks, gen = family(cfg, s, kind), torch.Generator().manual_seed(97 + s)
            centre = tasks.c.mean(0)
            for r in cfg.radii:
                for _ in range(cfg.directions):
                    v = torch.randn(cfg.d, generator=gen, dtype=torch.float64)
                    x = centre + r * v / v.norm()
                    H = est.meta_hessian(tasks, x, cfg.alpha)
                    pts.append({"seed": s, "radius": r,
                                "gnorm": float(est.meta_gradient("maml", tasks, x, cfg.alpha).norm()),
                                "hnorm": float(torch.linalg.matrix_norm(H, ord=2))})
        out[kind] = pts
    return out


def critical_step(cfg, tasks) -> float:
    """2 / lambda_max of grad^2 F at the end of a long exact run (the optimum): the largest step
    at which plain gradient descent is stable near x*."""
    log = train(tasks, "maml", Outer("clip", lr=0.5, clip=cfg.clip), tasks.c.mean(0), 3000, cfg.alpha,
                log_every=3000)
    return 2 / float(torch.linalg.eigvalsh(est.meta_hessian(tasks, log["x"], cfg.alpha))[-1])


def far(cfg, kind: str = "quartic"):
    out = {"eta_crit": [], "runs": {n: [] for n in ("GD", "clipped", "normalized")}}
    for s in seeds(cfg):
        tasks = family(cfg, s, kind)
        eta = critical_step(cfg, tasks)
        v = torch.randn(cfg.d, generator=torch.Generator().manual_seed(5_003 + s), dtype=torch.float64)
        x0 = tasks.c.mean(0) + cfg.far_radius * v / v.norm()
        out["eta_crit"].append(eta)
        lr = cfg.far_fraction * eta
        for name, outer in (("GD", Outer("sgd", lr=lr)), ("clipped", Outer("clip", lr=lr, clip=cfg.clip)),
                            ("normalized", Outer("sngdm", lr=lr * cfg.clip, beta=0.0, tau=cfg.tau))):
            log = train(tasks, "maml", outer, x0, cfg.far_steps, cfg.alpha, log_every=cfg.log_every)
            out["runs"][name].append(_logged(log))
    return out


def _sampler(cfg, part: str, channels: int, activation: str = "relu") -> Sampler:
    return Sampler(tuple(range(10)), part, cfg.n_way, cfg.k_shot, cfg.query,
                   CNN1d(channels, cfg.n_way, activation=activation))


def _mnist_kw(name: str, cfg) -> tuple:
    e, kw = METHODS[name]
    return e, ({**kw, "delta": cfg.mnist_delta, "K": cfg.mnist_K} if e in ("fwd", "sym") else kw)


def mnist(cfg, dev=None, activation: str = "relu", names=MNIST_METHODS):
    train_tasks = _sampler(cfg, "train", cfg.channels, activation)
    out = {"init": [], "runs": {n: [] for n in names}}
    for s in seeds(cfg):
        test = _sampler(cfg, "test", cfg.channels, activation).sample(cfg.eval_tasks, torch.Generator().manual_seed(10_007 + s))
        test = test.to(dev)

        def accuracy(theta):
            A, c = test.batch()
            return test.accuracy(est.adapt(test, theta.expand(test.T, -1), A, c, cfg.mnist_alpha)).mean()
        theta0 = train_tasks.net.init(torch.Generator().manual_seed(3_001 + s)).to(dev)
        out["init"].append(float(accuracy(theta0)))
        for name in names:
            e, kw = _mnist_kw(name, cfg)
            log = fit(train_tasks, e, theta0, cfg.meta_iters, cfg.mnist_alpha, cfg.meta_batch, cfg.meta_lr, accuracy,
                      cfg.eval_every, seed=s, dev=dev, **kw)
            out["runs"][name].append({"t": log["t"], "accuracy": log["score"]})
    return out


def mnist_smooth(cfg, dev=None):
    """The mnist study on the same CNN with GELU units (smooth: no kinks for finite differences)."""
    return mnist(cfg, dev, "gelu", SMOOTH_METHODS)


def mnist_errors(cfg, dev=None, batches: int = 4):
    return {a: _network_errors(cfg, dev, a, batches) for a in ("relu", "gelu")}


def _network_errors(cfg, dev, activation, batches):
    sampler = _sampler(cfg, "train", cfg.channels, activation)
    out = []
    for s in seeds(cfg):
        theta = sampler.net.init(torch.Generator().manual_seed(3_001 + s)).to(dev)
        gen = torch.Generator().manual_seed(20_011 + s)
        for _ in range(batches):
            episodes = sampler.sample(cfg.meta_batch, gen).to(dev)
            exact = est.meta_gradient("maml", episodes, theta, cfg.mnist_alpha)

            def rel(name, **kw):
                g = est.meta_gradient(name, episodes, theta, cfg.mnist_alpha, **kw)
                return float((g - exact).norm() / exact.norm())
            out.append({"seed": s, "FO-MAML": rel("fomaml"),
                        "by_delta": [rel("sym", delta=dl, K=cfg.mnist_K) for dl in cfg.mnist_deltas],
                        "K_synthetic": rel("sym", delta=cfg.mnist_delta, K=cfg.K)})
    return out


def memory(cfg, dev=None):
    """Peak tensor bytes of one meta-gradient over meta_batch tasks, per method, against channels
    (one inner step; FO-B-MAML at K) and against inner steps (memory_width channels)."""
    def peak(name, channels, steps):
        sampler = _sampler(cfg, "train", channels)
        episodes = sampler.sample(cfg.meta_batch, torch.Generator().manual_seed(0)).to(dev)
        theta = sampler.net.init(torch.Generator().manual_seed(0)).to(dev)
        e = {"MAML": "maml", "FO-MAML": "fomaml", "Reptile": "reptile", "FO-B-MAML-sym": "sym"}[name]
        kw = {"delta": cfg.mnist_delta, "K": steps} if e == "sym" else {"inner_steps": steps}
        return peak_tensor_bytes(lambda: est.meta_gradient(e, episodes, theta, cfg.mnist_alpha, **kw))
    return {"channels": {n: [peak(n, c, 1 if n != "FO-B-MAML-sym" else cfg.mnist_K) for c in cfg.memory_channels]
                         for n in MEMORY_METHODS},
            "steps": {n: [peak(n, cfg.memory_width, k) for k in cfg.memory_steps] for n in MEMORY_METHODS}}


def far_control(cfg):
    """The far start on the sine family, where curvature grows only through MAML (the control)."""
    return far(cfg, "sine")


# the Config fields each study reads besides FAMILY (the cache keys are built by exclusion)
READS = {
    "errors": ("amp", "omega", "deltas", "K_errors", "n_points"),
    "full": ("amp", "omega", "delta", "K", "steps", "lr", "log_every"),
    "bias_vs_delta": ("amp", "omega", "deltas", "K", "steps", "lr"),
    "stochastic": ("amp", "omega", "delta", "K", "stoch_steps", "lr", "tau", "task_batch", "log_every"),
    "control": ("delta", "K", "steps", "lr", "log_every"),
    "smoothness": ("amp", "omega_scan", "quartic", "radii", "directions"),
    "far": ("quartic", "far_radius", "far_steps", "far_fraction", "clip", "tau", "log_every"),
    "far_control": ("amp", "omega", "far_radius", "far_steps", "far_fraction", "clip", "tau", "log_every"),
    "mnist": ("channels", "n_way", "k_shot", "query", "mnist_alpha", "meta_batch", "meta_iters", "meta_lr",
              "mnist_delta", "mnist_K", "eval_every", "eval_tasks"),
    "mnist_smooth": ("channels", "n_way", "k_shot", "query", "mnist_alpha", "meta_batch", "meta_iters", "meta_lr",
                     "mnist_delta", "mnist_K", "eval_every", "eval_tasks"),
    "mnist_errors": ("channels", "n_way", "k_shot", "query", "mnist_alpha", "meta_batch", "mnist_delta", "mnist_K",
                     "mnist_deltas", "K"),
    "memory": ("n_way", "k_shot", "query", "mnist_alpha", "meta_batch", "mnist_delta", "mnist_K", "memory_channels",
               "memory_steps", "memory_width"),
}
STUDIES = {"errors": errors, "full": full, "bias_vs_delta": bias_vs_delta, "stochastic": stochastic, "control": control, "smoothness": smoothness,
           "far": far, "far_control": far_control, "mnist": mnist, "mnist_smooth": mnist_smooth,
           "mnist_errors": mnist_errors, "memory": memory}
ON_DEVICE = ("mnist", "mnist_smooth", "mnist_errors", "memory")  # the studies that run on the chosen device (the others: float64 on CPU)


def run(cfg: Config, dev=None, progress: bool = True) -> dict:
    """Every study's results (module docstring), each cached by the fields it reads. Small dense
    linear algebra in float64: run with one torch thread (the chapter's default)."""
    import dataclasses
    fields = {f.name for f in dataclasses.fields(cfg)}
    out = {}
    for name, study in STUDIES.items():
        keep = set(FAMILY) | set(READS[name])
        out[name] = cached(CHAPTER, name, config_key(cfg, drop=tuple(sorted(fields - keep))),
                           lambda _ckpt, study=study, name=name: study(cfg, dev) if name in ON_DEVICE else study(cfg))
        if progress:
            print(f"{CHAPTER}: {name} done", file=sys.stderr, flush=True)  # not a result: off the page
    return out
