"""Chayti, Doikov & Jaggi (2025), Improving Stochastic Cubic Newton with Momentum.

Logistic regression with the non-convex regulariser (companion.second_order.problems) on a
bundled scikit-learn data set; every stochastic method draws b sample functions per step.
Sub-runs, each cached by the Config fields it reads:

* curves: the full gradient norm, f and lambda_min along T steps at batch 1 for CN, SCN, SCNM
  (the paper's estimator as we reconstruct it: implicit gradient transport for g, heavy ball
  for H), SCNM with Hessian-corrected transport (ours), SGD and SGD with momentum, per seed;
* batches: the final floor (median ||grad f|| over the last 10% of the logs) of SCN and SCNM
  per batch size;
* noise: the floor per injected noise level sigma (gradient and Hessian noise of size sigma);
* convex: the curves of SCN and SCNM without the non-convex term (lam_nc = 0);
* nonconvexity: the floors of SCN and SCNM per weight lambda of the non-convex term (convex
  for lambda <= 2 mu: the regulariser's curvature is at least -lambda / 2);
* conditioned: SCN's and SCNM's floors on a convex problem as well conditioned near its
  minimum as the non-convex one (lam_nc = 0, mu = 2 lam_nc + mu): the conditioning control;
* sweep: SCNM's floor over (alpha, M), beside SCN's per M;
* large_m: SCN and SCNM at large M and a longer horizon, where our calibration saw the gap;
* step_sweep: SGD's and SGD with momentum's floor over their step sizes (their tuning);
* mnist: the batch-1 curves of CN, SCN and SCNM on the offline MNIST test images (digit < 5,
  average-pooled; the paper's second data set, at reduced resolution).

Our reconstruction, pending the paper's Algorithm 1 (its body could not be read): the
estimator's exact form, the constant alpha and beta, the data sets (A9A and MNIST in the paper).
"""
from dataclasses import dataclass

import torch

from companion.params import ParamError, param
from companion.results import cached, config_key
from companion.second_order import problems
from companion.second_order.methods import Method, run as run_method, tail

CHAPTER = "cubic-newton"
DATASETS = {"breast_cancer": problems.breast_cancer, "digits": problems.digits_binary}


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "first seed (starting point and sample draws); seeds seed .. seed + n_seeds - 1",
                      range=(0, 2**31 - 1))
    n_seeds: int = param(3, "seeds per configuration", range=(1, 100))
    dataset: str = param("breast_cancer", "scikit-learn data set: breast_cancer (d = 31) or digits (< 5 vs >= 5, "
                         "d = 65)", choices=tuple(DATASETS))
    lam_nc: float = param(1.0, "weight lambda of the non-convex regulariser sum x^2 / (1 + x^2); its curvature "
                          "reaches -lambda / 2, so the objective is convex for lambda <= 2 mu", range=(0.0, 100.0))
    mu: float = param(0.05, "l2 weight mu / 2 ||x||^2 (keeps the landscape coercive)", range=(0.0, 100.0))
    x0_scale: float = param(3.0, "starting point x0 ~ N(0, x0_scale^2 I)", range=(0.0, 1e3))
    steps: int = param(2000, "iterations T of every run", range=(1, 10**7))
    log_every: int = param(20, "iterations between logged full-gradient norms", range=(1, 10**6))
    M: float = param(10.0, "cubic regularisation M of the main comparison", range=(1e-6, 1e9))
    alpha: float = param(0.1, "SCNM gradient momentum alpha (weight of the new sample)", range=(1e-6, 1.0))
    beta: float = param(0.1, "SCNM Hessian momentum beta", range=(1e-6, 1.0))
    alpha_corrected: float = param(0.03, "alpha = beta of the Hessian-corrected variant (ours)", range=(1e-6, 1.0))
    sgd_lr: float = param(0.03, "SGD step size of the curves (cpu: the best of the sgd_lrs sweep, set after it)", range=(1e-8, 100.0))
    sgdm_lr: float = param(0.03, "SGD with momentum: step size of the curves (as sgd_lr)", range=(1e-8, 100.0))
    sgdm_alpha: float = param(0.1, "SGD with momentum: weight of the new gradient", range=(1e-6, 1.0))
    batches: tuple[int, ...] = param((1, 4, 16, 64), "batch sizes of the floor-vs-batch study", range=(1, 10**6))
    sigmas: tuple[float, ...] = param((0.3, 1.0, 3.0), "injected noise levels of the noise study", range=(0.0, 1e4))
    sweep_alphas: tuple[float, ...] = param((0.3, 0.1, 0.03, 0.01), "alpha of the sensitivity map", range=(1e-6, 1.0))
    sweep_Ms: tuple[float, ...] = param((1.0, 10.0, 100.0, 1000.0), "M of the sensitivity map", range=(1e-6, 1e9))
    lams: tuple[float, ...] = param((0.1, 0.3, 1.0, 3.0), "lambda of the non-convexity study (SCN and SCNM at "
                                    "batch 1)", range=(0.0, 100.0))
    large_Ms: tuple[float, ...] = param((1e4, 1e5), "M of the large-M study", range=(1e-6, 1e12))
    large_steps: int = param(8000, "iterations of the large-M study", range=(1, 10**7))
    large_alpha: float = param(0.003, "SCNM alpha of the large-M study", range=(1e-6, 1.0))
    sgd_lrs: tuple[float, ...] = param((0.01, 0.03, 0.1, 0.3, 1.0), "step sizes of the SGD tuning sweep",
                                       range=(1e-8, 100.0))
    mnist_pool: int = param(4, "MNIST study: average-pool the 28 x 28 images over pool x pool blocks "
                            "(4: d = 50; 0 skips the study)", choices=(0, 1, 2, 4, 7))

    def validate(self):
        for name in ("batches", "sigmas", "sweep_Ms", "lams", "large_Ms", "sgd_lrs"):
            v = getattr(self, name)
            if list(v) != sorted(set(v)):
                raise ParamError(f"parameter {name!r} must be strictly increasing; got {','.join(map(str, v))}")
        if self.log_every > self.steps:
            raise ParamError(f"log_every ({self.log_every}) must not exceed steps ({self.steps})")


SCALES = {
    "smoke": Config(n_seeds=1, steps=200, log_every=10, batches=(1, 16), sigmas=(1.0,), sweep_alphas=(0.1, 0.01),
                    sweep_Ms=(10.0, 1000.0), lams=(0.1, 1.0), large_Ms=(1e4,), large_steps=400, sgd_lrs=(0.1, 1.0)),
    "cpu": Config(),
    # Proposal for one GPU (unmeasured): more seeds and the larger data set.
    "gpu": Config(n_seeds=5, dataset="digits", steps=4000, large_steps=16000),
}

PROBLEM = ("dataset", "lam_nc", "mu", "x0_scale", "steps", "log_every", "seed", "n_seeds")


def problem(cfg: Config, convex: bool = False, lam_nc=None, mu=None):
    lam = 0.0 if convex else cfg.lam_nc if lam_nc is None else lam_nc
    return DATASETS[cfg.dataset](lam_nc=lam, mu=cfg.mu if mu is None else mu)


def matched_mu(cfg: Config) -> float:
    """The l2 weight of the conditioning control: the non-convex problem's curvature at x = 0,
    2 lam_nc + mu, so that a convex problem is as well conditioned near its minimum."""
    return 2 * cfg.lam_nc + cfg.mu


def x0(cfg: Config, d: int, seed: int):
    return torch.randn(d, generator=torch.Generator().manual_seed(10_007 + seed), dtype=torch.float64) * cfg.x0_scale


def seeds(cfg: Config) -> list:
    return list(range(cfg.seed, cfg.seed + cfg.n_seeds))


def cubic_methods(cfg: Config, with_cn: bool = True) -> dict:
    """CN (optional), SCN and SCNM at batch 1 and the main M: name -> Method."""
    return {**({"CN": Method("cn", M=cfg.M)} if with_cn else {}),
            "SCN": Method("scn", M=cfg.M),
            "SCNM": Method("scn", M=cfg.M, momentum="it-hb", alpha=cfg.alpha, beta=cfg.beta)}


def methods(cfg: Config) -> dict:
    """The batch-1 comparison: name -> Method."""
    return {
        **cubic_methods(cfg),
        "SCNM-corrected": Method("scn", M=cfg.M, momentum="corrected", alpha=cfg.alpha_corrected,
                                 beta=cfg.alpha_corrected),
        "SGD": Method("sgd", lr=cfg.sgd_lr),
        "SGD-momentum": Method("sgdm", lr=cfg.sgdm_lr, alpha=cfg.sgdm_alpha),
    }


def _curves(cfg, named: dict, convex=False, **kw) -> dict:
    p = problem(cfg, convex)
    return {name: [run_method(p, m, cfg.steps, x0(cfg, p.d, s), seed=s, log_every=cfg.log_every, **kw)
                   for s in seeds(cfg)] for name, m in named.items()}


def _floors(cfg, named: dict, steps=None, lam_nc=None, convex=False, mu=None, **kw) -> dict:
    p = problem(cfg, convex, lam_nc=lam_nc, mu=mu)
    return {name: [tail(run_method(p, m, steps or cfg.steps, x0(cfg, p.d, s), seed=s, log_every=cfg.log_every, **kw))
                   for s in seeds(cfg)] for name, m in named.items()}


def curves(cfg):
    return _curves(cfg, methods(cfg))


def batches(cfg):
    return {b: _floors(cfg, {"SCN": Method("scn", M=cfg.M, batch=b),
                             "SCNM": Method("scn", M=cfg.M, momentum="it-hb", alpha=cfg.alpha, beta=cfg.beta,
                                            batch=b)}) for b in cfg.batches}


def noise(cfg):
    named = cubic_methods(cfg, with_cn=False)
    return {sigma: _floors(cfg, named, sigma_g=sigma, sigma_h=sigma) for sigma in cfg.sigmas}


def convex(cfg):
    return _curves(cfg, cubic_methods(cfg), convex=True)


def conditioned(cfg):
    return _floors(cfg, cubic_methods(cfg, with_cn=False), convex=True, mu=matched_mu(cfg))


def nonconvexity(cfg):
    return {lam: _floors(cfg, cubic_methods(cfg, with_cn=False), lam_nc=lam) for lam in cfg.lams}


def sweep(cfg):
    out = {}
    for M in cfg.sweep_Ms:
        out[("SCN", M)] = _floors(cfg, {"SCN": Method("scn", M=M)})["SCN"]
        for a in cfg.sweep_alphas:
            out[(a, M)] = _floors(cfg, {"SCNM": Method("scn", M=M, momentum="it-hb", alpha=a, beta=cfg.beta)})["SCNM"]
    return out


def step_sweep(cfg):
    return {lr: _floors(cfg, {"SGD": Method("sgd", lr=lr),
                              "SGD-momentum": Method("sgdm", lr=lr, alpha=cfg.sgdm_alpha)}) for lr in cfg.sgd_lrs}


def mnist(cfg):
    if not cfg.mnist_pool:
        return {}
    p = problems.mnist_binary(lam_nc=cfg.lam_nc, mu=cfg.mu, pool=cfg.mnist_pool)
    return {name: [run_method(p, m, cfg.steps, x0(cfg, p.d, s), seed=s, log_every=cfg.log_every)
                   for s in seeds(cfg)] for name, m in cubic_methods(cfg).items()}


def large_m(cfg):
    return {M: _floors(cfg, {"SCN": Method("scn", M=M),
                             "SCNM": Method("scn", M=M, momentum="it-hb", alpha=cfg.large_alpha, beta=cfg.beta)},
                       steps=cfg.large_steps) for M in cfg.large_Ms}


# the Config fields each study reads besides PROBLEM (the cache keys are built by exclusion)
READS = {
    "curves": ("M", "alpha", "beta", "alpha_corrected", "sgd_lr", "sgdm_lr", "sgdm_alpha"),
    "batches": ("M", "alpha", "beta", "batches"),
    "noise": ("M", "alpha", "beta", "sigmas"),
    "convex": ("M", "alpha", "beta"),
    "sweep": ("beta", "sweep_alphas", "sweep_Ms"),
    "large_m": ("beta", "large_Ms", "large_steps", "large_alpha"),
    "step_sweep": ("sgd_lrs", "sgdm_alpha"),
    "mnist": ("M", "alpha", "beta", "mnist_pool"),
    "nonconvexity": ("M", "alpha", "beta", "lams"),
    "conditioned": ("M", "alpha", "beta"),
}
STUDIES = {"curves": curves, "batches": batches, "noise": noise, "convex": convex, "sweep": sweep,
           "large_m": large_m, "step_sweep": step_sweep, "mnist": mnist,
           "nonconvexity": nonconvexity, "conditioned": conditioned}


def run(cfg: Config, dev=None, progress: bool = True) -> dict:
    """Every study's results (see the module docstring), each cached by the fields it reads.
    Small dense linear algebra: run with one torch thread (the chapter's default)."""
    import dataclasses
    fields = {f.name for f in dataclasses.fields(cfg)}
    out = {}
    for name, study in STUDIES.items():
        keep = set(PROBLEM) | set(READS[name])
        key = config_key(cfg, drop=tuple(sorted(fields - keep)))
        out[name] = cached(CHAPTER, name, key, lambda _ckpt, study=study: study(cfg))
        if progress:
            print(f"{CHAPTER}: {name} done", flush=True)
    return out
