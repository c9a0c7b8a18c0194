"""Figures of the ai-assessment chapter (the book's convention: see `companion.plotting`).

Figures drawn from a grade file carry the SYNTHETIC title prefix and watermark whenever the
grades are synthetic (`_mark_synthetic`); the figures of the paper's two numbers and
of courses.json are the same in every mode and are titled as such."""
import numpy as np

from companion.assessment import scores
from companion.plotting import colors, panels
from companion.reports.ai_assessment import is_synthetic, title

NAMES = {"zero_shot": "zero-shot", "one_shot": "one-shot", "cot_zero_shot": "CoT zero-shot",
         "cot_four_shot": "CoT four-shot", "tree_of_thought": "tree of thought", "metacog": "metacognitive",
         "self_refine": "self-refine", "expert_prompting": "expert"}
LINES = {"macro": "-", "majority": "--", "any": ":"}
LINE_NAMES = {"macro": "mean (macro)", "majority": "majority vote", "any": "correct under ≥ 1"}


WATERMARK_GID = "synthetic-watermark"


def _mark_synthetic(fig, title: str, synthetic: bool):
    """Title a figure drawn from grades; when they are synthetic, the title carries the
    caller's SYNTHETIC prefix (in `title`) and a large diagonal 'SYNTHETIC' watermark crosses
    the figure (an artist with gid WATERMARK_GID, so that tests can find it)."""
    fig.suptitle(title, fontsize="small", color="#b2182b" if synthetic else "0.2")
    if synthetic:
        fig.text(0.5, 0.45, "SYNTHETIC", rotation=25, fontsize=54, color="#b2182b", alpha=0.13, ha="center",
                 va="center", weight="bold", gid=WATERMARK_GID, zorder=10)
    return fig


def _strategies(summary: dict) -> list:
    names = sorted({s for v in summary.values() for s in v["per_strategy"]})
    return sorted(names, key=lambda s: list(NAMES).index(s) if s in NAMES else len(NAMES))


def _mark(fig, res, what):
    return _mark_synthetic(fig, title(res, what), is_synthetic(res))


def strategies_figure(res: dict):
    """Per-strategy accuracy of each model (bars), with its mean, majority vote and
    any-strategy rates (lines); (a) open answers binarised B1, (b) B2."""
    fig, axes = panels(2, row_height=3.6, sharey=True)
    for ax, b in zip(axes, scores.BINARISATIONS):
        s = res["scores"][b]["summary"]
        models, names = sorted(s), _strategies(s)
        col = colors(len(models))
        w = 0.8 / len(models)
        xs = np.arange(len(names))
        for i, m in enumerate(models):
            ax.bar(xs + (i - (len(models) - 1) / 2) * w, [100 * s[m]["per_strategy"].get(n, np.nan) for n in names],
                   w, color=col[i], label=m)
            for k, ls in LINES.items():
                ax.axhline(100 * s[m][k], color=col[i], ls=ls, lw=1.3)
        only = {n for m in models for n, v in s[m].get("mcq_only", {}).items() if v}
        ax.set_xticks(xs, [NAMES.get(n, n) + (" (MCQ)" if n in only else "") for n in names], rotation=45,
                      ha="right", fontsize="small")
        ax.set(ylim=(0, 100), title=f"({'ab'[b == 'B2']}) open answers as {b}")
    axes[0].set_ylabel("questions correct (%)")
    handles = axes[0].get_legend_handles_labels()[0]
    from matplotlib.lines import Line2D
    handles += [Line2D([], [], color="0.3", ls=ls, label=LINE_NAMES[k]) for k, ls in LINES.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize="x-small", bbox_to_anchor=(0.5, -0.06))
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return _mark(fig, res, "accuracy per prompting strategy")


def breakdown_figure(res: dict, b: str = "B2"):
    """Mean over strategies (bars), majority (diamonds) and any (triangles) per model, (a) by
    question type and (b) by language."""
    fig, axes = panels(2, row_height=3.2, sharey=True)
    br = res["scores"][b]["breakdowns"]
    for ax, (col_name, label) in zip(axes, (("question_type", "(a) question type"), ("language", "(b) language"))):
        groups = sorted(br.get(col_name, {}))
        models = sorted(res["scores"][b]["summary"])
        col = colors(len(models))
        w = 0.8 / len(models)
        for i, m in enumerate(models):
            x = np.arange(len(groups)) + (i - (len(models) - 1) / 2) * w
            vals = [br[col_name][g].get(m, {}) for g in groups]
            ax.bar(x, [100 * v.get("macro", np.nan) for v in vals], w, color=col[i], label=m)
            ax.plot(x, [100 * v.get("majority", np.nan) for v in vals], "D", color=col[i], mec="0.1", ms=5)
            ax.plot(x, [100 * v.get("any", np.nan) for v in vals], "^", color=col[i], mec="0.1", ms=6)
        n_q = [max(v.get("n_questions", 0) for v in br[col_name][g].values()) for g in groups]
        ax.set_xticks(np.arange(len(groups)), [f"{g.replace('_', ' ')}\n({n} questions)" for g, n in zip(groups, n_q)])
        ax.set(ylim=(0, 100), title=label)
    axes[0].set_ylabel("questions correct (%)")
    from matplotlib.lines import Line2D
    handles = axes[0].get_legend_handles_labels()[0] + [
        Line2D([], [], marker="D", ls="", color="0.6", mec="0.1", ms=5, label="majority vote"),
        Line2D([], [], marker="^", ls="", color="0.6", mec="0.1", ms=6, label="correct under ≥ 1")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize="x-small", bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return _mark(fig, res, f"breakdowns (open answers as {b})")


def pass_rate_figure(res: dict, cfg, b: str = "B2"):
    """Share of courses passed against the threshold tau, per model: the mean, majority, any and
    all aggregates (lines) and the range of the single strategies (band)."""
    models = sorted(res["scores"][b]["pass_rate"])
    fig, axes = panels(len(models), row_height=3.2, sharey=True)
    taus = list(cfg.tau_grid)
    col = [colors(6)[i] for i in (0, 1, 2, 4)]  # four well-separated colours
    for ax, m in zip(axes, models):
        pr = res["scores"][b]["pass_rate"][m]
        single = [k for k in pr if k not in scores.AGGREGATES]
        band = np.array([[100 * pr[s][scores.tau_key(t)] for t in taus] for s in single])
        ax.fill_between(taus, band.min(0), band.max(0), color="0.8", label="single strategies (range)")
        for c, a in zip(col, scores.AGGREGATES):
            ax.plot(taus, [100 * pr[a][scores.tau_key(t)] for t in taus], marker="o", ms=3, color=c, label=a)
        for t in cfg.taus:
            ax.axvline(t, color="0.6", lw=0.6, ls=":")
        ax.set(xlabel="pass threshold τ (course score ≥ τ)", title=m, ylim=(-3, 103))
    axes[0].set_ylabel("courses passed (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=5, fontsize="x-small",
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.07, 1, 0.93))
    return _mark(fig, res, f"course pass rate vs τ (open answers as {b})")


def implied_figure(res: dict):
    """What the paper's 65.8% and 85.1% imply: (a) P(correct under at least one of S strategies)
    and (b) P(majority of S correct) and P(all S correct) against S, under independence and
    under the Beta-Binomial fitted to both numbers."""
    c, fit, paper = res["implied"]["curves"], res["implied"]["fit"], res["implied"]["paper"]
    S = c["S"]
    fig, (a, b) = panels(2, row_height=4.0)
    ci, cb = colors(3)[0], colors(3)[1]
    a.plot(S, 100 * np.array(c["any_independent"]), "--", color=ci, marker="o", ms=3, label="independent strategies")
    a.plot(S, 100 * np.array(c["any_beta"]), "-", color=cb, marker="o", ms=3,
           label=f"Beta-Binomial (ρ = {fit['rho']:.2f})")
    a.plot([paper["S"]], [100 * paper["any"]], "*", color="#b2182b", ms=12,
           label=f"paper: {100 * paper['any']:.1f}% at S = {paper['S']}")
    a.axhline(100 * paper["mean"], color="0.5", lw=0.8, ls=":", label=f"paper's mean: {100 * paper['mean']:.1f}%")
    a.set(xlabel="strategies S", ylabel="questions correct (%)", title="(a) correct under ≥ 1 of S", ylim=(60, 101))
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize="x-small", ncol=1)
    b.plot(S, 100 * np.array(c["majority_independent"]), "--", color=ci, marker="o", ms=3,
           label="majority, independent")
    b.plot(S, 100 * np.array(c["majority_beta"]), "-", color=cb, marker="o", ms=3, label="majority, Beta-Binomial")
    b.plot(S, 100 * np.array(c["all_beta"]), "-", color=colors(3)[2], marker="s", ms=3, label="all S, Beta-Binomial")
    b.plot(S, 100 * paper["mean"] ** np.array(S), "--", color=colors(3)[2], lw=1, label="all S, independent")
    b.set(xlabel="strategies S", ylabel="questions (%)", title="(b) strict majority of S, all of S", ylim=(-3, 103))
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize="x-small", ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle("Derived from the paper's two abstract numbers (no per-question data)", fontsize="small")
    return fig


def pass_probability_figure(res: dict, cfg):
    """P(a course is passed) from a per-question success probability: (a) against the number of
    questions n at each tau, for the single-strategy rate 65.8% (solid: i.i.d. questions;
    dashed: course-level variation, kappa); (b) against tau at the middle course size for the
    single, majority and any rates."""
    imp = res["implied"]
    fig, (a, b) = panels(2, row_height=4.0)
    col = colors(max(3, len(cfg.taus)))
    ns = imp["per_n"]["n"]
    for c, t in zip(col, cfg.taus):
        d = imp["per_n"][scores.tau_key(t)]["single"]
        a.plot(ns, d["iid"], "-", color=c, marker="o", ms=3, label=f"τ = {t:g}")
        a.plot(ns, d["course_level"], "--", color=c, lw=1)
    a.set(xscale="log", xlabel="questions per course n (log scale)", ylabel="P(course passed)",
          title=f"(a) single strategy, {100 * imp['paper']['mean']:.1f}% per question", ylim=(-0.03, 1.03))
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize="x-small", ncol=3,
             title=f"solid: i.i.d. questions; dashed: course-level variation, κ = {cfg.kappa:g}",
             title_fontsize="x-small")
    n_mid = str(sorted(cfg.course_sizes)[len(cfg.course_sizes) // 2])
    taus = imp["per_tau"]["tau"]
    for c, (k, label) in zip(colors(3), (("single", "single strategy"), ("majority", "strict majority of 8 (fit)"),
                                         ("any", "best of 8 (any)"))):
        b.plot(taus, imp["per_tau"][k][n_mid], "-", color=c, marker="o", ms=3,
               label=f"{label}: {100 * imp['pi'][k]:.1f}%")
        b.axvline(imp["pi"][k], color=c, lw=0.7, ls=":")
    b.axhline(0.5, color="0.6", lw=0.7)
    b.set(xlabel="pass threshold τ", title=f"(b) n = {n_mid} questions, i.i.d.", ylim=(-0.03, 1.03))
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize="x-small", ncol=1)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle("Derived from the paper's two abstract numbers (binomial course model)", fontsize="small")
    return fig


def courses_figure(res: dict):
    """The release's course entries (courses.json) per program, stacked by level."""
    c = res["courses"]
    progs = sorted(c["program"], key=lambda p: c["program"][p])
    years = sorted(c["year"])
    fig, (ax,) = panels(1, row_height=2.9)
    left = np.zeros(len(progs))
    for col, y in zip(colors(len(years)), years):
        v = np.array([c["program_year"][p].get(y, 0) for p in progs])
        ax.barh(progs, v, left=left, color=col, label=y)
        left += v
    for i, n in enumerate(left):
        ax.text(n + 0.2, i, f"{int(n)}", va="center", fontsize="x-small")
    ax.set(xlabel="course entries in courses.json", xlim=(0, max(left) + 1.5))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.tick_params(axis="y", labelsize="small")
    ax.legend(loc="lower right", fontsize="x-small")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle(f"The release's course list: {c['entries']} entries, {c['names']} distinct names (real data)",
                 fontsize="small")
    return fig


def digits_figure(res: dict):
    """The digits illustration: (a) 'correct under at least one of 8' measured, predicted by
    independence, and in the permutation control, per seed; (b) the correlation the
    Beta-Binomial infers from (mean, any of 8) against the measured one, per seed."""
    d = res["digits"]
    fig, (a, b) = panels(2, row_height=3.9)
    col = colors(3)
    xs = np.arange(len(d))
    w = 0.27
    for k, (key, part, label) in enumerate((("any", "solvers", "measured"), ("any_independent", "solvers",
                                            "independence predicts"), ("any", "control", "permutation control"))):
        a.bar(xs + (k - 1) * w, [100 * r[part][key] for r in d], w, color=col[k], label=label)
    a.set_xticks(xs, [f"seed {i}" for i in range(len(d))])
    lo = min(100 * r["solvers"]["any"] for r in d)
    a.set(ylim=(max(0, lo - 15), 101), ylabel="images correct under ≥ 1 (%)", title="(a) any of 8")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="x-small", ncol=1)
    phi = [r["solvers"]["phi"] for r in d]
    rho = [r["solvers"]["rho_fit"] for r in d]
    b.plot(phi, rho, "o", color=col[0], ms=6, label="strategies (per seed)")
    ctrl = [(r["control"]["phi"], r["control"]["rho_fit"]) for r in d if np.isfinite(r["control"]["rho_fit"])]
    if ctrl:
        b.plot(*zip(*ctrl), "s", color=col[2], ms=5, label="permutation control (per seed)")
    top = max(phi + rho) * 1.2 + 0.05
    b.plot([0, top], [0, top], color="0.5", lw=0.8, ls=":")
    b.set(xlim=(-0.05, top), ylim=(-0.05, top), xlabel="measured mean pairwise correlation φ",
          ylabel="ρ fitted from (mean, any of 8)", title="(b) correlation: fitted vs measured")
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="x-small", ncol=1)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle("Illustration: eight noisy digit classifiers as strategies (not GPT-4, not the paper's data)",
                 fontsize="small")
    return fig
