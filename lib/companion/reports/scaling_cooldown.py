"""The scaling-cooldown chapter's report: metrics from the run's results and the paper's
claims checked on them, per seed (figures: `scaling_cooldown_figures`). Nothing here
trains: editing it never invalidates cached results.

Perplexity gaps are ppl_a / ppl_b - 1 = exp(L_a - L_b) - 1 (the paper speaks of
perplexity); loss differences are in nats per character.
"""
import math

import numpy as np
from scipy import stats

from companion import claims as C
from companion.experiments.scaling_cooldown import Config, branch_point

MATCH = 0.02  # "matches": within ±2% in perplexity (the paper's ≈0.3 ppl at 17-19 ppl, rounded up)


def ppl_gap(loss_a: float, loss_b: float) -> float:
    """ppl(a) / ppl(b) - 1."""
    return math.exp(loss_a - loss_b) - 1


def worst(values) -> float:
    """The value of largest magnitude, with its sign (for two-sided tests over several lengths)."""
    return max(values, key=abs)


def branch_difference(trunk, branch, fresh) -> float:
    """Largest |difference| between the branched run (trunk up to the branch point, then
    the cooldown) and the same WSD schedule run from scratch: training losses of every
    step and every validation loss. Zero means bit-for-bit equal."""
    start = branch.steps[0]
    joined = trunk.train_loss[:start] + branch.train_loss
    diffs = [abs(a - b) for a, b in zip(joined, fresh.train_loss)]
    diffs.append(abs(branch.final_val - fresh.final_val))
    return max(diffs) if len(joined) == len(fresh.train_loss) else math.inf


def seed_metrics(m: dict, cfg: Config) -> dict:
    """The numbers of one seed's main-size runs."""
    T0, T_max, f = cfg.targets[0], cfg.targets[-1], cfg.cooldown_frac
    cos = {T: m["cosine"][T].final_val for T in cfg.targets}
    cd = {T: m["cooldown"][T].final_val for T in cfg.targets}
    lin = {T: m["linear"][T].final_val for T in cfg.targets}
    const, swa = m["trunk"].final_val, m["swa"]["val"][-1]
    fr = sorted(m["sweep"])
    out = {
        "initial_val": m["initial_val"],
        "cosine_final": {str(T): cos[T] for T in cfg.targets},
        "cooldown_final": {str(T): cd[T] for T in cfg.targets},
        "linear_final": {str(T): lin[T] for T in cfg.targets},
        "cd_vs_cos_ppl": {str(T): ppl_gap(cd[T], cos[T]) for T in cfg.targets},
        "cd_minus_cos": {str(T): cd[T] - cos[T] for T in cfg.targets},
        "cd_vs_cos_ppl_worst": worst([ppl_gap(cd[T], cos[T]) for T in cfg.targets]),
        "cd_vs_cos_ppl_min": min(ppl_gap(cd[T], cos[T]) for T in cfg.targets),
        "cd_vs_cos_ppl_max": max(ppl_gap(cd[T], cos[T]) for T in cfg.targets),
        "cd_vs_cos_ppl_longest": ppl_gap(cd[T_max], cos[T_max]),
        "cd_vs_cos_ppl_shortest": ppl_gap(cd[T0], cos[T0]),
        "trunk_at_shortest_minus_cos": m["trunk"].val_at(T0) - cos[T0] if T0 in m["trunk"].eval_steps else math.nan,
        "cosine_zero_final": m["cosine_to_zero"].final_val,
        "cos0_minus_cos": m["cosine_to_zero"].final_val - cos[T_max],
        "cd_vs_cos0_ppl": ppl_gap(cd[T_max], m["cosine_to_zero"].final_val),
        "sqrt_minus_linear": {str(T): cd[T] - lin[T] for T in cfg.targets},
        "sqrt_minus_linear_longest": cd[T_max] - lin[T_max],
        "sqrt_gain_longest": lin[T_max] - cd[T_max], "sqrt_gain_shortest": lin[T0] - cd[T0],
        "sqrt_gain_growth": (lin[T_max] - cd[T_max]) - (lin[T0] - cd[T0]),
        "sweep_final": {str(g): m["sweep"][g].final_val for g in fr},
        "sweep_best_frac": min(fr, key=lambda g: m["sweep"][g].final_val),
        "short_minus_main_cooldown": m["sweep"][fr[0]].final_val - m["sweep"][f].final_val,
        "long_minus_main_cooldown": m["sweep"][fr[-1]].final_val - m["sweep"][f].final_val,
        "constant_final": const, "swa_final": swa,
        "swa_best_horizon_final": min(m["swa"]["horizon_val"].values()),
        "swa_minus_constant": swa - const, "cooldown_minus_swa": cd[T_max] - swa,
        "swa_gain": const - swa, "swa_shortfall": swa - cd[T_max], "constant_minus_cooldown": const - cd[T_max],
        "swa_gap_closed": (const - swa) / (const - cd[T_max]) if const != cd[T_max] else math.nan,
        "cycle_mismatch_per_length": {str(T): m["cosine"][T_max].val_at(T) - cos[T] for T in cfg.targets[:-1]},
        "cycle_mismatch": min(m["cosine"][T_max].val_at(T) - cos[T] for T in cfg.targets[:-1]),
        "cycle_mismatch_max": max(m["cosine"][T_max].val_at(T) - cos[T] for T in cfg.targets[:-1]),
    }
    if "half_lr" in m:
        h = m["half_lr"]["cooldown"].final_val
        out.update({"half_lr_cooldown_final": h, "half_lr_constant_final": m["half_lr"]["trunk"].final_val,
                    "half_lr_constant_minus_full": m["half_lr"]["trunk"].final_val - const,
                    "half_lr_vs_cos_ppl": ppl_gap(h, cos[T_max]), "half_minus_full_lr": h - cd[T_max]})
    return out


def frontier(points: list) -> list:
    """The compute-optimal points: those with a lower loss than every point of fewer FLOPs.
    points: dicts with "flops" and "loss"."""
    out, best = [], math.inf
    for p in sorted(points, key=lambda p: p["flops"]):
        if p["loss"] < best:
            out.append(p)
            best = p["loss"]
    return out


def power_law(points: list) -> dict:
    """Least-squares fit of L = A * C^(-alpha) (a line in log-log) through the given points."""
    x = np.log([p["flops"] for p in points])
    y = np.log([p["loss"] for p in points])
    if len(points) < 2:
        return {"alpha": math.nan, "A": math.nan, "n": len(points)}
    slope, intercept = np.polyfit(x, y, 1)
    return {"alpha": float(-slope), "A": float(math.exp(intercept)), "n": len(points)}


def scaling_points(res: dict, cfg: Config, protocol: str) -> list:
    """One point per (size, T) of the first seed: FLOPs = flops per step x T (a branched
    cooldown counts as a run of its full length), final validation loss."""
    return [{"size": name, "T": T, "params": s["params"], "flops": s["flops_per_step"] * T,
             "loss": s[protocol][T].final_val}
            for name, s in res["sizes"].items() for T in cfg.targets]


def scaling_metrics(res: dict, cfg: Config) -> dict:
    cos, cd = scaling_points(res, cfg, "cosine"), scaling_points(res, cfg, "cooldown")
    fits = {}
    for name, pts in (("cosine", cos), ("cooldown", cd)):
        front = frontier(pts)
        fits[name] = {**power_law(front), "frontier": [f"{p['size']}@{p['T']}" for p in front]}
    gaps = [ppl_gap(b["loss"], a["loss"]) for a, b in zip(cos, cd)]
    fa, fb = set(fits["cosine"]["frontier"]), set(fits["cooldown"]["frontier"])
    return {
        "sizes": {name: {"params": s["params"], "flops_per_step": s["flops_per_step"],
                         "cosine_final": {str(T): s["cosine"][T].final_val for T in cfg.targets},
                         "cooldown_final": {str(T): s["cooldown"][T].final_val for T in cfg.targets}}
                  for name, s in res["sizes"].items()},
        "n_sizes": len(res["sizes"]), "n_points": len(gaps),
        "ppl_gap_worst": worst(gaps), "ppl_gap_min": min(gaps), "ppl_gap_max": max(gaps),
        "n_cooldown_better": sum(g < 0 for g in gaps),
        # sizes whose |ppl gap| is smaller at the longest length than at the shortest
        "n_sizes_gap_shrinks": sum(abs(ppl_gap(s["cooldown"][cfg.targets[-1]].final_val,
                                               s["cosine"][cfg.targets[-1]].final_val))
                                   < abs(ppl_gap(s["cooldown"][cfg.targets[0]].final_val,
                                                 s["cosine"][cfg.targets[0]].final_val))
                                   for s in res["sizes"].values()),
        "fit": fits,
        "alpha_ratio_minus_1": fits["cooldown"]["alpha"] / fits["cosine"]["alpha"] - 1,
        "frontier_jaccard": len(fa & fb) / len(fa | fb),
        "rank_corr": float(stats.spearmanr([p["loss"] for p in cos], [p["loss"] for p in cd]).statistic),
    }


def lr_metrics(res: dict, cfg: Config) -> dict:
    """The LR sweep: final losses per peak LR, each schedule's best LR, the tuned comparison."""
    sweep = res["lr_sweep"]
    lrs = sorted(sweep)
    cos = [sweep[lr]["cosine"].final_val for lr in lrs]
    cd = [sweep[lr]["cooldown"].final_val for lr in lrs]
    i, j = min(range(len(lrs)), key=cos.__getitem__), min(range(len(lrs)), key=cd.__getitem__)
    return {"lrs": lrs, "T": cfg.sweep_T, "cosine_final": cos, "cooldown_final": cd,
            "best_lr_cosine": lrs[i], "best_lr_cooldown": lrs[j], "lr_ratio": lrs[j] / lrs[i],
            "best_cd_vs_best_cos_ppl": ppl_gap(cd[j], cos[i]),
            "cosine_best_at_edge": int(i in (0, len(lrs) - 1)), "chosen_lr": cfg.lr,
            "chosen_vs_best_cos": cos[lrs.index(cfg.lr)] - cos[i]}


def metrics(res: dict, cfg: Config) -> dict:
    """The numbers the claims, figures and prose use (no timings, so equal seeds give equal
    files): per seed, their mean and sd, the scaling sweep, and the verifications' numbers."""
    per_seed = [seed_metrics(res["per_seed"][s], cfg) for s in res["seeds"]]
    first = res["per_seed"][res["seeds"][0]]
    T0, T_max, f = cfg.targets[0], cfg.targets[-1], cfg.cooldown_frac
    steps_cos = sum(len(h.steps) for h in first["cosine"].values())
    steps_cd = branch_point(T_max, f) + sum(len(h.steps) for h in first["cooldown"].values())
    planned = (branch_point(T_max, f) + sum(T - branch_point(T, f) for T in cfg.targets)) / sum(cfg.targets)
    stats_ = C.seed_stats(per_seed)
    by_T = stats_["mean"]["cd_vs_cos_ppl"]
    sweep_mean = stats_["mean"]["sweep_final"]
    return {
        "targets": list(cfg.targets), "main_size": res["main"], "main_params": first["params"],
        "cd_vs_cos_ppl_mean_min": min(by_T.values()), "cd_vs_cos_ppl_mean_max": max(by_T.values()),
        "n_seeds_gap_shrinks": sum(abs(s["cd_vs_cos_ppl_longest"]) < abs(s["cd_vs_cos_ppl_shortest"])
                                   for s in per_seed),
        "sweep_best_frac_of_mean": float(min(sweep_mean, key=sweep_mean.get)),
        "swa_window_frac": cfg.swa_horizon / T_max,
        "seeds": list(res["seeds"]), "n_seeds": len(res["seeds"]),
        "chars_seen_longest": T_max * cfg.batch_size * cfg.seq_len,
        "per_seed": per_seed, **stats_,
        "scaling": scaling_metrics(res, cfg), "lr_sweep": lr_metrics(res, cfg),
        "compute_ratio": steps_cd / steps_cos, "compute_ratio_planned": planned,
        "branch_equivalence_max_abs_diff": branch_difference(first["trunk"], first["cooldown"][T0],
                                                             first["fresh_wsd"]),
    }


def summary_frame(metrics: dict):
    """Per length: mean final loss of cosine and cooldown, and the perplexity gap (mean ± sd)."""
    import pandas as pd
    mean, sd = metrics["mean"], metrics["sd"]
    rows = []
    for T in map(str, metrics["targets"]):
        gap_sd = sd["cd_vs_cos_ppl"][T]
        rows.append({"T (steps)": T, "cosine → 10%": f"{mean['cosine_final'][T]:.4f}",
                     "constant + cooldown": f"{mean['cooldown_final'][T]:.4f}",
                     "linear cooldown": f"{mean['linear_final'][T]:.4f}",
                     "ppl_cd / ppl_cos − 1": f"{mean['cd_vs_cos_ppl'][T]:+.2%}"
                                             + (f" ± {gap_sd:.2%}" if gap_sd is not None else "")})
    return pd.DataFrame(rows)


_ppl = "{:+.2%}"
_nats = "{:+.4f} nats"

CLAIMS = [
    C.Claim("wsd-matches-cosine",
            "Constant LR + 20% (1-sqrt) cooldown matches cosine (to 10%) at every training length",
            "final ppl within ≈0.3 of cosine at 22k/33k/44k steps (≈ ±1.7%; 210M, Fig. 3)",
            lambda m: m["cd_vs_cos_ppl_worst"], C.within(-MATCH, MATCH),
            "worst ppl_cd / ppl_cos − 1 over the lengths within ±2%", _ppl),
    C.Claim("wsd-not-worse",
            "…and is never clearly worse than cosine (the practical point: it can replace cosine)",
            "the cooldown is at least as good as cosine at every length (Figs. 3, 12)",
            lambda m: m["cd_vs_cos_ppl_max"], C.below(MATCH),
            "worst ppl_cd / ppl_cos − 1 over the lengths < +2% (one-sided)", _ppl),
    C.Claim("matches-cosine-to-zero",
            "…and matches a cosine that decays to zero (the control for 'ends at zero')",
            "cosine to 0 can match the best cooldown in loss (Fig. 22, Table 5)",
            lambda m: m["cd_vs_cos0_ppl"], C.within(-MATCH, MATCH),
            "ppl_cd / ppl_cos→0 − 1 at the longest length within ±2%", _ppl),
    C.Claim("half-lr-matches-cosine",
            "In the paper's setting (constant LR at half the cosine peak), the cooldown matches cosine",
            "constant LR = ½ cosine peak, 20% cooldown (Sect. 5; optimum near half, Fig. 3)",
            lambda m: C.num(m.get("half_lr_vs_cos_ppl")), C.within(-MATCH, MATCH),
            "ppl_cd(½ LR) / ppl_cos − 1 at the longest length within ±2%", _ppl),
    C.Claim("sqrt-beats-linear",
            "The (1-sqrt) cooldown beats the linear one",
            "1-sqrt below linear (Fig. 4)",
            lambda m: m["sqrt_minus_linear_longest"], C.below(0.0),
            "L(1-sqrt) − L(linear) < 0 at the longest length", _nats),
    C.Claim("sqrt-gain-grows",
            "…and its gain grows with the training length",
            "the gap widens for longer runs (Fig. 4)",
            lambda m: m["sqrt_gain_growth"], C.above(0.0),
            "gain(longest T) − gain(shortest T) > 0, gain = L(linear) − L(1-sqrt)", _nats),
    C.Claim("cooldown-length",
            "A longer cooldown helps: 20% beats 5%",
            "longer cooldowns help up to 10–20% of the steps, where they surpass cosine (Fig. 5)",
            lambda m: m["short_minus_main_cooldown"], C.above(0.0),
            "L(5% cooldown) − L(20% cooldown) > 0", _nats),
    C.Claim("cooldown-plateau",
            "Gains plateau: a 40% cooldown is not clearly better than 20%",
            "largely stops improving when done over a majority of training (Fig. 5)",
            lambda m: m["long_minus_main_cooldown"], C.above(-0.01),
            "L(40%) − L(20%) > −0.01 nats (≈ 2.5× the calibration's paired seed sd)", _nats),
    C.Claim("swa-helps",
            "SWA on the constant-LR run greatly improves it",
            "SWA strongly improves constant-LR checkpoints (Fig. 10)",
            lambda m: m["swa_minus_constant"], C.below(-0.03),
            "L(const + SWA) − L(const) < −0.03 nats", _nats),
    C.Claim("swa-below-cooldown",
            "…but SWA does not reach an explicit cooldown",
            "SWA does not match the cooldown (Fig. 10)",
            lambda m: m["cooldown_minus_swa"], C.below(0.0),
            "L(cooldown) − L(const + SWA) < 0 (strict)", _nats),
    C.Claim("cycle-mismatch",
            "Cosine is good only at its own length: the longest cosine stopped early is worse",
            "the long cycle lies above the matched one before its end (Fig. 1)",
            lambda m: m["cycle_mismatch"], C.above(0.0),
            "min over shorter T of L(longest cosine at T) − L(cosine of length T) > 0", _nats),
    C.Claim("tuned-matches-cosine",
            "Each at its best peak LR, the cooldown matches cosine",
            "cosine and cooldown curves match at their tuned LRs (Fig. 3)",
            lambda m: m["lr_sweep"]["best_cd_vs_best_cos_ppl"], C.within(-MATCH, MATCH),
            "ppl(best cooldown) / ppl(best cosine) − 1 over the LR grid within ±2% (middle length, first seed)",
            _ppl, scope="run"),
    C.Claim("cooldown-lr-half",
            "The cooldown's best peak LR is about half the cosine's",
            "'the optimum lies slightly below at half of the optimal cosine maximum LR' (Fig. 3, right)",
            lambda m: m["lr_sweep"]["lr_ratio"], C.within(0.4, 0.6),
            "best LR(cooldown) / best LR(cosine) on the factor-2 grid is ½ (within 0.4–0.6; first seed)",
            "{:.2f}", scope="run"),
    C.Claim("scaling-diagonal",
            "Across model sizes and lengths, cooldown and cosine perplexities lie on the diagonal",
            "'almost perfectly on the diagonal' (Fig. 12, 33M–360M)",
            lambda m: m["scaling"]["ppl_gap_worst"], C.within(-MATCH, MATCH),
            "worst ppl_cd / ppl_cos − 1 over sizes × lengths within ±2% (first seed only)", _ppl, scope="run"),
    C.Claim("scaling-exponent",
            "The branched protocol gives the cosine protocol's loss-vs-compute exponent",
            "one trunk per size suffices for scaling laws (Fig. 12)",
            lambda m: m["scaling"]["alpha_ratio_minus_1"], C.within(-0.2, 0.2),
            "α_cd / α_cos − 1 within ±20%, α fitted on each protocol's compute-optimal runs (first seed only)",
            "{:+.1%}", scope="run"),
    C.Claim("scaling-frontier",
            "…and the same Pareto-optimal runs (lower loss than every run of less compute)",
            "same scaling law from either protocol (Fig. 12)",
            lambda m: m["scaling"]["frontier_jaccard"], C.above(0.999),
            "the two protocols' Pareto-optimal (size, T) sets are identical (Jaccard = 1; first seed only)",
            "{:.2f}", scope="run"),
]

VERIFICATIONS = [
    C.Verification("compute-ratio", "Compute of one trunk + branched cooldowns over one cosine per length",
                   lambda m: m["compute_ratio"] - m["compute_ratio_planned"], C.within(-1e-12, 1e-12),
                   "steps of the protocol (the trunk to its last branch point + every cooldown, the paper's "
                   "accounting) over Σ T equal the plan: the ratio is fixed by the chosen lengths, so it is no "
                   "evidence (paper: 0.53–0.60)", "{:.1g}"),
    C.Verification("branch-equivalence", "A branched cooldown equals the same WSD schedule run from scratch",
                   lambda m: m["branch_equivalence_max_abs_diff"], C.within(0.0, 0.0),
                   "max |difference| of every training and validation loss = 0 (bit-for-bit)", "{:.3g}"),
]


def words(metrics: dict) -> dict:
    """Words of the prose whose direction comes from the run."""
    s = metrics["scaling"]
    lr = metrics["lr_sweep"]
    mean = metrics["mean"]
    return {
            "cos0_side": "worse" if mean["cos0_minus_cos"] > 0 else "better",
            "cos0_explains": "does not explain" if mean["cos0_minus_cos"] > 0 else "may explain part of",
            "gap_trend": "shrinks" if abs(mean["cd_vs_cos_ppl_longest"]) < abs(mean["cd_vs_cos_ppl_shortest"])
                         else "does not shrink",
            "trunk_vs_cos_shortest": "above" if C.num(mean["trunk_at_shortest_minus_cos"]) > 0 else "at or below","scaling_side": "above" if s["n_cooldown_better"] * 2 > s["n_points"] else "below",
            "lr_bracket": "at the edge of the grid, so the grid does not bracket its optimum"
                          if lr["cosine_best_at_edge"] else "inside the grid",
            "scaling_better": "better" if s["ppl_gap_max"] < 0 else
                              ("worse" if s["ppl_gap_min"] > 0 else "better or worse")}
