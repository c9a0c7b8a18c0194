"""Figures of the scaling-cooldown chapter. Each function takes the run's results (and/or
metrics) and the Config and returns a matplotlib figure sized for the book's column; the
notebook shows, captions and saves it. Curves are the first seed's; per-seed numbers are
drawn as dots beside their mean."""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter

from companion.claims import decide, summarize
from companion.experiments.scaling_cooldown import branch_point
from companion.optim import schedules
from companion.plotting import WIDTH, colors
from companion.reports.scaling_cooldown import CLAIMS, MATCH

LOSS = "validation loss (nats/char)"


def _cooldown_curve(trunk, branch):
    """Validation curve of a cooldown from its branch point: the trunk's value there (when the
    trunk was evaluated at that step), then the cooldown's own evaluations."""
    start = branch.steps[0]
    if start not in trunk.eval_steps:
        return branch.eval_steps, branch.val_loss
    return [start] + branch.eval_steps, [trunk.val_at(start)] + branch.val_loss


def _zoom(ax, curves, top_quantile=0.15):
    """Zoom on the informative part of loss curves (the first steps are far above)."""
    vals = sorted(v for c in curves for v in c)
    lo, hi = vals[0], vals[max(0, int(len(vals) * (1 - top_quantile)) - 1)]
    pad = 0.05 * (hi - lo)
    ax.set_ylim(lo - pad, hi + pad)


def _first(res):
    return res["per_seed"][res["seeds"][0]]


def schedules_figure(cfg):
    """Fig. 2 analogue: the LR multipliers of the schedules compared."""
    T = cfg.targets[-1]
    t = range(T + 1)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.0))
    c = colors(4)
    ax.plot(t, [schedules.cosine(s, T, cfg.warmup, 0.1) for s in t], color=c[0], label="cosine → 10%")
    ax.plot(t, [schedules.cosine(s, T, cfg.warmup, 0.0) for s in t], color=c[0], ls="--", lw=1,
            label="cosine → 0 (control)")
    ax.plot(t, [schedules.constant(s, cfg.warmup) for s in t], color="0.6", ls=":", label="constant (trunk)")
    for shape, col in (("linear", c[1]), ("1-sqrt", c[2])):
        ax.plot(t, [schedules.wsd(s, T, cfg.warmup, cfg.cooldown_frac, shape) for s in t], color=col,
                label=f"constant + {cfg.cooldown_frac:.0%} {shape} cooldown")
    ax.set(xlabel="optimizer step", ylabel="learning rate / peak", title=f"Schedules for T = {T} steps")
    ax.legend(loc="lower left")
    return fig


def cycle_mismatch_figure(res, cfg):
    """Fig. 1 analogue: cosines of every length; the longest one evaluated early."""
    m = _first(res)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    cols = colors(len(cfg.targets))
    for T, col in zip(cfg.targets, cols):
        h = m["cosine"][T]
        ax.plot(h.eval_steps, h.val_loss, color=col, label=f"cosine, T = {T}")
        ax.plot([T], [h.final_val], "o", color=col)
    long = m["cosine"][cfg.targets[-1]]
    for T in cfg.targets[:-1]:
        ax.plot([T], [long.val_at(T)], "x", color=cols[-1], ms=9)
    _zoom(ax, [m["cosine"][T].val_loss for T in cfg.targets])
    ax.set(xlabel="optimizer step", ylabel=LOSS, title="Cosine is tuned to its own length (× = long cosine early)")
    ax.legend()
    return fig


def cosine_vs_cooldown_figure(res, cfg):
    """Fig. 3 analogue: cosine per length vs cooldowns branched from one constant trunk."""
    m = _first(res)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    cols = colors(len(cfg.targets))
    trunk = m["trunk"]
    ax.plot(trunk.eval_steps, trunk.val_loss, color="0.55", lw=1, label="constant LR (trunk)")
    curves = [trunk.val_loss]
    for T, col in zip(cfg.targets, cols):
        h = m["cosine"][T]
        ax.plot(h.eval_steps, h.val_loss, color=col, lw=1, alpha=0.6, label=f"cosine T = {T}")
        ax.plot(*_cooldown_curve(trunk, m["cooldown"][T]), color=col, lw=2.2, ls="--", label=f"cooldown to {T}")
        curves += [h.val_loss, m["cooldown"][T].val_loss]
    _zoom(ax, curves)
    ax.set(xlabel="optimizer step", ylabel=LOSS, title=f"Cosine vs {cfg.cooldown_frac:.0%} (1-sqrt) cooldowns")
    ax.legend(ncol=2, fontsize="x-small", loc="upper right")
    return fig


def _seed_dots(ax, x, values, color, label=None):
    """Per-seed values as dots (slightly spread) and their mean as a bar."""
    n = len(values)
    offs = np.linspace(-0.12, 0.12, n) if n > 1 else [0.0]
    ax.plot([x + o for o in offs], values, "o", ms=4, color=color, alpha=0.8, label=label)
    ax.plot([x - 0.2, x + 0.2], [np.mean(values)] * 2, color=color, lw=2.5)


def paired_figure(metrics, cfg):
    """Every per-seed claim: its per-seed values, their mean and the pre-stated threshold, one
    panel per claim (units in the panel title)."""
    per_seed = [c for c in CLAIMS if c.scope == "per_seed"]
    cols = 3
    rows = math.ceil(len(per_seed) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 1.9 * rows))
    pal = colors(4)
    shade = {"holds": pal[2], "mixed": pal[1], "fails": pal[3]}
    for ax, c in zip(axes.flat, per_seed):
        vals = c.values(metrics)
        pct = "%" in c.fmt
        scale = 100 if pct else 1
        st = summarize(vals)
        verdict, _ = decide(c.rule, vals, st)
        _seed_dots(ax, 0, [scale * v for v in vals], shade[verdict])
        if st["ci95"] is not None:
            lo, hi = (scale * x for x in st["ci95"])
            ax.plot([0.33, 0.33], [lo, hi], color=shade[verdict], lw=1.2)
            ax.plot([0.33], [scale * st["mean"]], "_", color=shade[verdict], ms=8)
        rule = c.rule
        for edge in (rule.lo, rule.hi):
            if math.isfinite(edge):
                ax.axhline(scale * edge, color="0.3", ls="--", lw=1)
        if math.isfinite(rule.lo) and math.isfinite(rule.hi):
            ax.axhspan(scale * rule.lo, scale * rule.hi, color="0.85", zorder=0)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xticks([])
        ax.set_xlim(-0.5, 0.5)
        ax.set_title(f"{c.id}: {verdict}\n({'%' if pct else 'nats'})", fontsize="small")
        ax.tick_params(labelsize="small")
    for ax in list(axes.flat)[len(per_seed):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def shape_figure(res, metrics, cfg):
    """Fig. 4 analogue: the two cooldown shapes, and L(1-sqrt) - L(linear) at every length."""
    m = _first(res)
    T = cfg.targets[-1]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(WIDTH, 5.2))
    c = colors(3)
    for h, name, col in ((m["linear"][T], "linear", c[1]), (m["cooldown"][T], "1-sqrt", c[2])):
        a1.plot(*_cooldown_curve(m["trunk"], h), "o-", ms=3, color=col, label=f"{name} cooldown")
    a1.axhline(m["cosine"][T].final_val, color=c[0], ls=":", label="cosine final")
    a1.set(xlabel="optimizer step", ylabel=LOSS, title=f"Loss during the cooldown of the T = {T} run (first seed)")
    a1.legend()
    for i, t in enumerate(cfg.targets):
        _seed_dots(a2, i, [s["sqrt_minus_linear"][str(t)] for s in metrics["per_seed"]], c[2])
    a2.axhline(0, color="0.4", lw=1, ls="--")
    a2.set_xticks(range(len(cfg.targets)), [str(t) for t in cfg.targets])
    a2.set(xlabel="training length T (steps)", ylabel="L(1-sqrt) − L(linear) (nats)",
           title="Below zero: 1-sqrt better (dots: seeds; bar: mean)")
    fig.tight_layout()
    return fig


def length_sweep_figure(metrics, cfg):
    """Fig. 5 analogue: final loss vs cooldown length at the longest T, every seed."""
    T = cfg.targets[-1]
    fr = sorted(metrics["per_seed"][0]["sweep_final"], key=float)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    c = colors(3)
    for i, s in enumerate(metrics["per_seed"]):
        ax.plot([0] + [100 * float(g) for g in fr], [s["constant_final"]] + [s["sweep_final"][g] for g in fr], "o-",
                color=c[2], alpha=0.7, label="constant + (1-sqrt) cooldown (0%: none)" if i == 0 else None)
    mean = metrics["mean"]
    ax.axhline(mean["cosine_final"][str(T)], color=c[0], ls="--", label="cosine → 10% (mean)")
    ax.axhline(mean["cosine_zero_final"], color=c[1], ls=":", label="cosine → 0 (mean)")
    ax.set(xlabel=f"cooldown length (% of T = {T} steps)", ylabel="final " + LOSS,
           title="How long should the cooldown be? (one line per seed)")
    ax.legend()
    return fig


def controls_figure(metrics, cfg):
    """Final loss at the longest length of every schedule and control, per seed."""
    T = str(cfg.targets[-1])
    runs = [("cosine → 10%", lambda s: s["cosine_final"][T]), ("cosine → 0", lambda s: s["cosine_zero_final"]),
            ("cooldown", lambda s: s["cooldown_final"][T]), ("linear cooldown", lambda s: s["linear_final"][T])]
    if "half_lr_cooldown_final" in metrics["per_seed"][0]:
        runs.append(("cooldown, ½ LR", lambda s: s["half_lr_cooldown_final"]))
    runs += [("constant + SWA", lambda s: s["swa_final"]), ("constant", lambda s: s["constant_final"])]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    cols = colors(len(runs))
    for i, ((name, get), col) in enumerate(zip(runs, cols)):
        _seed_dots(ax, i, [get(s) for s in metrics["per_seed"]], col)
    ax.set_xticks(range(len(runs)), [n for n, _ in runs], rotation=30, ha="right")
    ax.set(ylabel="final " + LOSS, title=f"Every schedule at T = {T} (dots: seeds; bar: mean)")
    return fig


def swa_figure(res, cfg):
    """Fig. 10 analogue: constant LR, constant LR + windowed SWA, and the cooldown."""
    m = _first(res)
    T = cfg.targets[-1]
    trunk, swa = m["trunk"], m["swa"]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    c = colors(4)
    ax.plot(trunk.eval_steps, trunk.val_loss, color="0.55", label="constant LR")
    ax.plot(swa["steps"], swa["val"], "s-", ms=3, color=c[3], label=f"constant + SWA (window {cfg.swa_horizon})")
    ax.plot(*_cooldown_curve(trunk, m["cooldown"][T]), color=c[2], lw=2,
            label=f"{cfg.cooldown_frac:.0%} (1-sqrt) cooldown")
    ax.plot(m["cosine"][T].eval_steps, m["cosine"][T].val_loss, color=c[0], lw=1, alpha=0.6, label="cosine")
    _zoom(ax, [trunk.val_loss, swa["val"], m["cooldown"][T].val_loss, m["cosine"][T].val_loss])
    ax.set(xlabel="optimizer step", ylabel=LOSS, title="Weight averaging vs an explicit cooldown (first seed)")
    ax.legend()
    return fig


def lr_figure(metrics, cfg):
    """Fig. 3 (right) analogue: final loss vs peak LR for cosine and the cooldown, middle length."""
    s = metrics["lr_sweep"]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    c = colors(3)
    ax.plot(s["lrs"], s["cosine_final"], "o-", color=c[0], label="cosine → 10%")
    ax.plot(s["lrs"], s["cooldown_final"], "s--", color=c[2], label="constant + 20% (1-sqrt) cooldown")
    ax.axvline(s["chosen_lr"], color="0.3", lw=4, alpha=0.25, label=f"this run's peak LR ({s['chosen_lr']:g})")
    for lr, col, name in ((s["best_lr_cosine"], c[0], "cosine"), (s["best_lr_cooldown"], c[2], "cooldown")):
        ax.axvline(lr, color=col, lw=1, ls=":", label=f"best LR, {name} ({lr:g})")
    ax.set_xscale("log")
    ax.set(xlabel="peak learning rate", ylabel="final " + LOSS, title=f"LR sensitivity at T = {s['T']} (first seed)")
    ax.legend()
    return fig


def scaling_figure(metrics, cfg):
    """Fig. 12 analogue: final loss vs training FLOPs of every (size, T) under both protocols,
    each protocol's compute-optimal runs and fitted power law; below, the perplexity diagonal."""
    s = metrics["scaling"]
    sizes = sorted(s["sizes"].items(), key=lambda kv: kv[1]["params"])
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(WIDTH, 7.0), gridspec_kw={"height_ratios": [1.25, 1]})
    cols = colors(len(sizes))
    pcol = {"cosine": "black", "cooldown": "#c0392b"}
    for (name, z), col in zip(sizes, cols):
        C = [z["flops_per_step"] * T for T in cfg.targets]
        a1.plot(C, [z["cosine_final"][str(T)] for T in cfg.targets], "o-", color=col, lw=1,
                label=f"{name} ({z['params'] / 1e3:.0f}k params)")
        a1.plot(C, [z["cooldown_final"][str(T)] for T in cfg.targets], "*--", ms=10, color=col, lw=1)
        for T, c_ in zip(cfg.targets, C):
            x, y = math.exp(z["cooldown_final"][str(T)]), math.exp(z["cosine_final"][str(T)])
            a2.plot(x, y, "o", color=col)
    lo_c = min(z["flops_per_step"] for _, z in sizes) * cfg.targets[0]
    hi_c = max(z["flops_per_step"] for _, z in sizes) * cfg.targets[-1]
    grid = np.geomspace(lo_c, hi_c, 50)
    for proto, ls in (("cosine", "-"), ("cooldown", "--")):
        fit = s["fit"][proto]
        if math.isfinite(fit["alpha"]):
            a1.plot(grid, fit["A"] * grid ** (-fit["alpha"]), ls, color=pcol[proto], lw=1.5, alpha=0.8,
                    label=f"{proto} fit: L ∝ C^(−{fit['alpha']:.3f})")
    for proto, marker_edge in (("cosine", pcol["cosine"]), ("cooldown", pcol["cooldown"])):
        key = "cosine_final" if proto == "cosine" else "cooldown_final"
        for run in s["fit"][proto]["frontier"]:
            name, T = run.split("@")
            z = s["sizes"][name]
            a1.plot([z["flops_per_step"] * int(T)], [z[key][T]], "o", ms=13, mfc="none", mec=marker_edge, mew=1.2)
    a1.plot([], [], "o", ms=10, mfc="none", mec="0.4", label="Pareto-optimal (fitted)")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.yaxis.set_major_formatter(ScalarFormatter())
    a1.yaxis.set_minor_formatter(ScalarFormatter())
    a1.xaxis.set_minor_formatter(NullFormatter())
    ticks = np.geomspace(lo_c, hi_c, 4)
    a1.set_xticks(ticks, [f"{t:.1e}".replace("e+", "e") for t in ticks])
    a1.set(xlabel="training FLOPs", ylabel=LOSS, title="Loss vs compute: ● cosine, ★ cooldown (first seed)")
    a1.legend(fontsize="x-small", ncol=2)
    pts = [math.exp(z[k][str(T)]) for _, z in sizes for k in ("cosine_final", "cooldown_final") for T in cfg.targets]
    lo, hi = min(pts), max(pts)
    a2.plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=1, label="diagonal")
    a2.fill_between([lo, hi], [lo * (1 - MATCH), hi * (1 - MATCH)], [lo * (1 + MATCH), hi * (1 + MATCH)],
                    color="0.9", zorder=0, label=f"±{MATCH:.0%} (the match test)")
    a2.set(xlabel="perplexity, constant + cooldown", ylabel="perplexity, cosine",
           title="One point per (size, T); above the diagonal: cooldown better")
    a2.legend(loc="upper left")
    fig.tight_layout()
    return fig


def savings_figure(res, cfg):
    """Fig. 13 analogue: FLOPs of the length sweep with cosines vs trunk + cooldowns."""
    sizes = sorted(res["sizes"].values(), key=lambda s: s["params"])
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    c = colors(3)
    x = range(len(sizes))
    T_max = cfg.targets[-1]
    cos = [s["flops_per_step"] * sum(len(h.steps) for h in s["cosine"].values()) for s in sizes]
    cd = [s["flops_per_step"] * (branch_point(T_max, cfg.cooldown_frac) +
                                 sum(len(h.steps) for h in s["cooldown"].values())) for s in sizes]
    ax.bar([i - 0.2 for i in x], cos, 0.4, color=c[0], label="one cosine per length")
    ax.bar([i + 0.2 for i in x], cd, 0.4, color=c[2], label="one trunk + cooldowns")
    for i in x:
        ax.text(i + 0.2, cd[i], f"{cd[i] / cos[i]:.2f}×", ha="center", va="bottom", fontsize="small")
    ax.set_xticks(list(x), [f"{s['params'] / 1e3:.0f}k" for s in sizes])
    ax.set(xlabel="model size (parameters)", ylabel="training FLOPs for the sweep",
           title=f"Compute for lengths {', '.join(map(str, cfg.targets))}")
    ax.legend()
    return fig
