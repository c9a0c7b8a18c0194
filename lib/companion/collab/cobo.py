"""CoBo's collaboration weights (Hashemi, He & Jaggi 2024, "CoBo: Collaborative Learning via
Bilevel Optimization", Eq. 1 and Algorithm 1).

The bilevel problem: the models X = [x_1 .. x_n] minimise
    sum_i f_i(x_i) + (rho/2) sum_{i<j} w*_ij ||x_i - x_j||^2,
where w*_ij in argmax_{w in [0, 1]} w <grad f_i(z_ij), grad f_j(z_ij)>, z_ij = (x_i + x_j)/2.
The inner problem is linear in w: w* is 1 when the two clients' gradients at their averaged
model agree and 0 when they conflict. Algorithm 1 takes one projected gradient-ascent step
on w for sampled pairs, then one SGD step on the outer objective:
    w_ij <- Proj(w_ij + gamma <g_i(z_ij), g_j(z_ij)>)          (box [0, 1], symmetric), then
    x_i  <- x_i - eta (g_i(x_i) + rho sum_j w_ij (x_i - x_j)).
The LLM variant (Remark 1) keeps every row of W on the probability simplex instead.
"""
import math

import torch

SCHEDULES = ("const", "inv_t", "mixed_paper", "mixed_code", "none")


def proj_box(W: torch.Tensor) -> torch.Tensor:
    return W.clamp(0.0, 1.0)


def proj_simplex(V: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of every row of V onto {w >= 0, sum w = 1} (sort-based: sort u
    descending, K = max{k : u_k - (sum_{r<=k} u_r - 1)/k > 0}, w = max(v - theta, 0) with
    theta = (sum_{r<=K} u_r - 1)/K; Held, Wolfe & Crowder 1974)."""
    u, _ = torch.sort(V, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    k = torch.arange(1, V.shape[-1] + 1, dtype=V.dtype, device=V.device)
    K = (u - css / k > 0).sum(-1, keepdim=True)  # the condition holds exactly for k = 1..K
    theta = css.gather(-1, K - 1) / K
    return (V - theta).clamp_min(0.0)


def pair_probability(schedule: str, t: int, n: int, steps: int, c: float = 100.0) -> float:
    """Probability that a pair is sampled at round t (0-based) of `steps`, n clients.

    const: 2/n (the paper's O(1/n); the constant 2 is the official code's). inv_t: min(1,
    c/(t+1)) (O(1/t); c is ours): every pair in the first rounds. mixed_paper (Table 1's
    best): 2/n for the first 0.2% of the rounds, then O(1/t) but never above 2/n, i.e.
    min(2/n, c/(t+1)) (our reading: O(n) pairs per round from the start). mixed_code: 2/n for
    800 rounds, then 1/sqrt(t) (the official vision code). none: every pair every round."""
    if schedule == "const":
        return min(1.0, 2 / n)
    if schedule == "inv_t":
        return min(1.0, c / (t + 1))
    if schedule == "mixed_paper":
        return min(1.0, 2 / n) if t < max(1, round(0.002 * steps)) else min(1.0, 2 / n, c / (t + 1))
    if schedule == "mixed_code":
        return min(1.0, 2 / n) if t < 800 else 1 / math.sqrt(t)
    if schedule == "none":
        return 1.0
    raise ValueError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")


def sample_pairs(n: int, p: float, gen: torch.Generator):
    """Each pair i < j independently with probability p: (i, j) index tensors."""
    i, j = torch.triu_indices(n, n, 1)
    keep = torch.rand(len(i), generator=gen) < p
    return i[keep], j[keep]


def update_weights(W, i, j, inner, gamma: float, variant: str = "box"):
    """One projected ascent step of the inner problem on the sampled pairs: w_ij += gamma *
    <g_i(z_ij), g_j(z_ij)>. box: symmetric, clipped to [0, 1]. simplex: each row projected on
    the simplex after the step (W need not stay symmetric)."""
    W = W.clone()
    W[i, j] += gamma * inner
    if variant == "box":
        W[j, i] = W[i, j]
        return proj_box(W)
    if variant == "simplex":
        W[j, i] += gamma * inner
        return proj_simplex(W)
    raise ValueError(f"unknown weight variant {variant!r}; known: box, simplex")


def laplacian(W: torch.Tensor) -> torch.Tensor:
    """L with (L X)_i = sum_k w_ik (x_i - x_k): L = diag(W 1) - W (the diagonal of W cancels)."""
    return torch.diag(W.sum(1)) - W


def recovery(W: torch.Tensor, same: torch.Tensor, threshold: float = 0.5) -> float:
    """Fraction of the off-diagonal pairs where [w_ij > threshold] equals [same cluster]."""
    off = ~torch.eye(len(W), dtype=torch.bool)
    return ((W > threshold) == same)[off].float().mean().item()


def within_cross(W: torch.Tensor, same: torch.Tensor):
    """(mean within-cluster weight, mean cross-cluster weight), off the diagonal."""
    off = ~torch.eye(len(W), dtype=torch.bool)
    w, c = W[same & off], W[~same]
    return (w.mean().item() if len(w) else float("nan")), (c.mean().item() if len(c) else float("nan"))
