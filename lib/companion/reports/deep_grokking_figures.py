"""Figures of the deep-grokking chapter (the book's convention: see `companion.plotting`).
Every seed is drawn: the first seed solid, the others thin."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from companion.plotting import WIDTH, colors, panels
from companion.reports.deep_grokking import DROP, PEN, late_median, series, value_at

TRAIN, TEST = colors(2)


def _style(run, first_seed):
    return dict(lw=1.6, alpha=1.0) if run["spec"]["seed"] == first_seed else dict(lw=0.8, alpha=0.55)


def _logged(run, key, layer=None):
    steps, vals = series(run, key, layer)
    return steps[steps > 0], vals[steps > 0]


def _accuracy(ax, runs, first_seed, log=True, legend=False):
    """Train (dotted) and test (solid) accuracy of runs, every seed."""
    for run in runs:
        get = _logged if log else series
        st = _style(run, first_seed)
        ax.plot(*get(run, "train_acc"), color=TRAIN, ls=":", **st, label="train" if legend else None)
        ax.plot(*get(run, "test_acc"), color=TEST, **st, label="test" if legend else None)
        legend = False
    ax.set(ylim=(0, 1.02), xscale="log" if log else "linear")


def _title(run):
    sp = run["spec"]
    return f"depth {sp['depth']}, N = {sp['n_train']}, α = {sp['alpha']:g}, γ = {sp['weight_decay']:g}"


def accuracy_figure(res, m):
    """Fig. 2 (top row) analogue: train and test accuracy vs step, one panel per depth."""
    depths = m["depths"]
    fig, axes = panels(len(depths), row_height=2.8, sharey=True)
    for ax, d in zip(axes, depths):
        runs = [r for r in res["sweep"].values() if r["spec"]["depth"] == d]
        _accuracy(ax, runs, m["seeds"][0], legend=ax is axes[0])
        ax.set(title=_title(runs[0]).split(", α")[0], xlabel="step (log)")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    return fig


def _groups(res):
    """The four runs the rank figure compares, each with all its seeds: (title, runs)."""
    out = [("grokking net", [r for r in res["sweep"].values() if r["spec"]["depth"] == min(
        x["spec"]["depth"] for x in res["sweep"].values())]), ("larger training set", list(res["data"].values())),
        ("control: small initialisation", list(res["alpha"].values())),
        ("control: too little weight decay", list(res["decay"].values()))]
    return [(t, runs) for t, runs in out if runs]


def rank_dd_figure(res, m, cfg):
    """The rank double descent, with the test accuracy on the same (linear) step axis and the
    controls beside: for each group, accuracy over the median effective rank of the last half
    of the hidden layers relative to its value at cfg.dense_from (seeds start at different
    ranks; their moves are what matters). The initial transient (before cfg.dense_from) is
    shaded and left out of the rank axis' range, so that the later moves are visible."""
    groups = _groups(res)
    rows = -(-len(groups) // 2)
    fig = plt.figure(figsize=(WIDTH, 3.3 * rows))
    subs = np.atleast_1d(fig.subfigures(rows, 2, wspace=0.02, hspace=0.04)).ravel()
    first = m["seeds"][0]
    named = {n: r for g in ("sweep", "data", "alpha", "decay") for n, r in res[g].items()}
    for k, (sub, (title, runs)) in enumerate(zip(subs, groups)):
        acc, rk = sub.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=[1, 1.4], hspace=0.08))
        _accuracy(acc, runs, first, log=False, legend=k == 0)
        sub.suptitle(f"{title}\n{_title(runs[0])}", fontsize=8)
        lo, hi = np.inf, -np.inf
        for run in runs:
            steps, med = late_median(run)
            rel = med / value_at(steps, med, cfg.dense_from)
            rk.plot(steps, rel, color=colors(3)[2], **_style(run, first))
            late = rel[steps >= cfg.dense_from]
            lo, hi = min(lo, late.min()), max(hi, late.max())
            if run["spec"]["seed"] != first:
                continue
            s = m["runs"][next(n for n, r in named.items() if r is run)]
            for t, mk in zip(s["rank_rise_fall"] or (), ("v", "^")):
                rk.plot(t, value_at(steps, rel, t), mk, color="k", ms=6, zorder=3)
            if s["t_fit"] is not None:
                for ax in (acc, rk):
                    ax.axvline(s["t_fit"], color="0.4", lw=0.8, ls="--")
        rk.axhspan(1 - DROP, 1 + DROP, color="0.93", zorder=0)  # the detector's 5% scale
        lo, hi = min(lo, 1 - DROP), max(hi, 1 + DROP)
        pad = 0.08 * (hi - lo)
        rk.set(ylim=(lo - pad, hi + pad), xlabel="step", xlim=(0, runs[0]["records"][-1]["step"]))
        rk.xaxis.set_major_locator(MaxNLocator(4))
        for ax in (acc, rk):
            ax.axvspan(0, cfg.dense_from, color="0.9", zorder=0)
        acc.set_ylabel("accuracy" if k % 2 == 0 else "")
        rk.set_ylabel("late-layer eff. rank\n/ its value at step " + f"{cfg.dense_from:,}" if k % 2 == 0 else "")
        if k == 0:
            acc.legend(loc="lower right", fontsize=7)
    for sub in subs[len(groups):]:
        sub.set_visible(False)
    return fig


def _layer_colour(layer, L):
    """One colour per Linear layer, the same in every panel (dark: first, light: output layer)."""
    return plt.get_cmap("viridis")(layer / max(L - 1, 1))


def _layer_lines(ax, run, key):
    L = len(run["records"][0][key])
    for layer in range(L - 1):  # the output layer (rank <= 10) is left out
        ax.plot(*_logged(run, key, layer), color=_layer_colour(layer, L), lw=1.2,
                label=f"layer {layer + 1}" if layer in (0, L - 2) else None)
    ax.set(xscale="log")


def _probe_lines(ax, run):
    recs = [r for r in run["records"] if "probe_acc" in r]
    if not recs:
        ax.text(0.5, 0.5, "no probes", ha="center", transform=ax.transAxes)
        return
    steps = np.array([max(r["step"], 1) for r in recs])
    L = len(recs[0]["probe_acc"])
    for layer in range(L):
        ax.plot(steps, [r["probe_acc"][layer] for r in recs], "o-", ms=3, color=_layer_colour(layer, L), lw=1,
                label="output layer" if layer == L - 1 else None)
    ax.set(xscale="log", ylim=(0, 1.02))


def layers_figure(res, m):
    """Fig. 1 analogue for the first seed of every depth: per-layer effective rank, accuracy and
    linear-probe accuracy vs step."""
    runs = [r for r in res["sweep"].values() if r["spec"]["seed"] == m["seeds"][0]]
    fig, axes = plt.subplots(3, len(runs), figsize=(WIDTH, 6.6), sharex="col", squeeze=False)
    for j, run in enumerate(runs):
        s = m["runs"][next(n for n, r in res["sweep"].items() if r is run)]
        _layer_lines(axes[0][j], run, "erank")
        _accuracy(axes[1][j], [run], run["spec"]["seed"], legend=j == 0)
        _probe_lines(axes[2][j], run)
        for ax in axes[:, j]:
            if s["t_fit"] is not None:
                ax.axvline(s["t_fit"], color="0.4", lw=0.8, ls="--")
        axes[0][j].set_title(_title(run).split(", α")[0], fontsize=9)
        axes[2][j].set_xlabel("step (log)")
    axes[0][0].set_ylabel("effective rank")
    axes[1][0].set_ylabel("accuracy")
    axes[2][0].set_ylabel("probe accuracy")
    axes[0][0].legend(loc="lower left", fontsize=7)
    axes[1][0].legend(loc="upper left", fontsize=7)
    axes[2][0].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def norm_rank_figure(res, m):
    """Fig. 5 analogue: the grokking net and its larger-N twin, every seed: accuracy, the norm
    of all parameters relative to its initial value, and the second-to-last layer's effective
    rank vs step."""
    groups = [("N = " + str(runs[0]["spec"]["n_train"]), runs) for _, runs in _groups(res)[:2]]
    fig, axes = panels(3, ncols=3, row_height=2.6)
    c = colors(4)[2:]
    first = m["seeds"][0]
    for (label, runs), col in zip(groups, c):
        for run in runs:
            st = _style(run, first)
            steps, norm = _logged(run, "norm")
            axes[0].plot(*_logged(run, "test_acc"), color=col, **st, label=label if run["spec"]["seed"] == first
                         else None)
            axes[1].plot(steps, norm / run["records"][0]["norm"], color=col, **st)
            axes[2].plot(*_logged(run, "erank", PEN), color=col, **st)
    axes[0].set(ylabel="test accuracy", ylim=(0, 1.02))
    axes[1].set(ylabel="‖θ‖ / ‖θ₀‖")
    axes[2].set(ylabel="eff. rank, 2nd-to-last layer")
    for ax in axes:
        ax.set(xscale="log", xlabel="step (log)")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


def tunnel_figure(res, m, cfg):
    """Figs. 3-4 analogue at a matched phase, each net at its own t_fit: the numerical rank of
    every layer (first seed), and the tunnel length against the threshold (every seed)."""
    depths = m["depths"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    c = colors(len(depths))
    fracs = [float(f) for f in cfg.tunnel_fracs]
    for k, d in enumerate(depths):
        for n, run in res["sweep"].items():
            s = m["runs"][n]
            if run["spec"]["depth"] != d or s["t_fit"] is None:
                continue
            first = run["spec"]["seed"] == m["seeds"][0]
            if first:
                rec = next(r for r in run["records"] if r["step"] == s["t_fit"])
                ax.plot(range(1, len(rec["rank"]) + 1), rec["rank"], "o-", color=c[k], ms=3, label=f"depth {d}")
            bx.plot(fracs, [s["tunnel_at_fit"][f"{f:g}"] for f in fracs], "o-" if first else "o:", color=c[k],
                    ms=3, lw=1.2 if first else 0.8, label=f"depth {d}" if first else None)
    for f in fracs:
        ax.axhline(f * cfg.width, color="0.6", lw=0.6, ls="--")
    ax.axhline(cfg.tunnel_frac * cfg.width, color="0.3", lw=1.0)  # the headline threshold
    bx.axvline(cfg.tunnel_frac, color="0.3", lw=1.0)
    ax.set(xlabel="layer", ylabel=f"numerical rank ({cfg.dtype})", ylim=(0, cfg.width * 1.05))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower left", fontsize=7)
    bx.set(xlabel="threshold (× width)", ylabel="tunnel length (layers)")
    bx.yaxis.set_major_locator(MaxNLocator(integer=True))
    bx.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


def regime_figure(res, m):
    """Figs. 6-7 analogue: accuracy and the median late-layer effective rank per weight decay."""
    names = list(res["regime"])
    fig, axes = plt.subplots(2, len(names), figsize=(WIDTH, 4.6), sharex=True, squeeze=False)
    for j, n in enumerate(names):
        run = res["regime"][n]
        _accuracy(axes[0][j], [run], run["spec"]["seed"], legend=j == 0)
        steps, med = late_median(run)
        axes[1][j].plot(steps[steps > 0], med[steps > 0], color=colors(3)[2])
        axes[1][j].set(xscale="log", xlabel="step (log)")
        axes[0][j].set_title(f"γ = {run['spec']['weight_decay']:g}")
    axes[0][0].set_ylabel("accuracy")
    axes[1][0].set_ylabel("median eff. rank,\nlate layers")
    axes[0][0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


RULES = (("rank_dd_depth_from_0", "fall-rise-fall from step 0"),
         ("rank_dd_depth_from_t0_any", "… after the transient"),
         ("rank_dd_depth", "… from a maximum after it (claim)"), ("rank_rise_fall_depth", "rise-then-fall only"))
GROUPS = (("main", "grokking net"), ("data", "larger N"), ("alpha", "small init."), ("decay", "small decay"))


def dd_rules_figure(m):
    """How pronounced the rank double descent is under each detection rule, for every group of
    runs: bars at the mean over seeds, one dot per seed."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.9))
    c = colors(len(RULES))
    groups = [(g, label) for g, label in GROUPS if all(s[g] for s in m["per_seed"])]
    w = 0.8 / len(RULES)
    for k, (key, label) in enumerate(RULES):
        for j, (g, _) in enumerate(groups):
            vals = [100 * s[g][key] for s in m["per_seed"]]
            x = j + (k - (len(RULES) - 1) / 2) * w
            ax.bar(x, np.mean(vals), w * 0.92, color=c[k], label=label if j == 0 else None)
            ax.plot([x] * len(vals), vals, "o", color="k", ms=2.5)
    ax.axhline(100 * DROP, color="0.4", lw=0.8, ls="--")
    ax.set_xticks(range(len(groups)), [label for _, label in groups])
    ax.set(ylabel="depth (%)")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig
