"""The outer loop of meta-learning: x <- x - step(estimate of grad F), with

* sgd:   eta_t g
* clip:  eta_t min(1, gamma / ||g||) g                      (clipped gradient descent)
* sngdm: eta_t m_t / ||m_t||, m_t = beta m_{t-1} + (1 - beta) g   (normalized SGD with momentum,
         Cutkosky & Mehta, 2020)

eta_t = eta / (1 + t / tau) (tau = 0: constant). `train` logs the exact ||grad F|| over all tasks,
and at the end that of the average of the iterates over the second half of the run (Polyak-Ruppert
averaging, which removes most of the task-sampling noise of a stochastic run). `fit` is the
outer loop for a network's parameters (MNIST-1D), with Adam for every estimator.
"""
import math
from dataclasses import dataclass

import torch

from companion.meta.estimators import meta_gradient

KINDS = ("sgd", "clip", "sngdm")


@dataclass(frozen=True)
class Outer:
    kind: str = "sgd"
    lr: float = 0.1
    clip: float = 1.0
    beta: float = 0.9
    tau: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown outer optimizer {self.kind!r}; kinds: {', '.join(KINDS)}")

    def rate(self, t: int) -> float:
        return self.lr / (1 + t / self.tau) if self.tau else self.lr

    def step(self, x, g, m, t: int):
        """(new x, new momentum buffer)."""
        eta = self.rate(t)
        if self.kind == "sgd":
            return x - eta * g, m
        if self.kind == "clip":
            return x - eta * min(1.0, self.clip / max(float(g.norm()), 1e-300)) * g, m
        m = g if m is None else self.beta * m + (1 - self.beta) * g
        return x - eta * m / max(float(m.norm()), 1e-300), m


def train(tasks, estimator: str, outer: Outer, x0, steps: int, alpha: float, task_batch: int = None,
          seed: int = 0, log_every: int = 10, blowup: float = 1e8, **est_kw) -> dict:
    """`steps` outer steps from x0; task_batch tasks drawn without replacement per step (None: all).
    A run whose iterate leaves ||x|| <= blowup or turns non-finite stops (`diverged`)."""
    gen = torch.Generator().manual_seed(seed)
    x, m = x0.clone(), None
    log = {"t": [], "gnorm": []}
    x_sum, n_sum = torch.zeros_like(x0), 0
    diverged = False
    for t in range(steps + 1):
        if t % log_every == 0 or t == steps:
            log["t"].append(t)
            log["gnorm"].append(float(meta_gradient("maml", tasks, x, alpha).norm()))
        if t >= steps // 2:
            x_sum, n_sum = x_sum + x, n_sum + 1
        if t == steps:
            break
        idx = None if task_batch is None else torch.randperm(tasks.T, generator=gen)[:task_batch]
        g = meta_gradient(estimator, tasks, x, alpha, idx, **est_kw)
        x, m = outer.step(x, g, m, t)
        if not bool(torch.isfinite(x).all()) or float(x.norm()) > blowup:
            diverged = True
            log["t"].append(t + 1)
            log["gnorm"].append(math.inf)
            break
    avg = math.inf if diverged else float(meta_gradient("maml", tasks, x_sum / n_sum, alpha).norm())
    return {**log, "diverged": diverged, "x": x, "gnorm_tail_average": avg}


def fit(sampler, estimator: str, theta0, iters: int, alpha: float, meta_batch: int, lr: float, evaluate,
        eval_every: int, seed: int = 0, dev=None, **est_kw) -> dict:
    """Meta-train a network's flat parameters theta with Adam (Kingma & Ba, 2015; the usual outer
    optimizer of MAML on networks, the same for every estimator): each iteration draws meta_batch
    fresh tasks from `sampler` and steps along the estimator's mean meta-gradient. evaluate(theta)
    (a float, e.g. meta-test accuracy) is logged every eval_every iterations and at the end."""
    gen = torch.Generator().manual_seed(seed)
    theta = theta0.clone().requires_grad_()
    opt = torch.optim.Adam([theta], lr=lr)
    log = {"t": [], "score": []}
    for t in range(iters + 1):
        if t % eval_every == 0 or t == iters:
            log["t"].append(t)
            log["score"].append(float(evaluate(theta.detach())))
        if t == iters:
            break
        episodes = sampler.sample(meta_batch, gen).to(dev)
        theta.grad = meta_gradient(estimator, episodes, theta.detach(), alpha, **est_kw)
        opt.step()
    return {**log, "theta": theta.detach()}
