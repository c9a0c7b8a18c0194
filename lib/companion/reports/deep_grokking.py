"""The deep-grokking chapter's report: per-run indicators and the paper's claims checked on
them (figures: `deep_grokking_figures`). Nothing here trains."""
import math

import numpy as np

from companion import claims as C
from companion.experiments.deep_grokking import Config
from companion.metrics import grokking as G
from companion.metrics.features import tunnel_length

CHANCE = 0.1
PEN = -2  # the second-to-last Linear layer, whose rank the paper's Fig. 5 shows
DROP = 0.05  # a rank or norm "starts to fall" when it is 5% below its running maximum
MIN_POST_FIT_EVALS = 2


def series(run, key, layer=None):
    """(steps, values) of a run's records; `layer` picks one entry of a per-layer list."""
    recs = run["records"]
    vals = [r[key] if layer is None else r[key][layer] for r in recs]
    return np.array([r["step"] for r in recs], dtype=int), np.array(vals, dtype=float)


def logged(run, key, layer=None):
    """series() without step 0, for log-step axes."""
    steps, vals = series(run, key, layer)
    return steps[steps > 0], vals[steps > 0]


def late_median(run, key="erank"):
    """Median over the last half of the hidden layers (the output layer excluded), per eval."""
    steps = np.array([r["step"] for r in run["records"]])
    L = len(run["records"][0][key])
    return steps, np.array([np.median(r[key][L // 2:-1] if L > 2 else r[key][:1]) for r in run["records"]])


def value_at(steps, values, step):
    """The value at the last evaluation <= step."""
    i = int(np.searchsorted(steps, step, side="right")) - 1
    return float(values[max(i, 0)])


def _rel(steps, values, a, b):
    """Relative change of values from step a to step b."""
    va = value_at(steps, values, a)
    return value_at(steps, values, b) / va - 1 if va else math.nan


def _log_gap(a, b):
    """log10(b / a) in decades (inf if b never happened, -inf if a never happened)."""
    if math.isinf(b):
        return math.inf
    return -math.inf if math.isinf(a) else math.log10(max(b, 1) / max(a, 1))


def summarize(run, cfg: Config) -> dict:
    """Indicators of one run: fit and generalisation steps, grokking, two-stage detection, the
    penultimate layer's rank and the weight norm around the transition, the tunnel."""
    steps, train = series(run, "train_acc")
    _, test = series(run, "test_acc")
    _, pen = series(run, "erank", PEN)
    _, pen_rank = series(run, "rank", PEN)
    _, norm = series(run, "norm")
    _, med = late_median(run)
    t_end = int(steps[-1])
    steps_ = steps.tolist()
    t_fit = G.fit_step(steps_, train)
    t_gen = G.generalization_step(steps_, test, CHANCE)
    t_mem = t_fit / 10  # a decade before fitting: the network is memorising
    fitted = not math.isinf(t_fit)
    rank_onset = G.descent_onset(steps_, pen, after=t_fit, drop=DROP) if fitted else math.inf
    norm_onset = G.descent_onset(steps_, norm, after=0, drop=DROP)
    plateau = G.two_stage(steps_, test.tolist())
    dd = G.double_descent(steps_, med.tolist(), rel=DROP)
    final = run["records"][-1]
    return {
        "depth": run["spec"]["depth"], "n_train": run["spec"]["n_train"],
        "weight_decay": run["spec"]["weight_decay"], "steps": t_end,
        "final_train": float(train[-1]), "final_test": float(test[-1]), "best_test": float(test.max()),
        "t_fit": t_fit, "t_gen": t_gen if fitted else math.inf, "delay": t_gen - t_fit if fitted else math.inf,
        "evals_after_fit": int((steps > t_fit).sum()),
        "test_at_fit": value_at(steps, test, t_fit) if fitted else math.nan,
        "train_at": {str(int(s)): float(a) for s, a in zip(steps, train)},
        "two_stage": list(plateau) if plateau else None,
        "two_stage_decades": _log_gap(*plateau) if plateau else 0.0,
        "rank_double_descent": list(dd) if dd else None,
        "rank_double_descent_depth": G.double_descent_depth(steps_, med.tolist()),
        "pen_erank": {"start": float(pen[0]), "mem": value_at(steps, pen, t_mem) if fitted else math.nan,
                      "fit": value_at(steps, pen, t_fit) if fitted else math.nan, "end": float(pen[-1])},
        "pen_erank_change_memorising": _rel(steps, pen, t_mem, t_fit) if fitted else math.nan,
        "pen_erank_change_after_fit": _rel(steps, pen, t_fit, t_end) if fitted else math.nan,
        "pen_rank_change_after_fit": _rel(steps, pen_rank, t_fit, t_end) if fitted else math.nan,
        "rank_onset": rank_onset, "norm_onset": norm_onset,
        "rank_onset_minus_gen_decades": _log_gap(t_gen, rank_onset) if fitted else math.inf,
        "norm_onset_minus_gen_decades": _log_gap(t_gen, norm_onset),
        "norm": {"start": float(norm[0]), "fit": value_at(steps, norm, t_fit) if fitted else math.nan,
                 "end": float(norm[-1])},
        "final_rank": final["rank"], "final_erank": final["erank"],
        "tunnel_length": tunnel_length(final["rank"], cfg.width, cfg.tunnel_frac),
    }


def metrics(res: dict, cfg: Config) -> dict:
    """The numbers the claims and figures use (no timings: equal seeds give equal files)."""
    runs = {name: summarize(r, cfg) for group in res.values() for name, r in group.items()}
    depth = list(res["depth"])
    shallow, deep = depth[0], depth[-1]
    # the deepest run of the sweep that fits with >= MIN_POST_FIT_EVALS evaluations left: a change
    # after fitting (grokking, the rank descent) needs some evaluations after fitting to be measured
    fitted = [n for n in depth if runs[n]["evals_after_fit"] >= MIN_POST_FIT_EVALS]
    grok = fitted[-1] if fitted else shallow
    t_fit, t_gen = runs[shallow]["t_fit"], runs[shallow]["t_gen"]
    out = {
        "runs": runs, "shallow": shallow, "deep": deep, "grok_run": grok,
        # how far the deepest net is behind the shallowest when the shallowest fits / generalizes
        "fit_lead": _lead(res, shallow, deep, "train_acc", t_fit),
        "gen_lead": _lead(res, shallow, deep, "test_acc", t_gen),
        "tunnel": {str(runs[n]["depth"]): runs[n]["tunnel_length"] for n in depth},
        "tunnel_growth": runs[deep]["tunnel_length"] - runs[shallow]["tunnel_length"],
        "tunnel_monotone": all(runs[a]["tunnel_length"] <= runs[b]["tunnel_length"] for a, b in zip(depth, depth[1:])),
    }
    if res["stage"]:
        out["stage_run"] = next(iter(res["stage"]))
    if res["regime"]:
        out["regimes"] = {f"{runs[n]['weight_decay']:g}": n for n in res["regime"]}
    return C.finite(out)


def _lead(res, a, b, key, step):
    """key of run a minus key of run b at `step` (inf/None step: nan)."""
    if step is None or math.isinf(step):
        return math.nan
    return value_at(*series(res["depth"][a], key), step) - value_at(*series(res["depth"][b], key), step)


def _grok(m):
    return m["runs"][m["grok_run"]]


def _stage(m):
    """The two-stage run's indicators ({} if the configuration has none: its claims fail)."""
    return m["runs"][m["stage_run"]] if m.get("stage_run") else {}


CLAIMS = [
    C.Claim("depth-delays-fitting",
            "Deeper MLPs fit the training set later",
            "training accuracy delayed as depth increases (Fig. 2a–c)",
            lambda m: C.num(m["fit_lead"]), lambda v: v >= 0.3,
            "when the shallowest net reaches 99% train accuracy, the deepest is ≥ 30 points behind", "{:+.3f}"),
    C.Claim("depth-delays-generalization",
            "Deeper MLPs generalize later",
            "test accuracy delayed as depth increases (Fig. 2a–c)",
            lambda m: C.num(m["gen_lead"]), lambda v: v >= 0.15,
            "at the shallowest net's t_gen, the deepest is ≥ 15 points behind in test accuracy", "{:+.3f}"),
    C.Claim("grokking-low-at-fit",
            "Grokking: when the training set is fitted, the test accuracy is still low",
            "test accuracy far below train at fitting (Figs. 1–2)",
            lambda m: C.num(_grok(m)["test_at_fit"]), lambda v: v <= 0.5,
            "test accuracy at t_fit ≤ 0.5 (the deepest run that fits, with ≥ 2 evaluations after t_fit)", "{:.3f}"),
    C.Claim("grokking-high-at-end",
            "Grokking: the test accuracy rises long after fitting",
            "test accuracy eventually high (Figs. 1–2)",
            lambda m: C.num(_grok(m)["final_test"]), lambda v: v >= 0.8,
            "final test accuracy ≥ 0.8 (same run)", "{:.3f}"),
    C.Claim("rank-falls-when-test-rises",
            "The feature rank falls while the test accuracy rises after fitting",
            "ranks decrease as test accuracy rises (Fig. 1a, b)",
            lambda m: C.num(_grok(m)["pen_erank_change_after_fit"]), lambda v: v <= -0.10,
            "effective rank of the second-to-last layer, t_fit → end: change ≤ −10%", "{:+.1%}"),
    C.Claim("rank-onset-coincides",
            "The rank starts to fall when the network generalizes",
            "descent of the rank coincides with the start of generalization (Figs. 1, 6, 7)",
            lambda m: C.num(_grok(m)["rank_onset_minus_gen_decades"]), lambda v: abs(v) <= 0.3,
            "rank falls 5% below its post-fit maximum within ±0.3 decades of t_gen", "{:+.2f} decades"),
    C.Claim("norm-no-marker",
            "The weight norm does not mark the transition: it falls long before it",
            "weight-norm curves decrease smoothly and overlap (Fig. 5)",
            lambda m: C.num(_grok(m)["norm_onset_minus_gen_decades"]), lambda v: v <= -0.5,
            "weight norm falls 5% below its maximum ≥ 0.5 decades before t_gen", "{:+.2f} decades"),
    C.Claim("tunnel-grows-with-depth",
            "Deeper networks have longer tunnels of low-rank layers",
            "tunnel length 1 / 3 / 6 at depth 4 / 8 / 12, N = 5000 (Fig. 3)",
            lambda m: m["tunnel_growth"] if m["tunnel_monotone"] else -1, lambda v: v >= 2,
            "tunnel length non-decreasing in depth and deepest − shallowest ≥ 2 layers", "{:+.0f} layers"),
    C.Claim("two-stage-generalization",
            "A deep MLP generalizes in two stages",
            "8- and 12-layer MLPs at N = 7000: a second surge of test accuracy (Fig. 2d–f)",
            lambda m: C.num(_stage(m).get("two_stage_decades")), lambda v: v >= 0.3,
            "test accuracy rises ≥ 10 points, stays within 3 points for ≥ 0.3 decades, rises ≥ 10 points again",
            "{:.2f} decades"),
    C.Claim("rank-double-descent",
            "Its feature rank descends twice (rank double descent)",
            "rank falls, rises with the first stage, falls again with the second (Fig. 1c)",
            lambda m: C.num(_stage(m).get("rank_double_descent_depth")), lambda v: v >= DROP,
            "median effective rank of the last half of the layers falls, rises and falls again, each by "
            "≥ 5% (ours: the largest such %)", "{:.1%}"),
]


def _span(pair, fmt):
    """A pair of steps as text ("no" if None)."""
    return fmt.format(*(f"{t:,}" for t in pair)) if pair else "no"


def run_table(m):
    """One row per run: the indicators a reader compares."""
    import pandas as pd
    rows = []
    for n, s in m["runs"].items():
        rows.append({"run": n, "t_fit": s["t_fit"], "test at t_fit": s["test_at_fit"], "t_gen": s["t_gen"],
                     "final train": s["final_train"], "final test": s["final_test"],
                     "two-stage plateau": _span(s["two_stage"], "{} – {}"),
                     "rank double descent": _span(s["rank_double_descent"], "trough {}, peak {}"),
                     "tunnel": s["tunnel_length"]})
    return pd.DataFrame(rows).set_index("run")


def fitted_runs(m) -> list:
    """Names of the runs that reach 99% train accuracy."""
    return [n for n, s in m["runs"].items() if s["t_fit"] is not None]


def data_note(cfg: Config):
    """What the images of this run are, said plainly (a Markdown display)."""
    from IPython.display import Markdown
    n = sorted(set(cfg.n_trains()))
    text = {
        "mnist-test-split": f"**Data.** Offline, only the 10,000 MNIST *test* images are available, so this run "
                            f"draws its sets from them with seed {cfg.seed}: first {cfg.n_test} test images, then "
                            f"the training set(s) of {', '.join(map(str, n))} images from the remaining ones. The "
                            "paper uses the first N of the 60,000 training images and the full test set "
                            "(`-p data mnist` does, where the training file is available).",
        "mnist": f"**Data.** The paper's: the first {', '.join(map(str, n))} MNIST training images and the first "
                 f"{cfg.n_test} test images.",
        "digits": f"**Data.** scikit-learn's 8×8 digits (1,797 images, bundled with the package), split with seed "
                  f"{cfg.seed} into {cfg.n_test} test images and training sets of {', '.join(map(str, n))}: a "
                  "plumbing check, not MNIST.",
    }[cfg.data]
    return Markdown(text + " Pixels are scaled to [0, 1] and not normalised, as in the official code.")
