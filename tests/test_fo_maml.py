"""The fo-maml experiment at smoke scale: every study, its shape, the report's fits."""
import dataclasses
import math

import pytest
from conftest import isolated_run

from companion.experiments import fo_maml as E
from companion.params import ParamError
from companion.reports import fo_maml as R


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    with isolated_run(tmp_path_factory):
        yield E.SCALES["smoke"], E.run(E.SCALES["smoke"], progress=False)


def test_every_study_has_every_configuration(smoke):
    cfg, r = smoke
    assert set(r) == set(E.STUDIES)
    assert set(r["full"]) == set(E.METHODS) and all(len(v) == cfg.n_seeds for v in r["full"].values())
    assert len(r["errors"]) == cfg.n_seeds * cfg.n_points
    assert all(len(v) == len(cfg.deltas) for p in r["errors"] for v in p["by_delta"].values())
    assert len(r["smoothness"]["scan"]) == cfg.n_seeds * len(cfg.radii) * cfg.directions
    for log in r["full"]["MAML"]:
        assert len(log["t"]) == cfg.steps // cfg.log_every + 1
    assert set(r["mnist"]["runs"]) == set(E.MNIST_METHODS) and set(r["mnist_smooth"]["runs"]) == set(E.SMOOTH_METHODS)
    for runs in list(r["mnist"]["runs"].values()) + list(r["mnist_smooth"]["runs"].values()):
        assert len(runs) == cfg.n_seeds
        assert all(r_["t"] == list(range(0, cfg.meta_iters + 1, cfg.eval_every)) for r_ in runs)
        assert all(0 <= a <= 1 for r_ in runs for a in r_["accuracy"])
    for axis, xs in (("channels", cfg.memory_channels), ("steps", cfg.memory_steps)):
        assert set(r["memory"][axis]) == set(E.MEMORY_METHODS) and all(len(v) == len(xs) for v in r["memory"][axis].values())


def test_memory_grows_with_inner_steps_for_maml_only(smoke):
    """MAML keeps every inner step's activations; FO-MAML keeps one step's at a time: its count is
    the same at every number of inner steps (a byte count: exact)."""
    _, r = smoke
    steps = r["memory"]["steps"]
    assert steps["MAML"] == sorted(steps["MAML"]) and steps["MAML"][-1] > 1.2 * steps["MAML"][0]
    assert len(set(steps["FO-MAML"])) == 1
    assert all(a < b for a, b in zip(r["memory"]["channels"]["MAML"], r["memory"]["channels"]["MAML"][1:]))


def test_report_metrics_claims_and_figures(smoke):
    import matplotlib.pyplot as plt

    from companion import claims
    from companion.reports import fo_maml_figures as F
    cfg, r = smoke
    m = R.metrics(r, cfg)
    for row in claims.evaluate(R.CLAIMS, m, "smoke"):
        assert row["verdict"] in ("holds", "mixed", "fails")
    # smoke's few meta-iterations cannot beat the untrained start: that control is for cpu and gpu
    assert all(v.evaluate(m)["passes"] for v in R.VERIFICATIONS if v.id != "mnist-control")
    for name in ("errors", "curves", "bias", "control", "smoothness", "far", "mnist", "network_errors", "memory"):
        fig = getattr(F, f"{name}_figure")(r, cfg)
        assert fig.axes and fig.get_size_inches()[0] <= 6.4 + 1e-9
        plt.close(fig)


def test_linear_fit_and_slope_recover_known_lines():
    L0, L1, r2 = R.linear_fit([(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)])
    assert (L0, L1, r2) == pytest.approx((1.0, 2.0, 1.0))
    assert R._slope([0.1, 0.01, 0.001], [2e-2, 2e-4, 2e-6]) == pytest.approx(2.0)
    pts = [{"seed": 0, "radius": r, "gnorm": g, "hnorm": h} for r, g, h in
           [(1, 1.0, 2.0), (1, 3.0, 5.0), (2, 10.0, 1.0)]]
    assert R.envelope(pts, 0) == [(2.0, 5.0), (10.0, 1.0)]


def test_a_diverged_plain_run_counts_as_a_clipping_win():
    assert R._ratio(1e-15, math.inf) == 0.0 and R._ratio(1.0, 1.0) == 1.0


def test_bad_configurations_are_refused():
    with pytest.raises(ParamError, match="strictly decreasing"):
        dataclasses.replace(E.SCALES["smoke"], deltas=(0.01, 0.02)).validate()
    with pytest.raises(ParamError, match="strictly increasing"):
        dataclasses.replace(E.SCALES["smoke"], memory_steps=(2, 1)).validate()
    with pytest.raises(ParamError, match="eval_every"):
        dataclasses.replace(E.SCALES["smoke"], eval_every=10**5).validate()
    with pytest.raises(ParamError, match="task_batch"):
        dataclasses.replace(E.SCALES["smoke"], task_batch=50).validate()
