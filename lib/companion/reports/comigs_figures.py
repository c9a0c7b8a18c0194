"""Figures of the comigs chapter (the book's convention: see `companion.plotting`)."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from companion.collab import markov
from companion.plotting import WIDTH, colors, panels
from companion.reports.comigs import LABELS, _by_method

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _symbol(alphabet: str, i) -> str:
    """The character of token i, spaces and newlines made visible."""
    c = alphabet[int(i) % len(alphabet)]
    return {" ": "·", "\n": "⏎"}.get(c, c)


def _seed_points(ax, xs, per_seed):
    for x, vals in zip(xs, per_seed):
        ax.plot([x] * len(vals), vals, "o", ms=3, color="0.15", zorder=3, alpha=0.8)


def loss_figure(metrics: dict, methods):
    """(a) Mean test CE per method (bars: mean over seeds; dots: seeds). (b) The same split by the
    source of the predicted token: shared chain vs the user's private chain."""
    fig, (a, b) = panels(2, row_height=3.3)
    per = metrics["per_seed"]
    col = colors(len(methods))
    xs = np.arange(len(methods))
    mean = [metrics["mean"]["ce"][m] for m in methods]
    a.bar(xs, mean, color=col)
    _seed_points(a, xs, [[s["ce"][m] for s in per] for m in methods])
    lo = min(min(s["ce"][m] for s in per) for m in methods)
    hi = max(max(s["ce"][m] for s in per) for m in methods)
    a.set(ylim=(lo - 0.15, hi + 0.08), ylabel="test CE (nats / token)", title="(a) mean over users")
    a.set_xticks(xs, [LABELS[m].replace("CoMiGS-", "") for m in methods], rotation=35, ha="right")
    w = 0.38
    for k, (src, hatch) in enumerate((("shared", ""), ("private", "//"))):
        vals = [metrics["mean"][f"ce_{src}"][m] for m in methods]
        b.bar(xs + (k - 0.5) * w, vals, w, color=col, hatch=hatch, edgecolor="white", label=f"{src}-source tokens")
        _seed_points(b, xs + (k - 0.5) * w, [[s[f"ce_{src}"][m] for s in per] for m in methods])
    allv = [s[f"ce_{src}"][m] for s in per for m in methods for src in ("shared", "private")]
    b.set(ylim=(min(allv) - 0.15, max(allv) + 0.45), title="(b) by the source of the target")  # room for the legend
    b.set_xticks(xs, [LABELS[m].replace("CoMiGS-", "") for m in methods], rotation=35, ha="right")
    b.legend(loc="upper left", fontsize="x-small", ncol=2)
    fig.tight_layout()
    return fig


def heterogeneity_figure(metrics: dict, methods, alphas):
    """(a) Mean test CE vs heterogeneity alpha (mean ± sd over seeds). (b) FedAvg's CE minus Local's."""
    fig, (a, b) = panels(2, row_height=3.0)
    per = metrics["per_seed"]
    col = dict(zip(LABELS, colors(len(LABELS))))
    for m in methods:
        v = np.array([[s["sweep_ce"][f"{x:g}"][m] for x in alphas] for s in per])
        a.errorbar(alphas, v.mean(0), yerr=v.std(0, ddof=1) if len(per) > 1 else None, marker="o", ms=4,
                   capsize=2, color=col[m], label=LABELS[m])
    a.set(xlabel="α (share of private segments)", ylabel="test CE (nats / token)", title="(a) test loss")
    a.legend(fontsize="x-small")
    g = np.array([[s["sweep_gap"][f"{x:g}"] for x in alphas] for s in per])
    for row in g:
        b.plot(alphas, row, "-", color="0.6", lw=0.8)
    b.plot(alphas, g.mean(0), "o-", color=col["FedAvg"], label="mean over seeds (grey: seeds)")
    b.axhline(0, color="0.3", lw=0.6)
    b.set(xlabel="α", ylabel="CE(FedAvg) − CE(Local)", title="(b) FedAvg's gap to Local")
    b.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def routing_figure(res: dict, metrics: dict, cfg, users=(0, 1)):
    """(a) Specialist gate weight 1 − g₀ by the source of the routed token, per layer, for 1G1S
    (and the control users, whose private chain is the shared one). (b) A held-out window of two
    users, one cell per token, coloured by the last layer's specialist weight; the strip under
    each row marks the tokens' true source (black: private)."""
    fig = plt.figure(figsize=(WIDTH, 2.2 + 0.9 * len(users)))
    gs = fig.add_gridspec(2, 1, height_ratios=[2.0, 0.45 * 2 * len(users)], hspace=0.55)
    a = fig.add_subplot(gs[0])
    per = metrics["per_seed"]
    L = cfg.n_layer
    col = colors(3)
    width = 0.18
    series = [("1G1S", [s["gate_gap_layers"]["1G1S"] for s in per], col[0])]
    for m in ("2S", "2G"):  # their expert 1 is a specialist (2S: as is expert 0) or a generalist (2G)
        if all(m in s["gate_gap_layers"] for s in per):
            series.append((f"{LABELS[m]} (expert-1 weight)", [s["gate_gap_layers"][m] for s in per],
                           col[len(series)]))
    if "control_gate_gap_layers" in metrics:
        series.append(("1G1S, control users", [metrics["control_gate_gap_layers"]], "0.6"))
    for k, (name, vals, c) in enumerate(series):
        v = np.array(vals)
        x = np.arange(L) + (k - (len(series) - 1) / 2) * width
        a.bar(x, v.mean(0), width, color=c, label=LABELS.get(name, name))
        for row in v:
            a.plot(x, row, "o", ms=2.5, color="0.15")
    a.axhline(0, color="0.3", lw=0.6)
    a.set_xticks(range(L), [f"layer {l}" for l in range(L)])
    a.set(ylabel="weight: private − shared", title="(a) specialist gate weight, private- minus shared-source tokens")
    a.legend(fontsize="x-small", ncol=2)
    b = fig.add_subplot(gs[1])
    run = _by_method(res["main"], cfg.seed)["1G1S"]
    g = run["gates_first_window"][-1].numpy()  # (U, T)
    x, sx = run["first_window"]["x"].numpy(), run["first_window"]["sx"].numpy()
    alphabet = res.get("alphabet") or ALPHABET
    half = max(0.05, float(np.abs(g[list(users)] - 0.5).max()))  # colours centred on an even mixture
    norm = plt.Normalize(0.5 - half, 0.5 + half)
    cmap = plt.get_cmap("coolwarm")
    T = x.shape[1]
    for row, u in enumerate(users):
        y0 = -row * 2.0
        for t in range(T):
            b.add_patch(Rectangle((t, y0), 1, 1, color=cmap(norm(g[u, t]))))
            b.text(t + 0.5, y0 + 0.5, _symbol(alphabet, x[u, t]), ha="center", va="center", fontsize=6,
                   family="monospace")
            if sx[u, t] == markov.PRIVATE:
                b.add_patch(Rectangle((t, y0 - 0.35), 1, 0.25, color="k"))
        b.text(-0.5, y0 + 0.5, f"user {u}", ha="right", va="center", fontsize="x-small")
    b.set(xlim=(-4, T), ylim=(-2.0 * len(users) + 0.5, 1.1), xticks=[], yticks=[])
    b.set_title("(b) held-out tokens coloured by specialist weight; black bar: private source", fontsize="small")
    cb = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=b, orientation="horizontal", fraction=0.08,
                      pad=0.02, aspect=40)
    cb.set_label("specialist weight 1 − g₀ (last layer)", fontsize="x-small")
    cb.ax.tick_params(labelsize="x-small")
    for s in b.spines.values():
        s.set_visible(False)
    b.grid(False)
    return fig


def payload_figure(metrics: dict, methods):
    """Parameters each user uploads per round, split into expert adapters and attention adapters."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.6))
    col = colors(2)
    P_psi = metrics["P_psi"]
    up = [metrics["uploads"][m] for m in methods]
    att = [P_psi if u else 0 for u in up]
    exp = [u - a for u, a in zip(up, att)]
    ys = np.arange(len(methods))
    ax.barh(ys, exp, color=col[0], label="expert LoRA (generalists)")
    ax.barh(ys, att, left=exp, color=col[1], label="attention LoRA")
    for y, u in zip(ys, up):
        ax.text(u, y, f" {u:,}", va="center", fontsize="x-small")
    ax.set_yticks(ys, [LABELS[m] for m in methods])
    ax.invert_yaxis()
    ax.set(xlabel="parameters uploaded per user and round", xlim=(0, max(up) * 1.25))
    ax.legend(fontsize="x-small", loc="lower right")
    fig.tight_layout()
    return fig


def curves_figure(res: dict, methods):
    """Held-out cross-entropy (the first test windows of every user, mean over users) against expert
    steps, per method: mean over seeds, band from the lowest to the highest seed."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    col = dict(zip(LABELS, colors(len(LABELS))))
    for m in methods:
        runs = [r for r in res["main"] if r["method"] == m]
        steps = runs[0]["curve_steps"]
        v = np.stack([r["curve_ce"].mean(1).numpy() for r in runs])
        ax.plot(steps, v.mean(0), color=col[m], label=LABELS[m], lw=1.8 if m == "1G1S" else 1.1)
        if len(runs) > 1:
            ax.fill_between(steps, v.min(0), v.max(0), color=col[m], alpha=0.15, lw=0)
    lo = min(float(r["curve_ce"].mean(1).min()) for r in res["main"])
    hi = max(float(r["curve_ce"].mean(1)[1:].max()) for r in res["main"]) if len(steps) > 1 else lo + 1
    ax.set(xlabel="expert steps", ylabel="held-out CE (nats / token)", ylim=(lo - 0.05, hi + 0.1))
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    return fig


def ablation_figure(metrics: dict):
    """1G1S's mean test CE with the router on validation data (bilevel) against the joint router, per
    seed (one line per seed), and the first seed's single-run ablations."""
    fig, (a, b) = panels(2, row_height=3.0)
    per = metrics["per_seed"]
    for s in per:
        a.plot([0, 1], [s["ce"]["1G1S"], s["ce"]["1G1S-joint"]], "o-", color="0.35", ms=4)
    a.set_xticks([0, 1], ["bilevel\n(validation)", "joint\n(train)"])
    a.set(xlim=(-0.4, 1.4), ylabel="test CE (nats / token)", title="(a) per seed")
    if "ablation_ce" in metrics:
        names = {"1G1S": "bilevel", "1G1S-leak": "bilevel,\nleakage", "1G1S-train": "alternating\non train",
                 "1G1S-joint": "joint"}
        ab = metrics["ablation_ce"]
        b.bar(range(len(names)), [ab[k] for k in names], color=colors(len(names)))
        b.set_xticks(range(len(names)), list(names.values()), fontsize="x-small")
        vals = [ab[k] for k in names]
        b.set(ylim=(min(vals) - 0.05, max(vals) + 0.03), title="(b) first seed, every variant")
    fig.tight_layout()
    return fig
