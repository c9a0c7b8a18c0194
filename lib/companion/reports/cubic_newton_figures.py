"""Figures of the cubic-newton chapter (the book's convention: see `companion.plotting`)."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from companion.plotting import WIDTH, colors, panels

ORDER = ("CN", "SCN", "SCNM", "SCNM-corrected", "SGD", "SGD-momentum")


def _colors():
    """One colour per method, the same in every figure."""
    return dict(zip(ORDER, colors(len(ORDER))))


STYLE = {"SCNM-corrected": "--", "SGD-momentum": ":"}  # told apart from their neighbours' hues


def _band(ax, x, runs, color, label, key="gnorm"):
    """Median over seeds as a line, min-max over seeds as a band (log scale friendly)."""
    y = np.array([r[key] for r in runs], dtype=float)
    if key == "gnorm":
        y = np.maximum(y, 1e-17)
    ax.plot(x, np.median(y, 0), color=color, lw=1.3, label=label, ls=STYLE.get(label, "-"))
    if len(runs) > 1:
        ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.18, lw=0)


def curves_figure(res, cfg):
    """||grad f|| (full) at batch 1 against iterations (left) and sample functions (right); the
    axis stops at 1e-3, where deterministic CN (at 1e-16 after ~80 steps) leaves it, and the
    right panel at 10x the stochastic methods' samples (CN's full passes run further)."""
    fig, (a, b) = panels(2, sharey=True)
    c = _colors()
    for name in ORDER:
        runs = res["curves"][name]
        _band(a, runs[0]["t"], runs, c[name], name)
        _band(b, np.maximum(runs[0]["samples"], 1), runs, c[name], name)
    a.set(yscale="log", xlabel="iteration", ylabel="‖∇f(x_t)‖ (full gradient)", ylim=(1e-3, None))
    most = max(res["curves"][n][0]["samples"][-1] for n in ORDER if n != "CN")
    b.set(xscale="log", xlabel="sample functions evaluated", xlim=(1, 10 * most))
    a.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    return fig


def _floor_figure(xs, floors, xlabel):
    """SCN's and SCNM's floor (mean and sd over seeds) against one swept setting; floors(x, name)."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.0))
    c = _colors()
    for name in ("SCN", "SCNM"):
        v = np.array([floors(x, name) for x in xs])
        ax.errorbar(xs, v.mean(1), yerr=v.std(1), marker="o", capsize=3, color=c[name], label=name)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="floor of ‖∇f‖")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())  # log minor labels overlap the swept values
    lo, hi = ax.get_ylim()
    ticks = [v * 10.0 ** e for e in range(-6, 4) for v in (1, 2, 3, 5) if lo <= v * 10.0 ** e <= hi]
    ax.set_yticks(ticks, [f"{v:g}" for v in ticks])
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def batch_figure(res, cfg):
    """The floor (median ||grad f|| over the last 10% of the run) against the batch size."""
    return _floor_figure(list(cfg.batches), lambda b, name: res["batches"][b][name],
                         "batch size b (gradient and Hessian)")


def noise_figure(res, cfg):
    """The floor against the injected noise level sigma, batch 1."""
    return _floor_figure(list(cfg.sigmas), lambda s, name: res["noise"][s][name],
                         "injected noise σ (gradient and Hessian)")


def nonconvexity_figure(res, cfg):
    """The floor against the weight lambda of the non-convex term, batch 1; the grey region
    (lambda <= 2 mu) is where the whole objective is convex."""
    lams = list(cfg.lams)
    fig = _floor_figure(lams, lambda lam, name: res["nonconvexity"][lam][name], "weight λ of the non-convex term")
    ax, lo = fig.axes[0], min(lams) / 1.5
    if 2 * cfg.mu > lo:
        ax.axvspan(lo, 2 * cfg.mu, color="0.88", lw=0, zorder=0, label="convex (λ ≤ 2μ)")
    ax.set_xlim(lo, max(lams) * 1.5)
    ax.legend(fontsize="small")
    return fig


def lam_min_figure(res, cfg):
    """lambda_min of the full Hessian along the batch-1 runs (second-order stationarity)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    c = _colors()
    for name in ("CN", "SCN", "SCNM", "SGD"):
        runs = res["curves"][name]
        _band(ax, runs[0]["t"], runs, c[name], name, key="lam_min")
    ax.axhline(0, color="0.4", lw=0.7)
    ax.set(xlabel="iteration", ylabel="λ_min(∇²f(x_t))")
    ax.legend(fontsize="x-small", ncol=4)
    fig.tight_layout()
    return fig


def _gnorm_figure(runs_by_name: dict, ylabel: str):
    """||grad f|| at batch 1 of CN, SCN and SCNM on one problem, seed bands."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    c = _colors()
    for name in ("CN", "SCN", "SCNM"):
        runs = runs_by_name[name]
        _band(ax, runs[0]["t"], runs, c[name], name)
    ax.set(yscale="log", xlabel="iteration", ylabel=ylabel, ylim=(1e-3, None))
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def convex_figure(res, cfg):
    """The convex control (no non-convex term): ||grad f|| at batch 1."""
    return _gnorm_figure(res["convex"], "‖∇f(x_t)‖ (convex problem)")


def mnist_figure(res, cfg):
    """The batch-1 comparison on the pooled MNIST binary task."""
    return _gnorm_figure(res["mnist"], "‖∇f(x_t)‖ (MNIST, digit < 5)")


def sensitivity_figure(res, cfg):
    """floor(SCNM) / floor(SCN) over (alpha, M), mean over seeds; below 1 (blue) momentum helps."""
    alphas, Ms = list(cfg.sweep_alphas), list(cfg.sweep_Ms)
    ratio = np.array([[np.mean(res["sweep"][(a, M)]) / np.mean(res["sweep"][("SCN", M)]) for M in Ms]
                      for a in alphas])
    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 3.2))
    im = ax.imshow(np.log2(ratio), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    for i in range(len(alphas)):
        for j in range(len(Ms)):
            ax.text(j, i, f"{ratio[i, j]:.2f}", ha="center", va="center", fontsize="small")
    ax.set_xticks(range(len(Ms)), [f"{M:g}" for M in Ms])
    ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set(xlabel="cubic regularisation M", ylabel="SCNM α")
    ax.grid(False)
    cb = fig.colorbar(im, ax=ax, ticks=[-2, -1, 0, 1, 2])
    cb.ax.set_yticklabels(["¼", "½", "1", "2", "4"])
    cb.set_label("floor ratio SCNM / SCN", fontsize="small")
    fig.tight_layout()
    return fig


