"""Test problems with stochastic oracles: logistic regression with the non-convex regulariser

    f(x) = 1/n sum_i log(1 + exp(-y_i <a_i, x>)) + lam_nc sum_j x_j^2 / (1 + x_j^2) + mu/2 ||x||^2,

labels y_i in {-1, +1}. The regulariser's curvature lam_nc (2 - 6x^2) / (1 + x^2)^3 is at least
-lam_nc / 2, so f is convex for lam_nc <= 2 mu (the loaders' defaults, 0.1 and 0.05, are convex:
pass lam_nc > 2 mu for a non-convex problem); lam_nc = 0 gives the strongly convex control. The
regularisers are deterministic: every sample function f_i carries them. Gradients and Hessians
are closed forms in float64 (tested against autograd)."""
from dataclasses import dataclass

import torch


@dataclass
class LogisticNC:
    A: torch.Tensor  # n x d features (a bias column included by the loaders)
    y: torch.Tensor  # n labels in {-1, +1}
    lam_nc: float = 0.1
    mu: float = 0.05

    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def d(self) -> int:
        return self.A.shape[1]

    def _rows(self, idx):
        return (self.A, self.y) if idx is None else (self.A[idx], self.y[idx])

    def loss(self, x, idx=None):
        A, y = self._rows(idx)
        data = torch.nn.functional.softplus(-y * (A @ x)).mean()
        return data + self.lam_nc * (x ** 2 / (1 + x ** 2)).sum() + self.mu / 2 * x @ x

    def grad(self, x, idx=None):
        """The gradient of f (idx None) or of the mean of the sample functions idx."""
        A, y = self._rows(idx)
        p = torch.sigmoid(-y * (A @ x))  # d/dz softplus(-z) = -sigmoid(-z)
        return -(A.T @ (y * p)) / A.shape[0] + self.lam_nc * 2 * x / (1 + x ** 2) ** 2 + self.mu * x

    def hess(self, x, idx=None):
        A, y = self._rows(idx)
        z = y * (A @ x)
        w = torch.sigmoid(z) * torch.sigmoid(-z)
        reg = self.lam_nc * (2 - 6 * x ** 2) / (1 + x ** 2) ** 3 + self.mu
        return (A.T * w) @ A / A.shape[0] + torch.diag(reg)


def standardized(X, y_pos):
    """float64 features standardised per column, a bias column of ones, labels +-1."""
    X = torch.as_tensor(X, dtype=torch.float64)
    X = (X - X.mean(0)) / X.std(0).clamp_min(1e-12)
    A = torch.cat([X, torch.ones(X.shape[0], 1, dtype=torch.float64)], 1)
    return A, torch.where(torch.as_tensor(y_pos), 1.0, -1.0).to(torch.float64)


def breast_cancer(lam_nc=0.1, mu=0.05) -> LogisticNC:
    """scikit-learn's bundled breast-cancer data: 569 samples, d = 31 with the bias."""
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    return LogisticNC(*standardized(X, y == 1), lam_nc=lam_nc, mu=mu)


def digits_binary(lam_nc=0.1, mu=0.05) -> LogisticNC:
    """scikit-learn's bundled 8x8 digits as a binary task (digit < 5 against >= 5): 1,797
    samples, d = 65 with the bias (constant pixels standardise to 0)."""
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return LogisticNC(*standardized(X, y < 5), lam_nc=lam_nc, mu=mu)


def mnist_binary(lam_nc=0.1, mu=0.05, pool=4) -> LogisticNC:
    """The 10,000 offline MNIST test images as a binary task (digit < 5 against >= 5), each image
    average-pooled over pool x pool blocks (pool = 4: 7 x 7 = 49 features, d = 50 with the bias),
    so the exact cubic step stays cheap. The paper's MNIST is the full image (our stand-in)."""
    from companion.mnist import mnist_set
    images, labels = mnist_set("test")
    X = torch.nn.functional.avg_pool2d(images[:, None].to(torch.float64), pool).flatten(1)
    return LogisticNC(*standardized(X, labels < 5), lam_nc=lam_nc, mu=mu)
