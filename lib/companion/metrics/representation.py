"""Relative representation change (RRC) of a step on a fixed probe batch (Kosson et al. 2024,
section 5; the exact definition is ours, see the brief).

For a linear layer y = x W^T with input X on the probe batch, one step's change of the
layer's output relative to the output itself is

    RRC = ||X Delta W^T||_F / ||X W_t^T||_F,

with X recorded by a forward hook before the step, so it needs no second pass. The change of
the model's logits on the same batch, ||Delta logits|| / ||logits||, is recorded too.
"""
import math

import torch
import torch.nn as nn

from companion.metrics.probe import Probe


class RRCProbe(Probe):
    """Trainer probe on a fixed probe batch `x` (token ids), sampled like the update probe.
    `records`: {"step", "layers": {name: rrc}, "rms": RMS over layers, "logits": relative change}."""

    def __init__(self, model, x: torch.Tensor, every: int = 10, dense: int = 20):
        super().__init__(every, dense)
        self.x = x
        self.linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        self._pre = None

    @torch.no_grad()
    def before_step(self, t, model, optimizer, batch):
        self._pre = None
        if not self.wants(t):
            return
        inputs = {}
        hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: inputs.__setitem__(n, args[0].detach()))
                 for n, m in self.linears.items()]
        try:
            logits, _ = model(self.x.to(next(model.parameters()).device))
        finally:
            for h in hooks:
                h.remove()
        weights = {n: m.weight.detach().clone() for n, m in self.linears.items()}
        self._pre = (inputs, weights, logits)

    @torch.no_grad()
    def after_step(self, t, model, optimizer):
        if self._pre is None:
            return
        inputs, weights, logits = self._pre
        layers = {}
        for n, m in self.linears.items():
            X = inputs[n].flatten(0, -2).double()
            W0 = weights[n].double()
            layers[n] = float((X @ (m.weight.double() - W0).T).norm() / (X @ W0.T).norm().clamp_min(1e-300))
        new_logits, _ = model(self.x.to(logits.device))
        self.records.append({"step": t, "layers": layers,
                             "rms": math.sqrt(sum(v * v for v in layers.values()) / len(layers)),
                             "logits": float((new_logits - logits).norm() / logits.norm())})
        self._pre = None
