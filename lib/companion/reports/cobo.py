"""The cobo chapter's report: indicators of every group of runs, the paper's claims checked on
them, and tables (figures: `cobo_figures`). Nothing here trains; wall times are shown, never
put in the metrics."""
import math

import pandas as pd
import torch

from companion import claims as C
from companion.collab import cobo
from companion.experiments.cobo import Config
from companion.plotting import colors

LABELS = {"local": "Local", "fedavg": "FedAvg", "ft_fedavg": "fine-tuned FedAvg", "ditto": "Ditto", "ifca": "IFCA",
          "fc": "Federated Clustering", "cobo": "CoBo", "oracle": "Oracle"}
BASELINES = ("local", "fedavg", "ft_fedavg", "ditto", "ifca", "fc")
NAMED = ("local", "fedavg", "ditto")  # the claim "beats-baselines" tests these; the others get their own
# Table 2 of the paper (mean test accuracy %, CIFAR-100, ResNet-9)
PAPER_SILO = {"local": 64.9, "fedavg": 18.8, "ft_fedavg": 70.2, "ditto": 73.5, "ifca": 18.6, "fc": 55.1,
              "cobo": 74.6, "oracle": 75.4}
PAPER_DEVICE = {"local": 54.9, "fedavg": 53.9, "ft_fedavg": 58.9, "ditto": 70.3, "ifca": 45.6, "cobo": 79.6,
                "oracle": 83.6}
# Table 1 (cross-silo CoBo, accuracy %): the paper's schedules; ours are named after them
PAPER_SAMPLING = {"const": 73.05, "inv_t": 73.18, "mixed_paper": 74.77, "none": 74.93}
COLORS = dict(zip(LABELS, colors(len(LABELS))))  # one colour per method in every figure
RECOVERED = 0.95  # "the weights recover the clusters": this fraction of the pairs on the right side of 1/2


# ---- indicators ------------------------------------------------------------------------

def quadratic_indicators(q: dict, steps: int) -> dict:
    """CoBo on the quadratic clusters: W averaged over the last 20% of the rounds, the first
    round where the final-threshold recovery is 1, and distances to the clusters' optima."""
    cob = q["cobo"]
    same = cob["cluster"][:, None] == cob["cluster"][None, :]
    W_avg = cob["W"][-max(1, steps // 5):].mean(0)
    within, _ = cobo.within_cross(W_avg, same)
    rec = [cobo.recovery(W, same) for W in cob["W"]]
    first = next((t for t, r in enumerate(rec) if r == 1.0), math.nan)
    worst = {m: float(q[m]["dist"][-1].max()) for m in q}
    off = same & ~torch.eye(len(same), dtype=torch.bool)
    # mean distance between the final models of two clients of the same cluster
    consensus = {m: float(torch.cdist(q[m]["x"], q[m]["x"])[off].mean()) for m in q}
    return dict(recovery_avg=cobo.recovery(W_avg, same), within_avg=within,
                cross_max=float(W_avg[~same].max()), first_full_recovery=first,
                dist_ratio_fedavg=worst["cobo"] / worst["fedavg"], final_max_dist=worst, consensus=consensus)


def run_frame(rows: list) -> pd.DataFrame:
    """One row per run: method, setting, seed, mean test accuracy (%) and loss over clients."""
    return pd.DataFrame([dict(method=r["method"], seed=r["seed"], per_client=r["per_client"],
                              clusters=len(r["sizes"]), clients=r["sizes"][0], schedule=r.get("schedule"),
                              acc=100 * r["result"]["acc"].mean().item(), loss=r["result"]["loss"].mean().item(),
                              seconds=r["result"]["seconds"], pairs=r["result"]["pairs"],
                              grads=r["result"]["grads"], steps=r["steps"]) for r in rows])


def improved(rows: list) -> dict:
    """Imp %: per method, the share of clients whose test accuracy beats their own Local model's
    (same seed, same data), over all seeds."""
    local = {r["seed"]: r["result"]["acc"] for r in rows if r["method"] == "local"}
    out = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        better = [(r["result"]["acc"] > local[r["seed"]]).float() for r in rows if r["method"] == m]
        out[m] = 100 * torch.cat(better).mean().item()
    return out


def recovery_times(rows: list) -> list:
    """Per CoBo run: the first evaluated round where the recovery reaches RECOVERED, and 1.0."""
    out = []
    for r in rows:
        if r["method"] != "cobo":
            continue
        h = r["result"]["history"]
        first = next((x["t"] for x in h if x["recovery"] >= RECOVERED), math.nan)
        full = next((x["t"] for x in h if x["recovery"] == 1.0), math.nan)
        out.append(dict(seed=r["seed"], steps=r["steps"], first=first, full=full, final=h[-1]["recovery"],
                        within=h[-1]["within"], cross=h[-1]["cross"]))
    return out


def _margins(f: pd.DataFrame) -> pd.DataFrame:
    """Per seed: CoBo's accuracy minus each method's (points)."""
    p = f.pivot_table(index="seed", columns="method", values="acc")
    return -p.sub(p["cobo"], axis=0)


def _worst(values) -> float:
    """The largest value, or nan if any is nan (a seed that never got there)."""
    values = list(values)
    return math.nan if any(v != v for v in values) else max(values)


def metrics(res: dict, cfg: Config) -> dict:
    q = quadratic_indicators(res["quadratic"], cfg.quad_steps)
    silo = run_frame(res["silo"])
    mean = silo.groupby("method").acc.mean()
    marg = _margins(silo)
    base = [b for b in BASELINES if b in marg.columns]
    rec = recovery_times(res["silo"])
    samp = run_frame(res["sampling"]).groupby("schedule")
    dev = run_frame(res["device"])
    dmarg = _margins(dev)
    dbase = [b for b in BASELINES if b in dmarg.columns]
    out = {
        "quad": q,
        "silo_acc": mean.to_dict(),
        "silo_improved": improved(res["silo"]),
        # the smallest margin over the seeds of CoBo over the best baseline, over Local, over the Oracle
        "silo_margin_best_baseline": float(marg[base].min(1).min()),
        "silo_margin_others": float(marg[[b for b in base if b not in NAMED]].min(1).min())
        if set(base) - set(NAMED) else math.nan,
        "silo_margin_local": float(marg["local"].min()),
        "silo_margin_fedavg": float(marg["fedavg"].min()) if "fedavg" in marg else math.nan,
        "silo_margin_ditto": float(marg["ditto"].min()) if "ditto" in marg else math.nan,
        "silo_ditto_minus_local": float((silo[silo.method == "ditto"].set_index("seed").acc
                                         - silo[silo.method == "local"].set_index("seed").acc).max())
        if "ditto" in mean else math.nan,
        "silo_oracle_gap_max": float(-marg["oracle"].min()) if "oracle" in marg else math.nan,
        "silo_oracle_gap_min": float(-marg["oracle"].max()) if "oracle" in marg else math.nan,
        "recovery_final_min": min(r["final"] for r in rec),
        "recovery_first_frac_max": _worst(r["first"] / r["steps"] for r in rec),
        "recovery_full_frac_max": _worst(r["full"] / r["steps"] for r in rec),
        "recovery_first": [r["first"] for r in rec],
        "within_min": min(r["within"] for r in rec),
        "cross_max": max(r["cross"] for r in rec),
        "sampling_acc": samp.acc.mean().to_dict(),
        "sampling_pairs_per_round": (samp.pairs.mean() / samp.steps.mean()).to_dict(),
        "rho_acc": {str(r["rho"]): 100 * r["result"]["acc"].mean().item() for r in res["rho"]},
        "rho_recovery_final": {str(r["rho"]): r["result"]["history"][-1]["recovery"] for r in res["rho"]},
        "device_acc": dev.groupby("method").acc.mean().to_dict(),
        "device_improved": improved(res["device"]),
        "device_margin_best_baseline": float(dmarg[dbase].min(1).min()),
        "device_oracle_gap_max": float(-dmarg["oracle"].min()) if "oracle" in dmarg else math.nan,
        "device_margin_ditto": float(dmarg["ditto"].min()) if "ditto" in dmarg else math.nan,
        "device_recovery_final_min": min(r["final"] for r in recovery_times(res["device"])),
    }
    if {"mixed_paper", "none"} <= set(out["sampling_acc"]):
        out["sampling_mixed_minus_none"] = out["sampling_acc"]["mixed_paper"] - out["sampling_acc"]["none"]
    return C.finite(out)


CLAIMS = [
    C.Claim("inner-problem-clusters",
            "On clustered quadratics the inner problem sets w to 1 within a cluster and 0 across",
            "w* = 1 when the midpoint gradients agree, 0 when they conflict (Sec. 2, Fig. 1)",
            lambda m: C.num(m["quad"]["cross_max"]) if m["quad"]["recovery_avg"] == 1.0
            and m["quad"]["within_avg"] >= 0.8 else math.nan, lambda v: v <= 0.05,
            "W averaged over the last 20% of the rounds: recovery 1, mean within-cluster w ≥ 0.8 and every "
            "cross-cluster w ≤ 0.05 (ours: the largest cross-cluster w)", "{:.3f}"),
    C.Claim("recovers-early",
            "The collaboration weights recover the clusters early in training",
            "resembles the oracle after 300 of 40,000 iterations (0.75%), converged by 5,000 (12.5%) (Fig. 3)",
            lambda m: C.num(m["recovery_first_frac_max"]) if m["recovery_final_min"] == 1.0 else math.nan,
            lambda v: v <= 0.3,
            f"every seed: {RECOVERED:.0%} of the pairs on the right side of ½ within the first 30% of the rounds "
            "and all of them at the end (ours: the latest, as a fraction of the rounds)", "{:.1%}"),
    C.Claim("weights-separate",
            "Within-cluster weights end near 1, cross-cluster weights near 0",
            "CoBo's matrix block-diagonal like the oracle's (Fig. 3)",
            lambda m: C.num(m["cross_max"]) if m["within_min"] >= 0.85 else math.nan, lambda v: v <= 0.05,
            "every seed: mean within-cluster w ≥ 0.85 and mean cross-cluster w ≤ 0.05 (ours: the largest "
            "cross-cluster mean)", "{:.3f}"),
    C.Claim("beats-baselines",
            "CoBo beats Local, FedAvg and Ditto (cross-silo)",
            "74.6% vs 73.5% Ditto, 64.9% Local, 18.8% FedAvg (Table 2)",
            lambda m: C.num(m["silo_margin_local"]) if m["silo_margin_fedavg"] >= 40 and m["silo_margin_ditto"] >= 10
            else math.nan, lambda v: v >= 1.0,
            "every seed: CoBo ≥ Local + 1, FedAvg + 40 and Ditto + 10 points (the brief's margins; ours: the smallest "
            "margin over Local)", "{:+.1f}"),
    C.Claim("beats-clustering-baselines",
            "…and fine-tuned FedAvg, IFCA and Federated Clustering",
            "74.6% vs 70.2% fine-tuned FedAvg, 55.1% FC, 18.6% IFCA (+4.4 points over the best; Table 2)",
            lambda m: C.num(m["silo_margin_others"]), lambda v: v > 0,
            "every seed: CoBo above each of them (ours: the smallest margin, points)", "{:+.1f}"),
    C.Claim("near-oracle",
            "CoBo comes close to the cluster Oracle",
            "74.6% vs 75.4% (−0.8 points; Table 2)",
            lambda m: C.num(m["silo_oracle_gap_max"]) if m["silo_oracle_gap_min"] >= -0.5 else math.nan,
            lambda v: v <= 3.0,
            "every seed: Oracle − CoBo between −0.5 and 3 points (ours: the largest gap)", "{:.1f}"),
    C.Claim("ditto-beats-local",
            "Ditto improves on training alone",
            "73.5% vs 64.9% for Local (+8.6 points; Table 2)",
            lambda m: C.num(m["silo_ditto_minus_local"]), lambda v: v > 0,
            "Ditto (λ = 1) above Local on some seed (ours: the best difference, points)", "{:+.1f}"),
    C.Claim("sampling-cheap",
            "Sampling pairs (mixed schedule) costs almost no accuracy",
            "74.77% with the mixed schedule vs 74.93% sampling every pair (−0.16 points; Table 1)",
            lambda m: C.num(m.get("sampling_mixed_minus_none")), lambda v: v >= -1.0,
            "mean over seeds: mixed_paper within 1 point of every pair every round (ours: the difference, points)",
            "{:+.1f}"),
    C.Claim("cross-device-margin",
            "With many clients in unequal clusters CoBo beats every baseline",
            "79.6% vs 70.3% for Ditto, the best baseline (+9.3 points; Table 2, 80 clients)",
            lambda m: C.num(m["device_margin_best_baseline"]), lambda v: v > 0,
            "every seed: CoBo above Local, FedAvg, fine-tuned FedAvg, Ditto and IFCA (ours: the smallest margin, "
            "points; compare with +9.3)", "{:+.1f}"),
    C.Claim("cross-device-near-oracle",
            "…and stays near the Oracle",
            "79.6% vs 83.6% (−4.0 points; Table 2, 80 clients)",
            lambda m: C.num(m["device_oracle_gap_max"]), lambda v: v <= 5.0,
            "every seed: Oracle − CoBo ≤ 5 points (the brief's, uncalibrated; ours: the largest gap)", "{:.1f}"),
]


# ---- tables ----------------------------------------------------------------------------

def method_table(rows: list, paper: dict) -> pd.DataFrame:
    """Table 2 analogue: accuracy (mean ± sd over seeds), loss, Imp % and the paper's accuracy."""
    f = run_frame(rows)
    g = f.groupby("method")
    imp = improved(rows)
    order = [m for m in LABELS if m in g.groups]
    return pd.DataFrame({
        "accuracy %": [f"{g.acc.mean()[m]:.1f} ± {g.acc.std(ddof=0)[m]:.1f}" for m in order],
        "loss": [round(g.loss.mean()[m], 3) for m in order],
        "Imp %": ["–" if m == "local" else f"{imp[m]:.0f}" for m in order],
        "paper accuracy %": [paper.get(m, math.nan) for m in order],
    }, index=[LABELS[m] for m in order])


def sampling_table(res: dict) -> pd.DataFrame:
    """Table 1 analogue: CoBo's accuracy and loss per pair-sampling schedule, the pairs sampled
    per round (cost), and the paper's accuracy."""
    f = run_frame(res["sampling"])
    g = f.groupby("schedule")
    order = [s for s in cobo.SCHEDULES if s in g.groups]
    return pd.DataFrame({"accuracy %": g.acc.mean()[order].round(2), "loss": g.loss.mean()[order].round(3),
                         "pairs per round": (g.pairs.mean() / g.steps.mean())[order].round(2),
                         "paper accuracy %": [PAPER_SAMPLING.get(s, math.nan) for s in order]})


def recovery_table(res: dict) -> pd.DataFrame:
    return pd.DataFrame(recovery_times(res["silo"])).set_index("seed")


def rho_table(res: dict) -> pd.DataFrame:
    """Per rho: the first evaluated round with RECOVERED of the pairs right, the final recovery,
    cross-cluster weight and mean accuracy."""
    out = []
    for r in res["rho"]:
        h = r["result"]["history"]
        out.append({"ρ": r["rho"], f"first round ≥ {RECOVERED:.0%}": next(
            (x["t"] for x in h if x["recovery"] >= RECOVERED), math.nan), "final recovery": round(h[-1]["recovery"], 3),
                    "cross-cluster w": round(h[-1]["cross"], 3), "accuracy %": round(100 * h[-1]["acc"], 1)})
    return pd.DataFrame(out).set_index("ρ")
