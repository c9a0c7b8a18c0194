"""The cubic-newton experiment at smoke scale: every study, its shape, the reference method."""
import math

import pytest
import torch
from conftest import isolated_run

from companion.experiments import cubic_newton as E
from companion.params import ParamError
from companion.second_order.methods import tail


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    with isolated_run(tmp_path_factory):
        yield E.SCALES["smoke"], E.run(E.SCALES["smoke"], progress=False)


def test_every_study_has_every_configuration(smoke):
    cfg, r = smoke
    assert set(r) == set(E.STUDIES)
    assert set(r["curves"]) == set(E.methods(cfg)) and all(len(v) == cfg.n_seeds for v in r["curves"].values())
    assert list(r["batches"]) == list(cfg.batches) and list(r["noise"]) == list(cfg.sigmas)
    assert set(r["sweep"]) == {("SCN", M) for M in cfg.sweep_Ms} | {(a, M) for a in cfg.sweep_alphas
                                                                      for M in cfg.sweep_Ms}
    assert list(r["large_m"]) == list(cfg.large_Ms) and list(r["nonconvexity"]) == list(cfg.lams)


def test_reference_converges_and_stochastic_methods_stay_finite(smoke):
    cfg, r = smoke
    for log in r["curves"]["CN"] + r["convex"]["CN"]:
        assert log["gnorm"][-1] < 1e-8
    for name, logs in r["curves"].items():
        for log in logs:
            assert len(log["t"]) == cfg.steps // cfg.log_every + 1
            assert math.isfinite(tail(log)) and tail(log) < log["gnorm"][0], name
    floors = [x for d in r["batches"].values() for v in d.values() for x in v]
    assert all(math.isfinite(x) and x > 0 for x in floors)


@pytest.mark.parametrize("lam, convex", [(0.1, True), (0.099, True), (0.101, False), (1.0, False)])
def test_the_objective_is_convex_exactly_when_lambda_is_at_most_2mu(lam, convex):
    """The regulariser's curvature lam (2 - 6x^2) / (1 + x^2)^3 bottoms out at -lam / 2 (x^2 = 1),
    so with mu = 0.05 the Hessian of the regularisers alone (no data) has a negative entry
    exactly when lam > 2 mu; checked on a fine grid through the problem's own Hessian."""
    from companion.second_order.problems import LogisticNC
    x = torch.linspace(-4, 4, 8001, dtype=torch.float64)
    p = LogisticNC(A=torch.zeros(1, x.numel(), dtype=torch.float64), y=torch.ones(1, dtype=torch.float64),
                   lam_nc=lam, mu=0.05)
    curvature = torch.diagonal(p.hess(x))
    assert float(curvature.min()) == pytest.approx(-lam / 2 + 0.05, abs=1e-9)
    assert (float(curvature.min()) >= 0) == convex


def test_the_default_problem_is_non_convex_where_the_runs_start():
    cfg = E.SCALES["cpu"]
    p = E.problem(cfg)
    for s in E.seeds(cfg):
        assert float(torch.linalg.eigvalsh(p.hess(E.x0(cfg, p.d, s)))[0]) < 0


def test_conditioning_control_matches_the_curvature_at_the_minimum():
    """The control's l2 weight is the non-convex problem's Hessian of the regularisers at x = 0."""
    cfg = E.SCALES["cpu"]
    p, q = E.problem(cfg), E.problem(cfg, convex=True, mu=E.matched_mu(cfg))
    zero = torch.zeros(p.d, dtype=torch.float64)
    assert torch.allclose(p.hess(zero), q.hess(zero), atol=1e-12)
    assert q.lam_nc == 0


def test_words_render_ranges_and_trends():
    from companion.reports import cubic_newton as R
    m = {"per_seed": [{"t_positive_curvature": {n: t for n in R.ESCAPE}, "ratio_lam": {"0.1": 1.2, "1": 0.5}}
                      for t in (60, 60)],
         "mean": {"ratio_b1": 0.5, "ratio_corrected_b1": 0.3, "ratio_scnm_vs_sgd": 2, "ratio_bmax": 0.3,
                  "ratio_convex": 1.5, "ratio_mnist": float("nan"), "ratio_noise": {"1": 0.6, "3": 0.7},
                  "floor_noise": {"1": {"SCN": 0.5, "SCNM": 0.3}, "3": {"SCN": 0.9, "SCNM": 0.6}},
                  "ratio_lam": {"0.1": 1.2, "1": 0.5}, "ratio_large_m_max": 0.5, "ratio_conditioned": 0.9}}
    w = R.words(m)
    assert w["escape_SCN"] == "after 60 iterations"
    assert w["mnist_side"] == "not measured" and w["noise_floors"] == "both rise"
    assert w["lam_trend"] == "falls at every step" and w["lam_n_all_seeds_below_1"] == "1"
    m["per_seed"][1]["t_positive_curvature"]["SGD"] = None  # never positive on one seed
    assert R.words(m)["escape_SGD"] == "not on every seed within the horizon"


def test_bad_configurations_are_refused():
    import dataclasses
    with pytest.raises(ParamError, match="strictly increasing"):
        dataclasses.replace(E.SCALES["smoke"], batches=(16, 1)).validate()
    with pytest.raises(ParamError, match="log_every"):
        dataclasses.replace(E.SCALES["smoke"], steps=5, log_every=10).validate()


def test_cache_keys_read_only_their_study_fields(smoke):
    """A field one study does not read leaves that study's cache entry in use (no recompute)."""
    import dataclasses
    cfg, r = smoke
    other = dataclasses.replace(cfg, large_alpha=0.5, sigmas=(2.0,))
    from companion.results import cached, config_key
    fields = {f.name for f in dataclasses.fields(cfg)}
    keep = set(E.PROBLEM) | set(E.READS["curves"])
    hit = cached(E.CHAPTER, "curves", config_key(other, drop=tuple(sorted(fields - keep))),
                 lambda _c: pytest.fail("recomputed although no field it reads changed"))
    assert hit["SCN"][0]["gnorm"] == r["curves"]["SCN"][0]["gnorm"]


def test_report_metrics_and_claims_on_the_smoke_run(smoke):
    from companion.reports import cubic_newton as R
    cfg, r = smoke
    m = R.metrics(r, cfg)
    assert len(m["per_seed"]) == cfg.n_seeds and set(m["per_seed"][0]["ratio_noise"]) == {f"{s:g}" for s in cfg.sigmas}
    for c in R.CLAIMS:
        row = c.evaluate(m, "smoke")
        assert row["verdict"] in ("holds", "mixed", "fails") and row["n_seeds"] == cfg.n_seeds
    assert all(v.evaluate(m)["passes"] for v in R.VERIFICATIONS)


@pytest.mark.parametrize("cid, good, bad", [("batch1", 0.3, 0.7), ("large-batch", 1.5, 2.5), ("convex", 0.8, 1.2)])
def test_each_claim_holds_and_fails_where_it_should(cid, good, bad):
    from companion.reports import cubic_newton as R
    claim = next(c for c in R.CLAIMS if c.id == cid)
    key = {"batch1": "ratio_b1", "large-batch": "ratio_b1_vs_scn_bmax", "convex": "ratio_convex"}[cid]
    make = lambda v: {"per_seed": [{key: v * f} for f in (0.98, 1.0, 1.02)]}  # noqa: E731
    assert claim.evaluate(make(good), "cpu")["verdict"] == "holds"
    assert claim.evaluate(make(bad), "cpu")["verdict"] == "fails"


def test_noise_and_large_m_claims_read_the_largest_setting(smoke):
    from companion.reports import cubic_newton as R
    cfg, r = smoke
    m = R.metrics(r, cfg)
    for s in m["per_seed"]:
        assert s["ratio_noise_max_sigma"] == s["ratio_noise"][f"{max(cfg.sigmas):g}"]
        assert s["ratio_large_m_max"] == s["ratio_large_m"][f"{max(cfg.large_Ms):g}"]
        assert s["ratio_lam_largest"] == s["ratio_lam"][f"{max(cfg.lams):g}"]
        assert s["ratio_lam_smallest"] == s["ratio_lam"][f"{min(cfg.lams):g}"]
    assert m["sgd_best_lr"] == min(cfg.sgd_lrs, key=lambda lr: sum(r["step_sweep"][lr]["SGD"]))


def test_every_figure_renders_from_the_smoke_run(smoke):
    import matplotlib.pyplot as plt

    from companion.reports import cubic_newton_figures as F
    cfg, r = smoke
    for name in ("curves", "batch", "noise", "nonconvexity", "lam_min", "convex", "sensitivity", "mnist"):
        fig = getattr(F, f"{name}_figure")(r, cfg)
        assert fig.axes and fig.get_size_inches()[0] <= 6.4 + 1e-9
        plt.close(fig)
