"""When does a run fit, when does it generalise? Indicators defined once for the book (the
deep-grokking paper gives none; brief, section 5.6)."""
import math

from companion.metrics.smoothing import moving_average


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


def two_stage(steps, test_acc, min_rise: float = 0.1, min_plateau_decades: float = 0.3, tol: float = 0.03):
    """Two-stage generalisation: the smoothed test curve rises by >= min_rise, then stays
    within tol of where the rise ended (a plateau or a dip) for >= min_plateau_decades of
    log10(step), then rises again by >= min_rise. Returns the plateau (first step, last
    step) or None."""
    a = moving_average(test_acc, 3)
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


def descent_onset(steps, values, after: float = 0, drop: float = 0.05) -> float:
    """The first step >= `after` at which `values` has fallen by >= `drop` (relative) below
    its running maximum since `after` (inf if never): when a rank or a norm starts to fall."""
    top = -math.inf
    for s, v in zip(steps, values):
        if s < after:
            continue
        top = max(top, v)
        if v <= (1 - drop) * top:
            return s
    return math.inf


def double_descent(steps, values, rel: float = 0.05, from_peak: bool = False):
    """Fall, rise, fall of a positive series, each by >= `rel` of the extreme it starts from
    (a zigzag filter on the 3-point smoothed series): the rank double descent. With
    `from_peak`, the first fall must start at a maximum after the series' first point: a series
    still falling where it starts (the tail of the post-initialisation transient) has no first
    descent until it has risen. Returns (step of the trough, step of the peak between the two
    descents) or None."""
    v = moving_average(values, 3)
    top, top_i, trough, peak = v[0], 0, None, None
    for i, (s, x) in enumerate(zip(steps, v)):
        if trough is None:  # first descent
            if x > top:
                top, top_i = x, i
            if x <= (1 - rel) * top:
                if from_peak and top_i == 0:
                    top = x  # still the fall the series started with: restart from here
                else:
                    trough = (s, x)
        elif peak is None:  # the rise from the lowest point of the first descent
            if x < trough[1]:
                trough = (s, x)
            elif x >= (1 + rel) * trough[1]:
                peak = (s, x)
        else:  # the second descent from the highest point of the rise
            if x > peak[1]:
                peak = (s, x)
            elif x <= (1 - rel) * peak[1]:
                return trough[0], peak[0]
    return None


def rise_fall(steps, values, rel: float = 0.05):
    """A rise by >= `rel` from the lowest point so far, then a fall by >= `rel` from the highest
    point of the rise (3-point smoothed): the second half of a double descent, without asking
    for a first descent. Returns (step of the trough, step of the peak) or None."""
    v = moving_average(values, 3)
    trough, peak = (steps[0], v[0]), None
    for s, x in zip(steps, v):
        if peak is None:
            if x < trough[1]:
                trough = (s, x)
            elif x >= (1 + rel) * trough[1]:
                peak = (s, x)
        elif x > peak[1]:
            peak = (s, x)
        elif x <= (1 - rel) * peak[1]:
            return trough[0], peak[0]
    return None


def detector_depth(detect, steps, values, tol: float = 1e-3, **kw) -> float:
    """The largest rel for which detect(steps, values, rel, **kw) finds its shape (0 if none):
    how pronounced a double descent (or a rise and fall) is."""
    lo, hi = 0.0, 1.0
    if detect(steps, values, tol, **kw) is None:
        return 0.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if detect(steps, values, mid, **kw) is not None else (lo, mid)
    return lo


def double_descent_depth(steps, values, tol: float = 1e-3, from_peak: bool = False) -> float:
    """The largest rel for which `double_descent` finds a fall-rise-fall (0 if none)."""
    return detector_depth(double_descent, steps, values, tol, from_peak=from_peak)
