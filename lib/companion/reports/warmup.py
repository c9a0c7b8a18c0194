"""The warmup chapter's report: metrics from the runs, the paper's claims checked on them,
and the figures (functions return matplotlib figures; the notebook shows, captions and saves
them). Nothing here trains."""
import math
import statistics

import matplotlib.pyplot as plt
import numpy as np

from companion import claims as C
from companion.experiments.warmup import Config, run_key, warmup_steps
from companion.metrics.updates import equilibrium_angle
from companion.optim import schedules
from companion.plotting import colors, panels

LABELS = {"adamw": "AdamW", "liona": "LionA", "lionar": "LionAR",
          "lionar-hm": "LionAR β 0.98 + Nesterov + inv. BC", "lionar-kappa": "LionAR × κ(SNR)"}


def _final(res, opt, lr, w) -> float:
    return res["runs"][run_key(opt, lr, w)]["history"].final_val


def _series(records, key, layer="total"):
    steps = [r["step"] for r in records]
    vals = [r[key] if layer is None else r[layer][key] for r in records]
    return np.array(steps), np.array(vals, dtype=float)


def _window(records, key, lo, hi, layer):
    s, v = _series(records, key, layer)
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


def _rolling_snr(records, k: int = 5):
    """(steps, SNR) with each sample's estimate pooled over k neighbouring samples."""
    steps = np.array([r["step"] for r in records])
    g2 = np.convolve([r["g2"] for r in records], np.ones(k) / k, mode="same")
    tr = np.convolve([r["tr_sigma"] for r in records], np.ones(k) / k, mode="same")
    return steps, np.maximum(g2, 0) / tr


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
    gap = {opt: {f"{lr:g}": _final(res, opt, lr, 0.0) - _final(res, opt, lr, W) for lr in lrs}
           for opt, lrs in sweeps(cfg).items()}
    max_gap = {opt: max(g.values()) for opt, g in gap.items()}
    best_w0 = min(cfg.adamw_lrs, key=lambda lr: _final(res, "adamw", lr, 0.0))
    best_wr = min(cfg.adamw_lrs, key=lambda lr: _final(res, "adamw", lr, W))
    a0, aw = run("adamw", hi, 0.0), run("adamw", hi, W)
    lionar, kap = run("lionar", lr_ar, 0.0), run("lionar-kappa", lr_ar, 0.0)
    eq_hi = eq_angle("adamw", hi, cfg)
    warm_end = max(warmup_steps(cfg, W), 10)

    def angle_stat(r, lo_, hi_, how=_median):
        return how(r["updates"], "row_angle_rms", lo_, hi_)

    def early_over_plateau(r, probe, key, layer=None):
        return _median(r[probe], key, 0, 10, layer) / _median(r[probe], key, *plateau, layer)

    snr_early, snr_late = _snr(aw["snr"], 0, 10), _snr(aw["snr"], plateau[0], cfg.steps)
    best_lionar_warm = min(_final(res, "lionar", lr_ar, W), _final(res, "lionar-hm", lr_ar, W))
    return {
        "params": res["params"], "initial_val": res["initial_val"], "steps": cfg.steps,
        "final_val": {k: r["history"].final_val for k, r in res["runs"].items()},
        "adamw_grid": {f"{lr:g}": {f"{w:g}": _final(res, "adamw", lr, w) for w in cfg.warmups}
                       for lr in cfg.adamw_lrs},
        "high_lr": hi, "low_lr": lo,
        "warmup_gap": gap, "max_warmup_gap": max_gap,
        "adamw_gap_high_lr": gap["adamw"][f"{hi:g}"], "adamw_gap_low_lr": gap["adamw"][f"{lo:g}"],
        "adamw_best_lr_no_warmup": best_w0, "adamw_best_lr_warmup": best_wr,
        "permanent_gap": _final(res, "adamw", best_w0, 0.0) - _final(res, "adamw", best_wr, W),
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
        "hm_no_warmup_minus_best_lionar_warmup": _final(res, "lionar-hm", lr_ar, 0.0) - best_lionar_warm,
        "best_final_val": min(r["history"].final_val for r in res["runs"].values()),
        "final_train_loss_max": max(r["history"].train_loss[-1] for r in res["runs"].values()),
        **lionar_exactness(lionar, cfg),
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
            lambda m: m["adamw_gap_high_lr"], lambda v: v >= 0.03,
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


# ---------------------------------------------------------------- figures

def _trapezoid(cfg, w):
    s = schedules.make("trapezoid", total=cfg.steps, warmup=warmup_steps(cfg, w), cooldown_frac=cfg.cooldown_frac)
    return [s(t) for t in range(cfg.steps + 1)]


def _smooth(x, k=25):
    x = np.asarray(x, dtype=float)
    return np.convolve(x, np.ones(k) / k, mode="valid") if len(x) > k else x


def figure1(res, cfg):
    """The paper's Fig. 1: schedules, final loss vs LR per warmup, curves, l2 update norms."""
    W = cfg.ref_warmup
    best = min(cfg.adamw_lrs, key=lambda lr: _final(res, "adamw", lr, 0.0))
    fig, ax = panels(4, row_height=3.0)
    pal = colors(len(cfg.warmups))
    for c, w in zip(pal, cfg.warmups):
        ax[0].plot(_trapezoid(cfg, w), color=c, label=f"{w:.0%}")
        ax[1].plot(cfg.adamw_lrs, [_final(res, "adamw", lr, w) for lr in cfg.adamw_lrs], "o-", color=c,
                   label=f"{w:.0%}")
    ax[0].set(xlabel="step", ylabel="LR multiplier s(t)", title="trapezoidal schedules")
    ax[0].legend(title="warmup")
    ax[1].set(xscale="log", xlabel="peak LR", ylabel="final val loss (nats)", title="AdamW: loss vs LR")
    lo = min(_final(res, "adamw", lr, w) for lr in cfg.adamw_lrs for w in cfg.warmups)
    ax[1].set_ylim(lo - 0.02, lo + 0.4)
    c0, c1 = colors(2)
    for c, w in ((c0, 0.0), (c1, W)):
        run = res["runs"][run_key("adamw", best, w)]
        h = run["history"]
        ax[2].plot(np.arange(len(_smooth(h.train_loss))) + 12, _smooth(h.train_loss), color=c, alpha=0.4, lw=1)
        ax[2].plot(h.eval_steps, h.val_loss, "o-", color=c, ms=3, label=f"W={w:.0%} (val)")
        ax[3].plot(*_series(run["updates"], "l2"), color=c, label=f"W={w:.0%}")
    ax[2].set(xlabel="step", ylabel="loss (nats)", title=f"AdamW at LR {best:g}", ylim=(None, 3.0))
    ax[2].legend()
    ax[3].set(xlabel="step", ylabel="‖Δw‖₂ (all matrices)", yscale="log", title="update size")
    ax[3].legend()
    fig.tight_layout()
    return fig


def angle_figure(res, cfg):
    """RMS per-neuron angle per step, against the equilibrium angle at the scheduled LR."""
    W, hi = cfg.ref_warmup, max(cfg.adamw_lrs)
    fig, ax = panels(2, ncols=1, row_height=3.2, sharey=True)
    c0, c1 = colors(2)
    steps = np.arange(cfg.steps)
    for a, opt, lr in ((ax[0], "adamw", hi), (ax[1], "liona", cfg.liona_lrs[0])):
        for c, w in ((c0, 0.0), (c1, W)):
            s, v = _series(res["runs"][run_key(opt, lr, w)]["updates"], "row_angle_rms")
            a.plot(s, v, color=c, label=f"{LABELS[opt]}, W={w:.0%}")
            sched = np.array(_trapezoid(cfg, w)[:-1])
            eq = [eq_angle(opt, lr * x, cfg) for x in sched]
            a.plot(steps, eq, ":", color=c, lw=1.2)
        a.set(xlabel="step", yscale="log", title=f"{LABELS[opt]}, peak LR {lr:g}" + (" (and LionAR)" if opt == "liona" else ""))
    s, v = _series(res["runs"][run_key("lionar", cfg.lionar_lrs[0], 0.0)]["updates"], "row_angle_rms")
    ax[1].plot(s, v, color=colors(3)[2], label=f"LionAR (LR {cfg.lionar_lrs[0]:g}), W=0%")
    ax[0].set_ylabel("RMS angle per neuron per step (rad)")
    for a in ax:
        a.plot([], [], ":", color="grey", label="equilibrium η_r at the scheduled LR")
        a.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def gap_figure(res, cfg):
    """Final loss with and without warmup, and the warmup gap, per optimizer and LR."""
    W = cfg.ref_warmup
    runs = [(opt, lr) for opt, lrs in sweeps(cfg).items() for lr in lrs]
    names = [f"{LABELS[o] if o != 'lionar-hm' else 'recipe'}\n{lr:g}" for o, lr in runs]
    f0 = np.array([_final(res, o, lr, 0.0) for o, lr in runs])
    fw = np.array([_final(res, o, lr, W) for o, lr in runs])
    fig, ax = panels(2, ncols=1, row_height=3.0, sharex=True)
    x = np.arange(len(runs))
    c0, c1 = colors(2)
    ax[0].bar(x - 0.2, f0, 0.4, color=c0, label="W=0%")
    ax[0].bar(x + 0.2, fw, 0.4, color=c1, label=f"W={W:.0%}")
    ax[0].set_ylim(min(f0.min(), fw.min()) - 0.05, min(max(f0.max(), fw.max()), 3.0) + 0.03)
    ax[0].set(ylabel="final val loss (nats)")
    ax[0].legend(ncol=2)
    ax[1].bar(x, f0 - fw, 0.5, color=[c0 if g > 0 else c1 for g in f0 - fw])
    ax[1].axhline(0, color="black", lw=0.8)
    ax[1].set(xticks=x, ylabel=f"gap L(W=0) − L(W={W:.0%})")
    ax[1].set_xticklabels(names, fontsize="x-small")
    fig.tight_layout()
    return fig


def snr_figure(res, cfg):
    """Gradient SNR, representation change and the SNR correction over training."""
    W, hi = cfg.ref_warmup, max(cfg.adamw_lrs)
    fig, ax = panels(3, ncols=1, row_height=2.8)
    c0, c1, c2 = colors(3)
    for c, w in ((c0, 0.0), (c1, W)):
        run = res["runs"][run_key("adamw", hi, w)]
        ax[0].plot(*_rolling_snr(run["snr"]), color=c, label=f"AdamW, W={w:.0%}")
        ax[1].plot(*_series(run["rrc"], "rms", None), color=c, label=f"AdamW, W={w:.0%}")
    lr_ar = cfg.lionar_lrs[0]
    kap = res["runs"][run_key("lionar-kappa", lr_ar, 0.0)]
    ax[0].plot(*_rolling_snr(kap["snr"]), color=c2, label="LionAR × κ, W=0%")
    ax[1].plot(*_series(res["runs"][run_key("lionar", lr_ar, 0.0)]["rrc"], "rms", None), color="grey",
               label="LionAR, W=0%")
    ax[1].plot(*_series(kap["rrc"], "rms", None), color=c2, label="LionAR × κ, W=0%")
    ax[2].plot(*_series(kap["snr"], "kappa", None), color=c2)
    ax[2].axhline(1 / np.sqrt(cfg.batch_size), color="grey", ls=":", lw=1)
    ax[2].text(cfg.steps * 0.5, 1 / np.sqrt(cfg.batch_size) * 1.05, "1/√B", color="grey", fontsize="small")
    ax[0].set(xlabel="step", ylabel="per-sample SNR φ (pooled over 5)", yscale="log", title="gradient SNR")
    ax[1].set(xlabel="step", ylabel="RMS over layers of RRC", yscale="log", title="representation change per step")
    ax[2].set(xlabel="step", ylabel="κ(φ, B)", title="SNR correction of LionAR's step", ylim=(0, 1.05))
    for a in ax[:2]:
        a.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def lionar_figure(res, cfg):
    """Validation curves of the LionAR variants with and without warmup."""
    W, lr_ar = cfg.ref_warmup, cfg.lionar_lrs[0]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    pal = colors(3)
    for c, opt in zip(pal, ("lionar", "lionar-hm")):
        for w, ls in ((0.0, "-"), (W, "--")):
            h = res["runs"][run_key(opt, lr_ar, w)]["history"]
            ax.plot(h.eval_steps, h.val_loss, ls, marker="o", ms=3, color=c, label=f"{LABELS[opt]}, W={w:.0%}")
    h = res["runs"][run_key("lionar-kappa", lr_ar, 0.0)]["history"]
    ax.plot(h.eval_steps, h.val_loss, "-", marker="s", ms=3, color=pal[2], label=f"{LABELS['lionar-kappa']}, W=0%")
    lo = min(min(r["history"].val_loss) for r in res["runs"].values())
    ax.set(xlabel="step", ylabel="val loss (nats)", ylim=(lo - 0.02, lo + 0.6), title=f"LionAR, peak LR {lr_ar:g}")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def norms_figure(res, cfg):
    """Where the first update lands, layer by layer, and what it does to the weight norms."""
    W, hi = cfg.ref_warmup, max(cfg.adamw_lrs)
    a0, aw = res["runs"][run_key("adamw", hi, 0.0)], res["runs"][run_key("adamw", hi, W)]
    names = list(a0["updates"][0]["layers"])
    fig, ax = panels(2, ncols=1, row_height=3.2)
    c0, c1 = colors(2)
    x = np.arange(len(names))
    for c, r, dx, w in ((c0, a0, -0.2, 0.0), (c1, aw, 0.2, W)):
        ax[0].bar(x + dx, [r["updates"][0]["layers"][n]["row_angle_rms"] for n in names], 0.4, color=c,
                  label=f"W={w:.0%}")
        steps = [rec["step"] for rec in r["updates"]]
        norm = [np.sqrt(sum(v["weight_norm"] ** 2 for v in rec["layers"].values())) for rec in r["updates"]]
        ax[1].plot(steps, norm, color=c, label=f"W={w:.0%}")
    ax[0].axhline(eq_angle("adamw", hi, cfg), color="grey", ls=":", lw=1.2, label="equilibrium η_r")
    ax[0].set(yscale="log", xticks=x, ylabel="RMS angle per neuron (rad)", title="first update, per matrix")
    ax[0].set_ylim(top=ax[0].get_ylim()[1] * 8)
    ax[0].set_xticklabels([n.replace("blocks.", "").replace(".weight", "") for n in names], rotation=45,
                          ha="right", fontsize="x-small")
    ax[0].legend(fontsize="x-small", ncol=3, loc="upper left")
    ax[1].set(xlabel="step", ylabel="‖w‖ of all matrices", title=f"weight norm (AdamW, LR {hi:g})")
    ax[1].legend()
    fig.tight_layout()
    return fig
