"""Figures of the deep-grokking chapter (the book's convention: see `companion.plotting`)."""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from companion.plotting import colors, panels
from companion.reports.deep_grokking import PEN, value_at, late_median, logged, series


def _label(s: dict) -> str:
    return f"depth {s['depth']}, N = {s['n_train']}, γ = {s['weight_decay']:g}"


def _mark(ax, s):
    for t, ls in ((s["t_fit"], ":"), (s["t_gen"], "--")):
        if t is not None and t > 0:
            ax.axvline(t, color="0.5", lw=0.8, ls=ls)


def _acc(ax, run, s, color=None, legend=True):
    steps, train = logged(run, "train_acc")
    _, test = logged(run, "test_acc")
    c = colors(2)
    ax.plot(steps, train, color=color or c[0], label="train")
    ax.plot(steps, test, color=color or c[1], ls="--" if color else "-", label="test")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="step")
    _mark(ax, s)
    if legend:
        ax.legend(loc="upper left")


def accuracy_figure(res, m):
    """Fig. 2 (top row) analogue: train and test accuracy vs step, one panel per depth."""
    names = list(res["depth"])
    fig, axes = panels(len(names), row_height=2.8, sharey=True)
    for ax, n in zip(axes, names):
        _acc(ax, res["depth"][n], m["runs"][n], legend=ax is axes[0])
        ax.set_title(_label(m["runs"][n]))
    for ax in axes[::2]:
        ax.set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def _layer_lines(ax, run, key, cmap="viridis"):
    L = len(run["records"][0][key])
    cm = plt.get_cmap(cmap)
    for layer in range(L - 1):  # the output layer (rank <= 10) is left out
        ax.plot(*logged(run, key, layer), color=cm(layer / max(L - 2, 1)), lw=1.2,
                label=f"layer {layer + 1}" if layer in (0, L - 2) else None)
    ax.set(xscale="log", xlabel="step")


def rank_figure(res, m, names):
    """Fig. 1 analogue: per-layer effective and numerical rank, accuracy and linear-probe
    accuracy vs step, one column per run."""
    runs = {n: r for g in res.values() for n, r in g.items()}
    fig, axes = plt.subplots(4, len(names), figsize=(3.4 * len(names), 9.0), sharex="col", squeeze=False)
    for j, n in enumerate(names):
        run, s = runs[n], m["runs"][n]
        _layer_lines(axes[0][j], run, "erank")
        _layer_lines(axes[1][j], run, "rank")
        _acc(axes[2][j], run, s, legend=j == 0)
        _probe_lines(axes[3][j], run)
        for ax in axes[:, j]:
            _mark(ax, s)
        axes[0][j].set_title(_label(s))
    axes[0][0].set_ylabel("effective rank")
    axes[1][0].set_ylabel("numerical rank")
    axes[2][0].set_ylabel("accuracy")
    axes[3][0].set_ylabel("linear-probe accuracy")
    axes[0][0].legend(loc="lower left")
    fig.tight_layout()
    return fig


def _probe_lines(ax, run):
    recs = [r for r in run["records"] if "probe_acc" in r]
    if not recs:
        ax.text(0.5, 0.5, "no probes", ha="center", transform=ax.transAxes)
        return
    steps = np.array([max(r["step"], 1) for r in recs])
    L = len(recs[0]["probe_acc"])
    cm = plt.get_cmap("viridis")
    for layer in range(L):
        ax.plot(steps, [r["probe_acc"][layer] for r in recs], "o-", ms=3, color=cm(layer / max(L - 1, 1)), lw=1)
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="step")


def tunnel_figure(res, m, cfg):
    """Figs. 3-4 analogue: final numerical rank per layer for each depth, the threshold, and
    the tunnel length."""
    names = list(res["depth"])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(7.5, 3.0), gridspec_kw=dict(width_ratios=[2.2, 1]))
    c = colors(len(names))
    for k, n in enumerate(names):
        ranks = m["runs"][n]["final_rank"]
        ax.plot(range(1, len(ranks) + 1), ranks, "o-", color=c[k], ms=3, label=f"depth {m['runs'][n]['depth']}")
    ax.axhline(cfg.tunnel_frac * cfg.width, color="0.4", ls="--", lw=1)
    ax.text(1, cfg.tunnel_frac * cfg.width, f" threshold {cfg.tunnel_frac:g} × width", va="bottom", fontsize=8)
    ax.set(xlabel="layer (Linear output)", ylabel=f"numerical rank ({cfg.dtype})", ylim=(0, cfg.width * 1.05))
    ax.legend(loc="lower left")
    depths = [m["runs"][n]["depth"] for n in names]
    bx.bar([str(d) for d in depths], [m["runs"][n]["tunnel_length"] for n in names], color=c)
    bx.set(xlabel="depth", ylabel="tunnel length (layers)")
    bx.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def norm_rank_figure(res, m, names):
    """Fig. 5 analogue: accuracy, weight norm (all parameters and last layer) and the
    second-to-last layer's effective rank vs step, transition steps marked."""
    runs = {n: r for g in res.values() for n, r in g.items()}
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 5.2), sharex=True)
    c = colors(len(names))
    for k, n in enumerate(names):
        run, s = runs[n], m["runs"][n]
        steps, norm = logged(run, "norm")
        axes[0][0].plot(*logged(run, "test_acc"), color=c[k])
        axes[0][0].plot(*logged(run, "train_acc"), color=c[k], ls=":", lw=1)
        axes[0][1].plot(steps, norm / s["norm"]["start"], color=c[k])
        axes[1][0].plot(*logged(run, "last_norm"), color=c[k])
        axes[1][1].plot(*logged(run, "erank", PEN), color=c[k], label=_label(s))
        for ax in axes.flat:
            if s["t_gen"] is not None:
                ax.axvline(s["t_gen"], color=c[k], lw=0.8, ls="--")
    axes[0][0].set(ylabel="test (solid) / train (dotted) acc.", ylim=(0, 1.02))
    axes[0][1].set(ylabel="‖θ‖ / ‖θ₀‖ (all parameters)")
    axes[1][0].set(ylabel="‖θ‖ of the last layer")
    axes[1][1].set(ylabel="effective rank, 2nd-to-last layer")
    for ax in axes.flat:
        ax.set_xscale("log")
    for ax in axes[1]:
        ax.set_xlabel("step")
    axes[1][1].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    return fig


def regime_figure(res, m):
    """Figs. 6-7 analogue: accuracy and the median late-layer effective rank per weight decay."""
    names = list(res["regime"])
    fig, axes = plt.subplots(2, len(names), figsize=(3.0 * len(names), 5.0), sharex=True, squeeze=False)
    for j, n in enumerate(names):
        run, s = res["regime"][n], m["runs"][n]
        _acc(axes[0][j], run, s, legend=j == 0)
        steps, med = late_median(run)
        axes[1][j].plot(steps[steps > 0], med[steps > 0], color=colors(3)[2])
        axes[1][j].set(xscale="log", xlabel="step")
        _mark(axes[1][j], s)
        axes[0][j].set_title(f"γ = {s['weight_decay']:g}")
    axes[0][0].set_ylabel("accuracy")
    axes[1][0].set_ylabel("median effective rank,\nlast half of the layers")
    fig.tight_layout()
    return fig


def stage_figure(res, m):
    """Fig. 1c analogue for the two-stage run: accuracy, the median late-layer effective rank
    with its turning points, and every hidden layer's effective rank."""
    name = m["stage_run"]
    run, s = res["stage"][name], m["runs"][name]
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 7.0), sharex=True)
    _acc(axes[0], run, s)
    axes[0].set(ylabel="accuracy", title=_label(s))
    steps, med = late_median(run)
    axes[1].plot(steps[steps > 0], med[steps > 0], color=colors(3)[2])
    axes[1].set(xscale="log", ylabel="median effective rank,\nlast half of the layers")
    if s["rank_double_descent"]:
        for t, mk in zip(s["rank_double_descent"], ("v", "^")):
            axes[1].plot(max(t, 1), value_at(steps, med, t), mk, color="k", ms=7)
    _layer_lines(axes[2], run, "erank")
    axes[2].set(ylabel="effective rank per layer")
    axes[2].legend(loc="lower left")
    for ax in axes:
        _mark(ax, s)
        if s["two_stage"]:
            ax.axvspan(*s["two_stage"], color="0.85", zorder=0)
    fig.tight_layout()
    return fig


def trajectory_figure(res, m, names):
    """Fig. 5 read the other way: each run's path in the (weight norm, rank) plane, coloured by
    its test accuracy. A horizontal stretch means the norm moves while the rank does not."""
    runs = {n: r for g in res.values() for n, r in g.items()}
    rows = math.ceil(len(names) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(7.0, 3.0 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, n in zip(axes.flat, names):
        run, s = runs[n], m["runs"][n]
        _, norm = series(run, "norm")
        _, rank = series(run, "erank", PEN)
        _, test = series(run, "test_acc")
        ax.plot(norm / norm[0], rank, color="0.75", lw=1, zorder=1)
        sc = ax.scatter(norm / norm[0], rank, c=test, cmap="viridis", vmin=0, vmax=1, s=14, zorder=2)
        steps = series(run, "norm")[0]
        for t, mk, lab in ((s["t_fit"], "s", "t_fit"), (s["t_gen"], "D", "t_gen")):
            if t is not None:
                ax.plot(value_at(steps, norm, t) / norm[0], value_at(steps, rank, t), mk, mfc="none", mec="k", ms=8,
                        label=lab)
        ax.set(xlabel="‖θ‖ / ‖θ₀‖", title=_label(s))
        ax.invert_xaxis()  # training runs from right (large norm) to left
    for row in axes:
        row[0].set_ylabel("effective rank,\n2nd-to-last layer")
    axes[0][0].legend(loc="lower left")
    fig.tight_layout()
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="test accuracy", fraction=0.03)
    return fig
