"""Compressed linear layers: weights (and optionally input activations) through sparsity and
quantization in either order, with a straight-through estimator for fine-tuning.

The mask is recomputed from the current dense weights at every forward, as in the official
code's sparse fine-tuning; gradients pass to the dense weights unchanged (straight-through).
`compress_model` swaps every nn.Linear of a model except those named in `skip` (the paper
leaves the LM head uncompressed).
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from companion.compress import formats, sparsity


@dataclass(frozen=True)
class Spec:
    sparsity: str = ""  # "" (dense), "50%", "2:4", ...
    fmt: str = ""  # "" (full precision) or a formats.quantizer name
    order: str = "sq"  # "sq": Q(S(w)); "qs": S(Q(w))
    activations: bool = True  # quantize the layer's input too (per token along the features)

    def weight(self, w):
        q = formats.quantizer(self.fmt) if self.fmt else (lambda x: x)
        if not self.sparsity:
            return q(w)
        if self.order == "sq":
            return sparsity.s_then_q(w, self.sparsity, q)
        if self.order == "qs":
            return sparsity.q_then_s(w, self.sparsity, q)
        raise ValueError(f"order must be 'sq' or 'qs', got {self.order!r}")

    def inputs(self, x):
        return formats.quantizer(self.fmt)(x) if self.fmt and self.activations else x


def _ste(x, y):
    """y in the forward pass, the identity's gradient in the backward pass."""
    return x + (y - x).detach()


class CompressedLinear(nn.Linear):
    def __init__(self, linear: nn.Linear, spec: Spec):
        super().__init__(linear.in_features, linear.out_features, linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)
        self.load_state_dict(linear.state_dict())
        self.spec = spec

    def forward(self, x):
        with torch.no_grad():
            w_c, x_c = self.spec.weight(self.weight), self.spec.inputs(x)
        return F.linear(_ste(x, x_c), _ste(self.weight, w_c), self.bias)


def compress_model(model: nn.Module, spec: Spec, skip=("lm_head",)) -> nn.Module:
    """Replace every nn.Linear (except modules whose name ends with one of `skip`) in place."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and not isinstance(child, CompressedLinear) \
                    and not full.endswith(tuple(skip)):
                setattr(module, child_name, CompressedLinear(child, spec))
    return model
