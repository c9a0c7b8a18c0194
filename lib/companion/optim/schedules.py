"""Learning-rate schedules as pure multiplier functions s(t) of the optimizer step t.

The learning rate at step t is eta * s(t). Step t = 0 is the first update; the trainer
sets the rate *before* each update, so the rate logged at step t is the rate used by
update t (the step/log off-by-one of prime-rl PR #983 cannot happen).

Definitions follow epfml/schedules-and-scaling (`src/optim/utils.py`, `wsd_schedule`)
and Hägele et al. (2024), Eq. 1; see the brief, section 5.
"""
import math
from functools import partial

COOLDOWN_SHAPES = ("linear", "1-sqrt", "1-square", "cosine", "mirror-cosine")


def cooldown_shape(p: float, shape: str = "1-sqrt") -> float:
    """c(p) for cooldown progress p in [0, 1]: 1 at p = 0, 0 at p = 1.

    1-sqrt: c(p) = 1 - sqrt(p) (the paper's Eq. 1), the shape it recommends.
    """
    if shape == "linear":
        return 1.0 - p
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(p)
    if shape == "1-square":
        return 1.0 - p * p
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if shape == "mirror-cosine":
        return 2.0 * (1.0 - p) - 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown cooldown shape {shape!r}; allowed: {', '.join(COOLDOWN_SHAPES)}")


def _warmup(t: int, warmup: int, start: float) -> float:
    """Linear warmup from `start` to 1 over `warmup` steps: t/W + (1 - t/W) * start."""
    return t / warmup + (1.0 - t / warmup) * start


def cosine(t: int, total: int, warmup: int = 0, final: float = 0.1, warmup_start: float = 0.01) -> float:
    """Cosine decay to `final` (10% of the peak in the paper) after a linear warmup:
    s(t) = f + (1 - f) * (1 + cos(pi (t - W) / (N - W))) / 2 for W <= t < N, s(t) = f for t >= N."""
    if t < warmup:
        return _warmup(t, warmup, warmup_start)
    if t >= total:
        return final
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / (total - warmup)))


def wsd(t: int, total: int, warmup: int = 0, cooldown_frac: float = 0.2, shape: str = "1-sqrt",
        final: float = 0.0, warmup_start: float = 0.01) -> float:
    """Warmup-stable-decay (constant LR + cooldown), the official `wsd_schedule`.

    The cooldown lasts N_d = int(cooldown_frac * N) steps of the *total* N (the warmup lies
    inside the stable part N_h = N - N_d); during it s = f + (1 - f) c(p), p = (t - N_h) / N_d.
    """
    n_decay = int(cooldown_frac * total)
    n_hold = total - n_decay
    if t < warmup:
        return _warmup(t, warmup, warmup_start)
    if t < n_hold:
        return 1.0
    if t >= total:
        return final
    return final + (1.0 - final) * cooldown_shape((t - n_hold) / n_decay, shape)


def constant(t: int, warmup: int = 0, warmup_start: float = 0.01) -> float:
    """Constant LR after a linear warmup: the trunk from which cooldowns branch."""
    return _warmup(t, warmup, warmup_start) if t < warmup else 1.0


def trapezoid(t: int, total: int, warmup: int = 0, cooldown_frac: float = 0.5) -> float:
    """Linear warmup, constant, linear cooldown to 0 (Kosson et al. 2024, Fig. 1).

    s(t) = (t + 1) / W for t < W (update 0 already moves, at 1/W of the peak), 1 on the
    plateau, and s(t) = (N - t) / N_c over the last N_c = int(cooldown_frac N) steps, so
    s(N) = 0. W = 0 starts at the peak.
    """
    n_cool = int(cooldown_frac * total)
    if t < warmup:
        return (t + 1) / warmup
    if t >= total:
        return 0.0
    if t < total - n_cool:
        return 1.0
    return (total - t) / n_cool


def make(kind: str, **kw):
    """A schedule s(t) by name: make("cosine", total=1500, warmup=75)."""
    fns = {"cosine": cosine, "wsd": wsd, "constant": constant, "trapezoid": trapezoid}
    if kind not in fns:
        raise ValueError(f"unknown schedule {kind!r}; allowed: {', '.join(fns)}")
    return partial(fns[kind], **kw)
