"""Low-rank adapters (Hu et al. 2022) for any nn.Linear, as PEFT configures them in the
HyperINF code: W x + s B A x with the base weight frozen, A initialised like a Linear weight
(Kaiming-uniform), B = 0 (so the adapted model starts as the base model), and the rank-
stabilised scale s = alpha / sqrt(r) (Kalajdzievski 2023; the official code: rsLoRA with
alpha = 2r).

`blocks` adapts only ranges of the output rows, one (A, B) pair per range: on the book's
GPT, whose attention has one fused qkv projection, blocks=((0, d), (2d, 3d)) adapts the
query and value projections, as the paper does on RoBERTa.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r: int, alpha: float = None, blocks=None):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r = r
        self.scale = (alpha if alpha is not None else 2 * r) / math.sqrt(r)
        self.blocks = tuple(tuple(b) for b in blocks) if blocks else ((0, base.out_features),)
        edges = [e for b in self.blocks for e in b]
        if edges != sorted(edges) or edges[0] < 0 or edges[-1] > base.out_features or any(lo >= hi for lo, hi in
                                                                                            self.blocks):
            raise ValueError(f"blocks must be increasing, disjoint ranges of the {base.out_features} output rows; "
                             f"got {self.blocks}")
        dev, dt = base.weight.device, base.weight.dtype
        self.A = nn.ParameterList()
        self.B = nn.ParameterList()
        for lo, hi in self.blocks:
            a = torch.empty(r, base.in_features, device=dev, dtype=dt)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            self.A.append(nn.Parameter(a))
            self.B.append(nn.Parameter(torch.zeros(hi - lo, r, device=dev, dtype=dt)))

    def delta(self) -> torch.Tensor:
        """The weight update s B A, placed in the adapted rows (out x in)."""
        d = torch.zeros_like(self.base.weight)
        for (lo, hi), a, b in zip(self.blocks, self.A, self.B):
            d = d.index_add(0, torch.arange(lo, hi, device=d.device), self.scale * b @ a)
        return d

    def forward(self, x):
        """base(x) + s B_j A_j x in the rows of block j (through the rank-r activations)."""
        pieces, at = [], 0
        for (lo, hi), a, b in zip(self.blocks, self.A, self.B):
            if lo > at:
                pieces.append(x.new_zeros(*x.shape[:-1], lo - at))
            pieces.append(self.scale * F.linear(F.linear(x, a), b))
            at = hi
        if at < self.base.out_features:
            pieces.append(x.new_zeros(*x.shape[:-1], self.base.out_features - at))
        return self.base(x) + torch.cat(pieces, -1)


def add_lora(model: nn.Module, targets: dict, r: int, alpha: float = None) -> nn.Module:
    """Freeze every parameter of `model` and wrap the Linear modules named in `targets`
    (name -> blocks, or None for all rows) with LoRA adapters of rank r. Returns the model."""
    for p in model.parameters():
        p.requires_grad_(False)
    modules = dict(model.named_modules())
    for name, blocks in targets.items():
        parent_name, _, child = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, child, LoRALinear(modules[name], r, alpha, blocks))
    return model


def lora_parameters(model: nn.Module) -> dict:
    """name -> parameter of every adapter matrix (A_j: r x in, B_j: rows x r)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}
