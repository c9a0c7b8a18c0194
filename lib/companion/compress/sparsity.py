"""Magnitude sparsity and the two orders of sparsity and quantization (Harma et al. 2025).

Masks keep the largest magnitudes; ties are broken by position (the earlier element is kept),
so results do not depend on the sorting implementation. `s_then_q` = Q(S(x)); `q_then_s` =
S(Q(x)), where the magnitudes of the *quantized* values decide the mask.
"""
import torch


def unstructured_mask(x, frac: float):
    """Keep all but the floor(frac * numel) smallest |x| of the tensor.

    The threshold is the k-th smallest magnitude (a selection, not a sort); among elements equal
    to it the earliest are kept, as a stable descending sort would."""
    a = x.abs().flatten()
    k = int(frac * a.numel())
    if k == 0:
        return torch.ones_like(x, dtype=torch.bool)
    thr = a.kthvalue(k).values
    keep = a > thr
    tied = a == thr
    keep |= tied & (torch.cumsum(tied, 0) <= a.numel() - k - keep.sum())
    return keep.reshape(x.shape)


def nm_mask(x, n: int, m: int):
    """N:M along the last dimension: in every group of m consecutive elements keep the n largest |x|."""
    if x.shape[-1] % m:
        raise ValueError(f"the last dimension ({x.shape[-1]}) must be a multiple of m = {m}")
    g = x.abs().reshape(*x.shape[:-1], -1, m)
    order = torch.argsort(g, dim=-1, stable=True, descending=True)
    keep = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, order[..., :n], True)
    return keep.reshape(x.shape)


def mask(x, sparsity: str):
    """'50%' (unstructured), or 'N:M'."""
    if sparsity.endswith("%"):
        return unstructured_mask(x, float(sparsity[:-1]) / 100)
    n, m = (int(v) for v in sparsity.split(":"))
    return nm_mask(x, n, m)


def s_then_q(x, sparsity: str, quantize):
    return quantize(x * mask(x, sparsity))


def q_then_s(x, sparsity: str, quantize):
    q = quantize(x)
    return q * mask(q, sparsity)
