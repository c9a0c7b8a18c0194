"""Inverse-matrix-vector solvers (hyperinf chapter) against independent computations:
torch.linalg.inv / solve, the closed-form Schulz residual, a dense average of inverses."""
import math

import pytest
import torch

from companion.influence import solvers as S


def spd(d=60, kappa=1e3, scale=1.0, seed=0):
    """Q diag(logspace(0, -log10 kappa)) Q^T, float64."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam = scale * torch.logspace(0, -math.log10(kappa), d, dtype=torch.float64)
    return (Q * lam) @ Q.T


def test_schulz_converges_to_the_inverse_in_float64():
    A = spd()
    eye = torch.eye(60, dtype=torch.float64)
    X = S.schulz(A, eye, iters=40).x
    inv = torch.linalg.inv(A)
    assert (torch.linalg.matrix_norm(X - inv) / torch.linalg.matrix_norm(inv)).item() < 1e-10


@pytest.mark.parametrize("kappa", [1e1, 1e3, 1e5])
@pytest.mark.parametrize("init", ["frobenius", 1e-2])
def test_schulz_iteration_count_follows_the_bound(kappa, init):
    """First k with ||I - A X_k||_2 <= 1e-6 against ceil(log2(ln(1/tol) / ln(1/rho(I - A X_0))))."""
    A = spd(40, kappa)
    eye = torch.eye(40, dtype=torch.float64)
    X = S.schulz_init(A, init)
    for k in range(80):
        if torch.linalg.matrix_norm(eye - A @ X, ord=2) <= 1e-6:
            break
        X = 2 * X - X @ (A @ X)
    assert abs(k - S.schulz_iterations(A, init, 1e-6)) <= 2


def test_official_init_diverges_when_the_spectrum_is_too_large():
    """X_0 = 5e-5 I needs lambda_max < 2 / 5e-5 = 4e4 (the documented pitfall)."""
    A = spd(30, 1e2, scale=1e5)
    v = torch.randn(30, dtype=torch.float64)
    ref = torch.linalg.solve(A, v)
    err = S.schulz(A, v, iters=30, init="official", reference=ref).errors[-1]
    assert not math.isfinite(err) or err >= 1
    assert S.schulz_iterations(A, "official") == math.inf
    assert S.schulz(A, v, iters=40, reference=ref).errors[-1] < 1e-8  # the Frobenius init converges


def test_schulz_error_trajectory_starts_at_the_initial_guess():
    A, v = spd(20, 10), torch.ones(20, dtype=torch.float64)
    ref = torch.linalg.solve(A, v)
    out = S.schulz(A, v, iters=5, reference=ref)
    assert len(out.errors) == 6
    assert out.errors[0] == pytest.approx(((v / torch.linalg.matrix_norm(A) - ref).norm() / ref.norm()).item())


def test_scaled_lissa_converges_slowly_on_ill_conditioned_matrices():
    v = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    easy, hard = spd(40, 3), spd(40, 1e3)
    ref = torch.linalg.solve(easy, v)
    assert S.lissa_scaled(easy, v, iters=2000, reference=ref).errors[-1] < 1e-8
    ref = torch.linalg.solve(hard, v)
    assert S.lissa_scaled(hard, v, iters=40, scale=1.01, reference=ref).errors[-1] > 0.5


def test_official_lissa_iterates_towards_fisher_minus_damping():
    """The official recursion's fixed point is (F - lam I)^{-1} v / alpha, not (F + lam I)^{-1} v."""
    g = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))
    F = (Q * torch.linspace(0.3, 1.5, 10, dtype=torch.float64)) @ Q.T
    v = torch.randn(10, generator=g, dtype=torch.float64)
    x = S.lissa_official(F, v, lam=0.1, iters=400, alpha=1.0).x
    assert torch.allclose(x, torch.linalg.solve(F - 0.1 * torch.eye(10, dtype=torch.float64), v), atol=1e-10)


def test_cg_is_exact_after_d_iterations_and_solves_columns_independently():
    A = spd(20, 1e2)
    V = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ref = torch.linalg.solve(A, V)
    out = S.cg(A, V, iters=40, reference=ref)
    assert out.errors[-1] < 1e-8
    assert torch.allclose(S.cg(A, V[:, 1], iters=40).x, out.x[:, 1], atol=1e-10)


def test_datainf_is_the_average_of_per_sample_inverses():
    g = torch.Generator().manual_seed(4)
    G = torch.randn(7, 12, generator=g, dtype=torch.float64)
    v = torch.randn(12, generator=g, dtype=torch.float64)
    lam = 0.3
    eye = torch.eye(12, dtype=torch.float64)
    dense = sum(torch.linalg.solve(torch.outer(gi, gi) + lam * eye, v) for gi in G) / len(G)
    assert torch.allclose(S.datainf(G, v, lam).x, dense, atol=1e-12)
    V = torch.stack([v, 2 * v], 1)
    assert torch.allclose(S.datainf(G, V, lam).x[:, 1], 2 * dense, atol=1e-12)


def test_exact_matches_solve():
    A = spd(15, 1e2)
    V = torch.randn(15, 2, dtype=torch.float64)
    assert torch.allclose(S.exact(A, V).x, torch.linalg.solve(A, V), atol=1e-10)
    assert torch.allclose(S.exact(A, V[:, 0]).x, torch.linalg.solve(A, V[:, 0]), atol=1e-10)
