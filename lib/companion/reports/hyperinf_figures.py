"""Figures of the hyperinf chapter (the book's convention: see `companion.plotting`)."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from companion.experiments.hyperinf import Config
from companion.influence import scores as I
from companion.plotting import WIDTH, colors
from companion.reports.hyperinf import LABELS, PAPER_GPU, SCHULZ, SCHULZ_OFFICIAL, detection_frame


ROWS = [SCHULZ, SCHULZ_OFFICIAL, "lissa (scaled)", "cg"]


def convergence_figure(res, cfg: Config):
    """Relative error vs iteration: one row per solver, one column per N, one colour per d;
    DataInf's (iteration-free) error as a dashed line of the same colour."""
    conv = {(r["d"], r["n"], r["method"]): r["errors"] for r in res["convergence"]}
    ns, ds = cfg.conv_ns, cfg.conv_dims
    fig, axes = plt.subplots(len(ROWS), len(ns), figsize=(WIDTH, 2.1 * len(ROWS) + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    c = colors(len(ds))
    for i, method in enumerate(ROWS):
        for j, n in enumerate(ns):
            ax = axes[i][j]
            for k, d in enumerate(ds):
                e = np.maximum(conv[(d, n, method)], 1e-17)
                ax.plot(range(len(e)), e, color=c[k], lw=1.2, label=f"d = {d}")
                if i == 2:
                    ax.axhline(conv[(d, n, "datainf")][0], color=c[k], ls="--", lw=0.8)
            ax.axhline(cfg.tol, color="0.5", lw=0.6, ls=":")
            ax.set(yscale="log", ylim=(1e-16, 1e4))
            if i == 0:
                ax.set_title(f"N = {n}")
            if j == 0:
                ax.set_ylabel(method, fontsize="small")
            if i == len(ROWS) - 1:
                ax.set_xlabel("iteration")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize="x-small", loc="lower center", ncol=len(ds), bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def kappa_figure(res, cfg: Config):
    k = res["kappa"]
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    c = colors(3)
    for i, (init, label) in enumerate((("frobenius", "Schulz, X₀ = I/‖A‖_F"), ("official", "Schulz, X₀ = 5e-5·I"),
                                       ("cg", "CG"))):
        rows = [r for r in k if r["init"] == init]
        x = [r["kappa"] for r in rows]
        ax.plot(x, [r["measured"] if math.isfinite(r["measured"]) else np.nan for r in rows], "o", color=c[i],
                label=f"{label}: measured")
        if init != "cg":
            ax.plot(x, [r["predicted"] for r in rows], "-", color=c[i], lw=1, label=f"{label}: bound")
    ax.set(xscale="log", xlabel="condition number κ", ylabel=f"iterations to relative error {cfg.tol:g}")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def timing_figure(res):
    t = pd.DataFrame(res["timing"])
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    c = colors(3)
    for i, m in enumerate(("torch.linalg.inv", "schulz", "cg")):
        d = t[t.method == m]
        ax.plot(d.d, d.seconds, "o-", color=c[i], label=f"{m} (this CPU)")
        p = PAPER_GPU[m]
        ax.plot(list(p), list(p.values()), "s--", mfc="none", color=c[i], lw=0.8, label=f"{m} (paper, GPU)")
    ax.set(xscale="log", yscale="log", xlabel="d", ylabel="seconds")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _style(method: str) -> str:
    """The exact references dashed, so that HyperINF (equal to the exact GFIM) shows beneath."""
    return "--" if method.startswith("exact") else "-"


def detection_figure(res, cfg: Config):
    """Left: fraction of flipped labels found vs fraction inspected at the largest rank (mean
    over seeds). Right: ROC-AUC vs LoRA rank per method."""
    r = cfg.ranks[-1]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.4))
    c = colors(len(I.METHODS))
    grid = np.linspace(0, 1, 101)  # 0, 1, ..., 100% of the training data inspected
    for i, m in enumerate(I.METHODS):
        ys = []
        for (rank, _), d in res["detection"].items():
            if rank == r:
                x, y = I.detection_curve(d["scores"][m], d["noisy"])
                ys.append(np.interp(grid, x.numpy(), y.numpy()))
        a.plot(grid, np.mean(ys, 0), color=c[i], lw=1.8 if m == "hyperinf" else 1, ls=_style(m), label=LABELS[m])
    a.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls=":", label="random")
    a.plot([0, cfg.noise, 1], [0, 1, 1], color="0.3", lw=0.8, ls="--", label="perfect")
    a.set(xlabel="fraction of training data inspected", ylabel="fraction of flipped labels found",
          title=f"LoRA rank {r}")
    f = detection_frame(res)
    for i, m in enumerate(I.METHODS):
        d = f[f.method == m].groupby("rank").auc.mean()
        b.plot(d.index, d.values, "o", ls=_style(m), color=c[i], ms=4, label=LABELS[m])
    b.axhline(0.5, color="0.5", lw=0.8, ls=":")
    b.set(xscale="log", xlabel="LoRA rank r", ylabel="ROC-AUC (flipped vs clean)")
    b.set_xticks(list(cfg.ranks), [str(x) for x in cfg.ranks])
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.legend(*a.get_legend_handles_labels(), loc="lower center", ncol=5, fontsize="x-small", frameon=False)
    return fig


def gfim_figure(res):
    g = res["gfim"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.6, 3.4))
    for ax, M, title in ((a, g["fim"], f"FIM ({g['rank'] * g['dim']} × {g['rank'] * g['dim']})"),
                         (b, torch.kron(torch.eye(g["rank"], dtype=g["gfim"].dtype), g["gfim"]),
                          f"I_r ⊗ GFIM (GFIM: {g['dim']} × {g['dim']})")):
        im = ax.imshow(M.abs().log10().clamp_min(-4).numpy(), cmap="viridis")
        ax.set(title=title, xticks=[], yticks=[])
    fig.colorbar(im, ax=[a, b], shrink=0.8, label="log10 |entry|")
    return fig


def cost_figure(res, cfg: Config):
    """Seconds per influence computation vs LoRA rank, per method (this run, this machine)."""
    f = detection_frame(res)
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    c = colors(len(I.METHODS))
    for i, m in enumerate(I.METHODS):
        d = f[f.method == m].groupby("rank").seconds.mean()
        ax.plot(d.index, np.maximum(d.values, 1e-5), "o-", color=c[i], ms=4, label=LABELS[m])
    ax.set(xscale="log", yscale="log", xlabel="LoRA rank r", ylabel="seconds (all training points)")
    ax.set_xticks(list(cfg.ranks), [str(x) for x in cfg.ranks])
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
