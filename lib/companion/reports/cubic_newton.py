"""Metrics and claims of the cubic-newton chapter (Chayti, Doikov & Jaggi, 2025).

Every floor is the median full gradient norm over the last 10% of a run's logs
(companion.second_order.methods.tail); per seed, then reduced with claims.seed_stats.
The claims' thresholds were written in the chapter's brief before any run of this library
(its section 6: ratio <= 0.5 at batch 1, batch 1 within 2x of SCN's largest batch, a ratio
below 1 at every noise level); the convex one (ratio below 1) is the abstract's wording.
"""
import math

from companion.claims import Claim, Verification, above, below, seed_stats
from companion.second_order.methods import tail

PAPER = "Chayti, Doikov & Jaggi (2025), abstract"


def _ratio(a, b):
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else math.inf


def metrics(res: dict, cfg) -> dict:
    curves, bmax = res["curves"], max(cfg.batches)
    per_seed = []
    for i in range(cfg.n_seeds):
        f = {name: tail(logs[i]) for name, logs in curves.items()}
        scn_bmax = res["batches"][bmax]["SCN"][i]
        per_seed.append({
            "floor": {**f, "SCN_bmax": scn_bmax},
            "ratio_b1": _ratio(f["SCNM"], f["SCN"]),
            "ratio_corrected_b1": _ratio(f["SCNM-corrected"], f["SCN"]),
            "ratio_b1_vs_scn_bmax": _ratio(f["SCNM"], scn_bmax),
            "ratio_noise": {f"{s:g}": _ratio(res["noise"][s]["SCNM"][i], res["noise"][s]["SCN"][i])
                            for s in cfg.sigmas},
            "ratio_convex": _ratio(tail(res["convex"]["SCNM"][i]), tail(res["convex"]["SCN"][i])),
            "ratio_large_m": {f"{M:g}": _ratio(res["large_m"][M]["SCNM"][i], res["large_m"][M]["SCN"][i])
                              for M in cfg.large_Ms},
            "lam_min_final_scnm": curves["SCNM"][i]["lam_min"][-1],
            "gnorm_final_cn": curves["CN"][i]["gnorm"][-1],
        })
    return {"per_seed": per_seed, **seed_stats(per_seed)}


CLAIMS = [
    Claim("batch1", "With a single sample per step, momentum lowers stochastic cubic Newton's gradient-norm floor",
          f"momentum 'provably improves the variance' and converges 'even when using only a single stochastic "
          f"data sample per iteration' ({PAPER})",
          lambda m: m["ratio_b1"], below(0.5), "floor(SCNM) / floor(SCN) at batch 1 below 0.5 (ours, from the brief)"),
    Claim("large-batch", "...so that batch 1 with momentum reaches what SCN needs a large batch for",
          f"'existing stochastic second-order methods ... typically require large batches' ({PAPER})",
          lambda m: m["ratio_b1_vs_scn_bmax"], below(2.0),
          "floor(SCNM, b = 1) / floor(SCN, largest batch) below 2 (ours, from the brief)"),
    Claim("noise", "Momentum keeps its advantage at the largest noise level",
          f"momentum 'allows the method to converge for any noise level' ({PAPER})",
          lambda m: m["ratio_noise"][max(m["ratio_noise"], key=float)], below(1.0), "floor(SCNM) / floor(SCN) at the largest sigma below 1"),
    Claim("convex", "On the convex problem (no non-convex term) momentum is faster",
          f"'improved speed on convex stochastic problems for our regularized Newton methods with momentum' ({PAPER})",
          lambda m: m["ratio_convex"], below(1.0), "floor(SCNM) / floor(SCN) without the non-convex term below 1"),
]

VERIFICATIONS = [
    Verification("cn", "Deterministic cubic Newton (the solver and the closed-form oracles) reaches a stationary point",
                 lambda m: max(s["gnorm_final_cn"] for s in m["per_seed"]), below(1e-8),
                 "||grad f(x_T)|| of CN below 1e-8 on every seed"),
    Verification("sosp", "SCNM ends where the Hessian has no direction of negative curvature worth a step",
                 lambda m: min(s["lam_min_final_scnm"] for s in m["per_seed"]), above(-0.05),
                 "lambda_min(hess f(x_T)) of SCNM above -0.05 on every seed"),
]
