"""Figures of the fo-maml chapter (the book's convention: see `companion.plotting`)."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from companion.plotting import WIDTH, colors, panels
from companion.reports.fo_maml import envelope, linear_fit

ORDER = ("MAML", "FO-MAML", "Reptile-1", "Reptile-5", "HF-MAML", "FO-B-MAML-fwd", "FO-B-MAML-sym")
STYLE = {"MAML": (0, (4, 2)), "HF-MAML": ":"}  # lines that lie on another method's line stay visible


def _colors():
    """MAML (the exact reference) near-black; the six others from the book's palette."""
    return {"MAML": "0.15", **dict(zip(ORDER[1:], colors(len(ORDER) - 1)))}


def _band(ax, x, ys, color, label, ls="-"):
    """Median over seeds as a line, min-max over seeds as a band."""
    y = np.maximum(np.array(ys, dtype=float), 1e-17)
    ax.plot(x, np.median(y, 0), color=color, lw=1.3, label=label, ls=ls, zorder=3 if label == "MAML" else 2)
    if len(ys) > 1:
        ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.18, lw=0)


def errors_figure(res, cfg):
    """Relative error of each estimator against delta (log-log), median over points and seeds,
    band over seeds; the biased estimators, which have no delta, as horizontal lines."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 3.3))
    c = _colors()
    deltas = np.array(cfg.deltas)
    seeds = sorted({p["seed"] for p in res["errors"]})
    for name in ("HF-MAML", "FO-B-MAML-fwd", "FO-B-MAML-sym"):
        ys = [np.median([p["by_delta"][name] for p in res["errors"] if p["seed"] == s], 0) for s in seeds]
        _band(ax, deltas, ys, c[name], name, STYLE.get(name, "-"))
    for name in ("FO-MAML", "Reptile-1", "Reptile-5"):
        v = np.median([p["flat"][name] for p in res["errors"]])
        ax.axhline(v, color=c[name], lw=1.2, ls="--", label=f"{name} (no δ)")
    ax.set(xscale="log", yscale="log", xlabel="finite-difference δ", ylabel="‖ĝ − ∇F‖ / ‖∇F‖")
    ax.set_xticks(deltas, [f"{d:g}" for d in deltas])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize="x-small", ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def curves_figure(res, cfg):
    """Exact ||grad F|| against outer steps: full batch (left), task sampling (right)."""
    fig, (a, b) = panels(2)
    c = _colors()
    for ax, study in ((a, "full"), (b, "stochastic")):
        for name in ORDER:
            if name in res[study]:
                runs = res[study][name]
                _band(ax, runs[0]["t"], [r["gnorm"] for r in runs], c[name], name, STYLE.get(name, "-"))
        ax.set(yscale="log", xlabel="outer step")
    a.set(ylabel="‖∇F(x_t)‖ (exact)", ylim=(1e-16, None), title="full batch")
    b.set(title=f"{cfg.task_batch} of {cfg.T} tasks per step")
    a.legend(fontsize="x-small", ncol=2)
    b.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def smoothness_figure(res, cfg):
    """||grad^2 F|| against ||grad F|| over the scan (all seeds), with the per-radius envelope of
    the first seed and its linear fit, per task family."""
    names = {"quadratic": "quadratic (control)", "scan": "sine terms", "quartic": "quartic outer loss"}
    fig, axes = panels(3, ncols=3, row_height=2.8)
    for ax, (kind, label), col in zip(axes, names.items(), colors(3)):
        pts = res["smoothness"][kind]
        ax.scatter([p["gnorm"] for p in pts], [p["hnorm"] for p in pts], s=6, color=col, alpha=0.5)
        env = envelope(pts, cfg.seed)
        L0, L1, r2 = linear_fit(env)
        g = np.array([e[0] for e in env])
        fit = "constant" if abs(L1) < 1e-12 else f"linear fit (seed {cfg.seed}), R² = {r2:.2f}"
        ax.plot(g, L0 + L1 * g, color="0.2", lw=1, marker="o", ms=3, label=fit)
        ax.set(xscale="log", xlabel="‖∇F(x)‖", title=label, ylim=(0, 1.25 * max(p["hnorm"] for p in pts)))
        ax.legend(fontsize="x-small", loc="upper left", handlelength=1)
    axes[0].set_ylabel("‖∇²F(x)‖ (spectral)")
    fig.tight_layout()
    return fig


def far_figure(res, cfg):
    """Exact ||grad F|| from a far start on the quartic family: plain, clipped and normalized steps."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 3.0))
    for (name, runs), col in zip(res["far"]["runs"].items(), colors(3)):
        for i, r in enumerate(runs):
            g = np.array(r["gnorm"], dtype=float)
            ok = np.isfinite(g)
            ax.plot(np.array(r["t"])[ok], np.maximum(g[ok], 1e-17), color=col, lw=1.1, label=name if i == 0 else None)
            if not ok.all():
                ax.plot(r["t"][int(ok.sum()) - 1], g[ok][-1], marker="x", color=col, ms=7)
    ax.set(yscale="log", xlabel="outer step", ylabel="‖∇F(x_t)‖ (exact)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def bias_figure(res, cfg):
    """Final exact ||grad F|| of full-batch FO-B-MAML against delta (log-log), mean and sd over seeds."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.0))
    c = _colors()
    deltas = list(cfg.deltas)
    for name in ("FO-B-MAML-fwd", "FO-B-MAML-sym"):
        v = np.array([res["bias_vs_delta"][name][dl] for dl in deltas])
        ax.errorbar(deltas, v.mean(1), yerr=v.std(1), marker="o", capsize=3, color=c[name], label=name)
    ax.set(xscale="log", yscale="log", xlabel="finite-difference δ", ylabel="final ‖∇F‖ (full batch)")
    ax.set_xticks(deltas, [f"{d:g}" for d in deltas])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def control_figure(res, cfg):
    """Exact ||grad F|| on the control family (every task minimised at the same point)."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.0))
    c = _colors()
    for name, runs in res["control"].items():
        _band(ax, runs[0]["t"], [r["gnorm"] for r in runs], c[name], name, STYLE.get(name, "-"))
    ax.set(yscale="log", xlabel="outer step", ylabel="‖∇F(x_t)‖ (exact)", ylim=(1e-17, None))
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def mnist_figure(res, cfg):
    """Meta-test accuracy on MNIST-1D against meta-iterations, ReLU network (left) and GELU network
    (right): median over seeds, band min-max; the untrained initialisation (adapted the same way)
    dashed, chance dotted."""
    fig, axes = panels(2)
    c = _colors()
    for ax, study, title in zip(axes, ("mnist", "mnist_smooth"), ("ReLU CNN", "GELU CNN")):
        for name, runs in res[study]["runs"].items():
            _band(ax, runs[0]["t"], [r["accuracy"] for r in runs], c[name], name, STYLE.get(name, "-"))
        ax.axhline(np.mean(res[study]["init"]), color="0.5", lw=1, ls="--", label="untrained start")
        ax.axhline(1 / cfg.n_way, color="0.5", lw=0.8, ls=":", label="chance")
        ax.set(xlabel="meta-iteration", ylim=(0, 1), title=title)
    axes[0].set_ylabel("meta-test accuracy")
    axes[0].legend(fontsize="x-small", loc="upper left")
    fig.tight_layout()
    return fig


def network_errors_figure(res, cfg):
    """Relative error of FO-B-MAML-sym's meta-gradient against MAML's on the CNN at its
    initialisation, against delta (log-log), ReLU and GELU networks: median over task batches and
    seeds, band min-max over seeds' medians; FO-MAML's error (no delta) as horizontal lines."""
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 3.2))
    deltas = np.array(cfg.mnist_deltas)
    for (act, pts), col in zip(res["mnist_errors"].items(), colors(2)):
        seeds = sorted({p["seed"] for p in pts})
        ys = [np.median([p["by_delta"] for p in pts if p["seed"] == s], 0) for s in seeds]
        _band(ax, deltas, ys, col, f"FO-B-MAML-sym, {'ReLU' if act == 'relu' else 'GELU'}")
        ax.axhline(np.median([p["FO-MAML"] for p in pts]), color=col, lw=1.1, ls="--",
                   label=f"FO-MAML, {'ReLU' if act == 'relu' else 'GELU'}")
    ax.set(xscale="log", yscale="log", xlabel="finite-difference δ", ylabel="‖ĝ − ∇F‖ / ‖∇F‖ (CNN, float32)")
    ax.legend(fontsize="x-small", loc="lower left")
    fig.tight_layout()
    return fig


def memory_figure(res, cfg):
    """Peak tensor memory of one meta-gradient (MiB) against the CNN's channels (left, log-log, one
    inner step) and against the inner steps (right, linear memory axis; FO-B-MAML: fixed-point
    iterations K)."""
    fig, (a, b) = panels(2)
    c = {**_colors(), "Reptile": _colors()["Reptile-5"]}  # the colour of the MNIST-1D figure's Reptile
    for ax, axis, xs in ((a, "channels", cfg.memory_channels), (b, "steps", cfg.memory_steps)):
        for name, v in res["memory"][axis].items():
            ax.plot(xs, np.array(v) / 2**20, marker="o", ms=3.5, color=c[name], lw=1.3, label=name,
                    ls=STYLE.get(name, "-"))
        ax.set(xscale="log", yscale="log" if axis == "channels" else "linear")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
    a.set(xlabel="CNN channels", ylabel="peak tensor memory (MiB)", title=f"one inner step (FO-B-MAML: K = {cfg.mnist_K})")
    b.set(xlabel="inner steps (FO-B-MAML: K)", title=f"{cfg.memory_width} channels", ylim=(0, None))
    a.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
