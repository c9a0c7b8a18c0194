"""Gradient noise: signal-to-noise ratio and critical batch size from micro-batch gradients,
and the SNR-based step correction of Kosson et al. (2024), section 5.2.

With K micro-batches of b samples each (B = K b), micro-batch gradients G_k and their mean
G_B, the unbiased estimators of McCandlish et al. (2018, appendix A) are

    |G|^2  ~ (B ||G_B||^2 - b mean_k ||G_k||^2) / (B - b)      (true gradient, squared norm)
    tr S   ~ (mean_k ||G_k||^2 - ||G_B||^2) / (1/b - 1/B)      (per-sample gradient covariance)

since E||G_b||^2 = |G|^2 + tr S / b. The per-sample SNR is phi = |G|^2 / tr S, and the
"simple" critical batch size B_noise = tr S / |G|^2 = 1 / phi.

The correction (our derivation, consistent with the paper's description): a batch of B
samples averages the noise but not the signal, so one step's change of the representation
grows like sqrt(1 + B phi) / sqrt(1 + phi) relative to pure noise. Scaling the step by
kappa(phi, B) = sqrt((1 + phi) / (1 + B phi)) keeps that change constant: kappa -> 1 when the
gradient is mostly noise and 1/sqrt(B) when it is mostly signal, early in training. Used
online in LionAR (through its "lr_factor"), it acts as an automatic warmup.
"""
import math

import torch

from companion import device as devices
from companion.metrics.probe import Probe


def gradient_snr(micro_sq_norms, full_sq_norm: float, b: int, B: int) -> dict:
    """The estimators above from ||G_k||^2 (one per micro-batch) and ||G_B||^2."""
    small = float(sum(micro_sq_norms)) / len(micro_sq_norms)
    g2 = (B * full_sq_norm - b * small) / (B - b)
    tr_sigma = (small - full_sq_norm) / (1.0 / b - 1.0 / B)
    phi = max(g2, 0.0) / tr_sigma if tr_sigma > 0 else math.inf
    return {"g2": g2, "tr_sigma": tr_sigma, "snr": phi, "b_noise": 1.0 / phi if phi > 0 else math.inf}


def kappa(phi: float, B: int) -> float:
    """Step factor sqrt((1 + phi) / (1 + B phi)) that keeps the representation change of a
    step independent of the gradient's SNR (our derivation; see the module docstring)."""
    return math.sqrt((1.0 + phi) / (1.0 + B * phi))


class SNRProbe(Probe):
    """Trainer probe: at sampled steps, split the step's batch into `micro` micro-batches,
    take each one's (unclipped) gradient with an extra backward pass and record the SNR.

    With `correct` set, it also sets the optimizer groups' "lr_factor" to kappa(phi, B) at
    every sampled step (held in between), phi from bias-corrected moving averages (factor
    `ema`, over samples) of |G|^2 and tr S.
    """

    def __init__(self, model, micro: int = 4, every: int = 10, dense: int = 20, correct: bool = False,
                 ema: float = 0.9):
        super().__init__(every, dense)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.micro, self.correct, self.ema = micro, correct, ema
        self._avg = [0.0, 0.0, 0]  # EMA of |G|^2, EMA of tr S, number of updates

    def before_step(self, t, model, optimizer, batch):
        if not self.wants(t):
            return
        x, y = batch
        B = x.shape[0]
        grads = []
        for xs, ys in zip(x.chunk(self.micro), y.chunk(self.micro)):
            with devices.autocast(xs.device):
                _, loss = model(xs, ys)
            grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, self.params)]))
        G = torch.stack(grads).double()
        est = gradient_snr(G.square().sum(1).tolist(), float(G.mean(0).square().sum()), B // self.micro, B)
        rec = {"step": t, **est}
        if self.correct:
            a = self._avg
            a[0] = self.ema * a[0] + (1 - self.ema) * est["g2"]
            a[1] = self.ema * a[1] + (1 - self.ema) * est["tr_sigma"]
            a[2] += 1
            debias = 1 - self.ema ** a[2]
            phi = max(a[0] / debias, 0.0) / max(a[1] / debias, 1e-30)
            rec["snr_smoothed"], rec["kappa"] = phi, kappa(phi, B)
            for group in optimizer.param_groups:
                group["lr_factor"] = rec["kappa"]
        self.records.append(rec)


    def state_dict(self):
        return {"records": list(self.records), "avg": list(self._avg)}

    def load_state_dict(self, state):
        self.records, self._avg = list(state["records"]), list(state["avg"])


def noise_line(sizes, mean_sq_norms) -> dict:
    """Least-squares fit of E||G_b||^2 = |G|^2 + tr S / b over the measured batch sizes b
    (McCandlish et al. 2018, eq. A1): intercept |G|^2, slope tr S, and B_noise = tr S / |G|^2."""
    x = torch.tensor([1.0 / b for b in sizes], dtype=torch.float64)
    y = torch.tensor(list(mean_sq_norms), dtype=torch.float64)
    A = torch.stack([torch.ones_like(x), x], 1)
    g2, tr = torch.linalg.lstsq(A, y[:, None]).solution.flatten().tolist()
    return {"g2": g2, "tr_sigma": tr, "b_noise": tr / g2 if g2 > 0 else math.inf}


class BatchScanProbe(Probe):
    """Trainer probe: at the listed steps, take the gradient of every sample of the batch
    (one backward pass each) and record mean_k ||G_b,k||^2 for micro-batches of every size b
    dividing the batch (consecutive samples averaged): how the gradient's size shrinks with
    the batch, E||G_b||^2 = |G|^2 + tr S / b. Sparse steps keep it cheap."""

    def __init__(self, model, steps):
        super().__init__()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.steps = set(steps)

    def wants(self, t: int) -> bool:
        return t in self.steps

    def before_step(self, t, model, optimizer, batch):
        if not self.wants(t):
            return
        x, y = batch
        per_sample = []
        for i in range(x.shape[0]):
            with devices.autocast(x.device):
                _, loss = model(x[i:i + 1], y[i:i + 1])
            per_sample.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, self.params)]).double())
        G = torch.stack(per_sample)
        B = G.shape[0]
        sizes = [b for b in range(1, B + 1) if B % b == 0]
        sq = [float(G.view(B // b, b, -1).mean(1).square().sum(1).mean()) for b in sizes]
        self.records.append({"step": t, "sizes": sizes, "mean_sq_norm": sq, **noise_line(sizes, sq)})
