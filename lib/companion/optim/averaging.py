"""Weight averaging of a training trajectory: windowed SWA and EMA.

Follows `src/optim/weight_averaging.py` of epfml/schedules-and-scaling (with the
averages-fix of its PR #2): averages cover the full state_dict, buffers included, and
are kept in float32 whatever the training dtype.
"""
import torch


def _float_copy(state):
    return {k: v.detach().clone().float() for k, v in state.items()}


class WindowedSWA:
    """Uniform average of the snapshots taken every `interval` steps inside consecutive
    windows of `horizon` steps; the average restarts at each window.

    `update(model)` is called after every optimizer step. With c the number of steps
    taken so far (before this one), when c mod k = 0 the running average is
        avg <- avg + (w - avg) / (floor((c mod h) / k) + 1),
    and when c + 1 is a multiple of h the window is complete and stored. `average()` is the
    latest completed window; `average(n)` the uniform mean of the last n windows (the
    paper's horizon sweep, horizons n * h).
    """

    def __init__(self, horizon: int, interval: int = 1):
        if horizon % interval:
            raise ValueError(f"interval {interval} must divide horizon {horizon}")
        self.h, self.k = horizon, interval
        self.count = 0
        self.running = None
        self.windows = []

    @torch.no_grad()
    def update(self, model):
        c = self.count
        if c % self.k == 0:
            n = (c % self.h) // self.k
            w = model.state_dict()
            if n == 0 or self.running is None:
                self.running = _float_copy(w)
            else:
                for key, v in w.items():
                    self.running[key] += (v.float() - self.running[key]) / (n + 1)
        self.count += 1
        if self.count % self.h == 0:
            self.windows.append({k: v.clone() for k, v in self.running.items()})

    def average(self, n_windows: int = 1):
        """Mean of the last `n_windows` completed window averages, or None if none is complete."""
        if not self.windows:
            return None
        last = self.windows[-n_windows:]
        return {k: sum(w[k] for w in last) / len(last) for k in last[0]}

    def state_dict(self):
        return {"h": self.h, "k": self.k, "count": self.count, "running": self.running,
                "windows": self.windows}

    def load_state_dict(self, s):
        self.h, self.k, self.count = s["h"], s["k"], s["count"]
        self.running, self.windows = s["running"], s["windows"]


class EMA:
    """Exponential moving average every `interval` steps: avg <- avg + (1 - decay)(w - avg)."""

    def __init__(self, decay: float = 0.95, interval: int = 10):
        self.decay, self.k = decay, interval
        self.count = 0
        self.avg = None

    @torch.no_grad()
    def update(self, model):
        if self.count % self.k == 0:
            w = model.state_dict()
            if self.avg is None:
                self.avg = _float_copy(w)
            else:
                for key, v in w.items():
                    self.avg[key] += (1.0 - self.decay) * (v.float() - self.avg[key])
        self.count += 1

    def average(self):
        return self.avg
