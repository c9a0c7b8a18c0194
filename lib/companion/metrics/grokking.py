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


def _smooth(values, k: int = 3):
    """Centred moving average over k evaluations (shorter at the ends)."""
    h = k // 2
    return [sum(values[max(0, i - h):i + h + 1]) / len(values[max(0, i - h):i + h + 1]) for i in range(len(values))]


def two_stage(steps, test_acc, min_rise: float = 0.1, min_plateau_decades: float = 0.3, tol: float = 0.03):
    """Two-stage generalisation: the smoothed test curve rises by >= min_rise, then stays
    within tol of where the rise ended (a plateau or a dip) for >= min_plateau_decades of
    log10(step), then rises again by >= min_rise. Returns the plateau (first step, last
    step) or None."""
    a = _smooth(list(test_acc))
    logs = [math.log10(max(s, 1)) for s in steps]
    for i in range(1, len(a)):
        if a[i] - min(a[:i]) < min_rise:
            continue  # no first rise into i
        for j in range(i + 1, len(a)):
            if max(a[i:j + 1]) > a[i] + tol:
                break  # the curve left the plateau upwards
            if logs[j] - logs[i] >= min_plateau_decades and max(a[j:]) - a[j] >= min_rise:
                return steps[i], steps[j]
    return None
