"""Figures of the cobo chapter (the book's convention: see `companion.plotting`)."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from companion.experiments.cobo import Config
from companion.plotting import colors, panels
from companion.reports.cobo import COLORS, LABELS, RECOVERED, run_frame


def quadratic_figure(res: dict, cfg: Config):
    """(a) The inner problem in 2-D: for f_i = ½||x − μ_i||², <∇f_i(z), ∇f_j(z)> < 0 exactly inside
    the disc with diameter [μ_i, μ_j], so w* = 0 there and 1 outside. (b) CoBo's weights over the
    rounds of the quadratic example. (c) Distance of every client to its cluster's optimum."""
    q = res["quadratic"]
    fig, (a, b, c) = panels(3, row_height=3.2)
    g = np.linspace(-2.2, 2.2, 301)
    X, Y = np.meshgrid(g, g)
    mi, mj = np.array([-1.0, 0.0]), np.array([1.0, 0.0])
    inner = (X - mi[0]) * (X - mj[0]) + (Y - mi[1]) * (Y - mj[1])
    a.contourf(X, Y, inner < 0, levels=[-0.5, 0.5, 1.5], colors=["#ffffff", "#f4c7a8"])
    a.contour(X, Y, inner, levels=[0], colors="0.3", linewidths=0.8)
    a.plot(*zip(mi, mj), "ko", ms=4)
    a.annotate("μᵢ", mi, xytext=(-14, 6), textcoords="offset points")
    a.annotate("μⱼ", mj, xytext=(4, 6), textcoords="offset points")
    a.text(0, -0.25, "w* = 0", ha="center", fontsize="small")
    a.text(0, 1.5, "w* = 1", ha="center", fontsize="small")
    a.set(aspect="equal", xticks=[], yticks=[], title="(a) the inner problem at z = (xᵢ + xⱼ)/2")
    cob = q["cobo"]
    same = (cob["cluster"][:, None] == cob["cluster"][None, :]).numpy()
    iu = np.triu_indices(len(same), 1)
    W = cob["W"].numpy()[:, iu[0], iu[1]]
    col = colors(2)
    for k in range(W.shape[1]):
        s = same[iu[0][k], iu[1][k]]
        b.plot(W[:, k], color=col[0] if s else col[1], lw=0.7, alpha=0.7,
               label=("same cluster" if s else "different clusters"))
    h, lab = b.get_legend_handles_labels()
    b.legend([h[lab.index(x)] for x in dict.fromkeys(lab)], list(dict.fromkeys(lab)), fontsize="x-small")
    b.set(xlabel="round", ylabel="wᵢⱼ", title="(b) CoBo's weights", ylim=(-0.05, 1.05))
    for m in ("local", "fedavg", "oracle", "cobo"):
        c.plot(q[m]["dist"].max(1).values.numpy(), color=COLORS[m], label=LABELS[m])
    c.set(yscale="log", xlabel="round", ylabel="max over clients of ‖xᵢ − μₖ₍ᵢ₎‖", title="(c) distance to the optimum")
    c.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _curves(rows, method):
    h = [pd.DataFrame(r["result"]["history"]).set_index("t").acc for r in rows if r["method"] == method]
    return pd.concat(h, axis=1).mean(1) * 100


def accuracy_figure(rows: list, title: str = ""):
    """Mean test accuracy over clients vs round, per method (mean over seeds)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    methods = [m for m in LABELS if any(r["method"] == m for r in rows)]
    for m in methods:
        ax.plot(_curves(rows, m), color=COLORS[m], lw=1.8 if m == "cobo" else 1.1, label=LABELS[m],
                ls="--" if m == "oracle" else "-")
    ax.set(xlabel="round", ylabel="mean test accuracy (%)", title=title)
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def weights_figure(rows: list, cfg: Config):
    """CoBo's W (diagonal masked) at the snapshot rounds of the first seed, beside the oracle."""
    r = next(r for r in rows if r["method"] == "cobo")
    snaps = r["result"]["snapshots"]
    ts = sorted(snaps)
    fig, axes = panels(len(ts) + 1, ncols=3, row_height=2.3)
    n = len(r["result"]["same"])
    for ax, t in zip(axes, ts):
        W = snaps[t].clone().float()
        W.fill_diagonal_(float("nan"))
        ax.imshow(W.numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set(title=f"round {t}", xticks=[], yticks=[])
    O = r["result"]["same"].float()
    O.fill_diagonal_(float("nan"))
    im = axes[-1].imshow(O.numpy(), vmin=0, vmax=1, cmap="viridis")
    axes[-1].set(title="oracle", xticks=[], yticks=[])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="wᵢⱼ")
    fig.suptitle(f"{n} clients in {len(r['sizes'])} clusters (seed {r['seed']})", fontsize="small")
    return fig


def sweep_figure(res: dict, cfg: Config):
    """Fig. 2a analogue: final mean accuracy vs data per client, number of clusters (2 clients
    each) and clients per cluster (4 clusters), per method."""
    fig, axes = panels(3, row_height=3.0)
    specs = (("sweep_data", "per_client", "training points per client"),
             ("sweep_clusters", "clusters", "clusters (2 clients each)"),
             ("sweep_clients", "clients", "clients per cluster (4 clusters)"))
    methods = [m for m in LABELS if m in cfg.sweep_methods]
    for ax, (group, x, label) in zip(axes, specs):
        f = run_frame(res[group]).groupby(["method", x]).acc.mean()
        for m in methods:
            s = f[m]
            ax.plot(s.index, s.values, marker="o", color=COLORS[m], ms=4, label=LABELS[m],
                    ls="--" if m == "oracle" else "-")
        ax.set(xlabel=label)
        ax.set_xticks(list(s.index))
    for ax in axes[::2]:
        ax.set(ylabel="mean test accuracy (%)")
    axes[-1].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def rho_figure(res: dict):
    """CoBo at several consensus strengths rho: cluster recovery and mean accuracy vs round."""
    fig, (a, b) = panels(2, ncols=1, row_height=3.0)
    rows = res["rho"]
    col = colors(len(rows))
    for k, r in enumerate(rows):
        h = pd.DataFrame(r["result"]["history"]).set_index("t")
        a.plot(h.recovery, color=col[k], label=f"ρ = {r['rho']:g}")
        b.plot(100 * h.acc, color=col[k], label=f"ρ = {r['rho']:g}")
    a.axhline(RECOVERED, color="0.5", lw=0.8, ls=":")
    a.set(xlabel="round", ylabel="cluster recovery of W")
    b.set(xlabel="round", ylabel="mean test accuracy (%)")
    b.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
