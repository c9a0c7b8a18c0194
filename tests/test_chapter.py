"""Chapters at smoke scale through the CLI: artifacts, claims schema, determinism."""
import json
import math
import os
import subprocess
import sys
import time

import pytest

from companion import chapters
from conftest import ROOT
from test_contract import V2, at_path, glued, role_names


def run_smoke(chapter, out, cache):
    env = {**os.environ, "COMPANION_CACHE": str(cache)}
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "companion", "run", chapter, "--scale", "smoke", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return time.time() - t0


@pytest.fixture(scope="module", params=list(chapters.CHAPTERS))
def smoke_runs(request, tmp_path_factory, data_dir):
    base = tmp_path_factory.mktemp(request.param)
    seconds = run_smoke(request.param, base / "a", base / "cache-a")
    run_smoke(request.param, base / "b", base / "cache-b")
    return request.param, base / "a", base / "b", seconds


def test_smoke_run_writes_the_artifacts(smoke_runs):
    chapter, out, _, seconds = smoke_runs
    assert seconds < 90, f"smoke run took {seconds:.0f} s (budget 60 s on an idle machine)"
    assert (out / f"{chapter}.ipynb").exists()
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) >= 6 and all(p.stat().st_size > 5000 for p in pngs)
    nb = json.loads((out / f"{chapter}.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not any(o["output_type"] == "error" for o in outputs)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(pngs)
    assert nb["metadata"]["companion"]["scale"] == "smoke" and nb["metadata"]["companion"]["key"]
    assert not list(out.parent.glob("*.partial")) and not list(out.parent.glob(".*.partial-*"))


def test_claims_json_schema(smoke_runs):
    _, out, _, _ = smoke_runs
    rows = json.loads((out / "claims.json").read_text())
    assert rows and all({"claim", "paper_value", "our_value", "holds", "scale"} <= set(r) for r in rows)
    assert all(r["scale"] == "smoke" and isinstance(r["holds"], bool) for r in rows)


def test_provenance(smoke_runs):
    chapter, out, _, _ = smoke_runs
    p = json.loads((out / "provenance.json").read_text())
    for key in ("git_commit", "versions", "device", "seed", "scale", "parameters", "wall_time_s", "torch_threads"):
        assert key in p
    assert p["chapter"] == chapter and p["versions"]["torch"]


def test_same_seed_gives_identical_metrics(smoke_runs):
    _, a, b, _ = smoke_runs
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()
    assert (a / "claims.json").read_text() == (b / "claims.json").read_text()


def smoke_numbers(smoke_runs, chapter: str):
    """(metrics, parameters) of `chapter`'s smoke run; skips the other chapters' runs."""
    ran, out, _, _ = smoke_runs
    if ran != chapter:
        pytest.skip("chapter-specific")
    return (json.loads((out / "metrics.json").read_text()),
            json.loads((out / "provenance.json").read_text())["parameters"])


def test_scaling_cooldown_smoke_numbers(smoke_runs):
    m, p = smoke_numbers(smoke_runs, "scaling-cooldown")
    assert m["branch_equivalence_max_abs_diff"] == 0.0  # branched cooldown == WSD from scratch, bit for bit
    assert m["compute_ratio"] == m["compute_ratio_planned"]
    assert m["n_seeds"] == p["n_seeds"] == len(m["per_seed"]) == 2
    a, b = m["per_seed"]
    assert a["cooldown_final"] != b["cooldown_final"]  # the seeds are different runs
    for s in m["per_seed"]:
        assert s["initial_val"] - min(s["cooldown_final"].values()) > 1.0  # learned more than 1 nat/char
        assert all(v == v and v < 10 for v in s["cosine_final"].values())
    assert m["mean"]["swa_gain"] == pytest.approx((a["swa_gain"] + b["swa_gain"]) / 2)
    assert m["scaling"]["n_sizes"] == len(set(zip(p["widths"], p["depths"])))
    assert m["scaling"]["fit"]["cosine"]["n"] >= 2


def test_smoke_glue_equals_metrics(smoke_runs):
    """Re-executed at smoke scale, every glued number is the value of that run's metrics.json."""
    cid, out, _, _ = smoke_runs
    if cid not in V2:
        pytest.skip("chapter not yet on contract v2")
    nb = json.loads((out / f"{cid}.ipynb").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    g = glued(nb)
    assert role_names(nb) <= set(g)
    numbers = {k: v for k, v in g.items() if not k.startswith(("cfg.", "verdict.")) and isinstance(v, (int, float))}
    assert len(numbers) > 50
    for name, v in numbers.items():
        assert at_path(metrics, name) == v, name
    claims = {r["id"]: r for r in json.loads((out / "claims.json").read_text())}
    from companion.claims import verdict_text
    for cid_, r in claims.items():
        assert g[f"verdict.{cid_}"] == verdict_text(r)
    # a run that is not the published one says so at its top and shows the published verdicts
    first_outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])][:3]
    assert any("not the published run" in json.dumps(o) for o in first_outputs)
    assert "published run" in json.dumps(nb)


def test_warmup_smoke_numbers(smoke_runs):
    """The brief's smoke assertions (section 6): what the probes and optimizers must show
    even in a hundred steps."""
    m, p = smoke_numbers(smoke_runs, "warmup")
    g = m["grid"]
    # the first AdamW step without warmup turns rows >= 10x the equilibrium angle at peak LR; with a
    # warmup of W steps it is sign-like at LR eta/W, so about W times smaller (>= 0.8 W)
    assert g["angle"]["no_warmup"]["step0"] >= 10 * g["equilibrium"]["angle"]
    assert g["angle"]["warmup"]["step0"] * 0.8 * m["warmup_steps"] <= g["angle"]["no_warmup"]["step0"]
    # LionAR (rho = 0) keeps every row's norm and turns it by exactly arctan(eta_r)
    assert m["lionar_exactness"]["row_norm_drift_max"] < 1e-5
    assert m["lionar_exactness"]["angle_rel_error_max"] < 1e-3
    assert math.isfinite(m["final_val_max"]) and m["final_val_max"] < 10
    assert m["final_train_loss_max"] < math.log(65) - 0.8
    assert m["n_seeds"] == len(m["per_seed"]) == 2


def test_failed_run_keeps_the_previous_artifacts(tmp_path, data_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"previous": true}')
    (out / ".companion-run").write_text("{}")  # an earlier run's folder
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    # the CLI refuses such a cache up front; inject the fault into the kernel alone, which then
    # fails when it writes results
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if 'ipykernel_launcher' in sys.orig_argv:\n"
        f"    os.environ['COMPANION_CACHE'] = {str(blocker / 'cache')!r}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, "-m", "companion", "run", "scaling-cooldown", "--scale", "smoke",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 1 and "failed at scale smoke" in r.stderr
    assert (out / "metrics.json").read_text() == '{"previous": true}'
    assert sorted(p.name for p in out.iterdir()) == [".companion-run", "metrics.json"]
    assert (tmp_path / "out.failed.ipynb").exists()  # kept for inspection, beside the results


def test_compute_fills_the_cache_without_jupyter(tmp_path, data_dir):
    env = {**os.environ, "COMPANION_CACHE": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "companion", "compute", "scaling-cooldown", "--scale", "smoke"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    entries = list((tmp_path / "scaling-cooldown").glob("*.pt"))
    assert len(entries) >= 10 and not list(tmp_path.rglob("*.ckpt"))


def test_deep_grokking_smoke_numbers(smoke_runs):
    """The brief's smoke assertions (section 6): the digits are learned, and the feature
    metrics are well-formed (one rank per Linear layer, bounded by its width)."""
    m, p = smoke_numbers(smoke_runs, "deep-grokking")
    for seed in m["per_seed"]:
        assert seed["main"]["final_train"] >= 0.95 and seed["main"]["final_test"] >= 0.8
        assert seed["alpha"]["alpha"] == p["control_alpha"] and seed["data"]["n_train"] == p["compare_n_train"]
    for s in m["runs"].values():
        assert len(s["final_rank"]) == s["depth"] and len(s["tunnel_at_end"]) == len(p["tunnel_fracs"])
        assert all(r <= p["width"] for r in s["final_rank"][:-1]) and s["final_rank"][-1] <= 10
    assert len(m["per_deep_seed"]) == p["deep_seeds"] and m["per_deep_seed"][0]["deep"]["depth"] == p["depths"][-1]
    assert set(m["regimes"]) == {f"{g:g}" for g in p["regime_decays"]}


def test_sparsity_quantization_smoke_numbers(smoke_runs):
    """The brief's smoke assertions (section 6): Thm 3.5 on every tensor, S->Q never worse
    than Q->S for block-aligned N:M with round-to-nearest, a mask mismatch at 2:4 that is
    positive and grows as the bits fall, and every model-level cell measured."""
    m, p = smoke_numbers(smoke_runs, "sparsity-quantization")
    t = m["tensor"]
    assert t["cases"] > 0 and t["thm35_violations"] == 0 and t["aligned_nearest_flips"] == 0
    mm = t["mismatch_24"]
    assert 0 < mm["hbfp8"] < mm["hbfp6"] < mm["hbfp4"] and 0 < mm["int8"] < mm["int4"]
    assert 0 < mm["mxfp8"] < mm["mxfp4"]
    assert set(m["one_shot_cost"]["Q"]) == set(p["formats"]) and set(m["sparse_ft_cost"]) == set(p["sparsities"])
    assert m["order"]["qat"]["cells"] == len(p["sparsities"]) * len(p["ft_formats"])
    assert all(math.isfinite(v) for v in m["orth_excess"].values())
    assert m["product_cases"] == 4 * p["n_layer"] * len(p["sparsities"]) * len(p["formats"])


def test_hyperinf_smoke_numbers(smoke_runs):
    """The brief's smoke assertions (section 6): Schulz reaches 1e-6 from I/||A||_F, its
    iteration count follows the bound, scaled LiSSA stalls when N < d, DataInf is far from the
    inverse, and HyperINF's scores rank like the exact GFIM inverse's."""
    m, p = smoke_numbers(smoke_runs, "hyperinf")
    assert m["schulz_iters_max"] <= 20 and m["kappa_gap_max"] <= 2
    assert m["lissa_scaled_final_min_underdetermined"] > 0.5 and m["datainf_error_min_overdetermined"] > 1
    assert m["hyperinf_vs_exact_gfim_min"] > 0.999
    assert set(m["auc"]) == {"tracin", "hyperinf", "exact_gfim", "datainf", "lissa", "lissa_scaled", "exact_fim"}
    assert m["lissa_growth_min"] > 0 and 0 <= m["best_baseline_found_at_20_rmax"] <= 1


def test_cobo_smoke_numbers(smoke_runs):
    """The brief's smoke assertions on the quadratic clusters (Q1-Q4) and the plumbing of every
    group: CoBo's averaged weights recover the two clusters, early; its clients end far closer
    to their optimum than FedAvg's and closer to their cluster-mates than Local's."""
    m, p = smoke_numbers(smoke_runs, "cobo")
    q = m["quad"]
    assert q["recovery_avg"] == 1.0 and q["within_avg"] >= 0.8 and q["cross_max"] <= 0.05
    assert q["first_full_recovery"] <= 100
    assert q["dist_ratio_fedavg"] < 0.3
    assert q["consensus"]["cobo"] < q["consensus"]["local"]
    assert set(m["silo_acc"]) == set(p["methods"]) and set(m["sampling_acc"]) == set(p["schedules"])
    n = p["clusters"] * p["clients_per_cluster"]
    assert m["sampling_pairs_per_round"]["none"] == n * (n - 1) / 2
    assert m["sampling_pairs_per_round"]["const"] < n
    assert m["silo_acc"]["oracle"] > m["silo_acc"]["fedavg"] + 20  # permuted labels: one model cannot fit all


def test_cubic_newton_smoke_numbers(smoke_runs):
    """Every study's metrics are finite ratios of positive floors, CN reaches machine precision
    and the SGD tuning picks a step of its sweep."""
    m, p = smoke_numbers(smoke_runs, "cubic-newton")
    for s in m["per_seed"]:
        assert s["gnorm_final_cn"] < 1e-8
        assert all(0 < v < math.inf for v in s["floor"].values())
        for k in ("ratio_b1", "ratio_b1_vs_scn_bmax", "ratio_noise_max_sigma", "ratio_convex", "ratio_mnist",
                  "ratio_large_m_max", "ratio_scnm_vs_sgd", "ratio_lam_smallest", "ratio_lam_largest", "ratio_conditioned"):
            assert 0 < s[k] < math.inf, k
        assert s["lam_min_x0"] < 0  # the runs start where the problem is non-convex
    assert m["sgd_best_lr"] in p["sgd_lrs"] and m["sgdm_best_lr"] in p["sgd_lrs"]
    assert m["sweep"]["n_cells"] == len(p["sweep_alphas"]) * len(p["sweep_Ms"])


def test_fo_maml_smoke_numbers(smoke_runs):
    """The smoke run's metrics: exact MAML converges, the estimators keep their orders, the
    controls show no effect, and every ratio is a finite non-negative number."""
    m, p = smoke_numbers(smoke_runs, "fo-maml")
    for s in m["per_seed"]:
        assert s["final_full"]["MAML"] < 1e-10 and s["control_max"] < 1e-10
        assert abs(s["slope"]["FO-B-MAML-sym"] - 2) < 0.3 and abs(s["slope"]["FO-B-MAML-fwd"] - 1) < 0.3
        assert s["error_flat"]["FO-MAML"] > 0.05 and s["smooth_growth"]["quadratic"] == pytest.approx(1, abs=1e-6)
        for k in ("ratio_full_sym_vs_fomaml", "ratio_stoch_sym_vs_fomaml", "ratio_far_clip_vs_gd"):
            assert 0 <= s[k] < math.inf, k
        # on the smooth (GELU) network the symmetric estimator is far closer to MAML than FO-MAML
        assert s["network_error"]["gelu"]["sym"] < 0.1 * s["network_error"]["gelu"]["FO-MAML"]
    assert m["memory_growth"]["steps"]["FO-MAML"] == 1.0 and m["memory_growth"]["steps"]["MAML"] > 1.2


def test_comigs_smoke_numbers(smoke_runs):
    """The brief's smoke assertions S1 and S4: every method below the frozen base's loss, and the
    uploads equal to the closed form, the expert part of 1G1S's exactly half of FedAvg's."""
    m, p = smoke_numbers(smoke_runs, "comigs")
    assert m["payload_error"] == 0 and m["payload_ratio_experts"] == 0.5
    assert m["uploads"]["Local"] == 0 and m["uploads"]["1G1S"] < m["uploads"]["FedAvg"]
    for s in m["per_seed"]:
        assert set(s["ce"]) == set(p["methods"]) and s["worst_minus_base"] < 0
        assert all(0 <= w <= 1 for v in s["specialist_weight"].values() for w in v.values())


def test_ai_assessment_smoke_numbers(smoke_runs):
    """The brief's P1-P5 at smoke scale: synthetic grades labelled as such, the fit and its
    Monte-Carlo check, the invariants, the generator's accuracies recovered."""
    m, p = smoke_numbers(smoke_runs, "ai-assessment")
    assert m["data_source"] == "synthetic" and m["watermark"] is True
    assert m["checks"]["fit_error"] < 1e-6 and m["checks"]["mc_z"] < 4 and m["invariant_violations"] == 0
    assert m["checks"]["recovery_max_z"] < 4 and m["checks"]["strong_minus_weak_min"] > 0
    assert m["source"]["courses"] == p["n_courses"] and m["n_strategies"] == {"synthetic-strong": 8,
                                                                             "synthetic-weak": 8}
    assert m["implied"]["independence"]["any"] == pytest.approx(1 - 0.342 ** 8)
    assert m["n_seeds"] == p["n_seeds"] and m["checks"]["control_gap_max"] < 0.01
    assert all(s["digits"]["gap"] > 0 and abs(s["rho_error"]) < 0.2 for s in m["per_seed"])
