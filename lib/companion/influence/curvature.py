"""Per-sample gradients and the curvature estimates of HyperINF (Zhou, Fan & Jaggi 2024).

Gradients are kept per adapted matrix in the official layout g_i in R^{r x d}, rows = rank:
LoRA A (r x d_in) as is, LoRA B (d_out x r) transposed to r x d_out, any other matrix (a
classifier head, c x d) as is, vectors as 1 x p.

* GFIM (generalized Fisher): K = (1/n) sum_i g_i^T g_i, d x d whatever the rank r. It equals the
  Fisher of vec(g) under the structure I_r (x) E[g^T g]: since (I_r (x) S)^{-1} vec(V) =
  vec(V S^{-1}), its inverse-vector product is a d x d solve, the rank-independent cost.
* FIM: (1/n) sum_i vec(g_i) vec(g_i)^T, rd x rd.
* damping: the DataInf heuristic lambda = (1/10) (1/n) sum_i mean(g_i^2), per matrix.
"""
import warnings

import torch
from torch.func import functional_call, grad, vmap


def per_sample_grads(model, inputs, targets, loss_fn, chunk: int = 64) -> dict:
    """name -> (n, *shape) gradients of loss_fn(model(x_i), y_i) w.r.t. every trainable
    parameter, one sample at a time (torch.func.vmap over grad), model in eval mode."""
    train = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    rest = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    rest.update(dict(model.named_buffers()))

    def loss(params, x, y):
        return loss_fn(functional_call(model, {**rest, **params}, (x[None],)), y[None])

    per = vmap(grad(loss), in_dims=(None, 0, 0))
    was = model.training
    model.eval()
    with warnings.catch_warnings():  # attention has no vmap batching rule on CPU: a (correct) slower loop
        warnings.filterwarnings("ignore", message="There is a performance drop")
        out = [per(train, x, y) for x, y in zip(inputs.split(chunk), targets.split(chunk))]
    model.train(was)
    return {n: torch.cat([o[n] for o in out]) for n in train}


def hyperinf_layout(grads: dict) -> dict:
    """name -> (n, rows, cols) in the official layout (LoRA B transposed, rows = rank)."""
    out = {}
    for name, g in grads.items():
        if g.dim() == 2:
            g = g[:, None, :]
        elif name.split(".")[-2] == "B":  # LoRALinear's ParameterList B.j
            g = g.transpose(1, 2)
        out[name] = g
    return out


def gfim(g) -> torch.Tensor:
    """(1/n) sum_i g_i^T g_i for g (n, r, d): d x d."""
    return torch.einsum("nri,nrj->ij", g, g) / g.shape[0]


def fim(g) -> torch.Tensor:
    """(1/n) sum_i vec(g_i) vec(g_i)^T: rd x rd."""
    flat = g.reshape(g.shape[0], -1)
    return flat.T @ flat / g.shape[0]


def damping(g, const: float = 10.0) -> float:
    """lambda = (1/const) (1/n) sum_i mean(g_i^2) (the official lambda_const_param = 10)."""
    return ((g * g).mean(dim=tuple(range(1, g.dim()))).mean() / const).item()
