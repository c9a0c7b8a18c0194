"""The warmup chapter's protocol and its gradient-noise probe against independent computations:
the LR selection rule, the claimed arms, the per-seed metrics on hand-made runs, and the
batch-size scan against autograd on the whole batch and the closed-form noise line."""
import math

import pytest
import torch

from companion.experiments import warmup as W
from companion.metrics.noise import BatchScanProbe, noise_line
from companion.reports import warmup as R
from companion.train import History


def _run(final, angles=None, g2=1.0, tr=1.0):
    """A fake run: a history ending at `final`, the update probe's RMS row angle per step
    (default: 0.01 everywhere), and constant SNR estimates."""
    h = History(eval_steps=[50, 99], val_loss=[final + 0.1, final])
    steps = list(range(100))
    angles = angles or [0.01] * 100
    return {"history": h, "updates": [{"step": t, "total": {"row_angle_rms": a}} for t, a in zip(steps, angles)],
            "snr": [{"step": t, "g2": g2 if t < 10 else g2 / 10, "tr_sigma": tr} for t in steps]}


CFG = W.Config(steps=100, warmups=(0.0, 0.05), ref_warmup=0.05, adamw_lrs=(1e-3, 3e-3, 1e-2),
               liona_lrs=(1e-3, 1e-2), lionar_lrs=(0.03, 0.1))


def _grid(adamw, liona=(2.0, 2.1, 2.2, 2.3), lionar=(2.0, 2.0, 2.1, 2.05)):
    """{run_key: run}: adamw = (cold, warm) final losses per LR, the others (cold, warm) per LR flattened."""
    runs = {}
    for lr, (c, w) in zip(CFG.adamw_lrs, adamw):
        runs[W.run_key("adamw", lr, 0.0)], runs[W.run_key("adamw", lr, 0.05)] = _run(c), _run(w)
    for opt, vals in (("liona", liona), ("lionar", lionar)):
        for i, lr in enumerate(CFG.lrs(opt)):
            runs[W.run_key(opt, lr, 0.0)], runs[W.run_key(opt, lr, 0.05)] = _run(vals[2 * i]), _run(vals[2 * i + 1])
    return runs


def test_selection_takes_each_best_lr_and_pairs_the_cold_one():
    sel = W.select(_grid(adamw=((2.3, 2.35), (2.1, 2.05), (2.4, 1.9))), CFG)
    assert sel["warm"] == {"adamw": 1e-2, "liona": 1e-3, "lionar": 0.03} and sel["adamw_cold"] == 3e-3
    assert sel["adamw_pair"] == [3e-3, 1e-2]


@pytest.mark.parametrize("best,pair", [(1, [1e-3, 3e-3]), (0, [1e-3, 3e-3])])
def test_selection_pairs_a_neighbour_when_cold_and_warm_coincide(best, pair):
    adamw = [(3.0, 3.0)] * 3
    adamw[best] = (1.0, 0.9)
    assert W.select(_grid(adamw=adamw), CFG)["adamw_pair"] == pair  # the lower neighbour, else the upper


def test_claimed_arms_are_what_seed_metrics_reads():
    grid = _grid(adamw=((2.3, 2.35), (2.1, 2.05), (2.4, 1.9)))
    sel = W.select(grid, CFG)
    arms = W.claimed_arms(sel, CFG)
    # AdamW pair x2, LionA x2, LionAR x2, recipe x2 + without inverse BC; the gains ablation x2 and
    # LionAR's runner-up LR x2 (not claims)
    assert len(arms) == len(set(arms)) == 4 + 2 + 2 + 3 + 2 + 2
    assert sel["lionar_runner_up"] == 0.1
    runs = {W.run_key(*a): grid.get(W.run_key(*a)) or _run(2.0) for a in arms}  # the recipe arms: not in the grid
    m = R.seed_metrics(runs, sel, CFG)
    assert m["gap"]["adamw"] == pytest.approx(0.5)  # 2.4 - 1.9 at LR 1e-2
    assert m["gap_at_cold_lr"] == pytest.approx(0.05)  # 2.1 - 2.05 at LR 3e-3
    assert m["permanent_gap"] == pytest.approx(2.1 - 1.9)
    assert m["gap_ratio_low_over_high"] == pytest.approx(0.1)
    assert m["snr_early_over_late"] == pytest.approx(10.0)  # |G|^2 falls tenfold after step 10
    assert m["recipe_minus_adamw_warm"] == pytest.approx(2.0 - 1.9)  # the recipe (2.0) against AdamW warmed
    assert m["recipe_minus_best_cold"] == pytest.approx(0.0)  # LionA cold ends at 2.0 too: a tie
    assert m["stalled"]["lionar_warmup"] == 0.0  # 2.1 at mid-run is below any bigram loss passed (inf)


def test_a_run_no_better_than_a_bigram_model_at_mid_run_has_stalled():
    assert R.stalled(_run(2.0), CFG, bigram=2.05)  # 2.1 at step 50, the end of the constant phase
    assert not R.stalled(_run(1.9), CFG, bigram=2.05)


def test_a_negative_gap_at_the_higher_lr_gives_no_ratio():
    grid = _grid(adamw=((2.3, 2.35), (2.0, 2.1), (1.95, 2.0)))  # warmup hurts everywhere
    sel = W.select(grid, CFG)
    m = R.seed_metrics({W.run_key(*a): grid.get(W.run_key(*a)) or _run(2.0) for a in W.claimed_arms(sel, CFG)},
                       sel, CFG)
    assert m["gap_ratio_low_over_high"] == math.inf and m["lionar_over_adamw_gap"] == math.inf


def test_angles_are_scored_against_the_run_s_own_plateau():
    angles = [0.5] + [0.08] * 9 + [0.02] * 90  # plateau (steps 33-49) at 0.02
    s = R.angle_stats(_run(2.0, angles), CFG, 0.0)
    assert s["plateau"] == 0.02 and s["step0_over_plateau"] == pytest.approx(25)
    assert s["early_over_plateau"] == pytest.approx(4.0)  # median of steps 0-9
    assert s["max_warmup_over_plateau"] == pytest.approx(25)


def test_noise_line_recovers_the_closed_form():
    g2, tr = 0.7, 3.0
    sizes = [1, 2, 4, 8, 16]
    fit = noise_line(sizes, [g2 + tr / b for b in sizes])
    assert fit["g2"] == pytest.approx(g2) and fit["tr_sigma"] == pytest.approx(tr)
    assert fit["b_noise"] == pytest.approx(tr / g2)


def test_batch_scan_matches_autograd_on_the_whole_batch():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)

    class LM(torch.nn.Module):  # the trainer's (x, y) -> (out, loss) interface
        def __init__(self):
            super().__init__()
            self.lin = model

        def forward(self, x, y):
            return None, ((self.lin(x).squeeze(-1) - y) ** 2).mean()

    lm = LM()
    x, y = torch.randn(8, 3), torch.randn(8)
    probe = BatchScanProbe(lm, steps=[0])
    probe.before_step(0, lm, None, (x, y))
    probe.before_step(1, lm, None, (x, y))  # not a scan step: nothing recorded
    rec, = probe.records
    assert rec["sizes"] == [1, 2, 4, 8]
    full = torch.autograd.grad(lm(x, y)[1], list(lm.parameters()))
    assert rec["mean_sq_norm"][-1] == pytest.approx(float(sum(g.square().sum() for g in full)), rel=1e-6)
    per = [torch.autograd.grad(lm(x[i:i + 1], y[i:i + 1])[1], list(lm.parameters())) for i in range(8)]
    assert rec["mean_sq_norm"][0] == pytest.approx(
        sum(float(sum(g.square().sum() for g in gs)) for gs in per) / 8, rel=1e-6)
