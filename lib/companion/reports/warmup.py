"""The warmup chapter's report: metrics from the runs and the paper's claims checked on them
(figures: `warmup_figures`). Nothing here trains.

Two kinds of numbers. The **grid** (one seed) shows loss against LR per optimizer and
warmup, and selects the LRs (`experiments.warmup.select`). The **held-out seeds** rerun the
claimed arms at those LRs, and the claims are read on every held-out seed
(`metrics["per_seed"]`), so that the selection never favours the arm it selected.

Angles are scored against each run's own *plateau*: the median RMS row angle over steps
[N/3, N/2), where the LR is at its peak. The analytic equilibrium angle eta_r is reached only
after about 1/(eta lambda) steps, which at these LRs is a sizeable part of the run or more,
so it is shown as a reference line, not used as the yardstick.
"""
import math
import statistics

import numpy as np
import pandas as pd

from companion import claims as C
from companion.data import CharCorpus
from companion.experiments.warmup import GRIDS, Config, final, plateau, run_key, warmup_steps
from companion.metrics.updates import equilibrium_angle
from companion.optim import schedules

CLEAR_GAP = 0.03  # nats: the smallest warmup gap the claims call clear (claim adamw-warmup-gap)
MATTERS = 0.02  # nats: an ablation "matters" when it moves the final loss by more (one seed; stated before the run)
LABELS = {"adamw": "AdamW", "liona": "LionA", "lionar": "LionAR",
          "lionar-hm": "recipe (β 0.98, Nesterov, inv. BC)", "lionar-hm-noibc": "recipe without inv. BC",
          "lionar-rel1d": "LionAR, relative steps on gains",
          "lionar-rel": "LionAR, relative steps on gains and embeddings", "lionar-kappa": "LionAR × κ(SNR)"}


def series(records, key, layer="total"):
    steps = [r["step"] for r in records]
    vals = [r[key] if layer is None else r[layer][key] for r in records]
    return np.array(steps), np.array(vals, dtype=float)


def _window(records, key, lo, hi, layer="total"):
    s, v = series(records, key, layer)
    return v[(s >= lo) & (s < hi)]


def _median(records, key, lo, hi, layer="total"):
    v = _window(records, key, lo, hi, layer)
    return float(statistics.median(v.tolist())) if len(v) else math.nan


def _max(records, key, lo, hi, layer="total"):
    v = _window(records, key, lo, hi, layer)
    return float(v.max()) if len(v) else math.nan


def _snr(records, lo, hi) -> float:
    """Per-sample SNR over steps [lo, hi): the ratio of the window means of the unbiased
    estimates of |G|^2 and tr S (single-step estimates are noisy and can be negative)."""
    g2 = _window(records, "g2", lo, hi, None)
    tr = _window(records, "tr_sigma", lo, hi, None)
    return float(max(g2.mean(), 0.0) / tr.mean()) if len(g2) else math.nan


def _betas(opt, cfg):
    if opt == "adamw":
        return (0.9, cfg.beta2)
    return (cfg.high_momentum,) * 2 if opt.startswith("lionar-hm") else (0.9, 0.99)


def eq_angle(opt: str, lr: float, cfg: Config) -> float:
    """The rotational-equilibrium angle per step at peak LR `lr` (REQ formulas)."""
    return equilibrium_angle("adamw" if opt == "adamw" else "lion", lr, cfg.weight_decay, _betas(opt, cfg))


def angle_stats(run: dict, cfg: Config, warmup: float) -> dict:
    """A run's angles against its own plateau: step 0, the median of steps 0-9, and the
    largest during the warmup (its first max(W, 10) steps), each over the plateau median."""
    recs, (p0, p1) = run["updates"], plateau(cfg)
    own = _median(recs, "row_angle_rms", p0, p1)
    end = max(warmup_steps(cfg, warmup), 10)
    return {"plateau": own, "step0": recs[0]["total"]["row_angle_rms"],
            "step0_over_plateau": recs[0]["total"]["row_angle_rms"] / own,
            "early_over_plateau": _median(recs, "row_angle_rms", 0, 10) / own,
            "max_warmup_over_plateau": _max(recs, "row_angle_rms", 0, end) / own}


def stalled(run: dict, cfg: Config, bigram: float) -> bool:
    """A run that at the end of its constant phase is still no better than a bigram model."""
    h = run["history"]
    i = max(k for k, s in enumerate(h.eval_steps) if s <= plateau(cfg)[1])
    return h.val_loss[i] >= bigram


def seed_metrics(runs: dict, sel: dict, cfg: Config, bigram: float = math.inf) -> dict:
    """What the claims read on one seed, from the claimed arms at the selected LRs."""
    W = cfg.ref_warmup
    f = lambda o, lr, w: final(runs, o, lr, w)  # noqa: E731
    gap = lambda o, lr: f(o, lr, 0.0) - f(o, lr, W)  # noqa: E731
    lr_a, lr_l, lr_r, cold = (sel["warm"]["adamw"], sel["warm"]["liona"], sel["warm"]["lionar"], sel["adamw_cold"])
    lo, hi = sel["adamw_pair"]
    pair = sel["adamw_pair"]
    best_warm_lionar = min(f("lionar", lr_r, W), f("lionar-hm", lr_r, W))
    a0, aw = runs[run_key("adamw", lr_a, 0.0)], runs[run_key("adamw", lr_a, W)]
    p0, p1 = plateau(cfg)
    cold_variants = {"adamw": f("adamw", lr_a, 0.0), "adamw_cold": f("adamw", cold, 0.0),
                     "liona": f("liona", lr_l, 0.0), "lionar": f("lionar", lr_r, 0.0),
                     "recipe_noibc": f("lionar-hm-noibc", lr_r, 0.0)}
    gaps = {"adamw": gap("adamw", lr_a), "liona": gap("liona", lr_l), "lionar": gap("lionar", lr_r),
            "recipe": gap("lionar-hm", lr_r)}
    snr_early, snr_late = _snr(aw["snr"], 0, 10), _snr(aw["snr"], p0, p1)
    angle = {"no_warmup": angle_stats(a0, cfg, 0.0), "warmup": angle_stats(aw, cfg, W)}
    # a common yardstick: the early angles of the run without warmup over the warmed run's plateau
    angle["no_warmup"]["early_over_warm_plateau"] = (angle["no_warmup"]["early_over_plateau"] *
                                                     angle["no_warmup"]["plateau"] / angle["warmup"]["plateau"])
    extra = {}
    if run_key("lionar-rel1d", lr_r, 0.0) in runs:
        extra["rel1d"] = {"no_warmup": f("lionar-rel1d", lr_r, 0.0), "warmup": f("lionar-rel1d", lr_r, W),
                          "gap": gap("lionar-rel1d", lr_r)}
    ru = sel.get("lionar_runner_up", lr_r)
    if ru != lr_r and run_key("lionar", ru, 0.0) in runs:
        extra["lionar_runner_up"] = {"lr": ru, "gap": gap("lionar", ru), "warmup": f("lionar", ru, W),
                                     "no_warmup": f("lionar", ru, 0.0)}
    stall_arms = {"lionar_warmup": ("lionar", lr_r, W), "lionar_no_warmup": ("lionar", lr_r, 0.0),
                  "recipe_warmup": ("lionar-hm", lr_r, W), "recipe_no_warmup": ("lionar-hm", lr_r, 0.0),
                  "liona_warmup": ("liona", lr_l, W), "adamw_warmup": ("adamw", lr_a, W),
                  "rel1d_warmup": ("lionar-rel1d", lr_r, W)}
    stalls = {k: float(stalled(runs[run_key(*a)], cfg, bigram)) for k, a in stall_arms.items() if run_key(*a) in runs}
    return {
        "final": {"adamw": {"no_warmup": f("adamw", lr_a, 0.0), "warmup": f("adamw", lr_a, W)},
                  "adamw_cold": {"no_warmup": f("adamw", cold, 0.0), "warmup": f("adamw", cold, W)},
                  "liona": {"no_warmup": f("liona", lr_l, 0.0), "warmup": f("liona", lr_l, W)},
                  "lionar": {"no_warmup": f("lionar", lr_r, 0.0), "warmup": f("lionar", lr_r, W)},
                  "recipe": {"no_warmup": f("lionar-hm", lr_r, 0.0), "warmup": f("lionar-hm", lr_r, W)},
                  "recipe_noibc": {"no_warmup": f("lionar-hm-noibc", lr_r, 0.0)}},
        "gap": gaps,
        "adamw_gap_pair": {"low": gap("adamw", lo), "high": gap("adamw", hi)},
        # a negative gap at the lower LR counts as none: the ratio cannot pass by a sign
        "gap_ratio_low_over_high": max(gap("adamw", lo), 0.0) / gap("adamw", hi) if gap("adamw", hi) > 0 else math.inf,
        "permanent_gap": min(f("adamw", lr, 0.0) for lr in pair) - min(f("adamw", lr, W) for lr in pair),
        "gap_at_cold_lr": gap("adamw", cold),
        "liona_minus_lionar_gap": gaps["liona"] - gaps["lionar"],
        # the size of LionAR's gap, either sign: a warmed run that fails is no reduced need
        "lionar_over_adamw_gap": abs(gaps["lionar"]) / gaps["adamw"] if gaps["adamw"] > 0 else math.inf,
        "recipe_minus_best_warm": f("lionar-hm", lr_r, 0.0) - best_warm_lionar,
        "recipe_minus_adamw_warm": f("lionar-hm", lr_r, 0.0) - f("adamw", lr_a, W),
        "recipe_minus_best_cold": f("lionar-hm", lr_r, 0.0) - min(cold_variants.values()),
        "noibc_minus_best_warm": f("lionar-hm-noibc", lr_r, 0.0) - best_warm_lionar,
        "noibc_minus_recipe": f("lionar-hm-noibc", lr_r, 0.0) - f("lionar-hm", lr_r, 0.0),
        "angle": angle, "stalled": stalls, **extra,
        # an SNR estimate of 0 (|G|^2 estimated <= 0 over a short window) gives no ratio
        "snr_early": snr_early, "snr_late": snr_late,
        "snr_early_over_late": snr_early / snr_late if snr_late > 0 else math.inf,
        "b_noise_early": 1 / snr_early if snr_early > 0 else math.inf,
        "b_noise_late": 1 / snr_late if snr_late > 0 else math.inf,
    }


def grid_metrics(res: dict, cfg: Config) -> dict:
    """The grid seed: loss per optimizer, LR and warmup, where each optimum lies, and the
    single-seed side runs (warmup lengths, recipe ablation, 1-D/embedding ablation, kappa)."""
    g, sel, W = res["grid"], res["selected"], cfg.ref_warmup
    p0, p1 = plateau(cfg)
    f = lambda o, lr, w: final(g, o, lr, w)  # noqa: E731
    lr_a, lr_r = sel["warm"]["adamw"], sel["warm"]["lionar"]
    out = {"loss": {o: {f"{lr:g}": {"no_warmup": f(o, lr, 0.0), "warmup": f(o, lr, W)} for lr in cfg.lrs(o)}
                    for o in GRIDS},
           "gap": {o: {f"{lr:g}": f(o, lr, 0.0) - f(o, lr, W) for lr in cfg.lrs(o)} for o in GRIDS},
           "best_lr": {o: {"no_warmup": min(cfg.lrs(o), key=lambda lr: f(o, lr, 0.0)),
                           "warmup": min(cfg.lrs(o), key=lambda lr: f(o, lr, W))} for o in GRIDS},
           "warmup_lengths": {f"{w:g}": f("adamw", lr_a, w) for w in cfg.warmups}}
    # an optimum strictly inside the grid (1) or at its edge (0): the grid brackets it
    out["bracketed"] = {o: {k: float(cfg.lrs(o)[0] < lr < cfg.lrs(o)[-1]) for k, lr in b.items()}
                        for o, b in out["best_lr"].items()}
    out["max_gap"] = {o: max(v.values()) for o, v in out["gap"].items()}
    out["max_gap_lr"] = {o: float(max(v, key=v.get)) for o, v in out["gap"].items()}
    warm = [out["warmup_lengths"][f"{w:g}"] for w in cfg.warmups if w > 0]
    out["warmup_lengths_spread"] = max(warm) - min(warm)
    out["shortest_warmup_recovers"] = ((out["warmup_lengths"]["0"] - warm[0]) /
                                       (out["warmup_lengths"]["0"] - min(warm))
                                       if out["warmup_lengths"]["0"] > min(warm) else math.nan)
    for name in ("lionar", "lionar-hm", "lionar-hm-noibc", "lionar-rel1d", "lionar-rel"):
        out[name.replace("-", "_")] = {"no_warmup": f(name, lr_r, 0.0), "warmup": f(name, lr_r, W),
                                       "gap": f(name, lr_r, 0.0) - f(name, lr_r, W)}
    # the ablations, one change at a time: relative steps on the gains; then embeddings not rotated
    out["ablation"] = {"gains": {k: out["lionar_rel1d"][k] - out["lionar"][k] for k in ("no_warmup", "warmup", "gap")},
                       "embeddings": {k: out["lionar_rel"][k] - out["lionar_rel1d"][k]
                                      for k in ("no_warmup", "warmup", "gap")}}
    kap, ar = g[run_key("lionar-kappa", lr_r, 0.0)], g[run_key("lionar", lr_r, 0.0)]

    def rrc_ratio(r):
        return _median(r["rrc"], "rms", 0, 10, None) / _median(r["rrc"], "rms", p0, p1, None)
    out["kappa"] = {"early": _median(kap["snr"], "kappa", 0, 10, None),
                    "late": _median(kap["snr"], "kappa", p0, cfg.steps, None),
                    "final": kap["history"].final_val, "minus_lionar": kap["history"].final_val - f("lionar", lr_r, 0.0),
                    "rrc_early_over_plateau": rrc_ratio(kap), "lionar_rrc_early_over_plateau": rrc_ratio(ar)}
    a0, aw = g[run_key("adamw", lr_a, 0.0)], g[run_key("adamw", lr_a, W)]
    out["step0_l2"] = {"no_warmup": a0["updates"][0]["total"]["l2"], "warmup": aw["updates"][0]["total"]["l2"]}

    def norm_at(r, t):  # the norm of all matrices at the first probe sample at or after step t
        rec = next(x for x in r["updates"] if x["step"] >= t)
        return math.sqrt(sum(v["weight_norm"] ** 2 for v in rec["layers"].values())), rec["step"]
    out["weight_norm_plateau"] = {"no_warmup": norm_at(a0, p0)[0], "warmup": norm_at(aw, p0)[0],
                                  "step": norm_at(aw, p0)[1], "init": norm_at(aw, 0)[0]}
    out["rrc_step0"] = {"no_warmup": a0["rrc"][0]["rms"], "warmup": aw["rrc"][0]["rms"]}
    out["angle"] = {"no_warmup": angle_stats(a0, cfg, 0.0), "warmup": angle_stats(aw, cfg, W),
                    "liona_no_warmup": angle_stats(g[run_key("liona", sel["warm"]["liona"], 0.0)], cfg, 0.0),
                    "lionar_no_warmup": angle_stats(ar, cfg, 0.0)}
    # the analytic equilibrium, for reference: its angle and its time scale 1/(eta lambda) against N
    eq = eq_angle("adamw", lr_a, cfg)
    out["equilibrium"] = {"angle": eq, "steps": 1 / (lr_a * cfg.weight_decay) if cfg.weight_decay else math.inf,
                          "plateau_over_eta_r": {k: out["angle"][k]["plateau"] / eq for k in ("no_warmup", "warmup")}}
    out["equilibrium"]["steps_over_run"] = out["equilibrium"]["steps"] / cfg.steps
    out["lionar_angle"] = math.atan(eq_angle("lionar", lr_r, cfg))
    return out


def lionar_exactness(run, lr, cfg) -> dict:
    """How exactly LionAR (no warmup) does what it promises on its rotational matrices:
    largest relative change of a row norm in one step, and largest relative error of a
    per-row angle against arctan(eta_r) at the scheduled LR."""
    sched = schedules.make("trapezoid", total=cfg.steps, warmup=0, cooldown_frac=cfg.cooldown_frac)
    drift, err = 0.0, 0.0
    for rec in run["updates"]:
        target = math.atan(eq_angle("lionar", lr * sched(rec["step"]), cfg))
        for name, lay in rec["layers"].items():
            if not cfg.decay_embeddings and name.startswith(("wte", "wpe")):
                continue  # not rotational
            drift = max(drift, lay["row_norm_change_max"])
            err = max(err, abs(lay["row_angle_max"] / target - 1), abs(lay["row_angle_rms"] / target - 1))
    return {"row_norm_drift_max": drift, "angle_rel_error_max": err}


def metrics(res: dict, cfg: Config) -> dict:
    """The numbers the claims, figures and prose use (no timings: equal seeds give equal files)."""
    sel, g = res["selected"], res["grid"]
    bigram = res["bigram_val"]
    per_seed = [seed_metrics(res["per_seed"][s], sel, cfg, bigram) for s in res["seeds"]]
    lr_r = sel["warm"]["lionar"]
    m = {"params": res["params"], "initial_val": res["initial_val"], "steps": cfg.steps,
         "grid_seed": cfg.seed, "seeds": list(res["seeds"]), "n_seeds": len(res["seeds"]),
         "selected": {"warm": dict(sel["warm"]), "adamw_cold": sel["adamw_cold"],
                      "lionar_runner_up": sel["lionar_runner_up"],
                      "adamw_pair": {"low": sel["adamw_pair"][0], "high": sel["adamw_pair"][1]}},
         "grid": grid_metrics(res, cfg), "grid_seed_claimed": seed_metrics(g, sel, cfg, bigram),
         "bigram_val": bigram, "stalled_grid": sorted(k for k, r in g.items() if stalled(r, cfg, bigram)),
         "n_stalled_grid": sum(stalled(r, cfg, bigram) for r in g.values()),
         "per_seed": per_seed, **C.seed_stats(per_seed),
         "lionar_exactness": lionar_exactness(g[run_key("lionar", lr_r, 0.0)], lr_r, cfg),
         "warmup_steps": warmup_steps(cfg, cfg.ref_warmup), "plateau_start": plateau(cfg)[0],
         "plateau_end": plateau(cfg)[1], "batch_size": cfg.batch_size, "matters_threshold": MATTERS, "kappa_bound": 1 / math.sqrt(cfg.batch_size),
         "snr_micro_batch": cfg.batch_size // cfg.snr_micro,
         "final_val_max": max(r["history"].final_val for r in g.values()),
         # over the three swept optimizers' grid runs (the recipe and the ablations may stall: reported apart)
         "final_train_loss_max": max(g[run_key(o, lr, w)]["history"].train_loss[-1]
                                     for o in GRIDS for lr in cfg.lrs(o) for w in (0.0, cfg.ref_warmup))}
    m["seed_range"] = {arm: {k: {"min": min(s["final"][arm][k] for s in per_seed),
                                 "max": max(s["final"][arm][k] for s in per_seed)} for k in v}
                       for arm, v in per_seed[0]["final"].items()}
    mean = m["mean"]
    # how much of the batch gradient's squared norm is signal: |G|^2 / (|G|^2 + tr S / B) = B / (B + B_noise)
    m["signal_fraction"] = {k: cfg.batch_size / (cfg.batch_size + mean[f"b_noise_{k}"]) for k in ("early", "late")}
    m["ibc_time"] = 1 / (1 - cfg.high_momentum)
    m["epochs"] = cfg.steps * cfg.batch_size * cfg.seq_len / len(CharCorpus.load("tinyshakespeare").train)
    m["n_stalled"] = {k: int(sum(s["stalled"][k] for s in per_seed)) for k in per_seed[0]["stalled"]}
    m["n_seeds_gap"] = {k: sum(s["gap"][k] > 0 for s in per_seed) for k in ("adamw", "liona", "lionar", "recipe")}
    m["abs"] = {k: abs(v) for k, v in _signed(m).items()}
    return m


def _signed(m: dict) -> dict:
    """Signed quantities the text quotes as sizes with the direction in words ("abs.<name>")."""
    mean, g = m["mean"], m["grid"]
    return {"adamw_gap": mean["gap"]["adamw"], "liona_gap": mean["gap"]["liona"], "lionar_gap": mean["gap"]["lionar"],
            "recipe_gap": mean["gap"]["recipe"], "gap_at_cold_lr": mean["gap_at_cold_lr"],
            "recipe_minus_adamw_warm": mean["recipe_minus_adamw_warm"], "recipe_minus_best_cold": mean["recipe_minus_best_cold"],
            "permanent_gap": mean["permanent_gap"], "recipe_minus_best_warm": mean["recipe_minus_best_warm"],
            "noibc_minus_best_warm": mean["noibc_minus_best_warm"], "noibc_minus_recipe": mean["noibc_minus_recipe"],
            "gains_no_warmup": g["ablation"]["gains"]["no_warmup"], "gains_warmup": g["ablation"]["gains"]["warmup"],
            "emb_no_warmup": g["ablation"]["embeddings"]["no_warmup"],
            "emb_warmup": g["ablation"]["embeddings"]["warmup"], "kappa_minus_lionar": g["kappa"]["minus_lionar"],
            "lionar_gap_grid": g["lionar"]["gap"], "rel1d_gap": g["lionar_rel1d"]["gap"], "rel_gap": g["lionar_rel"]["gap"],
            "recipe_gap_grid": g["lionar_hm"]["gap"], "noibc_gap_grid": g["lionar_hm_noibc"]["gap"]}


def grid_frame(m: dict) -> pd.DataFrame:
    """The grid seed's final validation loss per optimizer and peak LR, without and with
    warmup, and the gap; the selected LR of each optimizer marked."""
    rows = []
    for o in GRIDS:
        for lr, v in m["grid"]["loss"][o].items():
            mark = " ◀" if float(lr) == m["selected"]["warm"][o] else ""
            rows.append({"optimizer": LABELS[o], "peak LR": lr + mark, "no warmup": round(v["no_warmup"], 4),
                         "with warmup": round(v["warmup"], 4), "gap": round(v["no_warmup"] - v["warmup"], 4)})
    return pd.DataFrame(rows)


# Each test says where its threshold comes from: [brief] the chapter's brief, written before any
# run; [v1] the first version of this chapter, before its run; [review] changed after a review of
# the first version's single-seed results, before this run; [after the run] chosen after seeing it.
CLAIMS = [
    C.Claim("adamw-warmup-gap",
            "At its best warmed LR, AdamW without warmup ends clearly worse than with a 5% warmup",
            "no-warmup runs fall behind, leaving a permanent gap (Fig. 1)",
            lambda m: m["gap"]["adamw"], C.above(CLEAR_GAP, strict=False),
            "L(W=0) − L(W=5%) ≥ 0.03 nats at the LR best with warmup [brief; LR: review]", "{:+.4f} nats"),
    C.Claim("gap-grows-with-lr",
            "The benefit of warmup grows with the learning rate, up to the best warmed one",
            "curves per warmup length separate at high LR (Fig. 1, panel 2)",
            lambda m: m["gap_ratio_low_over_high"], C.below(0.5),
            "max(gap at AdamW's best no-warmup LR, 0) < ½ × gap at its best warmed LR [brief; max(·, 0): review]",
            "{:.2f}"),
    C.Claim("permanent-gap",
            "Tuning the LR does not close the gap: the best no-warmup run is worse than the best warmup run",
            "best no-warmup AdamW above best 5%-warmup AdamW (Fig. 1)",
            lambda m: m["permanent_gap"], C.above(0.0),
            "min L(W=0) − min L(W=5%) > 0 over AdamW's best cold and best warm LR [brief]", "{:+.4f} nats"),
    C.Claim("falls-behind",
            "At the best no-warmup LR, the run without warmup progresses faster at first but ends behind",
            "the 5%-warmup run overtakes it and ends lower (Fig. 1, panel 3)",
            lambda m: m["gap_at_cold_lr"], C.above(0.0),
            "L(W=0) − L(W=5%) > 0 at the LR best without warmup [v1]", "{:+.4f} nats"),
    C.Claim("early-angle-large",
            "Without warmup the first updates turn the weights many times more than later ones",
            "early angular updates far above their equilibrium value (section 3)",
            lambda m: m["angle"]["no_warmup"]["early_over_warm_plateau"], C.above(4.0, strict=False),
            "median RMS row angle of steps 0–9 (W=0) ≥ 4 × the plateau median of the warmed run at the same LR "
            "[brief; yardstick: after the run, the stricter of the two]", "{:.1f} ×"),
    C.Claim("warmup-angle-bounded",
            "With warmup the angular updates never exceed their later level by much",
            "warmup counteracts large angular updates (section 3)",
            lambda m: m["angle"]["warmup"]["max_warmup_over_plateau"], C.below(2.0, strict=False),
            "largest RMS row angle during the warmup ≤ 2 × the run's plateau median (AdamW, best warm LR) [v1]",
            "{:.2f} ×"),
    C.Claim("liona-needs-warmup",
            "Controlling the l2 norm (LionA) is not enough: its warmup gap exceeds LionAR's",
            "LionA still benefits from warmup; LionAR much less (sections 4.1–4.2)",
            lambda m: m["liona_minus_lionar_gap"], C.above(0.05),
            "gap of LionA − gap of LionAR > 0.05 nats, each at its best warmed LR [v1; LRs: review]", "{:+.4f} nats"),
    C.Claim("liona-still-benefits",
            "LionA itself still benefits from warmup",
            "LionA still benefits from warmup (section 4.1)",
            lambda m: m["gap"]["liona"], C.above(0.0),
            "gap of LionA > 0 at its best warmed LR [after the run: the test above can pass through LionAR's "
            "negative gap alone]", "{:+.4f} nats"),
    C.Claim("lionar-reduces-need",
            "Angular control (LionAR) removes most of AdamW's need for warmup",
            "LionAR reduces the benefit of warmup (section 4.2)",
            lambda m: m["lionar_over_adamw_gap"], C.below(0.5, strict=False),
            "|gap of LionAR| ≤ ½ × gap of AdamW, each at its best warmed LR [brief; |·|: after the run]", "{:.2f}"),
    C.Claim("lionar-still-benefits",
            "LionAR still benefits from warmup",
            "LionAR reduces but does not remove the benefit of warmup (section 4.2)",
            lambda m: m["gap"]["lionar"], C.above(0.0),
            "gap of LionAR > 0 at its best warmed LR [review]", "{:+.4f} nats"),
    C.Claim("snr-high-early",
            "The gradient signal-to-noise ratio is highest at the start of training",
            "early gradients have high SNR, a small critical batch size (section 5)",
            lambda m: m["snr_early_over_late"], C.above(3.0, strict=False),
            "SNR of steps 0–9 ≥ 3 × SNR on the plateau (AdamW, best warm LR, W=5%) [v1]", "{:.1f} ×"),
    C.Claim("hm-no-warmup",
            "LionAR with β = 0.98, Nesterov and inverse bias correction needs no warmup",
            "trains without warmup as well as the best warmup run (section 5.3)",
            lambda m: m["recipe_minus_adamw_warm"], C.below(0.01, strict=False),
            "L(recipe, W=0) − L(AdamW at its best warmed LR, W=5%) ≤ 0.01 nats (the brief's 0.5% of the loss) "
            "[brief; yardstick: review]", "{:+.4f} nats"),
    C.Claim("hm-best-no-warmup",
            "The recipe is the best of the no-warmup variants",
            "best among no-warmup variants (section 5.3)",
            lambda m: m["recipe_minus_best_cold"], C.below(0.0),
            "L(recipe, W=0) < every other run without warmup (AdamW at both selected LRs, LionA, LionAR, the "
            "recipe without inverse BC) [review]", "{:+.4f} nats"),
]

VERIFICATIONS = [
    C.Verification("lionar-norm", "LionAR keeps every rotated row's norm",
                   lambda m: m["lionar_exactness"]["row_norm_drift_max"], C.below(1e-5),
                   "largest relative change of a row norm in one step < 1e-5 (grid seed, no warmup)", "{:.1e}"),
    C.Verification("lionar-angle", "LionAR turns every rotated row by arctan(η_r) per step",
                   lambda m: m["lionar_exactness"]["angle_rel_error_max"], C.below(1e-3),
                   "largest relative error of a per-row angle < 0.1%; so its early/plateau angle ratio is 1 "
                   "by construction, no evidence", "{:.1e}"),
]
