"""Lion and the two update-controlled variants of Kosson et al. (2024), section 4.

* `Lion` (Chen et al. 2023): u = sign(beta1 m + (1 - beta1) g), m <- beta2 m + (1 - beta2) g,
  w <- w - eta (u + lambda w). Every entry of u is +-1, so ||u||_2^2 = C, the number of
  entries: the l2 norm of the update no longer depends on the gradient's size.
* `LionA` fixes the l2 norm exactly: u <- s sqrt(C) u / ||u|| per tensor. The paper does not
  give the rule; this is our reading of "l2-controlled" (brief, section 5). With
  s = sqrt((1 - beta1) / (1 + beta1)), LionA's update RMS equals AdamW's equilibrium RMS, so
  AdamW's learning rates carry over.
* `LionAR` is rotational: each row (neuron) w_i of a matrix keeps its initial norm r_i and
  turns by a fixed angle every step, the rotational Lion of epfml/REQ
  (`shared/optimizers/rotational_lion.py`): the radial part of u is removed (this replaces
  weight decay), the rest is normalised and scaled to eta_r r_i with eta_r the Lion
  equilibrium angle at the scheduled LR, and the row is projected back to norm r_i.

LionAR's options for the paper's "no warmup needed" variant (section 5.3; the formulas are
our interpretation): `nesterov` uses the updated momentum in the update direction, and
`inverse_bias_correction` multiplies eta_r by (1 - beta1^t), an implicit warmup with time
constant 1 / (1 - beta1). A per-group "lr_factor" (default 1) scales eta_r from outside:
the SNR-based correction of `companion.metrics.noise` sets it.

Tensors LionAR does not rotate (1-D gains, and embeddings when they are not decayed) get a
plain Lion step of size eta by default, as in REQ (times the same corrections as eta_r); at the learning rates LionAR uses (its
angle grows only like sqrt(eta)) that moves a LayerNorm gain of 1 by eta per step. With
`nonrot="relative"` they get a Lion step of eta_r times their RMS at initialisation instead:
the rotated rows' relative step, at a fixed scale (our variant, an ablation of the warmup
chapter; a step proportional to the current RMS compounds without decay and diverged in a
trial).
"""
import math

import torch
from torch.optim import Optimizer


def lion_equilibrium_angle(lr: float, weight_decay: float, betas=(0.9, 0.99)) -> float:
    """Expected angle per step of a Lion-trained weight vector in rotational equilibrium
    (REQ, `rotational_wrapper.py`): sqrt(pi/2) sqrt(2 eta lambda) sqrt((1-b1)^2 + b1^2 (1-b2)/(1+b2))."""
    b1, b2 = betas
    return math.sqrt(math.pi / 2) * math.sqrt(2 * lr * weight_decay) * math.sqrt((1 - b1) ** 2 + b1 ** 2 * (1 - b2) / (1 + b2))


def adamw_update_rms(beta1: float) -> float:
    """RMS of an AdamW update at equilibrium for uncorrelated gradients: sqrt((1-b1)/(1+b1))."""
    return math.sqrt((1 - beta1) / (1 + beta1))


class Lion(Optimizer):
    """Lion with decoupled weight decay, w <- w - eta (u + lambda w). With `update_rms` = s,
    every tensor's update is rescaled to l2 norm s sqrt(C) (LionA); None keeps sign(c)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, update_rms=None):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, update_rms=update_rms))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, (b1, b2), wd, s = group["lr"], group["betas"], group["weight_decay"], group["update_rms"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m, g = state["exp_avg"], p.grad
                u = torch.sign(m * b1 + g * (1 - b1))
                if s is not None:
                    u.mul_(s * math.sqrt(u.numel()) / u.norm().clamp_min(1e-30))
                p.mul_(1 - lr * wd)
                p.add_(u, alpha=-lr)
                m.lerp_(g, 1 - b2)


def LionA(params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, update_rms=None):
    """Lion with each tensor's update fixed to l2 norm s sqrt(C); s defaults to AdamW's
    equilibrium update RMS sqrt((1 - beta1) / (1 + beta1)) at beta1 = 0.9."""
    return Lion(params, lr, betas, weight_decay, adamw_update_rms(0.9) if update_rms is None else update_rms)


class LionAR(Optimizer):
    """Rotational Lion (our implementation after epfml/REQ). Groups with weight_decay > 0 are
    rotational, row by row for tensors with >= 2 dims; the others get a plain Lion step
    without decay (norm gains, biases).

    For a rotational row w_i with stored norm r_i (at the first step, optionally after
    centring with `zero_mean`), per step t:
        c = sign(beta1 m + (1 - beta1) g);  m <- beta2 m + (1 - beta2) g   (Nesterov: update m first)
        u_perp = c - <c, w_i> w_i / r_i^2                                   (no radial part)
        nu <- rho nu + (1 - rho) ||u_perp||^2,  nu_hat = nu / (1 - rho^t)
        w_i <- w_i - eta_r r_i u_perp / (sqrt(nu_hat) + eps);  w_i <- r_i w_i / ||w_i||
    With rho = 0 the step is exactly eta_r r_i orthogonal to w_i, so every row keeps its norm
    and turns by arctan(eta_r) per step; eta_r = lion_equilibrium_angle(eta_t, lambda, betas).
    """

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1, rho=0.0, eps=1e-8,
                 zero_mean=False, nesterov=False, inverse_bias_correction=False, nonrot="sign"):
        if nonrot not in ("sign", "relative"):
            raise ValueError(f"nonrot must be 'sign' or 'relative', got {nonrot!r}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, rho=rho, eps=eps,
                                      zero_mean=zero_mean, nesterov=nesterov,
                                      inverse_bias_correction=inverse_bias_correction, lr_factor=1.0))
        self.nonrot = nonrot
        # the lambda of the rotated groups: the relative step of the other tensors uses their eta_r
        self.rot_decay = max(g["weight_decay"] for g in self.param_groups)

    @staticmethod
    def correction(group, t: int) -> float:
        """The factor every step of update t gets: lr_factor, times 1 - beta1^t with inverse
        bias correction."""
        f = group["lr_factor"]
        return f * (1 - group["betas"][0] ** t) if group["inverse_bias_correction"] else f

    def angle(self, group, t: int) -> float:
        """eta_r of update t (t = 1 for the first update), all corrections included."""
        lam = group["weight_decay"] if group["weight_decay"] > 0 else self.rot_decay
        return lion_equilibrium_angle(group["lr"], lam, group["betas"]) * self.correction(group, t)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            rotational = group["weight_decay"] > 0
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    if rotational and p.dim() >= 2:
                        if group["zero_mean"]:
                            r0 = _rows(p).norm(dim=1, keepdim=True)
                            _rows(p).sub_(_rows(p).mean(dim=1, keepdim=True))
                            _rows(p).mul_(r0 / _rows(p).norm(dim=1, keepdim=True).clamp_min(1e-30))
                        state["row_norm"] = _rows(p).norm(dim=1, keepdim=True)
                        state["nu"] = torch.zeros_like(state["row_norm"])
                state["step"] += 1
                t, m, g = state["step"], state["exp_avg"], p.grad
                if group["nesterov"]:  # the update direction sees the updated momentum
                    m.lerp_(g, 1 - b2)
                c = torch.sign(m * b1 + g * (1 - b1))
                if not group["nesterov"]:
                    m.lerp_(g, 1 - b2)
                if not (rotational and p.dim() >= 2):
                    if self.nonrot == "relative":
                        if "rms0" not in state:
                            state["rms0"] = float(p.square().mean().sqrt())
                        p.add_(c, alpha=-self.angle(group, t) * state["rms0"])
                    else:  # eta, with the same corrections (lr_factor, inverse bias correction) as eta_r
                        p.add_(c, alpha=-group["lr"] * self.correction(group, t))
                    continue
                w, u, r = _rows(p), _rows(c), state["row_norm"]
                if group["zero_mean"]:
                    u = u - u.mean(dim=1, keepdim=True)
                u_perp = u - (u * w).sum(dim=1, keepdim=True) / r.square() * w
                nu, rho = state["nu"], group["rho"]
                nu.mul_(rho).add_(u_perp.square().sum(dim=1, keepdim=True), alpha=1 - rho)
                nu_hat = nu / (1 - rho ** t)
                w.sub_(self.angle(group, t) * r * u_perp / (nu_hat.sqrt() + group["eps"]))
                w.mul_(r / w.norm(dim=1, keepdim=True).clamp_min(1e-30))


def _rows(p: torch.Tensor) -> torch.Tensor:
    """A view of p as (rows, fan_in): one row per output neuron."""
    return p.view(p.shape[0], -1)
