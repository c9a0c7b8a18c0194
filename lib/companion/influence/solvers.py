"""Inverse-matrix-vector solvers for influence functions (Zhou, Fan & Jaggi 2024, HyperINF).

Every solver approximates x = A^{-1} v for a symmetric positive definite A (one vector v, or
the columns of a matrix V) and returns a `Solve`: the approximation and, when the exact
solution is given as `reference`, the relative error ||x_k - x|| / ||x|| after every
iteration k (k = 0 is the initial guess).

* `schulz`: the hyperpower iteration X_{k+1} = X_k (2I - A X_k) (Schulz 1933), which
  converges quadratically to A^{-1} iff the spectral radius of I - A X_0 is below 1. For
  X_0 = cI that means 0 < c < 2 / lambda_max(A). The official code uses c = 5e-5, which silently
  assumes lambda_max < 4e4; `init="frobenius"` (X_0 = I / ||A||_F) converges for every SPD A.
* `lissa_scaled`: the Neumann series r <- v + (I - A/s) r, x = r/s (Agarwal et al. 2017), with
  s = ||A||_F + 1 as in the official rebuttal code; converges at rate 1 - lambda_min/s.
* `lissa_official`: the recursion of the official (and DataInf's) code,
  r <- v + r - alpha (F r - lambda r), on the undamped Fisher F, without a scale: it iterates
  towards (F - lambda I)^{-1} v and, for small gradients, stays near (1 + alpha lambda)^K v.
* `cg`: conjugate gradients (Hestenes & Stiefel 1952).
* `datainf`: DataInf's closed form (Kwon et al. 2024), Sherman-Morrison per sample after
  swapping the average and the inverse: (1/(n lambda)) sum_i [v - <v, g_i>/(lambda + |g_i|^2) g_i].
* `exact`: a Cholesky-based solve.
"""
import math
from dataclasses import dataclass, field

import torch

OFFICIAL_C = 5e-5  # X_0 = c I in every official HyperINF script


@dataclass
class Solve:
    x: torch.Tensor
    errors: list = field(default_factory=list)  # relative error per iteration, if a reference was given


def _mv(A, x):
    """A @ x for a matrix A, or A(x) for a matrix-free operator."""
    return A(x) if callable(A) else A @ x


def _rel(x, ref) -> float:
    return ((x - ref).norm() / ref.norm()).item()


def _track(errors, x, reference):
    if reference is not None:
        errors.append(_rel(x, reference))


def schulz_init(A, init="frobenius"):
    """X_0: I/||A||_F ("frobenius"), the official 5e-5 I ("official"), or c I for a float c."""
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    if init == "frobenius":
        return eye / torch.linalg.matrix_norm(A)
    if init == "official":
        return OFFICIAL_C * eye
    if isinstance(init, (int, float)) and init > 0:
        return float(init) * eye
    raise ValueError(f"init must be 'frobenius', 'official' or a positive float, got {init!r}")


def schulz(A, v, iters: int = 30, init="frobenius", reference=None) -> Solve:
    """x_K = X_K v with X_{k+1} = X_k (2I - A X_k)."""
    X = schulz_init(A, init)
    out = Solve(X @ v)
    _track(out.errors, out.x, reference)
    for _ in range(iters):
        X = 2 * X - X @ (A @ X)
        out.x = X @ v
        _track(out.errors, out.x, reference)
    return out


def schulz_iterations(A, init="frobenius", tol: float = 1e-6) -> int:
    """Iterations after which ||I - A X_k||_2 <= tol, from R_k = R_0^(2^k) with X_0 = cI:
    rho(R_0) = max |1 - c lambda_i|, so k = ceil(log2(ln(1/tol) / ln(1/rho)))."""
    lam = torch.linalg.eigvalsh(A)
    c = schulz_init(A, init)[0, 0].item()
    rho = max(abs(1 - c * lam[0].item()), abs(1 - c * lam[-1].item()))
    if rho >= 1:
        return math.inf
    return max(0, math.ceil(math.log2(math.log(1 / tol) / -math.log(rho))))


def lissa_scaled(A, v, iters: int = 40, scale=None, reference=None) -> Solve:
    """x_K = r_K / s with r_{k+1} = v + (I - A/s) r_k, r_0 = v; s = ||A||_F + 1 by default."""
    s = float(torch.linalg.matrix_norm(A)) + 1 if scale is None else float(scale)
    r = v.clone()
    out = Solve(r / s)
    _track(out.errors, out.x, reference)
    for _ in range(iters):
        r = v + r - _mv(A, r) / s
        out.x = r / s
        _track(out.errors, out.x, reference)
    return out


def lissa_official(F, v, lam: float, iters: int = 10, alpha: float = 1.0, reference=None) -> Solve:
    """The official recursion r_{k+1} = v + r_k - alpha (F r_k - lam r_k), r_0 = v, x = r_K,
    with F the undamped Fisher (1/n) sum_i g_i g_i^T (a matrix or a matrix-free operator)."""
    r = v.clone()
    out = Solve(r)
    _track(out.errors, out.x, reference)
    for _ in range(iters):
        r = v + r - alpha * (_mv(F, r) - lam * r)
        out.x = r
        _track(out.errors, out.x, reference)
    return out


def cg(A, v, iters: int = 40, reference=None) -> Solve:
    """Conjugate gradients from x_0 = 0, on every column of v at once (independent recursions)."""
    x = torch.zeros_like(v)
    r = v.clone()
    p = r.clone()
    rr = (r * r).sum(0)
    out = Solve(x.clone())
    _track(out.errors, out.x, reference)
    for _ in range(iters):
        Ap = _mv(A, p)
        pAp = (p * Ap).sum(0)
        alpha = torch.where(pAp > 0, rr / torch.where(pAp > 0, pAp, torch.ones_like(pAp)), torch.zeros_like(pAp))
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = (r * r).sum(0)
        beta = torch.where(rr > 0, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = r + beta * p
        rr = rr_new
        out.x = x.clone()
        _track(out.errors, out.x, reference)
    return out


def datainf(G, v, lam: float, reference=None) -> Solve:
    """DataInf's approximation of ((1/n) G^T G + lam I)^{-1} v for per-sample gradients G (n x p):
    the average over i of the exact inverse of (g_i g_i^T + lam I), by Sherman-Morrison."""
    n = G.shape[0]
    norms = (G * G).sum(1)
    coef = (G @ v) / (lam + (norms[:, None] if v.dim() > 1 else norms))
    x = (n * v - G.T @ coef) / (n * lam)
    out = Solve(x)
    _track(out.errors, out.x, reference)
    return out


def exact(A, v) -> Solve:
    return Solve(torch.cholesky_solve(v if v.dim() > 1 else v[:, None], torch.linalg.cholesky(A)).reshape(v.shape))
