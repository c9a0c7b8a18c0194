"""The deep-grokking chapter's report: per-run indicators, per-seed comparisons with the
controls, and the paper's claims checked on them over seeds (figures:
`deep_grokking_figures`; sentences: `deep_grokking_prose`). Nothing here trains."""
import math

import numpy as np

from companion import claims as C
from companion.experiments.deep_grokking import Config
from companion.metrics import grokking as G
from companion.metrics.features import tunnel_length

CHANCE = 0.1
PEN = -2  # the second-to-last Linear layer, whose rank the paper's Fig. 5 shows
DROP = 0.05  # a rank "starts to fall" when it is 5% below its running maximum


def series(run, key, layer=None):
    """(steps, values) of a run's records; `layer` picks one entry of a per-layer list."""
    recs = run["records"]
    vals = [r[key] if layer is None else r[key][layer] for r in recs]
    return np.array([r["step"] for r in recs], dtype=int), np.array(vals, dtype=float)


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
    """log10(b / a) in decades (nan if either never happened)."""
    if math.isinf(a) or math.isinf(b):
        return math.nan
    return math.log10(max(b, 1) / max(a, 1))


def _after(steps, values, t0):
    keep = steps >= t0
    return steps[keep].tolist(), values[keep].tolist()


def tunnels(ranks, cfg: Config) -> dict:
    """Tunnel length at every threshold of cfg.tunnel_fracs: {"0.75": 3, ...}."""
    return {f"{f:g}": tunnel_length(ranks, cfg.width, f) for f in cfg.tunnel_fracs}


def summarize(run, cfg: Config) -> dict:
    """Indicators of one run: when it fits and generalizes, how much it generalizes after
    fitting, what the second-to-last layer's rank does (from the end of the initial transient,
    `cfg.dense_from`, not from t_fit), double descents of the late layers' rank with and
    without the transient, the tunnel at fitting and at the end."""
    steps, train = series(run, "train_acc")
    _, test = series(run, "test_acc")
    _, pen = series(run, "erank", PEN)
    _, med = late_median(run)
    t0, t_end = cfg.dense_from, int(steps[-1])
    t_fit = G.fit_step(steps.tolist(), train)
    fitted = not math.isinf(t_fit)
    t_gen = G.generalization_step(steps.tolist(), test, CHANCE) if fitted else math.inf
    rank_onset = G.descent_onset(steps.tolist(), pen, after=t0, drop=DROP)
    plateau = G.two_stage(steps.tolist(), test.tolist())
    at = lambda s, v, t: value_at(s, v, t) if fitted else math.nan  # noqa: E731
    fit_rec = run["records"][int(np.searchsorted(steps, t_fit))] if fitted else None
    return {
        "depth": run["spec"]["depth"], "n_train": run["spec"]["n_train"], "seed": run["spec"]["seed"],
        "weight_decay": run["spec"]["weight_decay"], "alpha": run["spec"]["alpha"], "steps": t_end,
        "final_train": float(train[-1]), "final_test": float(test[-1]), "best_test": float(test.max()),
        "t_fit": t_fit, "t_gen": t_gen, "evals_after_fit": int((steps > t_fit).sum()),
        "test_at_fit": at(steps, test, t_fit),
        "gain_after_fit": float(test[-1]) - at(steps, test, t_fit),
        "two_stage": list(plateau) if plateau else None,
        "two_stage_decades": _log_gap(*plateau) if plateau else 0.0,
        # the double descent of the late layers' rank: the claim's rule (from t0, the first fall
        # starting at a maximum after t0, so that the tail of the transient is no first descent),
        # and two looser rules for comparison: from t0 without the peak condition (the rule stated
        # before this run) and from step 0 (the first version's, where the transient is the first
        # descent of every run); and the rise-then-fall alone
        "rank_double_descent": G.double_descent(*_after(steps, med, t0), rel=DROP, from_peak=True),
        "rank_dd_depth": G.double_descent_depth(*_after(steps, med, t0), from_peak=True),
        "rank_dd_depth_from_t0_any": G.double_descent_depth(*_after(steps, med, t0)),
        "rank_dd_depth_from_0": G.double_descent_depth(steps.tolist(), med.tolist()),
        "rank_rise_fall": G.rise_fall(*_after(steps, med, t0), rel=DROP),
        "rank_rise_fall_depth": G.detector_depth(G.rise_fall, *_after(steps, med, t0)),
        "test_at_t0": value_at(steps, test, t0),
        "pen_erank": {"start": float(pen[0]), "t0": value_at(steps, pen, t0), "fit": at(steps, pen, t_fit),
                      "end": float(pen[-1]), "max_after_t0": float(pen[steps >= t0].max())},
        "pen_erank_change_before_fit": _rel(steps, pen, t0, t_fit) if fitted and t_fit > t0 else math.nan,
        "pen_erank_change_after_fit": _rel(steps, pen, t_fit, t_end) if fitted else math.nan,
        # how much of the change after fitting happens between two evaluations (a jump, not a drift)
        "pen_erank_largest_jump_share": _jump_share(steps, pen, t_fit) if fitted else math.nan,
        "rank_onset": rank_onset, "rank_onset_minus_gen_decades": _log_gap(t_gen, rank_onset),
        "rank_onset_minus_fit_decades": _log_gap(t_fit, rank_onset),
        "norm": {"start": float(run["records"][0]["norm"]), "end": float(run["records"][-1]["norm"])},
        "final_rank": run["records"][-1]["rank"],
        "tunnel_at_fit": tunnels(fit_rec["rank"], cfg) if fit_rec else None,
        "tunnel_at_end": tunnels(run["records"][-1]["rank"], cfg),
        "probe": _probes(run),
    }


def _probes(run):
    """The first and last linear-probe evaluation of a run: step, the least readable hidden
    layer's probe accuracy, the output layer's (None if the run has no probes)."""
    recs = [r for r in run["records"] if "probe_acc" in r]
    if not recs:
        return None
    a, b = recs[0], recs[-1]
    return {"first_step": a["step"], "last_step": b["step"], "worst_hidden_first": min(a["probe_acc"][:-1]),
            "worst_hidden_last": min(b["probe_acc"][:-1])}


def _jump_share(steps, values, t):
    """The largest change between consecutive evaluations after step t, as a share of the
    whole change from t to the end (nan if there is none)."""
    v = values[steps >= t]
    total = abs(v[-1] - v[0])
    return float(np.max(np.abs(np.diff(v))) / total) if len(v) > 1 and total > 0 else math.nan


def curve_distance(a, b, key, layer=None, t0=0, how="l2"):
    """How far two runs' curves of `key` are apart on their common evaluation steps >= t0:
    "l2" = ||a - b|| / ||a|| (the curves as vectors), "max" = max_t |a - b| / max(a, b)."""
    sa, va = series(a, key, layer)
    sb, vb = series(b, key, layer)
    common = sorted(set(sa[sa >= t0].tolist()) & set(sb.tolist()))
    if len(common) < 2:
        return math.nan
    x = np.array([value_at(sa, va, t) for t in common])
    y = np.array([value_at(sb, vb, t) for t in common])
    if how == "l2":
        return float(np.linalg.norm(x - y) / np.linalg.norm(x))
    return float(np.max(np.abs(x - y) / np.maximum(np.maximum(x, y), 1e-12)))


def _gap_at(a, b, step):
    """|a - b| / max(a, b) of the second-to-last layer's effective rank at `step`."""
    x, y = (value_at(*series(r, "erank", PEN), step) for r in (a, b))
    return abs(x - y) / max(x, y) if max(x, y) > 0 else math.nan


def _by_seed(group: dict) -> dict:
    return {r["spec"]["seed"]: r for r in group.values()}


def _lead(a, b, key, step):
    """key of run a minus key of run b at `step` (nan if the step never happened)."""
    if math.isinf(step):
        return math.nan
    return value_at(*series(a, key), step) - value_at(*series(b, key), step)


def seed_metrics(res: dict, cfg: Config, seed: int, runs: dict) -> dict:
    """Everything a claim reads for one seed: the grokking net, its controls and its larger-N
    twin of this seed, the comparisons between them, and (if this seed has one) the deepest
    net of the sweep against the first."""
    by_depth = {}
    for name, r in res["sweep"].items():
        if r["spec"]["seed"] == seed:
            by_depth[r["spec"]["depth"]] = (name, r)
    d0 = cfg.depths[0]
    main_name, main = by_depth[d0]
    s = runs[main_name]
    out = {"seed": seed, "main": s}
    for group in ("alpha", "decay", "data"):
        run = _by_seed(res[group]).get(seed)
        out[group] = runs[next(n for n, r in res[group].items() if r is run)] if run else {}
    a, d, n = out["alpha"], out["decay"], out["data"]
    out["init_gain_excess"] = s["gain_after_fit"] - a.get("gain_after_fit", math.nan)
    out["decay_final_excess"] = s["final_test"] - d.get("final_test", math.nan)
    out["decay_rank_change_excess"] = s["pen_erank_change_after_fit"] - d.get("pen_erank_change_after_fit",
                                                                             math.nan)
    controls = [x["rank_dd_depth"] for x in (a, d) if x]
    out["dd_excess"] = n.get("rank_dd_depth", math.nan) - max(controls) if controls else math.nan
    data_run = _by_seed(res["data"]).get(seed)
    out["norm_distance_n"] = curve_distance(main, data_run, "norm", how="l2") if data_run else math.nan
    out["norm_gap_n"] = curve_distance(main, data_run, "norm", t0=cfg.dense_from, how="max") \
        if data_run else math.nan
    out["rank_distance_n"] = curve_distance(main, data_run, "erank", PEN, cfg.dense_from, "max") \
        if data_run else math.nan
    out["rank_gap_at_t0"] = _gap_at(main, data_run, cfg.dense_from) if data_run else math.nan
    deeper = [dd for dd in by_depth if dd != d0]
    if deeper:
        dn, deep = by_depth[max(deeper)]
        out["deep"] = runs[dn]
        out["fit_lead"] = _lead(main, deep, "train_acc", s["t_fit"])
        out["gen_lead"] = _lead(main, deep, "test_acc", s["t_gen"])
        ta, tb = s["tunnel_at_fit"], runs[dn]["tunnel_at_fit"]
        out["tunnel_gain"] = {f: tb[f] - ta[f] for f in ta} if ta and tb else None
        out["tunnel_gain_min"] = min(out["tunnel_gain"].values()) if out["tunnel_gain"] else math.nan
    return out


def _ratio(a, b):
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def metrics(res: dict, cfg: Config) -> dict:
    """The numbers the claims, figures and prose use (no timings: equal seeds give equal files)."""
    runs = {name: summarize(r, cfg) for group in res.values() for name, r in group.items()}
    per_seed = [seed_metrics(res, cfg, s, runs) for s in cfg.seeds]
    # the seed-to-seed spread of the rank curve, the yardstick of rank_distance_n: each seed's
    # grokking net against the next seed's
    mains = [next(r for r in res["sweep"].values() if r["spec"]["seed"] == s and r["spec"]["depth"] == cfg.depths[0])
             for s in cfg.seeds]
    twins = _by_seed(res["data"])
    for i, m in enumerate(per_seed):
        nxt = cfg.seeds[(i + 1) % len(cfg.seeds)] if len(cfg.seeds) > 1 else None
        pairs = [(mains[i], mains[(i + 1) % len(mains)])] if nxt is not None else []
        if nxt is not None and cfg.seeds[i] in twins and nxt in twins:
            pairs.append((twins[cfg.seeds[i]], twins[nxt]))

        def seed_gap(key, layer=None, how="max", t0=cfg.dense_from):
            """The larger of the two training sizes' seed-to-seed distances (this seed vs the next)."""
            return max((curve_distance(a, b, key, layer, t0, how) for a, b in pairs), default=math.nan)
        m["rank_distance_seeds"] = seed_gap("erank", PEN)
        m["norm_distance_seeds"] = seed_gap("norm", how="l2", t0=0)
        m["norm_gap_seeds"] = seed_gap("norm")
        m["rank_separation"] = m["rank_distance_n"] - m["rank_distance_seeds"]
        # how many times the seed-to-seed gap the two N are apart, the same statistic (largest
        # relative gap from t0) for the norm and the rank: an observation, not a claim
        m["norm_sep_ratio"] = _ratio(m["norm_gap_n"], m["norm_gap_seeds"])
        m["rank_sep_ratio"] = _ratio(m["rank_distance_n"], m["rank_distance_seeds"])
    deep = [m for m in per_seed if "deep" in m]
    out = {"runs": runs, "per_seed": per_seed, "per_deep_seed": deep, "n_deep_seeds": len(deep),
           "seeds": list(cfg.seeds), "depths": list(cfg.depths), "width": cfg.width,
           "tunnel_frac": cfg.tunnel_frac}
    out.update(C.seed_stats(per_seed))
    if deep:
        out["deep_stats"] = C.seed_stats(deep)
    if res["regime"]:
        out["regimes"] = {f"{runs[n]['weight_decay']:g}": n for n in res["regime"]}
    return C.finite(out)


def _per(key, *path):
    """A claim's reader: the per-seed metric at key (then path), None read as nan."""
    def read(m):
        v = m.get(key, {}) if path else m.get(key)
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return C.num(v)
    return read


class DeepClaim(C.Claim):
    """A claim read on the seeds that have a deep net (metrics["per_deep_seed"]), not on every
    seed of the grokking net."""

    def values(self, metrics: dict) -> list:
        return [float(self.our_value(m)) for m in metrics["per_deep_seed"]] if metrics.get("per_deep_seed") \
            else super().values(metrics)


CLAIMS = [
    DeepClaim("depth-delays-fitting", "Deeper MLPs fit the training set later",
            "training accuracy delayed as depth increases (Fig. 2a–c)", _per("fit_lead"), C.above(0.3, False),
            "when the shallow net reaches 99% train accuracy, the deepest is ≥ 30 points behind", "{:+.3f}"),
    DeepClaim("depth-delays-generalization", "Deeper MLPs generalize later",
            "test accuracy delayed as depth increases (Fig. 2a–c)", _per("gen_lead"), C.above(0.15, False),
            "at the shallow net's t_gen, the deepest is ≥ 15 points behind in test accuracy", "{:+.3f}"),
    C.Claim("grokking-low-at-fit", "Grokking: when the training set is fitted, the test accuracy is still low",
            "test accuracy far below train at fitting (Figs. 1–2)", _per("main", "test_at_fit"), C.below(0.5, False),
            "the grokking net's test accuracy at t_fit ≤ 0.5", "{:.3f}"),
    C.Claim("grokking-high-at-end", "Grokking: the test accuracy rises long after fitting",
            "test accuracy eventually high (Figs. 1–2)", _per("main", "final_test"), C.above(0.8, False),
            "its final test accuracy ≥ 0.8", "{:.3f}"),
    C.Claim("grokking-needs-large-init", "Control: without the large initialisation there is no grokking",
            "α = 8 is the grokking knob (after Omnigrok, §2)", _per("init_gain_excess"), C.above(0.2, False),
            "test accuracy gained after t_fit: grokking net minus the α-control ≥ 0.2 (ours, fixed before the run)",
            "{:+.3f}"),
    C.Claim("decay-drives-generalization", "Control: with too little weight decay the network generalizes less",
            "γ = 0.005 fails to generalize at N = 2000 (Fig. 6)", _per("decay_final_excess"), C.above(0.1, False),
            "final test accuracy: grokking net minus the small-γ control ≥ 0.1 (ours, fixed before the run)",
            "{:+.3f}"),
    C.Claim("rank-falls-when-test-rises", "The feature rank falls while the test accuracy rises after fitting",
            "ranks decrease as test accuracy rises (Fig. 1a, b)", _per("main", "pen_erank_change_after_fit"),
            C.below(-0.10, False), "effective rank of the second-to-last layer, t_fit → end: change ≤ −10%",
            "{:+.1%}"),
    C.Claim("rank-fall-needs-generalization", "Control: without generalization the rank does not fall as much",
            "rank descent and generalization begin together in every regime (Figs. 6–7)",
            _per("decay_rank_change_excess"), C.below(-0.10, False),
            "rank change t_fit → end, grokking net minus the small-γ control ≤ −10 points (ours, fixed before "
            "the run)", "{:+.1%}"),
    C.Claim("rank-onset-coincides", "The rank starts to fall when the network generalizes",
            "descent of the rank coincides with the start of generalization (Figs. 1, 6, 7)",
            _per("main", "rank_onset_minus_gen_decades"), C.within(-0.3, 0.3),
            "the rank, searched from the end of the initial transient, first falls 5% below its running maximum "
            "within ±0.3 decades of t_gen", "{:+.2f} dec."),
    C.Claim("norm-curves-overlap", "The weight norm does not tell runs that generalize differently apart",
            "weight-norm curves largely overlap across training sizes (Fig. 5)", _per("norm_distance_n"),
            C.below(0.10, False), "norm curves at N and at the larger N: relative L2 distance ≤ 10% (brief)",
            "{:.1%}"),
    C.Claim("rank-curves-separate", "…while the feature rank does",
            "rank curves differ between training sizes (Fig. 5)", _per("rank_separation"), C.above(0.10, False),
            "largest relative gap between the rank curves at the two N (from the end of the transient), minus "
            "the larger seed-to-seed gap of the two sizes, ≥ 10 points (ours; the yardstick was one size's "
            "seeds before this run's review)", "{:+.1%}"),
    DeepClaim("tunnel-grows-with-depth", "Deeper networks have longer tunnels of low-rank layers",
            "tunnel length 1 / 3 / 6 at depth 4 / 8 / 12, N = 5000 (Fig. 3)", _per("tunnel_gain_min"),
            C.above(1, False), "at each net's own t_fit: the deepest net's tunnel is ≥ 1 layer longer at every "
            "threshold (0.6–0.9 × width)", "{:+.1f} layers"),
    C.Claim("two-stage-generalization", "With more data, generalization comes in two stages",
            "a second surge of test accuracy at N = 7000, depths 8 and 12 (Fig. 2e–f; "
            "none at depth 4)", _per("data", "two_stage_decades"),
            C.above(0.3, False), "larger-N run: test rises ≥ 10 points, stays within 3 points for ≥ 0.3 "
            "decades, rises ≥ 10 points again", "{:.2f} dec."),
    C.Claim("rank-double-descent", "With more data, the rank descends twice, and the controls do not",
            "rank falls, rises with the first stage, falls with the second (Fig. 1c, depth 12)", _per("dd_excess"),
            C.above(DROP, False), "after the initial transient, the late layers' median rank falls from a "
            "maximum, rises and falls again (depth = the largest % each move reaches) in the larger-N run by "
            "≥ 5 points more than in either control (the peak condition added after this run's review)",
            "{:+.1%}"),
]

VERIFICATIONS = [
    C.Verification("ranks-bounded", "every rank ≤ the layer's width; output-layer rank ≤ 10",
                   lambda m: float(all(max(s["final_rank"][:-1]) <= m["width"] and s["final_rank"][-1] <= 10
                                       for s in m["runs"].values())), lambda v: v == 1.0, "all runs", "{:.0f}"),
]


def run_table(m):
    """One row per run: the indicators a reader compares."""
    import pandas as pd
    rows = []
    for n, s in m["runs"].items():
        rows.append({"run": n, "t_fit": s["t_fit"], "test at t_fit": s["test_at_fit"], "t_gen": s["t_gen"],
                     "final train": s["final_train"], "final test": s["final_test"],
                     "rank change after fit": s["pen_erank_change_after_fit"],
                     "double descent (claim's rule)": s["rank_dd_depth"],
                     "(no peak condition)": s["rank_dd_depth_from_t0_any"],
                     "(from step 0)": s["rank_dd_depth_from_0"], "rise then fall": s["rank_rise_fall_depth"]})
    return pd.DataFrame(rows).set_index("run")


def data_note(cfg: Config):
    """What the images of this run are, said plainly (a Markdown display)."""
    from IPython.display import Markdown
    n = sorted(set(cfg.n_trains()))
    seeds = ", ".join(map(str, cfg.seeds))
    text = {
        "mnist-test-split": f"**Data.** Offline, only the 10,000 MNIST *test* images are available, so each seed "
                            f"({seeds}) draws its own sets from them: first {cfg.n_test} test images, then the "
                            f"training set(s) of {', '.join(map(str, n))} images from the remaining ones (the "
                            "smaller set is part of the larger). The paper uses the first N of the 60,000 "
                            "training images and the full test set (`-p data mnist` does, where the training file "
                            "is available).",
        "mnist": f"**Data.** The paper's: the first {', '.join(map(str, n))} MNIST training images and the first "
                 f"{cfg.n_test} test images.",
        "digits": f"**Data.** scikit-learn's 8×8 digits (1,797 images, bundled with the package), split with each "
                  f"seed ({seeds}) into {cfg.n_test} test images and training sets of {', '.join(map(str, n))}: a "
                  "plumbing check, not MNIST.",
    }[cfg.data]
    return Markdown(text + " Pixels are scaled to [0, 1] and not normalised, as in the official code.")
