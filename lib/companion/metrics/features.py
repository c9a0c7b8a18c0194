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


def linear_probe_accuracy(H_train, y_train, H_test, y_test, n_classes: int = 10, epochs: int = 30,
                          batch: int = 512, lr: float = 1e-3, norm_penalty: float = 1e-3, seed: int = 0,
                          min_steps: int = 300) -> float:
    """Test accuracy of a linear classifier on frozen features (the official `LinearProbe`):
    Adam, cross-entropy + norm_penalty * ||W|| (the norm, not its square), a random 80/20
    train/validation split of the training features, the epoch with the best validation
    accuracy kept. The official 30 epochs are ~300 Adam steps at the paper's 5000 images but
    only 60 at 1000, too few to fit a probe; we run at least `min_steps` steps."""
    g = torch.Generator().manual_seed(seed)
    H_train, H_test = H_train.detach(), H_test.detach()
    perm = torch.randperm(len(y_train), generator=g)
    n_fit = int(0.8 * len(perm))
    fit, val = perm[:n_fit], perm[n_fit:]
    torch.manual_seed(seed)
    probe = torch.nn.Linear(H_train.shape[1], n_classes).to(H_train.dtype)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)

    def accuracy(H, y):
        with torch.no_grad():
            return float((probe(H).argmax(1) == y).double().mean())
    best_val, best_test = -1.0, 0.0
    for _ in range(max(epochs, math.ceil(min_steps / math.ceil(n_fit / batch)))):
        order = fit[torch.randperm(n_fit, generator=g)]
        for i in range(0, n_fit, batch):
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(probe(H_train[idx]), y_train[idx]) + norm_penalty * probe.weight.norm()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        v = accuracy(H_train[val], y_train[val]) if len(val) else 0.0
        if v > best_val:
            best_val, best_test = v, accuracy(H_test, y_test)
    return best_test
