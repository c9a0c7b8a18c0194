"""The meta-learning library against independent computations: closed forms on quadratic tasks,
the perturbed-solution identity, the finite-difference orders, the bias of FO-MAML and Reptile."""
import math

import pytest
import torch

from companion.meta import estimators as E
from companion.meta.outer import Outer, train
from companion.meta.tasks import make_tasks, maml_optimum

ALPHA = 0.1


@pytest.fixture(scope="module")
def quadratic():
    return make_tasks(d=6, T=8, seed=1)


@pytest.fixture(scope="module")
def wavy():
    return make_tasks(d=6, T=8, seed=2, amp=0.5, omega=2.0)


def _x(d, seed=0, scale=1.0):
    return scale * torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_exact_meta_gradient_equals_the_closed_form_on_quadratics(quadratic):
    """grad F(x) = 1/T sum_i B_i (x - c_i), B_i = (I - alpha A_i) A_i (I - alpha A_i)."""
    x = _x(quadratic.d)
    P = torch.eye(quadratic.d, dtype=torch.float64) - ALPHA * quadratic.A
    B = P @ quadratic.A @ P
    closed = (B @ (x - quadratic.c).unsqueeze(-1)).squeeze(-1).mean(0)
    assert torch.allclose(E.meta_gradient("maml", quadratic, x, ALPHA), closed, rtol=0, atol=1e-12)


def test_closed_form_optimum_is_stationary(quadratic):
    x_star = maml_optimum(quadratic, ALPHA)
    assert float(E.meta_gradient("maml", quadratic, x_star, ALPHA).norm()) < 1e-12


def test_k_step_maml_matches_a_dense_reference(wavy):
    """Three inner steps: autograd through torch.func against plain torch.autograd on a loop."""
    x = _x(wavy.d, 3)
    ours = E.meta_gradient("maml", wavy, x, ALPHA, inner_steps=3)
    ref = torch.zeros_like(x)
    for A, c in zip(wavy.A, wavy.c):
        z = x.clone().requires_grad_(True)
        phi = z
        for _ in range(3):
            (g,) = torch.autograd.grad(wavy.inner(phi, A, c), phi, create_graph=True)
            phi = phi - ALPHA * g
        (gz,) = torch.autograd.grad(wavy.outer(phi, A, c), z)
        ref += gz / wavy.T
    assert torch.allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("K", [1, 3])
def test_meta_gradient_is_minus_the_derivative_of_the_perturbed_solution(wavy, K):
    """d y_delta / d delta at delta = 0 (forward mode) equals -grad F_i, to 1e-10 in float64."""
    x = _x(wavy.d, 4)
    X = x.expand(wavy.T, -1)
    _, dY = torch.func.jvp(lambda dl: E.perturbed_solution(wavy, X, wavy.A, wavy.c, ALPHA, dl, K),
                           (torch.zeros((), dtype=torch.float64),), (torch.ones((), dtype=torch.float64),))
    exact = E.batch_estimates("maml", wavy, x, ALPHA)
    assert float((dY + exact).norm()) <= 1e-10 * max(1.0, float(exact.norm()))


@pytest.mark.parametrize("kind", ["quadratic", "wavy", "quartic"])
def test_batched_oracles_equal_autograd_of_the_task_losses(kind):
    tasks = make_tasks(d=5, T=4, seed=9, **{"quadratic": {}, "wavy": dict(amp=0.7, omega=2.0),
                                            "quartic": dict(quartic=0.05, amp=0.3)}[kind])
    X = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for i in range(4):
        A, c, x = tasks.A[i], tasks.c[i], X[i]
        assert torch.allclose(tasks.grad_inner(X, tasks.A, tasks.c)[i], torch.func.grad(tasks.inner)(x, A, c),
                              atol=1e-12)
        assert torch.allclose(tasks.grad_outer(X, tasks.A, tasks.c)[i], torch.func.grad(tasks.outer)(x, A, c),
                              atol=1e-12)
        assert torch.allclose(tasks.hess_inner(X, tasks.A, tasks.c)[i],
                              torch.func.hessian(tasks.inner)(x, A, c), atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2])
def test_maml_equals_autograd_through_the_inner_steps(wavy, steps):
    x = _x(wavy.d, 10)
    ref = torch.stack([torch.func.grad(lambda z: E.task_objective(wavy, z, A, c, ALPHA, steps))(x)
                       for A, c in zip(wavy.A, wavy.c)])
    assert torch.allclose(E.batch_estimates("maml", wavy, x, ALPHA, inner_steps=steps), ref, atol=1e-12)


def test_symmetric_estimator_with_one_iteration_is_hessian_free_maml(wavy):
    x = _x(wavy.d, 5)
    a = E.meta_gradient("sym", wavy, x, ALPHA, delta=1e-2, K=1)
    b = E.meta_gradient("hfmaml", wavy, x, ALPHA, delta=1e-2)
    assert torch.allclose(a, b, rtol=0, atol=1e-13)


def _error(name, tasks, x, delta, K=8):
    exact = E.meta_gradient("maml", tasks, x, ALPHA)
    return float((E.meta_gradient(name, tasks, x, ALPHA, delta=delta, K=K) - exact).norm() / exact.norm())


def test_finite_difference_errors_fall_at_their_orders(wavy):
    """Halving delta divides the symmetric estimator's error by ~4 and the forward one's by ~2
    (measured 4.0 and 1.9-2.0 on this family); asserted within 30%."""
    x = _x(wavy.d, 6)
    for name, factor in (("sym", 4.0), ("fwd", 2.0)):
        errs = [_error(name, wavy, x, d) for d in (0.04, 0.02, 0.01, 0.005)]
        for a, b in zip(errs, errs[1:]):
            assert factor * 0.7 <= a / b <= factor * 1.3, (name, errs)


def test_first_order_baselines_keep_a_bias_that_delta_does_not_touch(wavy):
    x = _x(wavy.d, 7)
    exact = E.meta_gradient("maml", wavy, x, ALPHA)
    for name, kw in (("fomaml", {}), ("reptile", {"inner_steps": 1}), ("reptile", {"inner_steps": 5})):
        est = E.meta_gradient(name, wavy, x, ALPHA, **kw)
        assert float((est - exact).norm() / exact.norm()) > 0.03, name
    assert _error("sym", wavy, x, 1e-2) < 1e-3


def test_first_order_bias_vanishes_when_every_task_has_the_same_centre():
    """The control: quadratic tasks all minimised at c (different A_i): x = c is stationary for F
    and for FO-MAML and Reptile alike, so their bias comes from tasks with different minimisers."""
    tasks = make_tasks(d=6, T=8, seed=3, same_centre=True)
    c = tasks.c[0]
    for name in ("maml", "fomaml", "reptile"):
        assert float(E.meta_gradient(name, tasks, c, ALPHA).norm()) < 1e-12, name


def test_meta_hessian_matches_finite_differences_of_the_gradient(wavy):
    x = _x(wavy.d, 8)
    H = E.meta_hessian(wavy, x, ALPHA)
    h = 1e-5
    cols = [(E.meta_gradient("maml", wavy, x + h * e, ALPHA) - E.meta_gradient("maml", wavy, x - h * e, ALPHA)) / (2 * h)
            for e in torch.eye(wavy.d, dtype=torch.float64)]
    assert torch.allclose(H, torch.stack(cols, 1), rtol=0, atol=1e-7)
    assert torch.allclose(H, H.T, atol=1e-12)


def test_outer_steps_follow_their_formulas():
    x, g = torch.zeros(3, dtype=torch.float64), torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
    assert torch.allclose(Outer("sgd", lr=0.1).step(x, g, None, 0)[0], -0.1 * g)
    assert torch.allclose(Outer("clip", lr=0.1, clip=1.0).step(x, g, None, 0)[0], -0.1 * g / 5)
    new, m = Outer("sngdm", lr=0.1, beta=0.5).step(x, g, None, 0)
    assert torch.allclose(new, -0.1 * g / 5) and torch.equal(m, g)
    new, m = Outer("sngdm", lr=0.1, beta=0.5).step(x, -g, m, 1)
    assert torch.equal(m, torch.zeros(3, dtype=torch.float64)) or float(m.norm()) == 0.0
    assert Outer("sgd", lr=1.0, tau=10).rate(10) == 0.5
    with pytest.raises(ValueError, match="unknown outer optimizer"):
        Outer("adam")


def test_training_with_the_exact_gradient_reaches_the_closed_form_optimum(quadratic):
    log = train(quadratic, "maml", Outer("sgd", lr=0.5), torch.zeros(quadratic.d, dtype=torch.float64), 400, ALPHA,
                log_every=50)
    assert log["gnorm"][-1] < 1e-10
    assert torch.allclose(log["x"], maml_optimum(quadratic, ALPHA), atol=1e-9)


def test_a_diverging_run_stops_with_an_infinite_gradient_norm(quadratic):
    log = train(quadratic, "maml", Outer("sgd", lr=50.0), _x(quadratic.d), 200, ALPHA, log_every=10)
    assert log["diverged"] and math.isinf(log["gnorm"][-1])
