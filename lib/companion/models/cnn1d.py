"""A small 1D CNN written as a function of one flat parameter vector theta, so that torch.func can
adapt a copy of it per task (vmap over tasks, grad through the inner steps) as meta-learning needs.

`layers` convolutions (kernel 5, stride 2, padding 2, then ReLU or GELU) halve the signal each time
(40 -> 20 -> 10 -> 5 positions for MNIST-1D), then a linear head maps the flattened features to
n_out logits. GELU (Hendrycks & Gimpel, 2016) makes the network smooth, which finite differences
of its gradient need: a ReLU network's gradient jumps wherever a unit changes sign. The initialisation is PyTorch's default for Conv1d and Linear (uniform in
+-1/sqrt(fan_in), weights and biases). The channel count is the width the fo-maml chapter's memory
study sweeps (the TMLR version of the paper reports CNNs up to 250 channels).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CNN1d:
    channels: int = 32
    n_out: int = 3
    length: int = 40
    layers: int = 3
    kernel: int = 5
    activation: str = "relu"  # relu | gelu

    def __post_init__(self):
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"unknown activation {self.activation!r}; activations: relu, gelu")

    def shapes(self) -> list:
        """(shape, fan_in) of every tensor of theta, in order: conv weights and biases, then the head's."""
        out, c_in, L = [], 1, self.length
        for _ in range(self.layers):
            fan = c_in * self.kernel
            out += [((self.channels, c_in, self.kernel), fan), ((self.channels,), fan)]
            c_in, L = self.channels, (L + 1) // 2
        fan = self.channels * L
        return out + [((self.n_out, fan), fan), ((self.n_out,), fan)]

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s, _ in self.shapes())

    def init(self, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
        parts = [(2 * torch.rand(math.prod(s), generator=generator, dtype=dtype) - 1) / math.sqrt(fan)
                 for s, fan in self.shapes()]
        return torch.cat(parts)

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_out) of signals x (B, length)."""
        shapes = [s for s, _ in self.shapes()]
        tensors = [t.view(s) for t, s in zip(torch.split(theta, [math.prod(s) for s in shapes]), shapes)]
        act = F.relu if self.activation == "relu" else F.gelu
        h = x.unsqueeze(1)
        for i in range(self.layers):
            h = act(F.conv1d(h, tensors[2 * i], tensors[2 * i + 1], stride=2, padding=self.kernel // 2))
        return F.linear(h.flatten(1), tensors[-2], tensors[-1])
