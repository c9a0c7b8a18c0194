"""The warmup chapter's report: metrics from the runs and the paper's claims checked on them
(figures: `warmup_figures`). Nothing here trains."""
import math
import statistics

import numpy as np

from companion import claims as C
from companion.experiments.warmup import Config, run_key, warmup_steps
from companion.metrics.updates import equilibrium_angle
from companion.optim import schedules

CLEAR_GAP = 0.03  # nats: the smallest warmup gap the claims call clear (claim adamw-warmup-gap)
LABELS = {"adamw": "AdamW", "liona": "LionA", "lionar": "LionAR",
          "lionar-hm": "LionAR β 0.98 + Nesterov + inv. BC", "lionar-kappa": "LionAR × κ(SNR)"}


def final_loss(res, opt, lr, w) -> float:
    return res["runs"][run_key(opt, lr, w)]["history"].final_val


def series(records, key, layer="total"):
    steps = [r["step"] for r in records]
    vals = [r[key] if layer is None else r[layer][key] for r in records]
    return np.array(steps), np.array(vals, dtype=float)


def _window(records, key, lo, hi, layer):
    s, v = series(records, key, layer)
    return v[(s >= lo) & (s < hi)]


def _median(records, key, lo, hi, layer="total"):
    v = _window(records, key, lo, hi, layer)
    return float(statistics.median(v.tolist())) if len(v) else math.nan


def _snr(records, lo, hi) -> float:
    """Per-sample SNR over steps [lo, hi): the ratio of the window means of the unbiased
    estimates of |G|^2 and tr S (single-step estimates are noisy and can be negative)."""
    g2 = _window(records, "g2", lo, hi, None)
    tr = _window(records, "tr_sigma", lo, hi, None)
    return float(max(g2.mean(), 0.0) / tr.mean()) if len(g2) else math.nan


def _max(records, key, lo, hi, layer="total"):
    v = _window(records, key, lo, hi, layer)
    return float(v.max()) if len(v) else math.nan


def _betas(opt, cfg):
    if opt == "adamw":
        return (0.9, cfg.beta2)
    return (cfg.high_momentum,) * 2 if opt == "lionar-hm" else (0.9, 0.99)


def eq_angle(opt: str, lr: float, cfg: Config) -> float:
    """The rotational-equilibrium angle per step at peak LR `lr` (REQ formulas)."""
    return equilibrium_angle("adamw" if opt == "adamw" else "lion", lr, cfg.weight_decay, _betas(opt, cfg))


def sweeps(cfg: Config) -> dict:
    """The peak LRs run with and without the reference warmup, per optimizer."""
    return {"adamw": cfg.adamw_lrs, "liona": cfg.liona_lrs, "lionar": cfg.lionar_lrs,
            "lionar-hm": (cfg.lionar_lrs[0],)}


def metrics(res: dict, cfg: Config) -> dict:
    """The numbers the claims and figures use (no timings: equal seeds give equal files)."""
    W, hi = cfg.ref_warmup, max(cfg.adamw_lrs)
    lo = max([lr for lr in cfg.adamw_lrs if lr < hi], default=hi)
    lr_ar = cfg.lionar_lrs[0]
    plateau = (cfg.steps // 3, cfg.steps - int(cfg.cooldown_frac * cfg.steps))
    run = lambda opt, lr, w: res["runs"][run_key(opt, lr, w)]  # noqa: E731
    gap = {opt: {f"{lr:g}": final_loss(res, opt, lr, 0.0) - final_loss(res, opt, lr, W) for lr in lrs}
           for opt, lrs in sweeps(cfg).items()}
    max_gap = {opt: max(g.values()) for opt, g in gap.items()}
    best_w0 = min(cfg.adamw_lrs, key=lambda lr: final_loss(res, "adamw", lr, 0.0))
    best_wr = min(cfg.adamw_lrs, key=lambda lr: final_loss(res, "adamw", lr, W))
    a0, aw = run("adamw", hi, 0.0), run("adamw", hi, W)
    lionar, kap = run("lionar", lr_ar, 0.0), run("lionar-kappa", lr_ar, 0.0)
    eq_hi = eq_angle("adamw", hi, cfg)
    warm_end = max(warmup_steps(cfg, W), 10)

    def angle_stat(r, lo_, hi_, how=_median):
        return how(r["updates"], "row_angle_rms", lo_, hi_)

    def early_over_plateau(r, probe, key, layer=None):
        return _median(r[probe], key, 0, 10, layer) / _median(r[probe], key, *plateau, layer)

    snr_early, snr_late = _snr(aw["snr"], 0, 10), _snr(aw["snr"], plateau[0], cfg.steps)
    best_lionar_warm = min(final_loss(res, "lionar", lr_ar, W), final_loss(res, "lionar-hm", lr_ar, W))
    m = {
        "params": res["params"], "initial_val": res["initial_val"], "steps": cfg.steps,
        "final_val": {k: r["history"].final_val for k, r in res["runs"].items()},
        "adamw_grid": {f"{lr:g}": {f"{w:g}": final_loss(res, "adamw", lr, w) for w in cfg.warmups}
                       for lr in cfg.adamw_lrs},
        "high_lr": hi, "low_lr": lo,
        "warmup_gap": gap, "max_warmup_gap": max_gap,
        "adamw_gap_high_lr": gap["adamw"][f"{hi:g}"], "adamw_gap_low_lr": gap["adamw"][f"{lo:g}"],
        "adamw_best_lr_no_warmup": best_w0, "adamw_best_lr_warmup": best_wr,
        "permanent_gap": final_loss(res, "adamw", best_w0, 0.0) - final_loss(res, "adamw", best_wr, W),
        "gap_at_best_no_warmup_lr": gap["adamw"][f"{best_w0:g}"],
        "liona_minus_lionar_max_gap": max_gap["liona"] - max_gap["lionar"],
        "lionar_over_adamw_max_gap": max_gap["lionar"] / max_gap["adamw"] if max_gap["adamw"] > 0 else math.inf,
        "equilibrium_angle_high_lr": eq_hi,
        "step0_l2": {"no_warmup": a0["updates"][0]["total"]["l2"], "warmup": aw["updates"][0]["total"]["l2"]},
        "step0_row_angle": {"no_warmup": a0["updates"][0]["total"]["row_angle_rms"],
                            "warmup": aw["updates"][0]["total"]["row_angle_rms"]},
        # RMS row angle in units of the equilibrium angle at the highest LR: median over the
        # first 10 steps, and the largest value during the reference warmup (or the first 10 steps)
        "early_angle_over_equilibrium": {"no_warmup": angle_stat(a0, 0, 10) / eq_hi,
                                         "warmup": angle_stat(aw, 0, 10) / eq_hi},
        "max_warmup_angle_over_equilibrium": {"no_warmup": angle_stat(a0, 0, warm_end, _max) / eq_hi,
                                              "warmup": angle_stat(aw, 0, warm_end, _max) / eq_hi},
        "plateau_angle_over_equilibrium": {"no_warmup": angle_stat(a0, *plateau) / eq_hi,
                                           "warmup": angle_stat(aw, *plateau) / eq_hi},
        "early_over_plateau_angle": {"adamw_no_warmup": early_over_plateau(a0, "updates", "row_angle_rms", "total"),
                                     "lionar_no_warmup": early_over_plateau(lionar, "updates", "row_angle_rms", "total")},
        "snr_early": snr_early, "snr_late": snr_late, "snr_early_over_late": snr_early / snr_late,
        "kappa_early": _median(kap["snr"], "kappa", 0, 10, None),
        "kappa_late": _median(kap["snr"], "kappa", plateau[0], cfg.steps, None),
        "rrc_step0": {"no_warmup": a0["rrc"][0]["rms"], "warmup": aw["rrc"][0]["rms"]},
        "rrc_early_over_plateau": {"lionar": early_over_plateau(lionar, "rrc", "rms"),
                                   "lionar_kappa": early_over_plateau(kap, "rrc", "rms")},
        "lionar_kappa_minus_lionar": kap["history"].final_val - lionar["history"].final_val,
        "hm_gap": gap["lionar-hm"][f"{lr_ar:g}"],
        "hm_no_warmup_minus_best_lionar_warmup": final_loss(res, "lionar-hm", lr_ar, 0.0) - best_lionar_warm,
        "best_final_val": min(r["history"].final_val for r in res["runs"].values()),
        "final_train_loss_max": max(r["history"].train_loss[-1] for r in res["runs"].values()),
        **lionar_exactness(lionar, cfg),
    }
    m.update(prose_numbers(m, cfg))
    return m


# quantities the text quotes as sizes, with the direction in words (their absolute values: "abs.<key>")
SIGNED = ("adamw_gap_high_lr", "adamw_gap_low_lr", "adamw_gap_lowest_lr", "permanent_gap", "gap_at_best_no_warmup_lr",
          "liona_gap_first", "liona_gap_last", "lionar_gap_first", "lionar_gap_last", "hm_gap",
          "hm_no_warmup_minus_best_lionar_warmup", "lionar_kappa_minus_lionar", "lionar_best_minus_adamw_best_warmup")


def prose_numbers(m: dict, cfg: Config) -> dict:
    """The numbers the text quotes that follow from the other metrics and the configuration, under
    names that do not depend on the LR grid (so that the text renders at every scale)."""
    W, hi, lowest, lr_ar = cfg.ref_warmup, m["high_lr"], min(cfg.adamw_lrs), cfg.lionar_lrs[0]
    fv = lambda opt, lr, w: m["final_val"][run_key(opt, lr, w)]  # noqa: E731
    warm = [w for w in cfg.warmups if w > 0]
    hi_warm = [fv("adamw", hi, w) for w in warm]
    lionar = {(lr, w): fv("lionar", lr, w) for lr in cfg.lionar_lrs for w in (0.0, W)}
    best = min(lionar, key=lionar.get)
    out = {
        "lowest_lr": lowest, "adamw_gap_lowest_lr": m["warmup_gap"]["adamw"][f"{lowest:g}"],
        "warmup_shortest": min(warm), "warmup_shortest_steps": warmup_steps(cfg, min(warm)),
        "warmup_longest": max(warm),
        "adamw_high_lr_final": {"no_warmup": fv("adamw", hi, 0.0), "warmup": fv("adamw", hi, W),
                                "shortest_warmup": fv("adamw", hi, min(warm)),
                                "best_warmup": min(hi_warm), "worst_warmup": max(hi_warm)},
        "adamw_high_lr_warmup_spread": max(hi_warm) - min(hi_warm),
        "adamw_best_final": {"no_warmup": fv("adamw", m["adamw_best_lr_no_warmup"], 0.0),
                             "warmup": fv("adamw", m["adamw_best_lr_warmup"], W)},
        "step0_l2_ratio": m["step0_l2"]["no_warmup"] / m["step0_l2"]["warmup"],
        "step0_angle_over_equilibrium": {k: v / m["equilibrium_angle_high_lr"]
                                         for k, v in m["step0_row_angle"].items()},
        "equilibrium_steps": 1 / (hi * cfg.weight_decay) if cfg.weight_decay > 0 else math.inf,
        "plateau_start": cfg.steps // 3,  # the plateau and late-SNR windows start here
        "lionar_angle": math.atan(eq_angle("lionar", lr_ar, cfg)),  # per step at LionAR's first peak LR
        "kappa_bound": 1 / math.sqrt(cfg.batch_size),
        "snr_micro_batch": cfg.batch_size // cfg.snr_micro,
        "lionar_best": {"final": lionar[best], "lr": best[0], "warmup": best[1]},
        "lionar_best_minus_adamw_best_warmup": lionar[best] - fv("adamw", m["adamw_best_lr_warmup"], W),
        "recipe_final": {"no_warmup": fv("lionar-hm", lr_ar, 0.0), "warmup": fv("lionar-hm", lr_ar, W)},
        "lionar_first_lr_final": {"no_warmup": fv("lionar", lr_ar, 0.0), "warmup": fv("lionar", lr_ar, W)},
    }
    out["best_lionar_warmup_final"] = min(out["recipe_final"]["warmup"], out["lionar_first_lr_final"]["warmup"])
    for opt in ("liona", "lionar"):
        lrs = sweeps(cfg)[opt]
        out.update({f"{opt}_lr_first": lrs[0], f"{opt}_gap_first": m["warmup_gap"][opt][f"{lrs[0]:g}"],
                    f"{opt}_lr_last": lrs[-1], f"{opt}_gap_last": m["warmup_gap"][opt][f"{lrs[-1]:g}"]})
    out["abs"] = {k: abs({**m, **out}[k]) for k in SIGNED}
    return out


def _holds(m: dict, claim_id: str) -> bool:
    c = next(c for c in CLAIMS if c.id == claim_id)
    return bool(c.rule(c.our_value(m)))


def words(m: dict) -> dict:
    """Words of the prose whose direction comes from the run."""
    def side(x, neg, pos):
        return neg if x <= 0 else pos
    lower = (m["adamw_gap_low_lr"], m["adamw_gap_lowest_lr"])
    hi_f, ar_small = m["adamw_high_lr_final"], m["max_warmup_gap"]["lionar"] < CLEAR_GAP
    recovered = (hi_f["no_warmup"] - hi_f["worst_warmup"]) / m["adamw_gap_high_lr"] if m["adamw_gap_high_lr"] > 0 else 0
    t_eq = m["equilibrium_steps"] / m["steps"]
    kap, ar = m["rrc_early_over_plateau"]["lionar_kappa"], m["rrc_early_over_plateau"]["lionar"]
    agree = _holds(m, "falls-behind")
    works, pays = kap < ar, m["lionar_kappa_minus_lionar"] < 0  # kappa flattens the change; it ends lower
    return {
        # the AdamW grid (Fig. 1)
        "adamw_high_side": side(m["adamw_gap_high_lr"], "below", "above"),
        "any_warmup_recovers": "almost all" if recovered >= 0.8 else ("most" if recovered >= 0.5 else "only part"),
        "low_lr_warmup": "does not help" if max(lower) <= 0 else
                         ("helps less" if max(lower) < m["adamw_gap_high_lr"] else "helps as much"),
        "low_lr_verb": side(m["adamw_gap_low_lr"], "costs", "saves"),
        "lowest_lr_verb": side(m["adamw_gap_lowest_lr"], "costs", "saves"),
        "low_lr_why": "it only wastes steps" if max(lower) <= 0 else "less than at the highest learning rate"
                      if max(lower) < m["adamw_gap_high_lr"] else "as much as at the highest learning rate",
        "high_lr_usable": "Warmup is what makes the high learning rate usable"
                          if m["adamw_best_lr_warmup"] > m["adamw_best_lr_no_warmup"] else
                          "Warmup does not make a higher learning rate the best one",
        "permanent_is": "is" if m["permanent_gap"] > 0 else "is not",
        "permanent_side": side(m["permanent_gap"], "below", "above"),
        "panel3_vs_paper": "agrees with the paper" if agree else "is where we differ from the paper",
        "panel3_winner": "with" if agree else "without",
        "panel3_paper": "as in the paper, where the warmup run overtakes it" if agree else
                        "whereas in the paper the warmup run overtakes it",
        # angles
        "warmup_angle_rises": "rises" if m["max_warmup_angle_over_equilibrium"]["warmup"] >
                              m["step0_angle_over_equilibrium"]["warmup"] else "does not rise",
        "equilibrium_reach": "do not reach" if m["plateau_angle_over_equilibrium"]["warmup"] > 1.5 else "come close to",
        "time_scale_vs_run": "longer than the whole run" if t_eq > 1.1 else
                             ("the whole run" if t_eq >= 0.9 else "a fraction of the run"),
        "angle_bounded": "reproduced" if _holds(m, "warmup-angle-bounded") else "not reproduced",
        "early_angle_findings": "hold" if _holds(m, "early-angle-large") else "do not hold",
        # optimizers that control the update
        "adamw_loses": side(m["adamw_gap_high_lr"], "gains", "loses"),
        "liona_first_need": side(m["liona_gap_first"], "does not need", "gains from"),
        "liona_first_side": side(m["liona_gap_first"], "better", "worse"),
        "liona_last_verb": side(m["liona_gap_last"], "gains", "loses"),
        "liona_reading": "fixing the l2 norm of the update does not protect it from large early angular updates "
                         "once the learning rate is high" if _holds(m, "liona-needs-warmup") else
                         "fixing the l2 norm of the update protects it about as well as fixing the angle",
        "lionar_first_verb": side(m["lionar_gap_first"], "gains", "loses only"),
        "lionar_last_side": side(m["lionar_gap_last"], "better", "worse"),
        "lionar_best_warmup": "no warmup" if m["lionar_best"]["warmup"] == 0 else "with warmup",
        "lionar_vs_adamw_side": side(m["lionar_best_minus_adamw_best_warmup"], "below", "above"),
        "recipe_side": side(m["hm_gap"], "better", "worse"),
        # SNR and kappa
        "snr_reading": "early gradients of different sequences agree, later they mostly disagree"
                       if _holds(m, "snr-high-early") else "early gradients do not agree much more than later ones",
        "kappa_trend": "rises" if m["kappa_late"] > m["kappa_early"] else "falls",
        "kappa_rrc_flat": ("almost flat" if kap < 1.5 else "flatter than plain LionAR's") if kap < ar else
                          "not flatter than plain LionAR's",
        "kappa_works": "does what it was derived for" if works else "does not do what it was derived for",
        "kappa_pays": ("but" if works != pays else "and") + (" it pays here" if pays else " it does not pay here"),
        "kappa_side": side(m["lionar_kappa_minus_lionar"], "below", "above"),
        "lionar_first_need": "does not need" if m["lionar_gap_first"] < CLEAR_GAP else "needs",
        # the recipe
        "recipe_vs_best_side": side(m["hm_no_warmup_minus_best_lionar_warmup"], "below", "above"),
        "best_lionar_warmup_variant": "LionAR" if m["lionar_first_lr_final"]["warmup"] <=
                                      m["recipe_final"]["warmup"] else "the recipe",
        "recipe_vs_own_side": side(m["hm_gap"], "below", "above"),
        "recipe_verdict": "it needs no warmup, as the paper says" if _holds(m, "hm-no-warmup") else
                          "unlike in the paper, it does not remove the need for warmup here",
        "lionar_warmup_need": "hardly needs warmup either" if ar_small else "does need warmup",
        "lionar_point": "cannot show" if ar_small else "can test",
        "lionar_heading": "LionAR needs no warmup here" if ar_small else "LionAR still needs warmup here",
        "lionar_gap_reading": "already has no warmup gap worth the name, so the recipe has nothing left to fix"
                              if ar_small else "keeps a warmup gap, which leaves the recipe something to fix",
    }


def lionar_exactness(run, cfg) -> dict:
    """How exactly LionAR (at its first LR, no warmup) does what it promises on its rotational
    matrices: largest relative change of a row norm in one step, and largest relative error
    of a per-row angle against arctan(eta_r) at the scheduled LR."""
    sched = schedules.make("trapezoid", total=cfg.steps, warmup=0, cooldown_frac=cfg.cooldown_frac)
    drift, err = 0.0, 0.0
    for rec in run["updates"]:
        target = math.atan(eq_angle("lionar", cfg.lionar_lrs[0] * sched(rec["step"]), cfg))
        for name, lay in rec["layers"].items():
            if not cfg.decay_embeddings and name.startswith(("wte", "wpe")):
                continue  # not rotational
            drift = max(drift, lay["row_norm_change_max"])
            err = max(err, abs(lay["row_angle_max"] / target - 1), abs(lay["row_angle_rms"] / target - 1))
    return {"lionar_row_norm_drift_max": drift, "lionar_angle_rel_error_max": err}


CLAIMS = [
    C.Claim("adamw-warmup-gap",
            "Without warmup, AdamW at a high LR ends clearly worse than with a 5% warmup",
            "no-warmup runs fall behind, leaving a permanent gap (Fig. 1)",
            lambda m: m["adamw_gap_high_lr"], lambda v: v >= CLEAR_GAP,
            "L(W=0) − L(W=5%) ≥ 0.03 nats at the highest LR", "{:+.4f} nats"),
    C.Claim("gap-grows-with-lr",
            "The benefit of warmup grows with the learning rate",
            "curves per warmup length separate at high LR (Fig. 1, panel 2)",
            lambda m: m["adamw_gap_low_lr"] / m["adamw_gap_high_lr"] if m["adamw_gap_high_lr"] > 0 else float("inf"),
            lambda v: v < 0.5, "gap at the next-lower LR < ½ × gap at the highest LR", "{:.2f}"),
    C.Claim("permanent-gap",
            "Tuning the LR does not close the gap: the best no-warmup run is worse than the best warmup run",
            "best no-warmup AdamW above best 5%-warmup AdamW (Fig. 1)",
            lambda m: m["permanent_gap"], lambda v: v > 0,
            "min over LR of L(W=0) − min over LR of L(W=5%) > 0", "{:+.4f} nats"),
    C.Claim("falls-behind",
            "At the best no-warmup LR, the run without warmup progresses faster at first but ends behind",
            "the 5%-warmup run overtakes it and ends lower (Fig. 1, panel 3)",
            lambda m: m["gap_at_best_no_warmup_lr"], lambda v: v > 0,
            "L(W=0) − L(W=5%) > 0 at the LR that is best without warmup", "{:+.4f} nats"),
    C.Claim("early-angle-large",
            "Without warmup the first updates turn the weights many times the equilibrium angle",
            "early angular updates far above rotational equilibrium (section 3)",
            lambda m: m["early_angle_over_equilibrium"]["no_warmup"], lambda v: v >= 4,
            "median RMS row angle of steps 0–9 ≥ 4 × η_r (AdamW, highest LR, W=0)", "{:.1f} × η_r"),
    C.Claim("warmup-angle-bounded",
            "With warmup the angular updates stay close to the equilibrium angle",
            "warmup counteracts large angular updates (section 3)",
            lambda m: m["max_warmup_angle_over_equilibrium"]["warmup"], lambda v: v <= 2,
            "largest RMS row angle during the warmup ≤ 2 × η_r (AdamW, highest LR, W=5%)", "{:.2f} × η_r"),
    C.Claim("liona-needs-warmup",
            "Controlling the l2 norm (LionA) is not enough: its warmup gap exceeds LionAR's",
            "LionA still benefits from warmup; LionAR much less (sections 4.1–4.2)",
            lambda m: m["liona_minus_lionar_max_gap"], lambda v: v > 0.05,
            "largest gap over its LRs: LionA − LionAR > 0.05 nats", "{:+.4f} nats"),
    C.Claim("lionar-reduces-need",
            "Angular control (LionAR) removes most of the need for warmup",
            "LionAR reduces the benefit of warmup (section 4.2)",
            lambda m: m["lionar_over_adamw_max_gap"], lambda v: v <= 0.5,
            "largest gap over its LRs: LionAR ≤ ½ × AdamW", "{:.2f}"),
    C.Claim("snr-high-early",
            "The gradient signal-to-noise ratio is highest at the start of training",
            "early gradients have high SNR, a small critical batch size (section 5)",
            lambda m: m["snr_early_over_late"], lambda v: v >= 3,
            "SNR of steps 0–9 ≥ 3 × SNR after N/3 (AdamW, highest LR, W=5%)", "{:.1f} ×"),
    C.Claim("hm-no-warmup",
            "LionAR with β = 0.98, Nesterov and inverse bias correction needs no warmup",
            "trains without warmup, best of the no-warmup variants (section 5.3)",
            lambda m: m["hm_no_warmup_minus_best_lionar_warmup"], lambda v: v <= 0.01,
            "L(recipe, W=0) − min L(LionAR variants, W=5%) ≤ 0.01 nats", "{:+.4f} nats"),
]
