"""The cubic-regularised Newton step (Nesterov & Polyak, 2006):

    s* = argmin_s  <g, s> + 1/2 <H s, s> + M/6 ||s||^3,

characterised by (H + (M r / 2) I) s* = -g, r = ||s*||, and H + (M r / 2) I >= 0
(Nesterov & Polyak, Thm. 10). Two solvers with one interface:

* `cubic_step(g, H, M)`: exact, from the eigendecomposition H = Q diag(lam) Q^T and a
  safeguarded Newton solve of the secular equation ||(lam + M r / 2)^-1 Q^T g|| = r for
  r >= max(0, -2 lam_min / M); the hard case (g orthogonal to the bottom eigenvector) is handled.
* `cubic_step_krylov(g, hvp, M, m)`: from m Hessian-vector products: Lanczos on the Krylov
  space of g, then the exact solve on the small tridiagonal model (exact once the Krylov space
  is the whole space, except in the hard case, which a Krylov space cannot see).
"""
import torch


def model(g, H, M, s):
    """The cubic model m(s) = <g,s> + 1/2 <Hs,s> + M/6 ||s||^3 (value of the step's objective)."""
    return g @ s + 0.5 * s @ (H @ s) + M / 6 * s.norm() ** 3


def _secular(gt, lam, M, iters=100):
    """r > 0 solving ||gt / (lam + M r/2)|| = r on the branch lam + M r/2 > 0 (lam ascending).
    Newton on psi(r) = 1/||s(r)|| - 1/r (concave and increasing: Newton from the right of the
    root does not overshoot), kept inside a shrinking bracket. Scalar work in numpy float64."""
    g2, lam = (gt.double() ** 2).cpu().numpy(), lam.double().cpu().numpy()
    r_min = max(0.0, -2.0 * lam[0] / M)
    # ||s(r)|| <= ||g|| / (lam_0 + M r/2): the positive root of M r^2/2 + lam_0 r - ||g|| = 0 makes
    # the bound equal to r, so psi(hi) >= 0 (for lam_0 > 0 in the form without cancellation)
    gn, disc = g2.sum() ** 0.5, (lam[0] ** 2 + 2 * M * g2.sum() ** 0.5) ** 0.5
    root = 2 * gn / (lam[0] + disc) if lam[0] > 0 else (disc - lam[0]) / M
    hi = max(r_min, root) * (1 + 1e-12) + 1e-300
    lo, r = r_min, hi
    for _ in range(iters):
        den = lam + M * r / 2
        sn2 = float((g2 / den ** 2).sum())
        sn = sn2 ** 0.5
        psi = 1 / sn - 1 / r
        if psi > 0:
            hi = r
        else:
            lo = r
        dpsi = (M / 2) * float((g2 / den ** 3).sum()) / (sn2 * sn) + 1 / r ** 2
        r_new = r - psi / dpsi
        if not (lo < r_new < hi):
            r_new = 0.5 * (lo + hi)
        if abs(r_new - r) <= 1e-14 * r:
            return r_new
        r = r_new
    return r


def cubic_step(g, H, M, hard_tol=1e-10):
    """The exact minimiser of the cubic model (module docstring). float64 recommended."""
    if M <= 0:
        raise ValueError(f"M must be > 0, got {M}")
    lam, Q = torch.linalg.eigh(H)
    gt = Q.T @ g
    scale = max(float(g.norm()), 1e-300)
    bottom = lam <= lam[0] + 1e-12 * max(1.0, float(lam.abs().max()))  # the bottom eigenspace
    r_min = max(0.0, -2.0 * float(lam[0]) / M)
    if r_min > 0 and float(gt[bottom].norm()) <= hard_tol * scale:
        # possible hard case: ||s(r_min)|| without the bottom eigenspace below r_min
        rest = gt[~bottom] / (lam[~bottom] + M * r_min / 2)
        if float(rest.norm()) < r_min:
            s_t = torch.zeros_like(gt)
            s_t[~bottom] = -rest
            idx = int(torch.nonzero(bottom)[0])
            s_t[idx] = (r_min ** 2 - float(rest.norm()) ** 2) ** 0.5  # any unit vector of the eigenspace
            return Q @ s_t
    if scale <= 1e-300:
        return torch.zeros_like(g)
    r = _secular(gt, lam, M)
    s_t = -gt / (lam + M * r / 2)
    # near the pole lam_0 + M r/2 ~ 0 the bottom component loses its digits: take it from ||s|| = r
    if lam[0] < 0 and abs(float(s_t[0])) > 0.5 * r:
        others = float(s_t[1:].norm())
        s_t[0] = -torch.sign(gt[0]) * max(r ** 2 - others ** 2, 0.0) ** 0.5
    return Q @ s_t


def lanczos(g, hvp, m):
    """(V, T): an orthonormal basis V (d x k, k <= m) of the Krylov space of g under the Hessian
    and the tridiagonal T = V^T H V, with full reorthogonalisation (k < m at a breakdown)."""
    d = g.numel()
    m = min(m, d)
    V = torch.zeros(d, m, dtype=g.dtype, device=g.device)
    alpha, beta = [], []
    v = g / g.norm()
    for j in range(m):
        V[:, j] = v
        w = hvp(v)
        a = w @ v
        alpha.append(a)
        w = w - V[:, :j + 1] @ (V[:, :j + 1].T @ w)  # full reorthogonalisation (twice is enough)
        w = w - V[:, :j + 1] @ (V[:, :j + 1].T @ w)
        b = w.norm()
        if j == m - 1 or b <= 1e-12 * abs(float(a)) + 1e-300:
            break
        beta.append(b)
        v = w / b
    k = len(alpha)
    T = torch.diag(torch.stack(alpha))
    if k > 1:
        off = torch.stack(beta[:k - 1])
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return V[:, :k], T


def cubic_step_krylov(g, hvp, M, m=20):
    """The cubic step restricted to the m-dimensional Krylov space of g (module docstring)."""
    if float(g.norm()) == 0.0:
        return torch.zeros_like(g)
    V, T = lanczos(g, hvp, m)
    e1 = torch.zeros(T.shape[0], dtype=g.dtype, device=g.device)
    e1[0] = g.norm()
    return V @ cubic_step(e1, T, M)
