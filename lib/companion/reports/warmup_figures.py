"""Figures of the warmup chapter (the book's convention: see `companion.plotting`)."""
import matplotlib.pyplot as plt
import numpy as np

from companion.experiments.warmup import run_key, warmup_steps
from companion.metrics.smoothing import moving_average
from companion.optim import schedules
from companion.plotting import colors, panels
from companion.reports.warmup import LABELS, final_loss, series, eq_angle, sweeps


def _trapezoid(cfg, w):
    s = schedules.make("trapezoid", total=cfg.steps, warmup=warmup_steps(cfg, w), cooldown_frac=cfg.cooldown_frac)
    return [s(t) for t in range(cfg.steps + 1)]


def _rolling_snr(records, k: int = 5):
    """(steps, SNR) with each sample's estimate pooled over k neighbouring samples."""
    steps = np.array([r["step"] for r in records])
    g2 = np.array(moving_average([r["g2"] for r in records], k))
    tr = np.array(moving_average([r["tr_sigma"] for r in records], k))
    return steps, np.maximum(g2, 0) / tr


def overview_figure(res, cfg):
    """The paper's Fig. 1: schedules, final loss vs LR per warmup, curves, l2 update norms."""
    W = cfg.ref_warmup
    best = min(cfg.adamw_lrs, key=lambda lr: final_loss(res, "adamw", lr, 0.0))
    fig, ax = panels(4, row_height=3.0)
    pal = colors(len(cfg.warmups))
    for c, w in zip(pal, cfg.warmups):
        ax[0].plot(_trapezoid(cfg, w), color=c, label=f"{w:.0%}")
        ax[1].plot(cfg.adamw_lrs, [final_loss(res, "adamw", lr, w) for lr in cfg.adamw_lrs], "o-", color=c,
                   label=f"{w:.0%}")
    ax[0].set(xlabel="step", ylabel="LR multiplier s(t)", title="trapezoidal schedules")
    ax[0].legend(title="warmup")
    ax[1].set(xscale="log", xlabel="peak LR", ylabel="final val loss (nats)", title="AdamW: loss vs LR")
    lo = min(final_loss(res, "adamw", lr, w) for lr in cfg.adamw_lrs for w in cfg.warmups)
    ax[1].set_ylim(lo - 0.02, lo + 0.4)
    c0, c1 = colors(2)
    for c, w in ((c0, 0.0), (c1, W)):
        run = res["runs"][run_key("adamw", best, w)]
        h = run["history"]
        ax[2].plot(h.steps, moving_average(h.train_loss, 25), color=c, alpha=0.4, lw=1)
        ax[2].plot(h.eval_steps, h.val_loss, "o-", color=c, ms=3, label=f"W={w:.0%} (val)")
        ax[3].plot(*series(run["updates"], "l2"), color=c, label=f"W={w:.0%}")
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
            s, v = series(res["runs"][run_key(opt, lr, w)]["updates"], "row_angle_rms")
            a.plot(s, v, color=c, label=f"{LABELS[opt]}, W={w:.0%}")
            sched = np.array(_trapezoid(cfg, w)[:-1])
            eq = [eq_angle(opt, lr * x, cfg) for x in sched]
            a.plot(steps, eq, ":", color=c, lw=1.2)
        a.set(xlabel="step", yscale="log", title=f"{LABELS[opt]}, peak LR {lr:g}" + (" (and LionAR)" if opt == "liona" else ""))
    s, v = series(res["runs"][run_key("lionar", cfg.lionar_lrs[0], 0.0)]["updates"], "row_angle_rms")
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
    f0 = np.array([final_loss(res, o, lr, 0.0) for o, lr in runs])
    fw = np.array([final_loss(res, o, lr, W) for o, lr in runs])
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
        ax[1].plot(*series(run["rrc"], "rms", None), color=c, label=f"AdamW, W={w:.0%}")
    lr_ar = cfg.lionar_lrs[0]
    kap = res["runs"][run_key("lionar-kappa", lr_ar, 0.0)]
    ax[0].plot(*_rolling_snr(kap["snr"]), color=c2, label="LionAR × κ, W=0%")
    ax[1].plot(*series(res["runs"][run_key("lionar", lr_ar, 0.0)]["rrc"], "rms", None), color="grey",
               label="LionAR, W=0%")
    ax[1].plot(*series(kap["rrc"], "rms", None), color=c2, label="LionAR × κ, W=0%")
    ax[2].plot(*series(kap["snr"], "kappa", None), color=c2)
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
