"""The scaling-cooldown chapter's report: metrics from the run's results, the paper's
claims checked on them, and the figures (each function returns a matplotlib figure; the
notebook shows, captions and saves it). Nothing here trains: editing it never
invalidates cached results."""
import math

import matplotlib.pyplot as plt
import torch

from companion import claims as C
from companion.experiments.scaling_cooldown import Config, branch_point
from companion.optim import schedules
from companion.plotting import colors



def branch_difference(trunk, branch, fresh) -> float:
    """Largest |difference| between the branched run (trunk up to the branch point, then
    the cooldown) and the same WSD schedule run from scratch: training losses of every
    step and every validation loss. Zero means bit-for-bit equal."""
    start = branch.steps[0]
    joined = trunk.train_loss[:start] + branch.train_loss
    diffs = [abs(a - b) for a, b in zip(joined, fresh.train_loss)]
    diffs.append(abs(branch.final_val - fresh.final_val))
    return max(diffs) if len(joined) == len(fresh.train_loss) else math.inf


def metrics(res: dict, cfg: Config) -> dict:
    """The numbers the claims and figures use (no timings, so equal seeds give equal files)."""
    T0, T_max, f = cfg.targets[0], cfg.targets[-1], cfg.cooldown_frac
    m = res["sizes"][res["main"]]
    out = {"targets": list(cfg.targets), "main_size": res["main"], "sizes": {}}
    for name, s in res["sizes"].items():
        # steps actually trained: one cosine per length vs trunk to the last branch point + cooldowns
        steps_cos = sum(len(h.steps) for h in s["cosine"].values())
        steps_cd = branch_point(T_max, f) + sum(len(h.steps) for h in s["cooldown"].values())
        out["sizes"][name] = {
            "params": s["params"], "flops_per_step": s["flops_per_step"], "initial_val": s["initial_val"],
            "cosine_final": {str(T): s["cosine"][T].final_val for T in cfg.targets},
            "cooldown_final": {str(T): s["cooldown"][T].final_val for T in cfg.targets},
            "constant_final": s["trunk"].final_val,
            "compute_ratio": steps_cd / steps_cos,  # the flops per step are shared, so FLOPs ratio = steps ratio
        }
    sizes = out["sizes"].values()
    gaps = [s["cooldown_final"][str(T)] / s["cosine_final"][str(T)] - 1 for s in sizes for T in cfg.targets]
    main_gaps = [m["cooldown"][T].final_val / m["cosine"][T].final_val - 1 for T in cfg.targets]
    x = torch.tensor([math.exp(s["cooldown_final"][str(T)]) for s in sizes for T in cfg.targets])
    y = torch.tensor([math.exp(s["cosine_final"][str(T)]) for s in sizes for T in cfg.targets])
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    swa = m["swa"]["val"][-1]
    const = m["trunk"].final_val
    cd = m["cooldown"][T_max].final_val
    fr = sorted(m["sweep"])
    out.update({
        "initial_val": m["initial_val"],
        "cd_vs_cos_rel_gap": main_gaps,
        "cd_vs_cos_rel_gap_max": max(main_gaps),
        "sqrt_minus_linear": cd - m["linear"].final_val,
        "constant_final": const,
        "swa_final": swa,
        "swa_best_horizon_final": min(m["swa"]["horizon_val"].values()),
        "cooldown_final": cd,
        "swa_minus_constant": swa - const,
        "cooldown_minus_swa": cd - swa,
        "swa_gap_closed": (const - swa) / (const - cd) if const != cd else float("nan"),
        # the longest cosine stopped at each shorter length minus the cosine of that length
        "cycle_mismatch_per_length": {str(T): m["cosine"][T_max].val_at(T) - m["cosine"][T].final_val
                                      for T in cfg.targets[:-1]},
        "sweep_final": {str(g): m["sweep"][g].final_val for g in fr},
        "short_minus_main_cooldown": m["sweep"][fr[0]].final_val - m["sweep"][f].final_val,
        "long_minus_main_cooldown": m["sweep"][fr[-1]].final_val - m["sweep"][f].final_val,
        "scaling_rel_gap_worst": max(gaps),
        "scaling_rel_gap_max_abs": max(abs(g) for g in gaps),
        "scaling_slope": slope,
        "compute_ratio": max(s["compute_ratio"] for s in sizes),
        "cycle_mismatch": min(m["cosine"][T_max].val_at(T) - m["cosine"][T].final_val for T in cfg.targets[:-1]),
        "branch_equivalence_max_abs_diff": branch_difference(m["trunk"], m["cooldown"][T0], m["fresh_wsd"]),
        "final_val_best": min(s["cooldown_final"][str(T_max)] for s in sizes),
    })
    return out


CLAIMS = [
    C.Claim("wsd-matches-cosine",
            "Constant LR + 20% (1-sqrt) cooldown matches cosine (to 10%) at every training length",
            "final ppl within ≈0.3 of cosine at 22k/33k/44k steps (210M; Fig. 3, README)",
            lambda m: m["cd_vs_cos_rel_gap_max"], lambda v: v <= 0.01,
            "worst (L_cd / L_cos − 1) over the lengths ≤ +1%", "{:+.2%}"),
    C.Claim("sqrt-beats-linear",
            "The (1-sqrt) cooldown is at least as good as the linear one",
            "1-sqrt below linear, more so for long runs (Fig. 4)",
            lambda m: m["sqrt_minus_linear"], lambda v: v <= 0.01,
            "L(1-sqrt) − L(linear) ≤ 0.01 nats at the longest length", "{:+.4f} nats"),
    C.Claim("cooldown-length",
            "A longer cooldown helps: 20% beats 5%",
            "cooldown surpasses cosine at 10–20% of steps (Fig. 5)",
            lambda m: m["short_minus_main_cooldown"], lambda v: v > 0,
            "L(5% cooldown) − L(20% cooldown) > 0", "{:+.4f} nats"),
    C.Claim("cooldown-plateau",
            "Gains plateau: a 40% cooldown is not clearly better than 20%",
            "largely stops improving when done over a majority of training (Fig. 5)",
            lambda m: m["long_minus_main_cooldown"], lambda v: v >= -0.01,
            "L(40%) − L(20%) ≥ −0.01 nats", "{:+.4f} nats"),
    C.Claim("swa-helps",
            "SWA on the constant-LR run greatly improves it",
            "SWA strongly improves constant-LR checkpoints (Fig. 10)",
            lambda m: m["swa_minus_constant"], lambda v: v < -0.03,
            "L(const + SWA) − L(const) < −0.03 nats", "{:+.4f} nats"),
    C.Claim("swa-below-cooldown",
            "…but SWA does not reach an explicit cooldown",
            "SWA does not match the cooldown (Fig. 10)",
            lambda m: m["cooldown_minus_swa"], lambda v: v <= 0.005,
            "L(cooldown) − L(const + SWA) ≤ 0.005 nats", "{:+.4f} nats"),
    C.Claim("cycle-mismatch",
            "Cosine is good only at its own length: the longest cosine stopped early is worse",
            "the long cycle lies above the matched one before its end (Fig. 1)",
            lambda m: m["cycle_mismatch"], lambda v: v > 0,
            "min over shorter T of L(longest cosine at T) − L(cosine of length T) > 0", "{:+.4f} nats"),
    C.Claim("scaling-no-worse",
            "Across model sizes and lengths, the cooldown is never clearly worse than cosine",
            "cooldown/SWA can replace cosine for scaling laws (Fig. 12, 33M–360M)",
            lambda m: m["scaling_rel_gap_worst"], lambda v: v <= 0.01,
            "worst (L_cd / L_cos − 1) over sizes × lengths ≤ +1%", "{:+.2%}"),
    C.Claim("scaling-diagonal",
            "…and the two lie on the diagonal: equal losses, not just no worse",
            "'almost perfectly on the diagonal' (Fig. 12)",
            lambda m: m["scaling_rel_gap_max_abs"], lambda v: v <= 0.015,
            "max |L_cd / L_cos − 1| over sizes × lengths ≤ 1.5%", "{:.2%}"),
    C.Claim("compute-saved",
            "One trunk + branched cooldowns needs about half the compute of one cosine per length",
            "FLOP ratio 0.53–0.60 per model size (flops.ipynb; ≈ half, Fig. 13)",
            lambda m: m["compute_ratio"], lambda v: v <= 0.62,
            "trained FLOPs (protocol / cosines) ≤ 0.62", "{:.3f}"),
]


def _cooldown_curve(trunk, branch):
    """Validation curve of a cooldown from its branch point: the trunk's value there (when the
    trunk was evaluated at that step), then the cooldown's own evaluations."""
    start = branch.steps[0]
    if start not in trunk.eval_steps:
        return branch.eval_steps, branch.val_loss
    return [start] + branch.eval_steps, [trunk.val_at(start)] + branch.val_loss


def _ylim_from(ax, curves, top_quantile=0.15):
    """Zoom on the informative part of loss curves (the first steps are far above)."""
    vals = sorted(v for c in curves for v in c)
    lo, hi = vals[0], vals[int(len(vals) * (1 - top_quantile)) - 1]
    pad = 0.05 * (hi - lo)
    ax.set_ylim(lo - pad, hi + pad)


def schedules_figure(cfg):
    """Fig. 2 analogue: the LR multipliers of the schedules compared."""
    T = cfg.targets[-1]
    t = range(T + 1)
    fig, ax = plt.subplots()
    c = colors(4)
    ax.plot(t, [schedules.cosine(s, T, cfg.warmup, 0.1) for s in t], color=c[0], label="cosine → 10%")
    ax.plot(t, [schedules.constant(s, cfg.warmup) for s in t], color="0.6", ls=":", label="constant (trunk)")
    for shape, col in (("linear", c[1]), ("1-sqrt", c[2])):
        ax.plot(t, [schedules.wsd(s, T, cfg.warmup, cfg.cooldown_frac, shape) for s in t], color=col,
                label=f"constant + {cfg.cooldown_frac:.0%} {shape} cooldown")
    ax.set(xlabel="optimizer step", ylabel="learning rate / peak", title=f"Schedules for T = {T} steps")
    ax.legend()
    return fig


def cycle_mismatch_figure(res, cfg):
    """Fig. 1 analogue: cosines of every length; the longest one evaluated early."""
    m = res["sizes"][res["main"]]
    fig, ax = plt.subplots()
    cols = colors(len(cfg.targets))
    for T, col in zip(cfg.targets, cols):
        h = m["cosine"][T]
        ax.plot(h.eval_steps, h.val_loss, color=col, label=f"cosine, T = {T}")
        ax.plot([T], [h.final_val], "o", color=col)
    long = m["cosine"][cfg.targets[-1]]
    for T in cfg.targets[:-1]:
        ax.plot([T], [long.val_at(T)], "x", color=cols[-1], ms=9)
    _ylim_from(ax, [m["cosine"][T].val_loss for T in cfg.targets])
    ax.set(xlabel="optimizer step", ylabel="validation loss (nats/char)",
           title="Cosine is tuned to its own length (× = long cosine stopped early)")
    ax.legend()
    return fig


def cosine_vs_cooldown_figure(res, cfg):
    """Fig. 3 analogue: cosine per length vs cooldowns branched from one constant trunk."""
    m = res["sizes"][res["main"]]
    fig, ax = plt.subplots()
    cols = colors(len(cfg.targets))
    trunk = m["trunk"]
    ax.plot(trunk.eval_steps, trunk.val_loss, color="0.55", lw=1, label="constant LR (trunk)")
    curves = [trunk.val_loss]
    for T, col in zip(cfg.targets, cols):
        h = m["cosine"][T]
        ax.plot(h.eval_steps, h.val_loss, color=col, lw=1, alpha=0.6, label=f"cosine T = {T}")
        ax.plot(*_cooldown_curve(trunk, m["cooldown"][T]), color=col, lw=2.2, ls="--", label=f"cooldown to {T}")
        curves.append(h.val_loss)
    _ylim_from(ax, curves)
    ax.set(xlabel="optimizer step", ylabel="validation loss (nats/char)",
           title=f"Cosine vs {cfg.cooldown_frac:.0%} (1-sqrt) cooldowns from one trunk")
    ax.legend(ncol=2)
    return fig


def shape_figure(res, cfg):
    """Fig. 4 analogue: linear vs (1-sqrt) cooldown over the last part of the longest run."""
    m = res["sizes"][res["main"]]
    T = cfg.targets[-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(6.4, 3.0))
    c = colors(3)
    for h, name, col in ((m["linear"], "linear", c[1]), (m["cooldown"][T], "1-sqrt", c[2])):
        a1.plot(h.steps, [lr / cfg.lr for lr in h.lr], color=col, label=name)
        a2.plot(*_cooldown_curve(m["trunk"], h), "o-", ms=3, color=col, label=name)
    a2.axhline(m["cosine"][T].final_val, color=c[0], ls=":", label="cosine final")
    a1.set(xlabel="optimizer step", ylabel="learning rate / peak", title="cooldown shapes")
    a2.set(xlabel="optimizer step", ylabel="validation loss (nats/char)", title="loss during the cooldown")
    a2.legend()
    fig.tight_layout()
    return fig


def length_sweep_figure(res, cfg):
    """Fig. 5 analogue: final loss vs cooldown length at the longest T."""
    m = res["sizes"][res["main"]]
    T = cfg.targets[-1]
    fr = sorted(m["sweep"])
    fig, ax = plt.subplots()
    c = colors(3)
    ax.plot([100 * f for f in fr], [m["sweep"][f].final_val for f in fr], "o-", color=c[2],
            label="constant + (1-sqrt) cooldown")
    ax.axhline(m["cosine"][T].final_val, color=c[0], ls="--", label="cosine → 10%")
    ax.axhline(m["trunk"].final_val, color="0.55", ls=":", label="constant, no cooldown")
    ax.set(xlabel=f"cooldown length (% of T = {T} steps)", ylabel="final validation loss (nats/char)",
           title="How long should the cooldown be?")
    ax.legend()
    return fig


def swa_figure(res, cfg):
    """Fig. 10 analogue: constant LR, constant LR + windowed SWA, and the cooldown."""
    m = res["sizes"][res["main"]]
    T = cfg.targets[-1]
    trunk, swa = m["trunk"], m["swa"]
    fig, ax = plt.subplots()
    c = colors(4)
    ax.plot(trunk.eval_steps, trunk.val_loss, color="0.55", label="constant LR")
    ax.plot(swa["steps"], swa["val"], "s-", ms=3, color=c[3], label=f"constant + SWA (window {cfg.swa_horizon})")
    ax.plot(*_cooldown_curve(trunk, m["cooldown"][T]), color=c[2], lw=2,
            label=f"{cfg.cooldown_frac:.0%} (1-sqrt) cooldown")
    ax.plot(m["cosine"][T].eval_steps, m["cosine"][T].val_loss, color=c[0], lw=1, alpha=0.6, label="cosine")
    _ylim_from(ax, [trunk.val_loss, swa["val"]])
    ax.set(xlabel="optimizer step", ylabel="validation loss (nats/char)",
           title="Weight averaging vs an explicit cooldown")
    ax.legend()
    return fig


def scaling_figure(res, cfg):
    """Fig. 12 analogue: loss vs training FLOPs per size (cosine curves, cooldown endpoints),
    and the cosine-vs-cooldown perplexity diagonal."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7.6, 3.3), gridspec_kw={"width_ratios": [1.5, 1]})
    sizes = sorted(res["sizes"].values(), key=lambda s: s["params"])
    cols = colors(len(sizes))
    xs, ys = [], []
    for s, col in zip(sizes, cols):
        f = s["flops_per_step"]
        label = f"{s['params'] / 1e3:.0f}k params"
        for i, T in enumerate(cfg.targets):
            h = s["cosine"][T]
            a1.plot([f * st for st in h.eval_steps], h.val_loss, color=col, lw=1, alpha=0.7,
                    label=label if i == 0 else None)
            a1.plot([f * T], [s["cooldown"][T].final_val], "*", ms=9, color=col)
            xs.append(math.exp(s["cooldown"][T].final_val))
            ys.append(math.exp(s["cosine"][T].final_val))
            a2.plot(xs[-1], ys[-1], "o", color=col)
    a1.set_xscale("log")
    _ylim_from(a1, [s["cosine"][T].val_loss for s in sizes for T in cfg.targets] +
               [[s["cooldown"][T].final_val for T in cfg.targets] for s in sizes], 0.3)
    a1.set(xlabel="training FLOPs", ylabel="validation loss (nats/char)",
           title="lines: cosine per length; ★: cooldown")
    a1.legend()
    lo, hi = min(xs + ys), max(xs + ys)
    a2.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=1)
    a2.set(xlabel="perplexity, constant + cooldown", ylabel="perplexity, cosine", title="one point per (size, T)")
    fig.tight_layout()
    return fig


def savings_figure(res, cfg):
    """Fig. 13 analogue: FLOPs of a 3-length sweep with cosines vs trunk + cooldowns."""
    sizes = sorted(res["sizes"].values(), key=lambda s: s["params"])
    fig, ax = plt.subplots()
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
