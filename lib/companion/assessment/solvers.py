"""An illustration of the aggregation only: eight deliberately noisy digit classifiers as
"strategies" and scikit-learn's bundled digits as "questions". Nothing here is about GPT-4.

A question (test image) carries a corruption shared by every strategy, sigma_shared times a
standard Gaussian per pixel: this is its difficulty, which correlates the strategies. Each
strategy is its own logistic regression, trained on its own random subset of the training
images and seeing its own random subset of the pixels, of a random size (so the strategies
differ in accuracy, as the paper's do), and answers with its own extra noise, sigma_own. The outcome is a solver x
question matrix of correct answers, from which `aggregate` computes what the chapter computes
from grades, beside two things the real grades cannot give: the measured correlation between
strategies and the prediction of independence.
"""
import warnings
from dataclasses import dataclass

import numpy as np

from companion.assessment import implied


@dataclass(frozen=True)
class Solvers:
    n_solvers: int = 8
    n_test: int = 900
    n_train: int = 400
    min_pixels: int = 16  # each strategy sees a random number of the 64 pixels, at least this many
    sigma_shared: float = 0.7  # pixels scaled to [0, 1]
    sigma_own: float = 0.25


def correct_matrix(spec: Solvers, seed: int) -> np.ndarray:
    """(n_solvers, n_test) 0/1: whether each strategy answers each test image correctly."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    test, pool = order[:spec.n_test], order[spec.n_test:]
    hard = X[test] + spec.sigma_shared * rng.standard_normal((spec.n_test, X.shape[1]))
    out = np.zeros((spec.n_solvers, spec.n_test))
    for s in range(spec.n_solvers):
        n_pixels = int(rng.integers(spec.min_pixels, X.shape[1] + 1))
        pixels = np.sort(rng.choice(X.shape[1], n_pixels, replace=False))
        train = rng.choice(pool, min(spec.n_train, len(pool)), replace=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on a few subsets
            clf = LogisticRegression(max_iter=2000).fit(X[train][:, pixels], y[train])
        answer = hard[:, pixels] + spec.sigma_own * rng.standard_normal((spec.n_test, n_pixels))
        out[s] = clf.predict(answer) == y[test]
    return out


def mean_phi(C: np.ndarray) -> float:
    """The mean over solver pairs of the correlation (phi) of their correct-answer indicators."""
    r = np.corrcoef(C)
    return float(r[np.triu_indices(len(C), 1)].mean())


def aggregate(C: np.ndarray) -> dict:
    """Per-strategy accuracy, mean, any, all, strict majority; independence's prediction of any
    (1 - prod_s (1 - acc_s)); the measured correlation; the Beta-Binomial fitted to (mean, any)."""
    acc = C.mean(1)
    S = len(C)
    k = C.sum(0)
    out = {"accuracy": [float(a) for a in acc], "mean": float(acc.mean()), "any": float((k > 0).mean()),
           "all": float((k == S).mean()), "majority": float((k > S / 2).mean()),
           "any_independent": float(1 - np.prod(1 - acc)), "phi": mean_phi(C)}
    out["gap"] = out["any_independent"] - out["any"]
    try:
        out["rho_fit"] = implied.fit(out["mean"], out["any"], S)["rho"]
    except ValueError:  # any at or above independence: no exchangeable fit
        out["rho_fit"] = float("nan")
    return out


def study(spec: Solvers, seed: int) -> dict:
    """The solvers' aggregate and that of the control: each solver's answers permuted over the
    questions independently (accuracies kept, the shared difficulty destroyed)."""
    C = correct_matrix(spec, seed)
    rng = np.random.default_rng(10_000 + seed)
    control = np.array([rng.permutation(row) for row in C])
    return {"solvers": aggregate(C), "control": aggregate(control)}
