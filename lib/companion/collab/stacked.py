"""Many small MLPs trained at once: every parameter is stacked along a leading client axis.

Model m is the m-th slice of every tensor. A forward pass is a batched matrix product over the
models, and one backward pass of the *summed* per-model losses gives every model its own
gradient (no parameter is shared). The same code evaluates "virtual" models, e.g. the averaged
model z_ij = (x_i + x_j)/2 of a pair of clients, on any client's batch.

Parameters are a dict name -> tensor (m, ...): W0 (m, d_in, h), b0 (m, h), ..., as the layers
of `x @ W + b` with ReLU between them.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def init(n_models: int, dims: tuple, seed: int, dtype=torch.float32) -> dict:
    """One MLP with PyTorch's default Linear initialisation (seeded), copied n_models times:
    every client starts from the same x^0, as in CoBo's Algorithm 1."""
    g = torch.Generator().manual_seed(seed)
    params = {}
    for l, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        bound = 1 / a ** 0.5  # nn.Linear's kaiming_uniform(a=sqrt(5)) and bias bounds are both 1/sqrt(fan_in)
        W = (torch.rand(a, b, generator=g, dtype=dtype) * 2 - 1) * bound
        c = (torch.rand(b, generator=g, dtype=dtype) * 2 - 1) * bound
        params[f"W{l}"], params[f"b{l}"] = W.expand(n_models, a, b).clone(), c.expand(n_models, b).clone()
    return params


def forward(params: dict, x: torch.Tensor) -> torch.Tensor:
    """Logits (m, B, d_out) of the m models on their batches x (m, B, d_in)."""
    n_layers = len(params) // 2
    h = x
    for l in range(n_layers):
        h = torch.baddbmm(params[f"b{l}"].unsqueeze(1), h, params[f"W{l}"])
        if l < n_layers - 1:
            h = torch.relu(h)
    return h


def loss_and_grads(params: dict, x: torch.Tensor, y: torch.Tensor):
    """Per-model mean cross-entropy (m,) on batches (x (m, B, d), y (m, B)) and its gradient
    with respect to each model's own parameters (a dict shaped like params)."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    logits = forward(leaves, x)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
    grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
    return losses.detach(), dict(zip(leaves, grads))


@torch.no_grad()
def evaluate(params: dict, x: torch.Tensor, y: torch.Tensor):
    """(accuracy (m,), mean loss (m,)) of each model on its own labelled set: x (m, N, d) or
    (N, d) shared by all models, y (m, N)."""
    if x.dim() == 2:
        x = x.expand(y.shape[0], *x.shape)
    logits = forward(params, x)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
    return (logits.argmax(-1) == y).float().mean(1), loss


def select(params: dict, index: torch.Tensor) -> dict:
    """The models at `index` (a gather along the model axis)."""
    return {k: v[index] for k, v in params.items()}


def flat(tree: dict) -> torch.Tensor:
    """(m, P): every model's parameters (or gradients) as one vector."""
    return torch.cat([v.flatten(1) for v in tree.values()], 1)


def unflat(vec: torch.Tensor, like: dict) -> dict:
    """Inverse of `flat`: (m, P) back to a dict shaped like `like`."""
    out, k = {}, 0
    for name, v in like.items():
        size = v[0].numel()
        out[name] = vec[:, k:k + size].reshape(v.shape)
        k += size
    return out


def linear_reference(params: dict, m: int) -> nn.Sequential:
    """Model m as a torch.nn MLP (for tests: the stacked forward must equal it)."""
    layers = []
    n_layers = len(params) // 2
    for l in range(n_layers):
        W = params[f"W{l}"][m]
        lin = nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            lin.weight.copy_(W.T)
            lin.bias.copy_(params[f"b{l}"][m])
        layers += [lin] + ([nn.ReLU()] if l < n_layers - 1 else [])
    return nn.Sequential(*layers)
