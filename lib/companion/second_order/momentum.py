"""Stochastic oracles and the momentum estimators of the gradient and Hessian for cubic Newton.

An iteration of stochastic cubic Newton with momentum (SCNM) at x_t, x_{t-1} forms estimates
(g_t, H_t) and steps x_{t+1} = x_t + cubic_step(g_t, H_t, M). The estimators (one flag, `kind`):

* "it-hb" (the paper's, per a summary of it; our reconstruction): implicit gradient transport
  (Cutkosky & Mehta, 2020) for the gradient, queried at the extrapolated point
  y_t = x_t + (1 - a_t)/a_t (x_t - x_{t-1}):  g_t = (1 - a_t) g_{t-1} + a_t g~(y_t);
  heavy-ball (EMA) momentum for the Hessian:  H_t = (1 - b_t) H_{t-1} + b_t H~(x_t).
* "corrected": Hessian-corrected transport (in the style of Tran & Cutkosky, 2022), H_t as above
  and g_t = (1 - a_t)(g_{t-1} + H_t (x_t - x_{t-1})) + a_t g~(x_t).
* "ema": plain EMA of both, g_t = (1 - a_t) g_{t-1} + a_t g~(x_t).
* "none": g_t = g~(x_t), H_t = H~(x_t) (stochastic cubic Newton, SCN).

g_0 = g~(x_0), H_0 = H~(x_0). a_t and b_t are constants or functions of (t, T) (`rate`).
"""
import math
from dataclasses import dataclass, field

import torch

KINDS = ("none", "ema", "corrected", "it-hb")


def rate(value, t: int, T: int) -> float:
    """A momentum parameter at step t of a T-step run: a constant, or value(t, T)."""
    return float(value(t, T) if callable(value) else value)


def horizon(c: float, power: float):
    """a_t = min(1, c T^-power): the horizon-tied constants of momentum theory (e.g. power 4/7
    for implicit gradient transport, 1/2 for EMA)."""
    return lambda t, T: min(1.0, c * T ** (-power))


@dataclass
class Oracle:
    """Mini-batch gradients and Hessians of `problem` (sample functions drawn with replacement),
    with optional injected noise: g~ + sigma_g e, ||e|| ~ 1, and H~ + sigma_h E, E symmetric
    with spectral norm ~ 1, drawn from their own generator (so a noise sweep sees the same
    samples at every sigma). Counts the sample functions it evaluated."""
    problem: object
    batch: int = 1
    hess_batch: int = None
    sigma_g: float = 0.0
    sigma_h: float = 0.0
    seed: int = 0
    samples: int = 0
    gen: torch.Generator = field(init=False, repr=False)
    noise: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.gen = torch.Generator().manual_seed(self.seed)
        self.noise = torch.Generator().manual_seed(self.seed + 1_000_003)
        self.hess_batch = self.hess_batch or self.batch

    def _draw(self, b):
        self.samples += b
        return torch.randint(self.problem.n, (b,), generator=self.gen)

    def grad(self, x):
        g = self.problem.grad(x, self._draw(self.batch))
        if self.sigma_g:
            g = g + self.sigma_g * torch.randn(x.numel(), generator=self.noise, dtype=x.dtype) / math.sqrt(x.numel())
        return g

    def hess(self, x):
        H = self.problem.hess(x, self._draw(self.hess_batch))
        if self.sigma_h:
            d = x.numel()
            E = torch.randn(d, d, generator=self.noise, dtype=x.dtype)
            H = H + self.sigma_h * (E + E.T) / (2 * math.sqrt(2 * d))  # spectral norm ~ sigma_h
        return H


@dataclass
class Estimator:
    """The (g_t, H_t) of one run (module docstring)."""
    kind: str = "it-hb"
    alpha: object = 0.1
    beta: object = 0.1
    T: int = 1
    g: torch.Tensor = None
    H: torch.Tensor = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown momentum {self.kind!r}; kinds: {', '.join(KINDS)}")

    def update(self, oracle: Oracle, x, x_prev, t: int):
        if self.g is None or self.kind == "none":
            self.g, self.H = oracle.grad(x), oracle.hess(x)
            return self.g, self.H
        a, b = rate(self.alpha, t, self.T), rate(self.beta, t, self.T)
        self.H = (1 - b) * self.H + b * oracle.hess(x)
        if self.kind == "ema":
            self.g = (1 - a) * self.g + a * oracle.grad(x)
        elif self.kind == "corrected":
            self.g = (1 - a) * (self.g + self.H @ (x - x_prev)) + a * oracle.grad(x)
        else:  # it-hb
            y = x + (1 - a) / a * (x - x_prev)
            self.g = (1 - a) * self.g + a * oracle.grad(y)
        return self.g, self.H
