"""The methods the chapter compares, run on a problem with a stochastic oracle:

* "cn": deterministic cubic Newton (full gradient and Hessian), the reference;
* "scn": stochastic cubic Newton, with the momentum estimator `momentum` (companion.second_order
  .momentum; "none" is plain SCN, "it-hb" the paper's SCNM as we reconstruct it);
* "sgd": x <- x - lr g~;  "sgdm": m <- (1 - alpha) m + alpha g~, x <- x - lr m.

`run` logs the full gradient norm, f and lambda_min of the full Hessian every `log_every`
steps (float64), and the number of sample functions the oracle evaluated.
"""
import math
from dataclasses import dataclass

import torch

from companion.second_order.cubic import cubic_step
from companion.second_order.momentum import Estimator, Oracle, rate

KINDS = ("cn", "scn", "sgd", "sgdm")


@dataclass(frozen=True)
class Method:
    kind: str = "scn"
    M: float = 10.0
    momentum: str = "none"
    alpha: object = 0.1
    beta: object = 0.1
    lr: float = 0.1
    batch: int = 1
    hess_batch: int = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown method {self.kind!r}; methods: {', '.join(KINDS)}")


def run(problem, method: Method, T: int, x0, seed: int = 0, log_every: int = 20, sigma_g: float = 0.0,
        sigma_h: float = 0.0, blowup: float = 1e6) -> dict:
    """T steps of `method` from x0; a run whose iterate leaves the ball ||x|| <= blowup or turns
    non-finite stops there (`diverged`)."""
    oracle = Oracle(problem, method.batch, method.hess_batch, sigma_g, sigma_h, seed)
    est = Estimator(method.momentum, method.alpha, method.beta, T)
    x, x_prev, m = x0.clone(), None, None
    log = {"t": [], "gnorm": [], "f": [], "lam_min": [], "samples": []}
    diverged = False
    for t in range(T + 1):
        if t % log_every == 0 or t == T:
            log["t"].append(t)
            log["gnorm"].append(float(problem.grad(x).norm()))
            log["f"].append(float(problem.loss(x)))
            log["lam_min"].append(float(torch.linalg.eigvalsh(problem.hess(x))[0]))
            log["samples"].append(oracle.samples)
        if t == T:
            break
        if method.kind == "cn":
            step = cubic_step(problem.grad(x), problem.hess(x), method.M)
            oracle.samples += 2 * problem.n
        elif method.kind == "scn":
            g, H = est.update(oracle, x, x_prev, t)
            step = cubic_step(g, H, method.M)
        else:
            g = oracle.grad(x)
            if method.kind == "sgdm":
                a = rate(method.alpha, t, T)
                m = g if m is None else (1 - a) * m + a * g
                g = m
            step = -method.lr * g
        x_prev, x = x, x + step
        if not bool(torch.isfinite(x).all()) or float(x.norm()) > blowup:
            diverged = True
            break
    return {**log, "diverged": diverged}


def tail(log: dict, frac: float = 0.1) -> float:
    """The median full gradient norm over the last `frac` of the logged points (inf if diverged)."""
    if log["diverged"]:
        return math.inf
    g = log["gnorm"]
    k = max(1, int(round(frac * len(g))))
    return float(torch.tensor(g[-k:]).median())
