"""The cubic Newton step and the test problems, against independent computations."""
import pytest
import torch

from companion.second_order import cubic, problems



@pytest.fixture(autouse=True, scope="module")
def float64():
    """These checks are at float64 precision; the default dtype is restored for other modules."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _random(d, seed, hard=False, M=None):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    lam = torch.randn(d, generator=g) * 3
    lam[0] = -abs(lam).max() - 0.5  # indefinite, a distinct bottom eigenvalue
    lam, _ = torch.sort(lam)
    H = Q @ torch.diag(lam) @ Q.T
    H = (H + H.T) / 2
    grad = torch.randn(d, generator=g) * 10 ** float(torch.empty(1).uniform_(-3, 2, generator=g))
    if hard:  # g orthogonal to the bottom eigenvector, and small: the hard case
        grad = grad - (Q[:, 0] @ grad) * Q[:, 0]
        grad = grad * 1e-3
    M = M if M is not None else 10 ** float(torch.empty(1).uniform_(-2, 2, generator=g))
    return grad, H, M


def _check_optimality(g, H, M, s):
    r = s.norm()
    residual = g + H @ s + M / 2 * r * s
    # relative to g, plus the rounding floor of the product H s itself (the hard case has tiny g)
    floor = 1e-12 * torch.linalg.matrix_norm(H, 2) * r
    assert residual.norm() <= 1e-8 * g.norm() + floor, residual.norm()
    assert torch.linalg.eigvalsh(H + M / 2 * r * torch.eye(len(g)))[0] >= -1e-10
    assert cubic.model(g, H, M, s) <= 1e-14


@pytest.mark.parametrize("seed", range(100))
def test_exact_step_satisfies_the_optimality_conditions_on_indefinite_hessians(seed):
    g, H, M = _random(int(3 + seed % 40), seed)
    _check_optimality(g, H, M, cubic.cubic_step(g, H, M))


@pytest.mark.parametrize("seed", range(20))
def test_exact_step_in_the_hard_case(seed):
    g, H, M = _random(int(3 + seed % 20), 1000 + seed, hard=True, M=1.0)
    s = cubic.cubic_step(g, H, M)
    _check_optimality(g, H, M, s)
    lam_min = torch.linalg.eigvalsh(H)[0]
    assert abs(float(M / 2 * s.norm() + lam_min)) < 1e-8  # r = -2 lam_min / M exactly


def test_exact_step_is_the_global_minimiser_of_the_model():
    """Against an independent minimisation: the best of many random and scaled directions."""
    g, H, M = _random(6, 7)
    s = cubic.cubic_step(g, H, M)
    gen = torch.Generator().manual_seed(0)
    trial = torch.randn(20000, 6, generator=gen) * torch.logspace(-3, 2, 20000).unsqueeze(1)
    values = trial @ g + 0.5 * ((trial @ H) * trial).sum(1) + M / 6 * trial.norm(dim=1) ** 3
    assert cubic.model(g, H, M, s) <= values.min() + 1e-12


def test_convex_quadratic_limit():
    """H positive definite and M -> 0: the step tends to the Newton step -H^-1 g."""
    A = torch.randn(5, 5, generator=torch.Generator().manual_seed(3))
    H = A @ A.T + torch.eye(5)
    g = torch.randn(5, generator=torch.Generator().manual_seed(4))
    s = cubic.cubic_step(g, H, 1e-9)
    assert torch.allclose(s, -torch.linalg.solve(H, g), atol=1e-7)


@pytest.mark.parametrize("size", [1e-6, 1e-12, 1e-17, 1e-30])
def test_tiny_gradient_at_a_minimum_gives_the_newton_step(size):
    """Near a converged iterate (||g|| ~ 1e-17, H positive definite) the step is -H^-1 g up to the
    cubic term's relative size M ||s|| / (2 lam_min(H)), and the root bracket must not cancel."""
    A = torch.randn(6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    H = A @ A.T + 2 * torch.eye(6, dtype=torch.float64)
    g = size * torch.randn(6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    newton = -torch.linalg.solve(H, g)
    rel = 10.0 * float(newton.norm()) / (2 * float(torch.linalg.eigvalsh(H)[0]))
    assert float((cubic.cubic_step(g, H, 10.0) - newton).norm()) <= (rel + 1e-12) * float(newton.norm())


@pytest.mark.parametrize("seed", range(10))
def test_krylov_step_equals_the_exact_step_when_the_krylov_space_is_complete(seed):
    d = 4 + seed
    g, H, M = _random(d, 200 + seed)
    exact = cubic.cubic_step(g, H, M)
    krylov = cubic.cubic_step_krylov(g, lambda v: H @ v, M, m=d)
    assert torch.allclose(krylov, exact, atol=1e-8 * max(1.0, float(exact.norm())))


def test_krylov_step_with_few_vectors_is_a_descent_step_of_the_model():
    g, H, M = _random(60, 5)
    s = cubic.cubic_step_krylov(g, lambda v: H @ v, M, m=10)
    assert cubic.model(g, H, M, s) < 0
    assert cubic.model(g, H, M, s) >= cubic.model(g, H, M, cubic.cubic_step(g, H, M)) - 1e-12


@pytest.fixture(scope="module")
def problem():
    return problems.breast_cancer()


def test_closed_form_gradient_and_hessian_match_autograd(problem):
    x = torch.randn(problem.d, generator=torch.Generator().manual_seed(1)) * 3
    for idx in (None, torch.tensor([3]), torch.tensor([0, 5, 7, 11])):
        xr = x.clone().requires_grad_(True)
        (ga,) = torch.autograd.grad(problem.loss(xr, idx), xr)
        Ha = torch.autograd.functional.hessian(lambda z: problem.loss(z, idx), x)
        assert torch.allclose(problem.grad(x, idx), ga, atol=1e-12)
        assert torch.allclose(problem.hess(x, idx), Ha, atol=1e-12)


def test_sample_oracles_average_to_the_full_oracle(problem):
    x = torch.randn(problem.d, generator=torch.Generator().manual_seed(2))
    every = torch.arange(problem.n)
    assert torch.allclose(problem.grad(x, every), problem.grad(x), atol=1e-14)
    mean = sum(problem.grad(x, torch.tensor([i])) for i in range(problem.n)) / problem.n
    assert torch.allclose(mean, problem.grad(x), atol=1e-12)


def test_deterministic_cubic_newton_reaches_a_second_order_stationary_point(problem):
    x = torch.randn(problem.d, generator=torch.Generator().manual_seed(1)) * 3
    for _ in range(100):  # measured: ||grad|| 3e-5 at 70 iterations, 3e-17 at 80
        x = x + cubic.cubic_step(problem.grad(x), problem.hess(x), 10.0)
    assert problem.grad(x).norm() < 1e-8
    assert torch.linalg.eigvalsh(problem.hess(x))[0] > 0


def test_digits_binary_problem_shape():
    p = problems.digits_binary()
    assert (p.n, p.d) == (1797, 65) and set(p.y.tolist()) == {-1.0, 1.0}


class _Scripted:
    """An oracle returning hand-chosen values and recording where it was queried."""
    def __init__(self, grads, hessians):
        self.grads, self.hessians, self.at = list(grads), list(hessians), []

    def grad(self, x):
        self.at.append(("g", x.clone()))
        return torch.tensor([self.grads.pop(0)])

    def hess(self, x):
        self.at.append(("H", x.clone()))
        return torch.tensor([[self.hessians.pop(0)]])


@pytest.mark.parametrize("kind, g1, H1, g_at", [
    # x0 = 1, x1 = 3, alpha = 0.25, beta = 0.5; oracle: g~ = 2 then 6, H~ = 4 then 8
    ("none", 6.0, 8.0, 3.0),
    ("ema", 0.75 * 2 + 0.25 * 6, 0.5 * 4 + 0.5 * 8, 3.0),
    ("corrected", 0.75 * (2 + 6.0 * (3 - 1)) + 0.25 * 6, 6.0, 3.0),
    ("it-hb", 0.75 * 2 + 0.25 * 6, 6.0, 3 + (0.75 / 0.25) * (3 - 1))])
def test_momentum_estimators_match_a_hand_computed_two_step_example(kind, g1, H1, g_at):
    from companion.second_order.momentum import Estimator
    oracle = _Scripted([2.0, 6.0], [4.0, 8.0])
    est = Estimator(kind, alpha=0.25, beta=0.5, T=2)
    x0, x1 = torch.tensor([1.0]), torch.tensor([3.0])
    g, H = est.update(oracle, x0, None, 0)
    assert (float(g), float(H)) == (2.0, 4.0)
    g, H = est.update(oracle, x1, x0, 1)
    assert float(g) == pytest.approx(g1) and float(H) == pytest.approx(H1)
    where_g = [float(x) for k, x in oracle.at if k == "g"]
    assert where_g[1] == pytest.approx(g_at)  # it-hb queries the gradient at the extrapolated point
    assert [float(x) for k, x in oracle.at if k == "H"][1] == 3.0


def test_horizon_schedule_and_constant_rates():
    from companion.second_order.momentum import horizon, rate
    assert rate(0.1, 5, 100) == 0.1
    assert rate(horizon(1.0, 0.5), 0, 100) == pytest.approx(0.1)
    assert rate(horizon(100.0, 0.5), 0, 100) == 1.0


def test_oracle_counts_samples_and_injects_noise_of_the_stated_size(problem):
    from companion.second_order.momentum import Oracle
    x = torch.zeros(problem.d)
    exact = Oracle(problem, batch=problem.n * 50)  # many samples: close to the full gradient
    assert (exact.grad(x) - problem.grad(x)).norm() < 0.1 * problem.grad(x).norm()
    noisy = Oracle(problem, batch=4, hess_batch=2, sigma_g=2.0, sigma_h=3.0, seed=1)
    clean = Oracle(problem, batch=4, hess_batch=2, seed=1)
    gaps = [(noisy.grad(x) - clean.grad(x)).norm() for _ in range(200)]
    assert 1.6 < float(torch.stack(gaps).mean()) < 2.4
    Hgap = noisy.hess(x) - clean.hess(x)
    assert 1.5 < float(torch.linalg.matrix_norm(Hgap, 2)) < 6.0
    assert noisy.samples == 200 * 4 + 2


def test_run_logs_every_method_and_deterministic_cubic_newton_converges(problem):
    from companion.second_order.methods import Method, run, tail
    x0 = torch.randn(problem.d, generator=torch.Generator().manual_seed(1)) * 3
    cn = run(problem, Method("cn", M=10.0), 100, x0, log_every=10)
    assert cn["gnorm"][-1] < 1e-8 and cn["lam_min"][-1] > 0 and cn["t"] == list(range(0, 101, 10))
    assert all(a >= b - 1e-12 for a, b in zip(cn["f"], cn["f"][1:]))  # M above the Hessian's Lipschitz constant here
    for m in (Method("scn"), Method("scn", momentum="it-hb"), Method("scn", momentum="corrected"),
              Method("scn", momentum="ema", batch=4, hess_batch=2), Method("sgd"), Method("sgdm")):
        log = run(problem, m, 60, x0, seed=3, log_every=20)
        assert not log["diverged"] and tail(log) < log["gnorm"][0]
        per_step = {"scn": m.batch + (m.hess_batch or m.batch), "sgd": m.batch, "sgdm": m.batch}[m.kind]
        assert log["samples"][-1] == 60 * per_step


def test_a_diverging_run_stops_and_its_tail_is_infinite(problem):
    from companion.second_order.methods import Method, run, tail
    x0 = torch.zeros(problem.d)
    log = run(problem, Method("sgd", lr=1e9), 50, x0, log_every=10, blowup=1e3)
    assert log["diverged"] and tail(log) == float("inf") and len(log["t"]) < 6


def test_unknown_method_or_momentum_is_refused():
    from companion.second_order.methods import Method
    from companion.second_order.momentum import Estimator
    with pytest.raises(ValueError, match="unknown method"):
        Method("newton")
    with pytest.raises(ValueError, match="unknown momentum"):
        Estimator("adam")
