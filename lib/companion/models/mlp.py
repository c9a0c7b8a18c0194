"""The MLP of the deep-grokking chapter (Fan, Pascanu & Jaggi 2024; Liu et al. 2023's Omnigrok).

`depth` counts Linear layers: Flatten, Linear(d_in, w), ReLU, (Linear(w, w), ReLU) x (depth - 2),
Linear(w, d_out), no output activation, as in the official `train_mnist_mlp.py`. The
initialisation is PyTorch's default scaled by alpha: theta_0 = alpha * theta_default for every
parameter, biases included, so ||theta_0|| = alpha ||theta_default|| exactly.
"""
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, depth: int = 4, width: int = 400, d_in: int = 784, d_out: int = 10, alpha: float = 1.0):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth counts Linear layers and must be >= 2, got {depth}")
        dims = [d_in] + [width] * (depth - 1) + [d_out]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(alpha)

    def forward(self, x, return_features: bool = False):
        """Outputs (n, d_out); with return_features, also the output of every Linear layer
        (pre-activation), the features whose rank the paper tracks."""
        h, feats = x.flatten(1), []
        for i, lin in enumerate(self.linears):
            h = lin(h)
            feats.append(h)
            if i < len(self.linears) - 1:
                h = torch.relu(h)
        return (h, feats) if return_features else h

    def weight_norm(self) -> float:
        """||theta||_2 over all parameters."""
        return float(torch.sqrt(sum(p.detach().double().square().sum() for p in self.parameters())))
