"""Meta-gradient estimators of the one-step MAML objective F(x) = E_i f_i^out(y_i(x)), with the
adapted point y_i(x) = x - alpha grad f_i^in(x) (Finn et al., 2017). Per task i:

* maml:    (I - alpha grad^2 f^in(x)) grad f^out(y)       exact, by autograd through the inner step
* fomaml:  grad f^out(y)                                  drops the Jacobian of y: biased
* reptile: (x - phi_k) / (k alpha), phi_k = k inner steps  (Nichol et al., 2018): biased
* hfmaml:  v - alpha [grad f^in(x + delta v) - grad f^in(x - delta v)] / (2 delta), v = grad f^out(y)
           (Hessian-free MAML, Fallah et al., 2020)
* fo-b-maml, forward / symmetric (our reconstruction of the paper's estimators from its abstract):
  the meta-gradient is minus the derivative in delta of the solution of a perturbed problem,

      y_delta = argmin_y  phi*(y) - <x, y> + delta f^out(y),   phi(x) = ||x||^2 / 2 - alpha f^in(x),

  whose optimality condition is the fixed point y = w - alpha grad f^in(w), w = x - delta grad f^out(y);
  at delta = 0 it is y(x), and d y_delta / d delta |_0 = -(I - alpha grad^2 f^in(x)) grad f^out(y) = -grad F_i.
  We solve it by K fixed-point iterations from y(x) and difference:
      forward   (y_0 - y_delta) / delta                 (bias O(delta))
      symmetric (y_-delta - y_delta) / (2 delta)        (bias O(delta^2) on smooth tasks; with K = 1
                                                          it is exactly HF-MAML)
  Every iterate has the exact derivative at delta = 0, for any K >= 1.

Every estimator uses gradients only, except maml (a Hessian-vector product by double backprop).
`meta_gradient` averages an estimator over a task batch with torch.func.vmap.
"""
import torch
from torch.func import grad, vmap

ESTIMATORS = ("maml", "fomaml", "reptile", "hfmaml", "fwd", "sym")


def adapt(tasks, x, A, c, alpha: float, steps: int = 1):
    """phi_k: `steps` gradient steps on the inner loss from x (phi_1 = y(x))."""
    g_in = grad(tasks.inner)
    for _ in range(steps):
        x = x - alpha * g_in(x, A, c)
    return x


def task_objective(tasks, x, A, c, alpha: float, steps: int = 1):
    """F_i(x) = f_i^out(phi_k(x))."""
    return tasks.outer(adapt(tasks, x, A, c, alpha, steps), A, c)


def perturbed_solution(tasks, x, A, c, alpha: float, delta, K: int):
    """y_delta by K fixed-point iterations y <- w - alpha grad f^in(w), w = x - delta grad f^out(y),
    from y_0 = y(x) (module docstring)."""
    g_in, g_out = grad(tasks.inner), grad(tasks.outer)
    y = x - alpha * g_in(x, A, c)
    for _ in range(K):
        w = x - delta * g_out(y, A, c)
        y = w - alpha * g_in(w, A, c)
    return y


def task_estimate(name: str, tasks, x, A, c, alpha: float, steps: int = 1, delta: float = 1e-2, K: int = 5):
    """One task's estimate of grad F_i(x) (module docstring); steps is the inner steps of maml,
    fomaml and reptile (the hfmaml and fo-b-maml estimators are for one inner step)."""
    if name == "maml":
        return grad(lambda z: task_objective(tasks, z, A, c, alpha, steps))(x)
    if name == "fomaml":
        return grad(tasks.outer)(adapt(tasks, x, A, c, alpha, steps), A, c)
    if name == "reptile":
        return (x - adapt(tasks, x, A, c, alpha, steps)) / (steps * alpha)
    if name == "hfmaml":
        g_in = grad(tasks.inner)
        v = grad(tasks.outer)(adapt(tasks, x, A, c, alpha), A, c)
        return v - alpha * (g_in(x + delta * v, A, c) - g_in(x - delta * v, A, c)) / (2 * delta)
    if name == "fwd":
        y0 = adapt(tasks, x, A, c, alpha)
        return (y0 - perturbed_solution(tasks, x, A, c, alpha, delta, K)) / delta
    if name == "sym":
        return (perturbed_solution(tasks, x, A, c, alpha, -delta, K)
                - perturbed_solution(tasks, x, A, c, alpha, delta, K)) / (2 * delta)
    raise ValueError(f"unknown estimator {name!r}; estimators: {', '.join(ESTIMATORS)}")


def meta_gradient(name: str, tasks, x, alpha: float, idx=None, **kw):
    """The mean over tasks (all, or the batch idx) of one estimator."""
    A, c = (tasks.A, tasks.c) if idx is None else (tasks.A[idx], tasks.c[idx])
    return vmap(lambda Ai, ci: task_estimate(name, tasks, x, Ai, ci, alpha, **kw))(A, c).mean(0)


def meta_objective(tasks, x, alpha: float, steps: int = 1):
    """F(x), the mean of F_i over all tasks."""
    return vmap(lambda Ai, ci: task_objective(tasks, x, Ai, ci, alpha, steps))(tasks.A, tasks.c).mean()


def meta_hessian(tasks, x, alpha: float):
    """grad^2 F(x) (d x d, by forward-over-reverse autograd): the local smoothness of F."""
    return torch.func.hessian(lambda z: meta_objective(tasks, z, alpha))(x)
