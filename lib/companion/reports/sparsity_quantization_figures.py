"""Figures of the sparsity-quantization chapter (the book's convention: see `companion.plotting`)."""
import matplotlib.pyplot as plt
import numpy as np

from companion.experiments.sparsity_quantization import ORDERS, Config
from companion.plotting import colors
from companion.reports.sparsity_quantization import (PIPELINES, by_bits, cell_ce, grid_frame, layer_frame, low_bit,
                                                    order_cells, orthogonality, tensor_frame, tensor_table)


def _fmt_axis(ax, fmts):
    ax.set_xticks(range(len(fmts)), [f.upper() for f in fmts], rotation=45, ha="right")


def tensor_error_figure(res):
    """Extra error beyond pruning alone, ε − ε_S, of S→Q and Q→S per format, against ε_Q (the
    room Thm 3.5 allows): one panel per source and sparsity (round-to-nearest)."""
    tab = tensor_table(res).reset_index()
    sources, sps = list(dict.fromkeys(tab.source)), [s for s in ("2:4", "50%") if s in set(tab.sparsity)]
    fig, axes = plt.subplots(len(sources), len(sps), figsize=(3.4 * len(sps), 2.7 * len(sources)),
                             sharey="row", squeeze=False)
    c = colors(3)
    for i, src in enumerate(sources):
        for j, sp in enumerate(sps):
            ax, d = axes[i][j], tab[(tab.source == src) & (tab.sparsity == sp)].set_index("format")
            fmts = by_bits(d.index)
            x = np.arange(len(fmts))
            ax.bar(x - 0.2, [d.loc[f, "ε_S→Q"] - d.loc[f, "ε_S"] for f in fmts], 0.4, color=c[0], label="S→Q")
            ax.bar(x + 0.2, [d.loc[f, "ε_Q→S"] - d.loc[f, "ε_S"] for f in fmts], 0.4, color=c[1], label="Q→S")
            ax.plot(x, [d.loc[f, "ε_Q"] for f in fmts], "k_", ms=14, mew=1.5, label="ε_Q (Thm 3.5 room)")
            ax.set(yscale="log", title=f"{src}, {sp}")
            _fmt_axis(ax, fmts)
        axes[i][0].set_ylabel("ε − ε_S (relative L2)")
    axes[0][0].legend(loc="upper left")
    fig.tight_layout()
    return fig


def mismatch_figure(res):
    """Fraction of the elements magnitude pruning keeps that Q→S prunes instead, per format."""
    t = tensor_frame(res)
    t = t[t.rounding == "nearest"]
    fmts = by_bits(set(t.format))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    sps = list(dict.fromkeys(t.sparsity))
    c = colors(len(sps))
    for k, sp in enumerate(sps):
        for src, ls in (("student-t", "-"), ("trained", "--")):
            d = t[(t.sparsity == sp) & (t.source == src)].groupby("format").mismatch.mean()
            ax.plot(range(len(fmts)), [d.get(f, np.nan) for f in fmts], ls, marker="o", ms=3, color=c[k],
                    label=f"{sp}, {src}")
    _fmt_axis(ax, fmts)
    ax.set(ylabel="Q→S mask mismatch")
    ax.legend(ncol=2, fontsize="x-small")
    fig.tight_layout()
    return fig


def grid_figure(res, cfg: Config):
    """Table 2 as a figure: val cross-entropy per format for each pipeline, one panel per sparsity."""
    g = grid_frame(res)
    fmts = by_bits(cfg.formats)
    fig, axes = plt.subplots(1, len(cfg.sparsities), figsize=(3.6 * len(cfg.sparsities), 3.4), sharey=True,
                             squeeze=False)
    c = colors(3)
    for ax, sp in zip(axes[0], cfg.sparsities):
        for stage, order, label, ls, mk in PIPELINES:
            y = [cell_ce(g, stage, order, sp, f) for f in fmts]
            ax.plot(range(len(fmts)), y, ls, marker=mk, ms=4, color=c[["one-shot", "sparse-ft", "qat"].index(stage)],
                    label=label)
        ax.axhline(cell_ce(g, "one-shot", "dense"), color="0.3", lw=0.8, label="dense")
        ax.axhline(cell_ce(g, "sparse-ft", "S", sp), color="0.3", lw=0.8, ls=":", label="sparse FT (FP32)")
        ax.set(title=f"{sp} sparsity")
        _fmt_axis(ax, fmts)
    axes[0][0].set_ylabel("validation cross-entropy (nats/char)")
    axes[0][-1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def order_gap_figure(res, cfg: Config):
    """Paired order effect: Q→S − S→Q val CE per cell (above 0: S→Q better)."""
    cells = order_cells(grid_frame(res))
    fmts = by_bits(cfg.formats)
    stages = [("one-shot", "one-shot, same weights"), ("sparse-ft", "after sparse FT"),
              ("qat", "after equal quantization-aware FT")]
    fig, axes = plt.subplots(1, len(cfg.sparsities), figsize=(3.4 * len(cfg.sparsities), 3.0), sharey=True,
                             squeeze=False)
    c = colors(3)
    for ax, sp in zip(axes[0], cfg.sparsities):
        for k, (stage, label) in enumerate(stages):
            d = cells[(cells.stage == stage) & (cells.sparsity == sp)].set_index("format").gap
            ax.plot(np.arange(len(fmts)) + 0.15 * (k - 1), [d.get(f, np.nan) for f in fmts], "o", ms=5,
                    color=c[k], label=label)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set(title=f"{sp} sparsity")
        _fmt_axis(ax, fmts)
    axes[0][0].set_ylabel("CE(Q→S) − CE(S→Q)")
    axes[0][0].legend(fontsize="x-small", loc="upper left")
    fig.tight_layout()
    return fig


def orthogonality_figure(res, cfg: Config):
    """Left: the individual degradations ΔS (sparse FT) and ΔQ (one-shot) per format. Right:
    measured S→Q minus the orthogonality bound dense + ΔS + ΔQ (above 0: not orthogonal)."""
    orth = orthogonality(grid_frame(res), cfg)
    fmts = by_bits(cfg.formats)
    x = np.arange(len(fmts))
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.6, 3.3))
    c = colors(max(3, len(cfg.sparsities) + 1))
    d0 = orth[orth.sparsity == cfg.sparsities[0]].set_index("format")
    a.bar(x, [d0.loc[f, "dQ"] for f in fmts], 0.6, color=c[0], label="ΔQ (dense, one-shot)")
    for k, sp in enumerate(cfg.sparsities):
        a.axhline(orth[orth.sparsity == sp].dS.iloc[0], color=c[k + 1], ls="--", lw=1.2,
                  label=f"ΔS ({sp}, sparse FT)")
    a.set(yscale="log", ylabel="val CE increase over dense (nats)")
    _fmt_axis(a, fmts)
    a.legend(fontsize="x-small")
    for k, sp in enumerate(cfg.sparsities):
        d = orth[orth.sparsity == sp].set_index("format")
        b.plot(x + 0.12 * (k - (len(cfg.sparsities) - 1) / 2), [d.loc[f, "excess"] for f in fmts], "o", ms=5,
               color=c[k + 1], label=sp)
    b.axhline(0, color="0.3", lw=0.8)
    b.set(ylabel="S→Q − (dense + ΔS + ΔQ)  (nats)")
    _fmt_axis(b, fmts)
    b.legend(fontsize="x-small", title="above 0: not orthogonal", title_fontsize="x-small")
    fig.tight_layout()
    return fig


def layer_error_figure(res, cfg: Config, formats=None):
    """Fig. 1 analogue: relative output error of every block (and the logits) vs depth."""
    lay = layer_frame(res)
    fmts = formats or [f for f in by_bits(cfg.formats) if low_bit(f)]
    fig, axes = plt.subplots(1, len(cfg.sparsities), figsize=(3.6 * len(cfg.sparsities), 3.3), sharey=True,
                             squeeze=False)
    c = colors(len(fmts))
    L = cfg.n_layer
    ticks = [f"block {i + 1}" for i in range(L)] + ["logits"]
    for ax, sp in zip(axes[0], cfg.sparsities):
        for k, f in enumerate(fmts):
            for order, ls in (("sq", "-"), ("qs", "--")):
                d = lay[(lay.order == order) & (lay.sparsity == sp) & (lay.format == f)].sort_values("layer")
                ax.plot(d.layer, d.rel_err, ls, marker="o", ms=3, color=c[k],
                        label=f"{f.upper()} {ORDERS[order]}" if sp == cfg.sparsities[-1] else None)
        d = lay[(lay.order == "S") & (lay.sparsity == sp)].sort_values("layer")
        ax.plot(d.layer, d.rel_err, ":", color="0.3", label="S only" if sp == cfg.sparsities[-1] else None)
        ax.set_xticks(range(L + 1), ticks, rotation=30)
        ax.set(title=f"{sp} sparsity, one-shot")
    axes[0][0].set_ylabel("relative output error")
    axes[0][-1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def training_figure(res, cfg: Config):
    """Left: dense pretraining. Right: val CE during quantization-aware fine-tuning of the
    first sparsity, S→Q solid and Q→S dashed, one colour per format."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.6, 3.0))
    h = res["dense_history"]
    a.plot(h.steps, h.train_loss, color="0.7", lw=0.6, label="train (per step)")
    a.plot(h.eval_steps, h.val_loss, "o-", ms=3, label="validation")
    a.set(xlabel="step", ylabel="cross-entropy (nats/char)", title="dense pretraining")
    a.legend()
    sp = cfg.sparsities[0]
    fmts = by_bits(cfg.ft_formats)
    c = colors(len(fmts))
    for k, f in enumerate(fmts):
        for order, ls in (("sq", "-"), ("qs", "--")):
            hh = res["finetune_histories"][f"{sp}/{f}/{order}"]
            b.plot(hh.eval_steps, hh.val_loss, ls, color=c[k], label=f.upper() if order == "sq" else None)
    hh = res["finetune_histories"][f"{sp}/fp32/sq"]
    b.plot(hh.eval_steps, hh.val_loss, ":", color="0.3", label="sparse FT, FP32")
    b.set(xlabel="fine-tuning step", title=f"{sp}: S→Q solid, Q→S dashed")
    b.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    return fig
