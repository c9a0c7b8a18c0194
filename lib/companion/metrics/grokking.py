"""When does a run fit, when does it generalise? Indicators defined once for the book (the
deep-grokking paper gives none; brief, section 5.6)."""
import math


def first_step(steps, values, threshold: float) -> float:
    """The first step whose value reaches `threshold` (inf if none)."""
    return next((s for s, v in zip(steps, values) if v >= threshold), math.inf)


def fit_step(steps, train_acc, threshold: float = 0.99) -> float:
    """t_fit: first evaluation with train accuracy >= 99%."""
    return first_step(steps, train_acc, threshold)


def generalization_step(steps, test_acc, chance: float = 0.1) -> float:
    """t_gen: first evaluation with test accuracy >= (final test + chance) / 2."""
    return first_step(steps, test_acc, 0.5 * (test_acc[-1] + chance))


def grokking_delay(steps, train_acc, test_acc, chance: float = 0.1) -> float:
    """t_gen - t_fit: how long generalisation lags fitting (inf if the run never fits)."""
    t_fit = fit_step(steps, train_acc)
    return generalization_step(steps, test_acc, chance) - t_fit if t_fit < math.inf else math.inf
