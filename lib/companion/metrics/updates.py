"""How big is an optimizer step? The update-dynamics probe of Kosson et al. (2024), section 3.

For every matrix (tensor with >= 2 dims) the probe compares the weights before and after a
step, Delta w = w_{t+1} - w_t, layer-wise and row by row (a row is one neuron's weights):

* l2 update ||Delta w||, relative update (||Delta w|| + eps) / (||w_t|| + eps);
* angular update arccos(cos(w_t, w_{t+1})), computed in float64: in float32 an angle of
  1e-3 rad is resolved only to tens of percent (the official logger of epfml/REQ does the same);
* weight norm, gradient norm, cos(g, w_t) and, for momentum optimizers, cos(g, m_{t-1}).

The probe samples every `every`-th step (and each of the first `dense` steps), so it costs
little. The equilibrium angles (REQ, `rotational_wrapper.py`) are the reference lines: the
expected angle per step once weight decay and gradient updates balance.
"""
import math

import torch

from companion.metrics.probe import Probe
from companion.optim.lion import lion_equilibrium_angle


def adamw_equilibrium_angle(lr: float, weight_decay: float, beta1: float = 0.9) -> float:
    """sqrt(2 eta lambda (1 - b1) / (1 + b1)), the AdamW rotational-equilibrium angle per step."""
    return math.sqrt(2 * lr * weight_decay * (1 - beta1) / (1 + beta1))


def sgdm_equilibrium_angle(lr: float, weight_decay: float, momentum: float = 0.9) -> float:
    """sqrt(2 eta lambda / (1 + alpha)), the SGD-with-momentum equilibrium angle per step."""
    return math.sqrt(2 * lr * weight_decay / (1 + momentum))


def equilibrium_angle(optimizer: str, lr: float, weight_decay: float, betas=(0.9, 0.95)) -> float:
    """The equilibrium angle of 'adamw', 'sgdm' (momentum betas[0]), 'lion' or 'lionar'."""
    if optimizer == "adamw":
        return adamw_equilibrium_angle(lr, weight_decay, betas[0])
    if optimizer == "sgdm":
        return sgdm_equilibrium_angle(lr, weight_decay, betas[0])
    if optimizer in ("lion", "liona", "lionar"):
        return lion_equilibrium_angle(lr, weight_decay, betas)
    raise ValueError(f"no equilibrium formula for {optimizer!r}; allowed: adamw, sgdm, lion, liona, lionar")


def _cos(a, b, dim=None):
    num = (a * b).sum() if dim is None else (a * b).sum(dim)
    den = (a.norm() * b.norm()) if dim is None else (a.norm(dim=dim) * b.norm(dim=dim))
    return num / den.clamp_min(1e-300)


def angle(a: torch.Tensor, b: torch.Tensor, dim=None) -> torch.Tensor:
    """arccos of the clamped cosine between a and b (flattened, or along `dim`), in float64."""
    return torch.arccos(_cos(a.double(), b.double(), dim).clamp(-1.0, 1.0))


def _rms(x: torch.Tensor) -> float:
    return float(x.square().mean().sqrt())


class UpdateProbe(Probe):
    """Trainer probe: `before_step` keeps w_t, g_t and m_{t-1}; `after_step` measures the step.

    `records` is a list of {"step": t, "layers": {name: {...}}, "total": {...}} with, per
    layer, l2, rel (relative update), angle (flattened), row_angle_rms, row_angle_max, row_rel_rms,
    weight_norm, grad_norm, row_norm_change_max (largest relative change of a row's norm),
    cos_gw and cos_gm (None without momentum); "total" aggregates
    all matrices: l2 of the whole update, RMS of every row's angle and relative update.
    """

    def __init__(self, model, every: int = 10, dense: int = 20, eps: float = 1e-8):
        super().__init__(every, dense)
        self.params = {n: p for n, p in model.named_parameters() if p.dim() >= 2}
        self.eps = eps
        self._pre = None

    @torch.no_grad()
    def before_step(self, t, model, optimizer, batch):
        if not self.wants(t):
            self._pre = None
            return
        self._pre = {}
        for n, p in self.params.items():
            m = optimizer.state.get(p, {}).get("exp_avg")
            self._pre[n] = (p.detach().double().clone(), p.grad.detach().double().clone(),
                            None if m is None else m.detach().double().clone())

    @torch.no_grad()
    def after_step(self, t, model, optimizer):
        if self._pre is None:
            return
        layers, sq, row_angles, row_rels = {}, 0.0, [], []
        for n, p in self.params.items():
            w0, g, m = self._pre[n]
            w1 = p.detach().double()
            dw = w1 - w0
            r0, r1, rd = w0.flatten(1), w1.flatten(1), dw.flatten(1)
            ra = angle(r0, r1, dim=1)
            rr = (rd.norm(dim=1) + self.eps) / (r0.norm(dim=1) + self.eps)
            layers[n] = {
                "l2": float(dw.norm()), "rel": float((dw.norm() + self.eps) / (w0.norm() + self.eps)),
                "angle": float(angle(w0, w1)), "row_angle_rms": _rms(ra), "row_angle_max": float(ra.max()),
                "row_rel_rms": _rms(rr), "weight_norm": float(w0.norm()), "grad_norm": float(g.norm()),
                "row_norm_change_max": float(((r1.norm(dim=1) - r0.norm(dim=1)).abs() / r0.norm(dim=1)).max()),
                "cos_gw": float(_cos(g, w0)),
                "cos_gm": None if m is None or not m.any() else float(_cos(g, m)),
            }
            sq += float(dw.square().sum())
            row_angles.append(ra)
            row_rels.append(rr)
        self.records.append({"step": t, "layers": layers,
                             "total": {"l2": math.sqrt(sq), "row_angle_rms": _rms(torch.cat(row_angles)),
                                       "row_rel_rms": _rms(torch.cat(row_rels))}})
        self._pre = None
