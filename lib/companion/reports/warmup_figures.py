"""Figures of the warmup chapter (the book's convention: see `companion.plotting`). Grid
figures show the grid seed; where the held-out seeds ran the same arm, their spread is drawn
as a band or as dots."""
import numpy as np

from companion.experiments.warmup import GRIDS, final, run_key, warmup_steps
from companion.metrics.noise import kappa
from companion.metrics.smoothing import moving_average
from companion.optim import schedules
from companion.plotting import colors, panels
from companion.reports.warmup import LABELS, eq_angle, plateau, series


def _trapezoid(cfg, w):
    s = schedules.make("trapezoid", total=cfg.steps, warmup=warmup_steps(cfg, w), cooldown_frac=cfg.cooldown_frac)
    return [s(t) for t in range(cfg.steps + 1)]


def _rolling_snr(records, k: int = 5):
    """(steps, SNR) with each sample's estimate pooled over k neighbouring samples."""
    steps = np.array([r["step"] for r in records])
    g2 = np.array(moving_average([r["g2"] for r in records], k))
    tr = np.array(moving_average([r["tr_sigma"] for r in records], k))
    return steps, np.maximum(g2, 0) / tr


def _above_marks(ax, xs, ys, top, color):
    """Points above the y-range drawn as open triangles at its top edge."""
    xs, ys = np.asarray(xs), np.asarray(ys)
    off = ys > top
    ax.plot(xs[off], [top] * int(off.sum()), "^", color=color, mfc="white", ms=7, clip_on=False)


def _runs(res, opt, lr, w):
    """The grid seed's run and those of the held-out seeds, where they exist."""
    key = run_key(opt, lr, w)
    return [res["grid"][key]] + [s[key] for s in res["per_seed"].values() if key in s]


def _relative_angle(run, cfg):
    """(steps, RMS row angle / the run's own plateau median)."""
    s, v = series(run["updates"], "row_angle_rms")
    p0, p1 = plateau(cfg)
    return s, v / np.median(v[(s >= p0) & (s < p1)])


def _band(ax, runs, cfg, color, label, ls="-"):
    """The grid seed's curve and the min-max band of all seeds of one arm."""
    curves = [_relative_angle(r, cfg) for r in runs]
    s = curves[0][0]
    v = np.array([c[1] for c in curves])
    ax.plot(s + 1, v[0], ls, color=color, lw=1.4, label=label)
    if len(runs) > 1:
        ax.fill_between(s + 1, v.min(0), v.max(0), color=color, alpha=0.2, lw=0)


def overview_figure(res, cfg):
    """The paper's Fig. 1: schedules, final loss vs LR per warmup, curves and l2 update norms
    at the best no-warmup LR."""
    W, sel, g = cfg.ref_warmup, res["selected"], res["grid"]
    cold, lr_a = sel["adamw_cold"], sel["warm"]["adamw"]
    fig, ax = panels(4, row_height=2.9)
    pal = colors(len(cfg.warmups))
    for c, w in zip(pal, cfg.warmups):
        ax[0].plot(_trapezoid(cfg, w), color=c, label=f"{w:.0%}")
        if w in (0.0, W):
            ax[1].plot(cfg.adamw_lrs, [final(g, "adamw", lr, w) for lr in cfg.adamw_lrs], "o-", color=c,
                       label=f"{w:.0%}")
        else:
            ax[1].plot([lr_a], [final(g, "adamw", lr_a, w)], "D", color=c, ms=5, label=f"{w:.0%}")
    ax[0].set(xlabel="step", ylabel="LR multiplier s(t)", title="trapezoidal schedules")
    ax[0].legend(title="warmup", fontsize="x-small")
    ax[1].set(xscale="log", xlabel="peak LR", ylabel="final val loss (nats)", title="AdamW: loss vs LR")
    lo = min([final(g, "adamw", lr, w) for lr in cfg.adamw_lrs for w in (0.0, W)] +
             [final(g, "adamw", lr_a, w) for w in cfg.warmups])
    ax[1].set_ylim(lo - 0.03, lo + 0.45)
    for c, w in zip(pal, cfg.warmups):
        if w in (0.0, W):
            _above_marks(ax[1], cfg.adamw_lrs, [final(g, "adamw", lr, w) for lr in cfg.adamw_lrs], lo + 0.45, c)
    ax[1].legend(fontsize=6, title="warmup", title_fontsize=6, ncol=3, loc="lower left")
    c0, c1 = colors(2)
    for c, w in ((c0, 0.0), (c1, W)):
        run = g[run_key("adamw", cold, w)]
        h = run["history"]
        ax[2].plot(h.steps, moving_average(h.train_loss, 25), color=c, alpha=0.4, lw=1)
        ax[2].plot(h.eval_steps, h.val_loss, "o-", color=c, ms=3, label=f"W={w:.0%} (val)")
        s, v = series(run["updates"], "l2")
        ax[3].plot(s + 1, v, color=c, label=f"W={w:.0%}")
    ax[2].set(xlabel="step", ylabel="loss (nats)", title=f"AdamW at LR {cold:g}", ylim=(None, 3.0))
    ax[2].legend(fontsize="x-small")
    ax[3].set(xlabel="step", ylabel="‖Δw‖₂ (all matrices)", yscale="log", title=f"update size, LR {cold:g}")
    ax[3].set(xscale="log", xlabel="step + 1")
    ax[3].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def angle_figure(res, cfg):
    """The angular update per step relative to each run's own plateau, without and with
    warmup: AdamW (left), LionA and LionAR (right), each at its best warmed LR."""
    W, sel = cfg.ref_warmup, res["selected"]["warm"]
    fig, ax = panels(2, ncols=1, row_height=3.1, sharex=True)
    c0, c1, c2, c3 = colors(4)
    _band(ax[0], _runs(res, "adamw", sel["adamw"], 0.0), cfg, c0, "no warmup")
    _band(ax[0], _runs(res, "adamw", sel["adamw"], W), cfg, c1, f"{W:.0%} warmup")
    for opt, (ca, cb) in (("liona", (c0, c1)), ("lionar", (c2, c3))):
        for c, w, ls in ((ca, 0.0, "-"), (cb, W, "--")):
            _band(ax[1], _runs(res, opt, sel[opt], w), cfg, c, f"{LABELS[opt]}, W={w:.0%}", ls)
    Wn = warmup_steps(cfg, W)
    for a, title in zip(ax, (f"AdamW, peak LR {sel['adamw']:g}",
                             f"LionA (LR {sel['liona']:g}) and LionAR (LR {sel['lionar']:g})")):
        a.axhline(1, color="0.45", lw=1.0, ls="--", zorder=0)
        a.axvspan(1, Wn + 1, color="grey", alpha=0.12, lw=0)
        a.set(xscale="log", yscale="log", title=title, ylabel="angle / own plateau")
        a.legend(fontsize="x-small", loc="upper right")
    ax[0].text(1.1, 1.08, "own plateau (steps N/3–N/2)", fontsize="x-small")
    ax[0].text(1.1, ax[0].get_ylim()[0] * 1.3, "warmup", fontsize="x-small", color="grey")
    ax[1].set(xlabel="step + 1")
    fig.tight_layout()
    return fig


def norms_figure(res, cfg):
    """Where the first update lands, layer by layer, and what it does to the weight norms."""
    W, lr_a = cfg.ref_warmup, res["selected"]["warm"]["adamw"]
    a0, aw = res["grid"][run_key("adamw", lr_a, 0.0)], res["grid"][run_key("adamw", lr_a, W)]
    names = list(a0["updates"][0]["layers"])
    fig, ax = panels(2, ncols=1, row_height=3.1)
    c0, c1 = colors(2)
    x = np.arange(len(names))
    for c, r, dx, w in ((c0, a0, -0.2, 0.0), (c1, aw, 0.2, W)):
        ax[0].bar(x + dx, [r["updates"][0]["layers"][n]["row_angle_rms"] for n in names], 0.4, color=c,
                  label=f"W={w:.0%}")
        steps = [rec["step"] for rec in r["updates"]]
        norm = [np.sqrt(sum(v["weight_norm"] ** 2 for v in rec["layers"].values())) for rec in r["updates"]]
        ax[1].plot(np.array(steps) + 1, norm, color=c, label=f"W={w:.0%}")
    ax[0].axhline(eq_angle("adamw", lr_a, cfg), color="grey", ls=":", lw=1.2, label="analytic equilibrium η_r")
    ax[0].set(yscale="log", xticks=x, ylabel="RMS angle per neuron (rad)", title=f"first update, per matrix (LR {lr_a:g})")
    ax[0].set_ylim(top=ax[0].get_ylim()[1] * 8)
    ax[0].set_xticklabels([n.replace("blocks.", "").replace(".weight", "") for n in names], rotation=45,
                          ha="right", fontsize="x-small")
    ax[0].legend(fontsize="x-small", ncol=3, loc="upper left")
    ax[1].set(xlabel="step + 1", ylabel="‖w‖ of all matrices", title=f"weight norm (AdamW, LR {lr_a:g})",
              xscale="log")
    ax[1].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def lr_figure(res, cfg):
    """Final loss against peak LR without and with warmup, one panel per optimizer (grid
    seed); the held-out seeds at the selected LR as mean ± sd."""
    W, g, sel = cfg.ref_warmup, res["grid"], res["selected"]["warm"]
    fig, ax = panels(3, ncols=3, row_height=2.7, sharey=True)
    c0, c1 = colors(2)
    for a, opt in zip(ax, GRIDS):
        lrs = cfg.lrs(opt)
        for c, w, dx in ((c0, 0.0, 0.94), (c1, W, 1.06)):
            a.plot(lrs, [final(g, opt, lr, w) for lr in lrs], "o-", color=c, ms=4, label=f"W={w:.0%}")
            held = [final(s, opt, sel[opt], w) for s in res["per_seed"].values()]
            if len(held) > 1:
                a.errorbar([sel[opt] * dx ** 3], [np.mean(held)], yerr=[np.std(held, ddof=1)], fmt="s", color=c,
                           mfc="white", ms=5, capsize=2)
        a.axvline(sel[opt], color="grey", ls=":", lw=1)
        a.set(xscale="log", xlabel="peak LR", title=LABELS[opt])
        a.set_xticks(lrs, [f"{lr:g}" for lr in lrs], fontsize="x-small", rotation=45)
        a.minorticks_off()
    lo = min(final(g, o, lr, w) for o in GRIDS for lr in cfg.lrs(o) for w in (0.0, W))
    ax[0].set(ylabel="final val loss (nats)", ylim=(lo - 0.03, lo + 0.5))
    for a, opt in zip(ax, GRIDS):
        for c, w in ((c0, 0.0), (c1, W)):
            _above_marks(a, cfg.lrs(opt), [final(g, opt, lr, w) for lr in cfg.lrs(opt)], lo + 0.5, c)
    ax[0].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def gap_figure(res, cfg):
    """The warmup gap L(W=0) − L(W=5%): across each optimizer's LR grid (grid seed, left) and
    at its best warmed LR on every held-out seed (right)."""
    W, g, sel = cfg.ref_warmup, res["grid"], res["selected"]["warm"]
    fig, ax = panels(2, ncols=2, row_height=3.0)
    pal = dict(zip(GRIDS + ("lionar-hm",), colors(4)))
    floor = -0.5  # gaps below are drawn at the floor as open triangles (a diverged warmed run)
    for opt in GRIDS:
        lrs = np.array(cfg.lrs(opt))
        gaps = np.array([final(g, opt, lr, 0.0) - final(g, opt, lr, W) for lr in lrs])
        ax[0].plot(lrs, np.maximum(gaps, floor), "o-", color=pal[opt], label=LABELS[opt])
        off = gaps < floor
        ax[0].plot(lrs[off], [floor] * off.sum(), "v", color=pal[opt], mfc="white", ms=8)
        for x, v in zip(lrs[off], gaps[off]):
            ax[0].annotate(f"{v:+.2f}", (x, floor), textcoords="offset points", xytext=(-8, 8), fontsize="x-small",
                           color=pal[opt], ha="right")
    ax[0].axhline(0, color="black", lw=0.8)
    ax[0].set(xscale="log", xlabel="peak LR", ylabel=f"gap L(W=0) − L(W={W:.0%}) (nats)", title="across the grid")
    ax[0].legend(fontsize="x-small")
    arms = [("adamw", sel["adamw"]), ("liona", sel["liona"]), ("lionar", sel["lionar"]), ("lionar-hm", sel["lionar"])]
    for i, (opt, lr) in enumerate(arms):
        gaps = [final(s, opt, lr, 0.0) - final(s, opt, lr, W) for s in res["per_seed"].values()]
        ax[1].bar(i, np.mean(gaps), 0.6, color=pal[opt], alpha=0.5)
        ax[1].plot([i] * len(gaps), gaps, "o", color=pal[opt], ms=4)
    ax[1].axhline(0, color="black", lw=0.8)
    ax[1].set(xticks=range(len(arms)), title="at the best warmed LR, held-out seeds", ylabel="gap (nats)")
    ax[1].set_xticklabels([f"{'recipe' if o == 'lionar-hm' else LABELS[o]}\n{lr:g}" for o, lr in arms],
                          fontsize="x-small")
    fig.tight_layout()
    return fig


def noise_figure(res, cfg):
    """Gradient noise: the gradient's squared norm against 1/b (a line whose slope over
    intercept is B_noise), B_noise over training against the batch size, the SNR correction
    kappa(phi, B) for several batch sizes, and the representation change per step."""
    W, g, sel = cfg.ref_warmup, res["grid"], res["selected"]["warm"]
    aw, a0 = g[run_key("adamw", sel["adamw"], W)], g[run_key("adamw", sel["adamw"], 0.0)]
    fig, ax = panels(4, ncols=2, row_height=2.9)
    scans = aw["batch_scan"]
    pick = [scans[0], scans[len(scans) // 2], scans[-1]]
    for c, rec in zip(colors(len(pick)), pick):
        x = 1 / np.array(rec["sizes"], dtype=float)
        ax[0].plot(x, rec["mean_sq_norm"], "o", color=c, ms=4, label=f"step {rec['step']}")
        xx = np.linspace(0, 1, 20)
        ax[0].plot(xx, rec["g2"] + rec["tr_sigma"] * xx, "-", color=c, lw=1)
    ax[0].set(xlabel="1 / micro-batch size b", ylabel="mean ‖G_b‖²", ylim=(0, None),
              title=f"gradient vs batch size (W={W:.0%})")
    ax[0].legend(fontsize="x-small")
    for c, run, w in ((colors(2)[0], a0, 0.0), (colors(2)[1], aw, W)):
        s, phi = _rolling_snr(run["snr"])
        ax[1].plot(s, 1 / np.maximum(phi, 1e-12), color=c, label=f"W={w:.0%}, {cfg.snr_micro} micro-batches")
        ax[1].plot([r["step"] for r in run["batch_scan"]], [r["b_noise"] for r in run["batch_scan"]], "D",
                   color=c, ms=4, mfc="white")
    ax[1].axhline(cfg.batch_size, color="grey", ls=":", lw=1)
    ax[1].text(cfg.steps * 0.55, cfg.batch_size * 0.6, f"batch B = {cfg.batch_size}", color="grey", fontsize="x-small")
    ax[1].set(xlabel="step", ylabel="B_noise = tr Σ / |G|²", yscale="log", title="critical batch size")
    ax[1].legend(fontsize="x-small")
    phis = np.logspace(-4, 1, 100)
    for c, B in zip(colors(4), (4, 16, 64, 256)):
        ax[2].plot(phis, [kappa(p, B) for p in phis], color=c, label=f"B={B}")
    s, phi = _rolling_snr(aw["snr"])
    p0 = plateau(cfg)[0]
    for val, name in ((np.nanmean(phi[s < 10]), "early"), (np.nanmean(phi[s >= p0]), "late")):
        ax[2].axvline(val, color="grey", ls="--", lw=1)
        ax[2].text(val * 1.15, 0.12 if name == "late" else 0.2, name, color="grey", fontsize="x-small")
    ax[2].set(xscale="log", yscale="log", xlabel="per-sample SNR φ", ylabel="κ(φ, B)", title="SNR step factor")
    ax[2].legend(fontsize="x-small", loc="lower left")
    lr_r = sel["lionar"]
    pal = colors(4)
    for c, run, name in ((pal[0], a0, "AdamW, W=0%"), (pal[1], aw, f"AdamW, W={W:.0%}"),
                         (pal[2], g[run_key("lionar", lr_r, 0.0)], "LionAR, W=0%"),
                         (pal[3], g[run_key("lionar-kappa", lr_r, 0.0)], "LionAR × κ, W=0%")):
        ax[3].plot(*series(run["rrc"], "rms", None), color=c, lw=1.2, label=name)
    ax[3].set(xlabel="step", ylabel="relative change of layer outputs", yscale="log",
              title="representation change per step")
    ax[3].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


SHORT = {"lionar": "LionAR", "lionar-hm": "recipe", "lionar-hm-noibc": "recipe − inv. BC",
         "lionar-rel1d": "relative steps on gains", "lionar-rel": "… and embeddings not rotated",
         "lionar-kappa": "LionAR × κ"}


def lionar_figure(res, cfg):
    """Validation curves at LionAR's best warmed LR: LionAR, the recipe with and without its
    inverse bias correction, LionAR with relative steps on what it does not rotate, and LionAR × kappa
    (solid: no warmup; dashed: the reference warmup)."""
    W, g, lr_r = cfg.ref_warmup, res["grid"], res["selected"]["warm"]["lionar"]
    fig, ax = panels(2, ncols=2, row_height=3.0, sharey=True)
    pal = dict(zip(SHORT, colors(len(SHORT))))  # one colour per variant, in both panels
    groups = ((ax[0], (("lionar", pal["lionar"]), ("lionar-hm", pal["lionar-hm"]),
                       ("lionar-hm-noibc", pal["lionar-hm-noibc"]))),
              (ax[1], (("lionar", pal["lionar"]), ("lionar-rel1d", pal["lionar-rel1d"]),
                       ("lionar-rel", pal["lionar-rel"]))))
    for a, opts in groups:
        for opt, c in opts:
            for w, ls in ((0.0, "-"), (W, "--")):
                h = g[run_key(opt, lr_r, w)]["history"]
                a.plot(h.eval_steps, h.val_loss, ls, marker="o", ms=2.5, color=c,
                       label=SHORT[opt] if w == 0 else None)
    h = g[run_key("lionar-kappa", lr_r, 0.0)]["history"]
    ax[1].plot(h.eval_steps, h.val_loss, "-", marker="s", ms=2.5, color=pal["lionar-kappa"], label=SHORT["lionar-kappa"])
    vals = [g[run_key(o, lr_r, w)]["history"].val_loss[-1] for o in SHORT if o != "lionar-kappa" for w in (0.0, W)]
    ax[0].set(ylabel="val loss (nats)", ylim=(min(vals) - 0.05, max(vals) + 0.25))
    ax[0].set(xlabel="step", title="the recipe and its inverse BC")
    ax[1].set(xlabel="step", title="1-D tensors and embeddings; κ")
    for a in ax:
        a.legend(fontsize="x-small")
    fig.suptitle(f"LionAR variants at peak LR {lr_r:g} (solid: no warmup, dashed: W={W:.0%})", fontsize="small")
    fig.tight_layout()
    return fig
