"""Meta-gradient estimators of the one-step MAML objective F(x) = E_i f_i^out(y_i(x)), with the
adapted point y_i(x) = x - alpha grad f_i^in(x) (Finn et al., 2017). Per task i:

* maml:    (I - alpha grad^2 f^in(x)) grad f^out(y)       exact (k inner steps: the chain of the
           k Jacobians I - alpha grad^2 f^in(phi_j), applied in reverse)
* fomaml:  grad f^out(phi_k)                              drops the Jacobian: biased
* reptile: (x - phi_k) / (k alpha), phi_k = k inner steps  (Nichol et al., 2018): biased
* hfmaml:  v - alpha [grad f^in(x + delta v) - grad f^in(x - delta v)] / (2 delta), v = grad f^out(y)
           (Hessian-free MAML, Fallah et al., 2020)
* fwd, sym (FO-B-MAML, our reconstruction of the paper's estimators from its abstract): the
  meta-gradient is minus the derivative in delta of the solution of a perturbed problem,

      y_delta = argmin_y  phi*(y) - <x, y> + delta f^out(y),   phi(x) = ||x||^2 / 2 - alpha f^in(x),

  whose optimality condition is the fixed point y = w - alpha grad f^in(w), w = x - delta grad f^out(y);
  at delta = 0 it is y(x), and d y_delta / d delta |_0 = -(I - alpha grad^2 f^in(x)) grad f^out(y) = -grad F_i.
  We solve it by K fixed-point iterations from y(x) and difference:
      forward   (y_0 - y_delta) / delta                 (error O(delta))
      symmetric (y_-delta - y_delta) / (2 delta)        (error O(delta^2) on smooth tasks; with K = 1
                                                          it is exactly HF-MAML)
  Every iterate has the exact derivative at delta = 0, for any K >= 1.

All but maml use gradients only. Every estimator works on a whole task batch at once through the
family's batched oracles (`grad_inner`, `grad_outer`; maml also `hess_inner`), with no loop over
tasks; `task_objective` is the autograd reference (one task, torch.func). On a family without
`hess_inner` (a network: `companion.meta.fewshot`) maml differentiates through the unrolled inner
steps instead, vmapped over tasks, which keeps every inner step's activations for the backward
pass (the memory cost the first-order methods avoid).
"""
import torch
from torch.func import grad, vmap

ESTIMATORS = ("maml", "fomaml", "reptile", "hfmaml", "fwd", "sym")


def adapt(tasks, X, A, c, alpha: float, steps: int = 1, trajectory: bool = False):
    """phi_k for every task of the batch: `steps` inner gradient steps from X (n x d)."""
    path = [X]
    for _ in range(steps):
        phi = path[-1] - alpha * tasks.grad_inner(path[-1], A, c)
        path = path + [phi] if trajectory else [phi]  # without trajectory, keep one iterate (memory)
    return path if trajectory else path[-1]


def perturbed_solution(tasks, X, A, c, alpha: float, delta, K: int):
    """y_delta by K fixed-point iterations y <- w - alpha grad f^in(w), w = x - delta grad f^out(y),
    from y_0 = y(x) (module docstring); delta may be a 0-d tensor (forward-mode tests)."""
    Y = X - alpha * tasks.grad_inner(X, A, c)
    for _ in range(K):
        W = X - delta * tasks.grad_outer(Y, A, c)
        Y = W - alpha * tasks.grad_inner(W, A, c)
    return Y


def batch_estimates(name: str, tasks, x, alpha: float, idx=None, inner_steps: int = 1, delta: float = 1e-2, K: int = 5):
    """Each task's estimate of grad F_i(x), n x d (module docstring); inner_steps: the inner steps of
    maml, fomaml and reptile (hfmaml and fo-b-maml are for one inner step)."""
    A, c = tasks.batch(idx)
    X = x.expand(tasks.T if idx is None else len(idx), -1)
    if name == "maml" and not hasattr(tasks, "hess_inner"):
        return vmap(grad(lambda z, a, b: task_objective(tasks, z, a, b, alpha, inner_steps)))(X, A, c)
    if name == "maml":
        path = adapt(tasks, X, A, c, alpha, inner_steps, trajectory=True)
        v = tasks.grad_outer(path[-1], A, c)
        for phi in reversed(path[:-1]):
            v = v - alpha * (tasks.hess_inner(phi, A, c) @ v.unsqueeze(-1)).squeeze(-1)
        return v
    if name == "fomaml":
        return tasks.grad_outer(adapt(tasks, X, A, c, alpha, inner_steps), A, c)
    if name == "reptile":
        return (X - adapt(tasks, X, A, c, alpha, inner_steps)) / (inner_steps * alpha)
    if name == "hfmaml":
        v = tasks.grad_outer(adapt(tasks, X, A, c, alpha), A, c)
        return v - alpha * (tasks.grad_inner(X + delta * v, A, c) - tasks.grad_inner(X - delta * v, A, c)) / (2 * delta)
    if name == "fwd":
        return (adapt(tasks, X, A, c, alpha) - perturbed_solution(tasks, X, A, c, alpha, delta, K)) / delta
    if name == "sym":
        return (perturbed_solution(tasks, X, A, c, alpha, -delta, K)
                - perturbed_solution(tasks, X, A, c, alpha, delta, K)) / (2 * delta)
    raise ValueError(f"unknown estimator {name!r}; estimators: {', '.join(ESTIMATORS)}")


def meta_gradient(name: str, tasks, x, alpha: float, idx=None, **kw):
    """The mean over tasks (all, or the batch idx) of one estimator."""
    return batch_estimates(name, tasks, x, alpha, idx, **kw).mean(0)


def task_objective(tasks, x, A, c, alpha: float, steps: int = 1):
    """F_i(x) = f_i^out(phi_k(x)) for one task, by autograd on its scalar losses (the reference)."""
    g_in = grad(tasks.inner)
    for _ in range(steps):
        x = x - alpha * g_in(x, A, c)
    return tasks.outer(x, A, c)


def meta_hessian(tasks, x, alpha: float):
    """grad^2 F(x), d x d: forward-mode derivative of the exact meta-gradient (the local smoothness)."""
    return torch.func.jacfwd(lambda z: meta_gradient("maml", tasks, z, alpha))(x)
