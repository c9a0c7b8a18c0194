"""Every claim can fail: fed metrics that contradict the paper, it reports holds = false.

For each chapter: metrics that agree with the paper (calibration-like numbers) and, for each
claim, a change of them under which the paper's claim is false."""
import importlib
import math

import pytest

from companion import chapters
from companion import claims as C

_SC_SEED = {"cd_vs_cos_ppl_worst": -0.01, "cd_vs_cos_ppl_max": -0.005, "cd_vs_cos0_ppl": 0.005, "half_lr_vs_cos_ppl": -0.005,
            "sqrt_minus_linear_longest": -0.01, "sqrt_gain_growth": 0.01, "short_minus_main_cooldown": 0.015,
            "long_minus_main_cooldown": 0.002, "swa_minus_constant": -0.08, "cooldown_minus_swa": -0.01,
            "cycle_mismatch": 0.02}


def _sc_seeds(**change):
    """Three seeds around _SC_SEED (a small spread, as paired differences have), with `change`
    applied to every seed."""
    return {"per_seed": [{**{k: v + d for k, v in _SC_SEED.items()}, **change} for d in (-2e-4, 0.0, 2e-4)]}


SC_AGREE = {**_sc_seeds(), "scaling": {"ppl_gap_worst": -0.01, "alpha_ratio_minus_1": 0.05, "frontier_jaccard": 1.0},
            "lr_sweep": {"best_cd_vs_best_cos_ppl": -0.005, "lr_ratio": 0.5}}
SC_CONTRADICT = {
    "wsd-matches-cosine": _sc_seeds(cd_vs_cos_ppl_worst=-0.03),  # two-sided: far better is no match either
    "wsd-not-worse": _sc_seeds(cd_vs_cos_ppl_max=0.03),
    "matches-cosine-to-zero": _sc_seeds(cd_vs_cos0_ppl=0.03),
    "half-lr-matches-cosine": _sc_seeds(half_lr_vs_cos_ppl=None),  # the control was not run
    "sqrt-beats-linear": _sc_seeds(sqrt_minus_linear_longest=0.0),  # a tie is not a win
    "sqrt-gain-grows": _sc_seeds(sqrt_gain_growth=-0.001),
    "cooldown-length": _sc_seeds(short_minus_main_cooldown=-0.01),
    "cooldown-plateau": _sc_seeds(long_minus_main_cooldown=-0.05),
    "swa-helps": _sc_seeds(swa_minus_constant=-0.01),
    "swa-below-cooldown": _sc_seeds(cooldown_minus_swa=0.0),  # reaching it exactly is reaching it
    "cycle-mismatch": _sc_seeds(cycle_mismatch=-0.01),
    "tuned-matches-cosine": {"lr_sweep": {**SC_AGREE["lr_sweep"], "best_cd_vs_best_cos_ppl": -0.04}},
    "cooldown-lr-half": {"lr_sweep": {**SC_AGREE["lr_sweep"], "lr_ratio": 1.0}},  # the same LR is not half
    "scaling-diagonal": {"scaling": {**SC_AGREE["scaling"], "ppl_gap_worst": 0.05}},
    "scaling-exponent": {"scaling": {**SC_AGREE["scaling"], "alpha_ratio_minus_1": -0.3}},
    "scaling-frontier": {"scaling": {**SC_AGREE["scaling"], "frontier_jaccard": 0.8}},
}

_WU_SEED = {"gap": {"adamw": 0.2, "liona": 0.15, "lionar": 0.02, "recipe": 0.0}, "gap_ratio_low_over_high": 0.05,
            "permanent_gap": 0.05, "gap_at_cold_lr": 0.01, "liona_minus_lionar_gap": 0.13,
            "lionar_over_adamw_gap": 0.1, "snr_early_over_late": 8.0, "recipe_minus_adamw_warm": -0.01, "recipe_minus_best_cold": -0.02,
            "angle": {"no_warmup": {"early_over_warm_plateau": 6.0}, "warmup": {"max_warmup_over_plateau": 1.3}}}


def _wu_seeds(**change):
    """Three held-out seeds around _WU_SEED (a small spread), `change` applied to every seed."""
    def seed(d):
        out = {k: (v + d if isinstance(v, float) else v) for k, v in _WU_SEED.items()}
        out["gap"] = {k: v + d for k, v in _WU_SEED["gap"].items()}
        return {**out, **change}
    return {"per_seed": [seed(d) for d in (-1e-3, 0.0, 1e-3)]}


WU_AGREE = _wu_seeds()
WU_CONTRADICT = {
    "adamw-warmup-gap": _wu_seeds(gap={**_WU_SEED["gap"], "adamw": 0.02}),
    "gap-grows-with-lr": _wu_seeds(gap_ratio_low_over_high=0.8),
    "permanent-gap": _wu_seeds(permanent_gap=-0.01),
    "falls-behind": _wu_seeds(gap_at_cold_lr=-0.01),
    "early-angle-large": _wu_seeds(angle={"no_warmup": {"early_over_warm_plateau": 1.5},
                                          "warmup": {"max_warmup_over_plateau": 1.3}}),
    "warmup-angle-bounded": _wu_seeds(angle={"no_warmup": {"early_over_warm_plateau": 6.0},
                                             "warmup": {"max_warmup_over_plateau": 3.0}}),
    "liona-needs-warmup": _wu_seeds(liona_minus_lionar_gap=0.02),
    "lionar-reduces-need": _wu_seeds(lionar_over_adamw_gap=0.9),
    "liona-still-benefits": _wu_seeds(gap={**_WU_SEED["gap"], "liona": -0.02}),
    "lionar-still-benefits": _wu_seeds(gap={**_WU_SEED["gap"], "lionar": -0.01}),
    "snr-high-early": _wu_seeds(snr_early_over_late=1.2),
    "hm-no-warmup": _wu_seeds(recipe_minus_adamw_warm=0.05),
    "hm-best-no-warmup": _wu_seeds(recipe_minus_best_cold=0.0),  # a tie is not best
}

_DG_SEED = {"main": {"test_at_fit": 0.35, "final_test": 0.86, "pen_erank_change_after_fit": -0.16,
                     "rank_onset_minus_gen_decades": 0.1},
            "data": {"two_stage_decades": 0.5}, "init_gain_excess": 0.4, "decay_final_excess": 0.3,
            "decay_rank_change_excess": -0.2, "norm_distance_n": 0.03, "rank_separation": 0.3, "dd_excess": 0.15,
            "fit_lead": 0.8, "gen_lead": 0.3, "tunnel_gain_min": 2.0}


def _dg_seeds(**change):
    """Three seeds around _DG_SEED (a small spread), `change` merged into every seed (one level deep)."""
    def seed(d):
        out = {k: ({kk: vv + d for kk, vv in v.items()} if isinstance(v, dict) else v + d) for k, v in _DG_SEED.items()}
        return {**out, **{k: {**out[k], **v} if isinstance(v, dict) else v for k, v in change.items()}}
    seeds = [seed(d) for d in (-1e-3, 0.0, 1e-3)]
    return {"per_seed": seeds, "per_deep_seed": seeds[:2]}


DG_AGREE = _dg_seeds()
DG_CONTRADICT = {
    "depth-delays-fitting": _dg_seeds(fit_lead=0.1),
    "depth-delays-generalization": _dg_seeds(gen_lead=-0.05),
    "grokking-low-at-fit": _dg_seeds(main={"test_at_fit": 0.8}),
    "grokking-high-at-end": _dg_seeds(main={"final_test": 0.5}),
    "grokking-needs-large-init": _dg_seeds(init_gain_excess=0.05),  # the control groks as much
    "decay-drives-generalization": _dg_seeds(decay_final_excess=0.0),
    "rank-falls-when-test-rises": _dg_seeds(main={"pen_erank_change_after_fit": 0.02}),
    "rank-fall-needs-generalization": _dg_seeds(decay_rank_change_excess=0.0),  # the control's rank falls as much
    "rank-onset-coincides": _dg_seeds(main={"rank_onset_minus_gen_decades": None}),  # the rank never falls
    "norm-curves-overlap": _dg_seeds(norm_distance_n=0.3),
    "rank-curves-separate": _dg_seeds(rank_separation=0.0),  # no more apart than two seeds
    "tunnel-grows-with-depth": _dg_seeds(tunnel_gain_min=0.0),  # equal at some threshold
    "two-stage-generalization": _dg_seeds(data={"two_stage_decades": 0.0}),
    "rank-double-descent": _dg_seeds(dd_excess=0.0),  # the controls descend twice as well
}
_SQ_TENSOR = {"thm35_violations": 0, "aligned_nearest_flips": 0, "mismatch_violations_aligned": []}
SQ_AGREE = {"tensor": _SQ_TENSOR, "order": {"one-shot": {"sq_not_worse": 0.9}, "qat": {"sq_not_worse": 0.8}},
            "orth_4bit_exceeds": 1.0, "quant_dominance_24": 0.17, "eight_bit_ppl_increase": 0.015,
            "layer_growth_min": 1.1, "qs_worse_last_block": 0.9, "product_over_sum": 3}
SQ_CONTRADICT = {
    "sq-within-sum": {"tensor": {**_SQ_TENSOR, "thm35_violations": 1}},
    "sq-optimal-order": {"tensor": {**_SQ_TENSOR, "aligned_nearest_flips": 2}},
    "mismatch-grows": {"tensor": {**_SQ_TENSOR, "mismatch_violations_aligned": ["student-t 2:4: int4 ≥ int8"]}},
    "model-order-oneshot": {"order": {"one-shot": {"sq_not_worse": 0.5}, "qat": {"sq_not_worse": 0.8}}},
    "model-order-finetuned": {"order": {"one-shot": {"sq_not_worse": 0.9}, "qat": {"sq_not_worse": 0.7}}},
    "not-orthogonal": {"orth_4bit_exceeds": 0.5},
    "quantization-dominates": {"quant_dominance_24": -0.01},
    "eight-bit-nearly-orthogonal": {"eight_bit_ppl_increase": 0.05},
    "error-grows-with-depth": {"layer_growth_min": 0.95},
    "qs-error-larger": {"qs_worse_last_block": 0.5},
    "dot-product-not-orthogonal": {"product_over_sum": 0},
}
HI_AGREE = {"schulz_iters_max": 16, "schulz_official_iters_max": 25, "kappa_gap_max": 1,
            "lissa_scaled_final_min_underdetermined": 0.98, "datainf_error_min_overdetermined": 26.0,
            "hyperinf_vs_exact_gfim_min": 0.9999, "hyperinf_found_at_20_rmax": 0.5,
            "best_baseline_found_at_20_rmax": 0.22, "hyperinf_margin_min_rank": 0.02}
HI_CONTRADICT = {
    "schulz-converges": {"schulz_iters_max": None},  # never reached the tolerance
    "schulz-official-init": {"schulz_official_iters_max": 35},
    "schulz-iteration-bound": {"kappa_gap_max": 4},
    "lissa-stalls": {"lissa_scaled_final_min_underdetermined": 0.01},
    "datainf-inaccurate": {"datainf_error_min_overdetermined": 0.5},
    "hyperinf-is-exact-gfim": {"hyperinf_vs_exact_gfim_min": 0.9},
    "hyperinf-detects": {"hyperinf_found_at_20_rmax": 0.3},
    "baselines-degrade": {"best_baseline_found_at_20_rmax": 0.45},
    "hyperinf-best": {"hyperinf_margin_min_rank": -0.01},
}
CB_AGREE = {"quad": {"recovery_avg": 1.0, "within_avg": 0.9, "cross_max": 0.0}, "recovery_final_min": 1.0,
            "recovery_first_frac_max": 0.2, "within_min": 0.9, "cross_max": 0.02, "silo_margin_local": 2.0, "silo_margin_fedavg": 50.0,
            "silo_margin_ditto": 20.0, "silo_margin_others": 1.0, "silo_oracle_gap_min": 1.0,
            "device_oracle_gap_max": 4.0,
            "silo_oracle_gap_max": 1.5, "silo_ditto_minus_local": 1.0, "sampling_mixed_minus_none": -0.2,
            "device_margin_best_baseline": 5.0}
CB_CONTRADICT = {
    "inner-problem-clusters": {"quad": {"recovery_avg": 0.9, "within_avg": 0.9, "cross_max": 0.0}},
    "recovers-early": {"recovery_first_frac_max": 0.5},
    "weights-separate": {"within_min": 0.7},
    "beats-baselines": {"silo_margin_ditto": 5.0},
    "beats-clustering-baselines": {"silo_margin_others": None},
    "near-oracle": {"silo_oracle_gap_min": -1.0},
    "ditto-beats-local": {"silo_ditto_minus_local": -20.0},
    "sampling-cheap": {"sampling_mixed_minus_none": -2.0},
    "cross-device-margin": {"device_margin_best_baseline": None},
    "cross-device-near-oracle": {"device_oracle_gap_max": 9.5},
}
CN_AGREE = {"ratio_b1": 0.3, "ratio_b1_vs_scn_bmax": 1.5, "ratio_noise_max_sigma": 0.6, "ratio_mnist": 0.4,
            "ratio_scnm_vs_sgd": 0.8, "ratio_convex": 0.7, "ratio_large_m_max": 0.5}
CN_CONTRADICT = {
    "batch1": {"ratio_b1": 0.7},  # helps, but by less than half
    "large-batch": {"ratio_b1_vs_scn_bmax": 2.5},
    "noise": {"ratio_noise_max_sigma": 1.0},  # a tie is not an advantage
    "batch1-mnist": {"ratio_mnist": math.nan},  # the study was skipped
    "beats-sgd": {"ratio_scnm_vs_sgd": 1.2},
    "convex": {"ratio_convex": math.inf},  # SCNM diverged
    "large-m": {"ratio_large_m_max": 1.05},
}
FM_AGREE = {"ratio_full_sym_vs_fomaml": 0.002, "bias_min": 0.15, "ratio_stoch_sym_vs_fomaml": 0.25,
            "envelope_score_scan": 0.95, "far_clip_score": 1e-15, "accuracy_gap_sym_vs_maml": -0.005,
            "accuracy_gap_sym_vs_maml_gelu": 0.01, "memory_growth_ratio": {"steps": 3.0, "channels": 2.0}}
FM_CONTRADICT = {
    "stationary": {"ratio_full_sym_vs_fomaml": 0.05},  # better, but not 100x
    "bias": {"bias_min": 0.01},  # Reptile nearly unbiased
    "stochastic": {"ratio_stoch_sym_vs_fomaml": 0.8},
    "smoothness": {"envelope_score_scan": 0.0},  # slope not positive
    "clipped": {"far_clip_score": math.inf},  # plain GD converged as well
    "mnist-accuracy": {"accuracy_gap_sym_vs_maml": -0.05},  # five points below MAML
    "mnist-accuracy-gelu": {"accuracy_gap_sym_vs_maml_gelu": 0.03},  # above MAML by more than the band: two-sided
    "memory-steps": {"memory_growth_ratio": {"steps": 1.1, "channels": 2.0}},  # MAML grows like the others
    "memory-channels": {"memory_growth_ratio": {"steps": 3.0, "channels": 0.8}},
}
CM_AGREE = {"gain_vs_local": 0.15, "gain_vs_fedavg": 0.17, "fedavg_shared_margin": -0.3, "local_private_margin": -0.6,
            "comigs_excess_max": 0.05, "gate_gap": {"1G1S": 0.1}, "bilevel_minus_joint": -0.05,
            "gap_increment_min": 0.1}
CM_CONTRADICT = {
    "beats-local": {"gain_vs_local": 0.02},  # better, but within the margin
    "beats-fedavg": {"gain_vs_fedavg": 0.05},
    "fedavg-shared": {"fedavg_shared_margin": 0.0},  # a tie is not "best"
    "local-private": {"local_private_margin": 0.01},
    "comigs-near-best": {"comigs_excess_max": 0.4},  # far above FedAvg on shared tokens
    "router-private": {"gate_gap": {"1G1S": 0.01}},
    "bilevel-noninferior": {"bilevel_minus_joint": 0.02},  # worse than joint by more than the margin
    "heterogeneity": {"gap_increment_min": math.nan},  # a sweep of one alpha has no trend
}
AI_CLAIMS = {"independence_gap": 0.149, "rho_min": 0.61, "pass_single_0.6": {"min": 0.786, "max": 0.907},
             "pass_single_0.7": {"min": 0.219, "max": 0.446}, "pass_any_0.7": {"min": 0.979}}
AI_SEED = {"digits": {"gap": 0.15}, "rho_error": 0.01}
AI_AGREE = {"claims": AI_CLAIMS, "per_seed": [AI_SEED] * 3}
AI_CONTRADICT = {
    "independence-rejected": {"claims": {**AI_CLAIMS, "independence_gap": 0.02}},  # the two numbers nearly independent
    "implied-correlation": {"claims": {**AI_CLAIMS, "rho_min": 0.3}},
    "passes-at-0.6": {"claims": {**AI_CLAIMS, "pass_single_0.6": {"min": 0.45, "max": 0.9}}},  # a small course fails
    "fails-at-0.7": {"claims": {**AI_CLAIMS, "pass_single_0.7": {"min": 0.2, "max": 0.55}}},
    "any-passes": {"claims": {**AI_CLAIMS, "pass_any_0.7": {"min": 0.9}}},
    "digits-correlated": {"per_seed": [{**AI_SEED, "digits": {"gap": 0.01}}] * 3},  # independence holds
    "digits-fit-recovers-rho": {"per_seed": [{**AI_SEED, "rho_error": -0.2}] * 3},  # the fit is far off
}
CASES = {"scaling-cooldown": (SC_AGREE, SC_CONTRADICT), "warmup": (WU_AGREE, WU_CONTRADICT),
         "deep-grokking": (DG_AGREE, DG_CONTRADICT), "sparsity-quantization": (SQ_AGREE, SQ_CONTRADICT),
         "hyperinf": (HI_AGREE, HI_CONTRADICT), "cobo": (CB_AGREE, CB_CONTRADICT),
         "cubic-newton": (CN_AGREE, CN_CONTRADICT), "fo-maml": (FM_AGREE, FM_CONTRADICT),
         "comigs": (CM_AGREE, CM_CONTRADICT), "ai-assessment": (AI_AGREE, AI_CONTRADICT)}


def report(cid):
    return importlib.import_module(f"companion.reports.{chapters.get(cid).module}")


PAIRS = [(cid, c) for cid in CASES for c in report(cid).CLAIMS]


def test_every_chapter_and_claim_has_a_counterexample():
    assert set(CASES) == set(chapters.CHAPTERS)
    for cid, (_, contradict) in CASES.items():
        assert {c.id for c in report(cid).CLAIMS} == set(contradict)


@pytest.mark.parametrize("cid,claim", PAIRS, ids=[f"{cid}:{c.id}" for cid, c in PAIRS])
def test_claim_holds_and_fails(cid, claim):
    agree, contradict = CASES[cid]
    assert claim.evaluate(agree, "cpu")["holds"] is True
    assert claim.evaluate({**agree, **contradict[claim.id]}, "cpu")["holds"] is False


@pytest.mark.parametrize("cid", list(CASES))
def test_rows_have_the_contract_schema(cid):
    rows = C.evaluate(report(cid).CLAIMS, CASES[cid][0], "cpu")
    for r in rows:
        assert {"claim", "paper_value", "our_value", "holds", "scale"} <= set(r)
        assert isinstance(r["our_value"], float) and r["scale"] == "cpu"
    assert all(v.startswith("✓ holds") for v in C.frame(rows)["verdict"])
    assert all(r["verdict"] == "holds" and r["n_seeds"] == len(r["per_seed"]) for r in rows)


def test_a_claim_on_something_that_never_happened_fails_with_no_number():
    claim = next(c for c in report("deep-grokking").CLAIMS if c.id == "grokking-low-at-fit")
    row = claim.evaluate(_dg_seeds(main={"test_at_fit": None}), "cpu")  # the run never fits
    assert row["holds"] is False and row["our_value"] is None and row["our_value_text"].startswith("—")
    assert row["verdict"] == "fails"


def test_no_gap_at_high_lr_cannot_pass_the_warmup_lr_claim():
    # a negative high-LR gap must not make "the gap grows with LR" hold by division: seed_metrics
    # writes inf for the ratio then (tests/test_warmup.py), and inf fails the rule
    claim = next(c for c in report("warmup").CLAIMS if c.id == "gap-grows-with-lr")
    assert claim.evaluate(_wu_seeds(gap_ratio_low_over_high=float("inf")), "cpu")["holds"] is False


def _claim(rule):
    return C.Claim("x", "x", "x", lambda m: m["v"], rule, "x")


def _seeds(*vals):
    return {"per_seed": [{"v": v} for v in vals]}


@pytest.mark.parametrize("vals,verdict,k", [
    ((-0.05, -0.051, -0.049), "holds", 3),  # every seed, the mean and the interval below the threshold
    ((-0.05, -0.04, 0.01), "mixed", 2),  # some seeds only
    ((-0.02, -0.001, -0.0005), "mixed", 3),  # every seed, but the interval of the mean straddles 0
    ((0.01, 0.02, 0.0), "fails", 0),  # no seed (0 itself fails a strict rule)
    ((-0.05,), "holds", 1), ((0.05,), "fails", 0),  # one seed: holds or fails
    ((float("nan"), -0.05, -0.05), "mixed", 2),  # a seed with no number fails that seed
])
def test_three_verdicts_over_seeds(vals, verdict, k):
    row = _claim(C.below(0.0)).evaluate(_seeds(*vals), "cpu")
    assert (row["verdict"], row["k_holds"], row["n_seeds"]) == (verdict, k, len(vals))
    assert row["holds"] is (verdict == "holds")


def test_matches_is_two_sided():
    match = _claim(C.within(-0.02, 0.02))
    assert match.evaluate(_seeds(0.01, 0.012, 0.011), "cpu")["verdict"] == "holds"
    assert match.evaluate(_seeds(-0.05, -0.051, -0.049), "cpu")["verdict"] == "fails"  # far better is no match
    assert match.evaluate(_seeds(0.05, 0.051, 0.049), "cpu")["verdict"] == "fails"


def test_interval_is_the_student_t_interval_of_the_mean():
    s = C.summarize([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["sd"] == 1.0
    half = 4.302652729911275 / 3 ** 0.5  # t(0.975, 2) * sd / sqrt(n)
    assert s["ci95"] == pytest.approx([2.0 - half, 2.0 + half])


def test_seed_stats_reduce_nested_metrics():
    st = C.seed_stats([{"a": 1.0, "b": {"x": 2.0}, "s": "d1"}, {"a": 3.0, "b": {"x": 4.0}, "s": "d1"}])
    assert st["mean"]["a"] == 2.0 and st["mean"]["b"]["x"] == 3.0 and st["sd"]["a"] == pytest.approx(2 ** 0.5)


def test_verifications_are_not_claims():
    from companion.reports import scaling_cooldown as sc
    assert not {v.id for v in sc.VERIFICATIONS} & {c.id for c in sc.CLAIMS}
    rows = C.verify(sc.VERIFICATIONS, {"compute_ratio": 0.6, "compute_ratio_planned": 0.6,
                                       "branch_equivalence_max_abs_diff": 0.0})
    assert all(r["passes"] for r in rows)
    assert not C.verify(sc.VERIFICATIONS, {"compute_ratio": 0.6, "compute_ratio_planned": 0.6,
                                           "branch_equivalence_max_abs_diff": 1e-7})[1]["passes"]
