"""The comigs experiment at smoke scale: every group of runs, their shapes, the report's numbers
against the closed-form payload, and the Config's errors."""
import dataclasses

import pytest
from conftest import isolated_run

from companion.experiments import comigs as E
from companion.params import ParamError
from companion.reports import comigs as R


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    with isolated_run(tmp_path_factory):
        yield E.SCALES["smoke"], E.run(E.SCALES["smoke"], progress=False)


def test_every_group_has_its_runs(smoke):
    cfg, r = smoke
    plan = E.plan(cfg)
    for group, specs in plan.items():
        assert [(x["method"], x["alpha"], x["train_tokens"], x["seed"], x["quirk"], x["control"]) for x in r[group]] \
            == [s for s in specs]
    steps = cfg.rounds * cfg.local_steps
    for run in r["main"]:
        assert run["ce"].shape == (cfg.users,) and run["ce_by_source"].shape == (cfg.users, 2)
        assert run["uploads"].shape == (cfg.rounds, cfg.users)
        assert run["curve_steps"] == list(range(0, steps + 1, cfg.eval_every))
        assert run["curve_ce"].shape == (len(run["curve_steps"]), cfg.users)
        if E.F.METHODS[run["method"]].gating == "router":
            assert run["specialist_weight"].shape == (cfg.n_layer, cfg.users, 2)
            assert ((0 <= run["specialist_weight"]) & (run["specialist_weight"] <= 1)).all()


def test_report_numbers_and_figures(smoke):
    import matplotlib.pyplot as plt

    from companion import claims
    from companion.reports import comigs_figures as F
    cfg, r = smoke
    m = R.metrics(r, cfg)
    closed = R.payload_closed_form(cfg)
    assert m["uploads"]["1G1S"] == closed["P_G"] + closed["P_psi"] and m["uploads"]["Local"] == 0
    assert m["uploads"]["FedAvg"] == cfg.experts * closed["P_G"] + closed["P_psi"]
    assert m["payload_ratio_experts"] == 0.5 and 0.5 < m["payload_ratio_full"] < 1
    assert all(v.evaluate(m)["passes"] for v in R.VERIFICATIONS)
    for row in claims.evaluate(R.CLAIMS, m, "smoke"):
        assert row["verdict"] in claims.VERDICTS
    words = R.words(m)
    assert all(isinstance(v, str) and v for v in words.values())
    figs = [F.loss_figure(m, cfg.methods), F.heterogeneity_figure(m, cfg.sweep_methods, cfg.alphas),
            F.routing_figure(r, m, cfg), F.payload_figure(m, cfg.methods), F.curves_figure(r, cfg.methods),
            F.ablation_figure(m)]
    for fig in figs:
        assert fig.axes and fig.get_size_inches()[0] <= 6.4 + 1e-9
        plt.close(fig)


def test_the_control_users_have_the_same_chain_but_the_labels():
    cfg = E.SCALES["smoke"]
    us = E.markov.users((0.5,) * 2, dict(train=200, val=200, test=200), seed=0, control=True)
    assert (us.train.source == E.markov.PRIVATE).any() and all(E.torch.equal(p, us.shared) for p in us.private)
    assert cfg.ablation


@pytest.mark.parametrize("change,needle", [
    (dict(methods=("Local", "1G1S", "1G1S-joint")), "must include"),
    (dict(sweep_methods=("Local",)), "must include"),
    (dict(top_k=3), "top_k"),
    (dict(experts=1, top_k=1), "at least 2"),
    (dict(alpha=0.3), "alphas must include alpha"),
    (dict(seg_min=40), "seg_min"),
    (dict(seq_len=128, train_tokens=100), "train_tokens"),
    (dict(d_model=30), "divisible"),
    (dict(data="shakespeare", seg_max=20000), "seg_max"),
])
def test_bad_configurations_are_refused_with_the_reason(change, needle):
    cfg = dataclasses.replace(E.SCALES["cpu"], **change)
    with pytest.raises(ParamError, match=needle):
        cfg.validate()


def test_the_text_data_declare_their_dataset():
    assert E.SCALES["gpu"].datasets() == ("tinyshakespeare",) and E.SCALES["cpu"].datasets() == ()
