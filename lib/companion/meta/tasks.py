"""Synthetic task families for one-step MAML (our design; the paper's synthetic experiment was not
readable). Task i has the loss

    f_i(x) = 1/2 (x - c_i)^T A_i (x - c_i) + amp * sum_k sin(u_k^T (x - c_i))          (inner)
    f_i^out(x) = f_i(x) + quartic / 4 * ||x - c_i||^4                                    (outer)

with A_i = Q_i diag(U[eig]) Q_i^T, c_i ~ N(0, c_scale^2 I) and shared u_k ~ N(0, omega^2 I / d).
amp = quartic = 0 gives quadratic tasks, whose MAML objective

    F(x) = 1/T sum_i f_i^out(x - alpha grad f_i(x))

has the closed-form minimiser x* = (sum B_i)^-1 sum B_i c_i, B_i = (I - alpha A_i) A_i (I - alpha A_i).
amp > 0 makes each f_i smooth with a Lipschitz Hessian but a non-zero third derivative, so F's
Hessian picks up -alpha grad^3 f[grad f(y)], which grows with the gradient: F is (L0, L1)- but not
L-smooth. quartic > 0 makes the task losses themselves super-quadratic.

`inner`/`outer` are one task's scalar losses (the autograd reference of the tests);
`grad_inner`, `hess_inner` and `grad_outer` are their closed forms for a batch of tasks at once
(points X of shape (n, d), one per task of the batch), which the estimators use.
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tasks:
    A: torch.Tensor  # (T, d, d) symmetric positive definite
    c: torch.Tensor  # (T, d) task centres
    U: torch.Tensor  # (m, d) shared sine directions
    amp: float = 0.0
    quartic: float = 0.0

    @property
    def T(self) -> int:
        return self.A.shape[0]

    @property
    def d(self) -> int:
        return self.A.shape[1]

    def inner(self, x, A, c):
        z = x - c
        return 0.5 * z @ (A @ z) + self.amp * torch.sin(self.U @ z).sum()

    def outer(self, x, A, c):
        z = x - c
        return self.inner(x, A, c) + self.quartic / 4 * (z @ z) ** 2

    def batch(self, idx=None):
        """(A, c) of the tasks idx (None: all)."""
        return (self.A, self.c) if idx is None else (self.A[idx], self.c[idx])

    def grad_inner(self, X, A, c):
        Z = X - c
        return (A @ Z.unsqueeze(-1)).squeeze(-1) + self.amp * torch.cos(Z @ self.U.T) @ self.U

    def hess_inner(self, X, A, c):
        Z = X - c
        return A - self.amp * torch.einsum("nk,ki,kj->nij", torch.sin(Z @ self.U.T), self.U, self.U)

    def grad_outer(self, X, A, c):
        Z = X - c
        return self.grad_inner(X, A, c) + self.quartic * (Z * Z).sum(-1, keepdim=True) * Z

    def subset(self, idx) -> "Tasks":
        return Tasks(self.A[idx], self.c[idx], self.U, self.amp, self.quartic)


def make_tasks(d: int = 10, T: int = 20, seed: int = 0, amp: float = 0.0, quartic: float = 0.0, m: int = 5,
               omega: float = 1.0, eig=(0.1, 4.0), c_scale: float = 2.0, same_centre: bool = False) -> Tasks:
    """A family of T tasks in float64 (module docstring); same_centre puts every c_i at c_1 (the
    control where first-order methods have no bias: every task is minimised at the same point)."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(T, d, d, generator=g, dtype=torch.float64))[0]
    lam = eig[0] + (eig[1] - eig[0]) * torch.rand(T, d, generator=g, dtype=torch.float64)
    A = Q @ torch.diag_embed(lam) @ Q.transpose(1, 2)
    A = (A + A.transpose(1, 2)) / 2
    c = c_scale * torch.randn(T, d, generator=g, dtype=torch.float64)
    if same_centre:
        c = c[:1].expand(T, d).clone()
    U = omega / d ** 0.5 * torch.randn(m, d, generator=g, dtype=torch.float64)
    return Tasks(A, c, U, amp, quartic)


def maml_optimum(tasks: Tasks, alpha: float):
    """x* of the quadratic family (amp = quartic = 0): the closed form of the module docstring."""
    if tasks.amp or tasks.quartic:
        raise ValueError("the closed-form MAML optimum exists only for quadratic tasks (amp = quartic = 0)")
    eye = torch.eye(tasks.d, dtype=tasks.A.dtype)
    P = eye - alpha * tasks.A
    B = P @ tasks.A @ P
    return torch.linalg.solve(B.sum(0), (B @ tasks.c.unsqueeze(-1)).sum(0).squeeze(-1))
