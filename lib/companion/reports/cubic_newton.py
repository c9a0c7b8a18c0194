"""Metrics and claims of the cubic-newton chapter (Chayti, Doikov & Jaggi, 2025).

Every floor is the median full gradient norm over the last 10% of a run's logs
(companion.second_order.methods.tail); per seed, then reduced with claims.seed_stats.
The claims' thresholds were written in the chapter's brief before any run of this library
(its section 6: ratio <= 0.5 at batch 1, batch 1 within 2x of SCN's largest batch, a ratio
below 1 at every noise level, of which the noise claim tests the largest level only), calibrated
there on a Hessian-corrected estimator, not on the paper's; the convex one (ratio below 1) is the
abstract's wording.
"""
import math

from companion.claims import Claim, Verification, above, below, seed_stats
from companion.second_order.methods import tail

PAPER = "Chayti, Doikov & Jaggi (2025), abstract"


def _ratio(a, b):
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else math.inf


def _best_lr(res: dict, name: str) -> float:
    """The step of the SGD sweep with the lowest floor, mean over seeds (the baseline's tuning)."""
    return min(res["step_sweep"], key=lambda lr: sum(res["step_sweep"][lr][name]))


def _first_positive_curvature(log: dict) -> float:
    """The first logged iteration at which lambda_min(hess f) > 0 (inf if none)."""
    return next((t for t, lam in zip(log["t"], log["lam_min"]) if lam > 0), math.inf)


ESCAPE = ("CN", "SCN", "SCNM", "SGD")


def metrics(res: dict, cfg) -> dict:
    curves, bmax = res["curves"], max(cfg.batches)
    lr_sgd, lr_sgdm = _best_lr(res, "SGD"), _best_lr(res, "SGD-momentum")
    per_seed = []
    for i in range(cfg.n_seeds):
        f = {name: tail(logs[i]) for name, logs in curves.items()}
        scn_bmax = res["batches"][bmax]["SCN"][i]
        per_seed.append({
            "floor": {**f, "SCN_bmax": scn_bmax, "SGD_tuned": res["step_sweep"][lr_sgd]["SGD"][i],
                      "SGD-momentum_tuned": res["step_sweep"][lr_sgdm]["SGD-momentum"][i]},
            "ratio_scnm_vs_sgd": _ratio(f["SCNM"], min(res["step_sweep"][lr_sgd]["SGD"][i],
                                                       res["step_sweep"][lr_sgdm]["SGD-momentum"][i])),
            "ratio_b1": _ratio(f["SCNM"], f["SCN"]),
            "ratio_corrected_b1": _ratio(f["SCNM-corrected"], f["SCN"]),
            "ratio_b1_vs_scn_bmax": _ratio(f["SCNM"], scn_bmax),
            "ratio_bmax": _ratio(res["batches"][bmax]["SCNM"][i], scn_bmax),
            "ratio_noise": {f"{s:g}": _ratio(res["noise"][s]["SCNM"][i], res["noise"][s]["SCN"][i])
                            for s in cfg.sigmas},
            "ratio_convex": _ratio(tail(res["convex"]["SCNM"][i]), tail(res["convex"]["SCN"][i])),
            "ratio_large_m": {f"{M:g}": _ratio(res["large_m"][M]["SCNM"][i], res["large_m"][M]["SCN"][i])
                              for M in cfg.large_Ms},
            "ratio_noise_max_sigma": _ratio(res["noise"][max(cfg.sigmas)]["SCNM"][i],
                                            res["noise"][max(cfg.sigmas)]["SCN"][i]),
            "ratio_large_m_max": _ratio(res["large_m"][max(cfg.large_Ms)]["SCNM"][i],
                                        res["large_m"][max(cfg.large_Ms)]["SCN"][i]),
            "ratio_mnist": (_ratio(tail(res["mnist"]["SCNM"][i]), tail(res["mnist"]["SCN"][i]))
                            if res.get("mnist") else math.nan),
            "ratio_lam": {f"{lam:g}": _ratio(res["nonconvexity"][lam]["SCNM"][i], res["nonconvexity"][lam]["SCN"][i])
                          for lam in cfg.lams},
            "ratio_lam_smallest": _ratio(res["nonconvexity"][min(cfg.lams)]["SCNM"][i],
                                         res["nonconvexity"][min(cfg.lams)]["SCN"][i]),
            "ratio_lam_largest": _ratio(res["nonconvexity"][max(cfg.lams)]["SCNM"][i],
                                        res["nonconvexity"][max(cfg.lams)]["SCN"][i]),
            "t_positive_curvature": {name: _first_positive_curvature(curves[name][i]) for name in ESCAPE},
            "lam_min_x0": curves["CN"][i]["lam_min"][0],
            "lam_min_final_scnm": curves["SCNM"][i]["lam_min"][-1],
            "gnorm_final_cn": curves["CN"][i]["gnorm"][-1],
        })
    sweep = [sum(res["sweep"][(a, M)]) / sum(res["sweep"][("SCN", M)]) for a in cfg.sweep_alphas for M in cfg.sweep_Ms]
    return {"per_seed": per_seed, **seed_stats(per_seed), "sgd_best_lr": lr_sgd, "sgdm_best_lr": lr_sgdm,
            "sweep": {"best_ratio": min(sweep), "worst_ratio": max(sweep), "n_below_1": sum(r < 1 for r in sweep),
                      "n_cells": len(sweep)}}


CLAIMS = [
    Claim("batch1", "With a single sample per step, momentum lowers stochastic cubic Newton's gradient-norm floor",
          f"momentum 'provably improves the variance' and converges 'even when using only a single stochastic "
          f"data sample per iteration' ({PAPER})",
          lambda m: m["ratio_b1"], below(0.5), "floor(SCNM) / floor(SCN) at batch 1 below 0.5 (ours, from the brief)"),
    Claim("large-batch", "...so that batch 1 with momentum reaches what SCN needs a large batch for",
          f"'existing stochastic second-order methods ... typically require large batches' ({PAPER})",
          lambda m: m["ratio_b1_vs_scn_bmax"], below(2.0),
          "floor(SCNM, b = 1) / floor(SCN, largest batch) below 2 (ours, from the brief)"),
    Claim("noise", "At the largest injected noise level, momentum lowers the floor",
          f"momentum 'allows the method to converge for any noise level' ({PAPER})",
          lambda m: m["ratio_noise_max_sigma"], below(1.0), "floor(SCNM) / floor(SCN) at the largest sigma below 1"),
    Claim("batch1-mnist", "The batch-1 gain holds on the second data set (MNIST, digit < 5, pooled)",
          f"experiments on A9A and MNIST (a summary of the paper; its figures were not read)",
          lambda m: m["ratio_mnist"], below(0.5), "floor(SCNM) / floor(SCN) at batch 1 on MNIST below 0.5 (ours)"),
    Claim("beats-sgd", "At batch 1, SCNM ends below the better of tuned SGD and SGD with momentum",
          "SCN with momentum compared against SCN and SGD: 'faster convergence and reduced variance' "
          "(a summary of the paper; its figures were not read)",
          lambda m: m["ratio_scnm_vs_sgd"], below(1.0),
          "floor(SCNM) / floor(best SGD variant, each at the best step of its sweep) below 1 (ours)"),
    Claim("convex", "On the convex problem (no non-convex term) momentum is faster",
          f"'improved speed on convex stochastic problems for our regularized Newton methods with momentum' ({PAPER})",
          lambda m: m["ratio_convex"], below(1.0), "floor(SCNM) / floor(SCN) without the non-convex term below 1"),
    Claim("large-m", "At large M and a long horizon (small, damped steps), momentum lowers the batch-1 floor",
          f"as for batch1 ({PAPER})",
          lambda m: m["ratio_large_m_max"], below(1.0),
          "floor(SCNM) / floor(SCN) at the largest M of the large-M study below 1; this regime (M, alpha, T) "
          "was chosen AFTER seeing calibration runs in which the main setting failed (disclosed)"),
]

def summary_frame(metrics: dict):
    """Per method: the batch-1 floor (mean and sd over seeds) and its ratio to SCN's."""
    import pandas as pd
    mean, sd = metrics["mean"]["floor"], metrics["sd"]["floor"]
    rows = []
    for name, label in [("CN", "CN (full oracle)"), ("SCN", "SCN, b = 1"), ("SCNM", "SCNM, b = 1 (paper's, ours)"),
                        ("SCNM-corrected", "SCNM corrected, b = 1 (ours)"), ("SGD", "SGD, b = 1"),
                        ("SGD-momentum", "SGD + momentum, b = 1"), ("SGD_tuned", "SGD, b = 1, best step"),
                        ("SGD-momentum_tuned", "SGD + momentum, b = 1, best step"),
                        ("SCN_bmax", "SCN, largest batch")]:
        sdv = sd[name]
        rows.append({"method": label, "floor of ||grad f|| (mean)": f"{mean[name]:.3g}",
                     "sd over seeds": "—" if sdv is None else f"{sdv:.2g}",
                     "/ floor(SCN, b = 1)": f"{mean[name] / mean['SCN']:.2f}"})
    return pd.DataFrame(rows)


def words(metrics: dict) -> dict:
    """Words of the prose whose direction comes from the run."""
    mean = metrics["mean"]

    def side(r):
        return "lower" if r < 1 else "higher"
    def trend(values):
        steps = [b - a for a, b in zip(values, values[1:])]
        return ("falls at every step" if all(d < 0 for d in steps) else
                "rises at every step" if all(d > 0 for d in steps) else "is not monotone")
    noise = [mean["ratio_noise"][k] for k in sorted(mean["ratio_noise"], key=float)]
    lam = [mean["ratio_lam"][k] for k in sorted(mean["ratio_lam"], key=float)]
    mnist = mean.get("ratio_mnist")

    def escape(name):
        ts = [s["t_positive_curvature"][name] for s in metrics["per_seed"]]
        if not all(t is not None and math.isfinite(t) for t in ts):
            return "not on every seed within the horizon"
        return f"after {min(ts):.0f} to {max(ts):.0f} iterations" if len(ts) > 1 else f"after {ts[0]:.0f} iterations"
    return {"b1_side": side(mean["ratio_b1"]), "corrected_side": side(mean["ratio_corrected_b1"]),
            "sgd_side": side(mean["ratio_scnm_vs_sgd"]), "bmax_side": side(mean["ratio_bmax"]),
            "convex_side": side(mean["ratio_convex"]),
            "mnist_side": "not measured" if mnist is None or mnist != mnist else side(mnist),
            "noise_trend": trend(noise) if len(noise) > 1 else "has one value",
            "lam_trend": trend(lam) if len(lam) > 1 else "has one value",
            "lam_n_below_1": str(sum(r < 1 for r in lam)), "lam_n": str(len(lam)),
            "large_m_side": side(mean["ratio_large_m_max"]),
            **{f"escape_{name}": escape(name) for name in ESCAPE}}


VERIFICATIONS = [
    Verification("cn", "Full-oracle cubic Newton reaches a stationary point",
                 lambda m: max(s["gnorm_final_cn"] for s in m["per_seed"]), below(1e-8),
                 "‖∇f(x_T)‖ of CN below 1e-8 on every seed"),
    Verification("nonconvex", "The problem is non-convex where the runs start",
                 lambda m: max(s["lam_min_x0"] for s in m["per_seed"]), below(0.0),
                 "λ_min(∇²f(x_0)) below 0 on every seed"),
    Verification("sosp", "SCNM ends without negative curvature",
                 lambda m: min(s["lam_min_final_scnm"] for s in m["per_seed"]), above(-0.05),
                 "λ_min(∇²f(x_T)) of SCNM above −0.05 on every seed"),
]
