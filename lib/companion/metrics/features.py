"""Feature rank and the tunnel effect (Fan et al. 2024, section 3; Masarczyk et al. 2023).

`numerical_rank` is the official code's rank of the feature covariance: for features
H (n x d), C = cov(H) (d x d), rank = #{i : sigma_i(C) > sigma_1(C) d eps}, the defaults of
`torch.linalg.matrix_rank` on C (the paper's footnote says max(n, d) eps on H instead). The
tolerance depends on the dtype: in float64 it counts near-exact degeneracies only, in
float32 far more; ranks of different dtypes must not be compared. `effective_rank` is a
threshold-free check (Roy & Vetterli 2007): exp of the entropy of the normalised singular
values of the centred features.
"""
import math

import torch


def covariance(H: torch.Tensor) -> torch.Tensor:
    """1/(n-1) sum_i (h_i - mean)(h_i - mean)^T for features H of shape (n, d)."""
    Hc = H - H.mean(0, keepdim=True)
    return Hc.T @ Hc / (H.shape[0] - 1)


def numerical_rank(H: torch.Tensor, rtol=None) -> int:
    """Number of singular values of cov(H) above rtol * sigma_1; rtol defaults to d * eps of
    H's dtype (the official code's rule)."""
    C = covariance(H)
    s = torch.linalg.svdvals(C)
    if rtol is None:
        rtol = C.shape[0] * torch.finfo(C.dtype).eps
    return int((s > rtol * s[0]).sum()) if s[0] > 0 else 0


def effective_rank(H: torch.Tensor) -> float:
    """exp(-sum p_i log p_i) with p_i = s_i / sum_j s_j, s the singular values of centred H."""
    s = torch.linalg.svdvals((H - H.mean(0, keepdim=True)).double())
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(math.exp(-(p * p.log()).sum()))


def tunnel_length(ranks, width: int, frac: float = 0.75) -> int:
    """Number of layers whose feature rank is below frac * width (the paper: 300 at width 400)."""
    return sum(r < frac * width for r in ranks)
