"""The deep-grokking experiment's machinery: evaluation grid, configuration errors, and an
interrupted run resuming to the same numbers as an uninterrupted one."""
import dataclasses

import pytest
import torch

from companion import device
from companion.experiments import deep_grokking as E
from companion.params import ParamError

TINY = dataclasses.replace(E.SCALES["smoke"], depths=(3,), steps=(120,), width=16, n_train=300, n_test=200,
                           dense_from=40, n_log_evals=4, n_evals=5, regime_depth=0)


def test_eval_steps_are_dense_where_grokking_happens():
    s = E.eval_steps(30000, 1000, 12, 48)
    assert s[0] == 0 and s[-1] == 30000 and s == sorted(set(s)) and s[1:3] == [1, 2]
    late = [t for t in s if t >= 1000]
    assert len(late) == 48 and len(s) <= 61 and sum(t < 1000 for t in s) <= 12
    assert max(b - a for a, b in zip(late, late[1:])) <= 618  # evenly spaced: 29000 / 47
    assert E.eval_steps(500, 1000, 6, 48)[-1] == 500 and len(E.eval_steps(500, 1000, 6, 48)) <= 7
    probes = E.probe_steps(s, 4)
    assert len(probes) == 4 and max(probes) == 30000 and min(probes) >= 200 and probes <= set(s)
    assert E.probe_steps(s, 0) == set()


@pytest.mark.parametrize("change,match", [
    (dict(depths=(4, 12), steps=(1, 2, 3)), "one value or one per depth"),
    (dict(depths=(12, 4)), "increasing order"),
    (dict(seeds=(0, 0)), "distinct values"),
    (dict(data="digits", n_train=1500, n_test=1000), "exceed the 1797 images"),
    (dict(compare_n_train=9000), "exceed the 10000 images"),
])
def test_bad_configurations_are_refused(change, match):
    with pytest.raises(ParamError, match=match):
        dataclasses.replace(E.SCALES["cpu"], **change).validate()


@pytest.mark.parametrize("scale,n", [("cpu", 3 + 2 + 3 + 3 + 3), ("gpu", 3 + 1 + 1 + 1 + 3)])
def test_plan_names_every_run_uniquely(scale, n):
    runs = [s.name for g in E.plan(E.SCALES[scale]).values() for s in g]
    assert len(runs) == len(set(runs)) == n


def test_plan_gives_the_controls_every_seed_and_the_deep_nets_the_first_ones():
    p = E.plan(E.SCALES["cpu"])
    assert [(s.depth, s.seed) for s in p["sweep"]] == [(4, 0), (4, 1), (4, 2), (8, 0), (8, 1)]
    assert [s.probes for s in p["sweep"]] == [4, 0, 0, 4, 0]
    assert {(s.alpha, s.steps) for s in p["alpha"]} == {(1.0, 10000)}
    assert {(s.weight_decay, s.alpha) for s in p["decay"]} == {(0.001, 8.0)}
    assert {s.n_train for s in p["data"]} == {4000} and [s.seed for s in p["data"]] == [0, 1, 2]


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(E, "CHECKPOINT_EVERY", 50)
    dev = device.setup(0, 1)
    spec = E.RunSpec(3, TINY.n_train, 0.01, TINY.alpha, TINY.steps[0], seed=1, probes=2)
    whole = E._Runner(TINY, dev, False).run(spec)

    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "cache2"))
    real_write, writes = E.atomic_write_bytes, []

    def write_then_stop(path, blob):
        real_write(path, blob)
        writes.append(path)
        if len(writes) == 2:  # stopped right after the checkpoint at step 100
            raise KeyboardInterrupt
    monkeypatch.setattr(E, "atomic_write_bytes", write_then_stop)
    runner = E._Runner(TINY, dev, False)
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec)
    monkeypatch.setattr(E, "atomic_write_bytes", real_write)
    resumed = runner.run(spec)
    assert not list((tmp_path / "cache2").rglob("*.ckpt"))  # the checkpoint is removed at the end
    assert resumed["records"] == whole["records"]
    r = whole["records"][-1]
    assert len(r["rank"]) == len(r["erank"]) == 3 and r["rank"][-1] <= 10 and len(r["probe_acc"]) == 3
    assert all(0.0 <= r[k] <= 1.0 for k in ("train_acc", "test_acc"))


def _fake_run(depth, t_fit, t_rise, steps=10000, width=16, seed=0, alpha=8.0, wd=0.01, n=100, fall=None,
              bump=None):
    """Records of a constructed run: train accuracy jumps to 1 at t_fit, test accuracy rises
    from 0.3 to 0.9 at t_rise, the late layers' rank halves at `fall` (default t_rise) and is
    raised by 25% over the `bump` interval, the norm decays from the start."""
    fall = t_rise if fall is None else fall
    recs = []
    for t in E.eval_steps(steps, 1000, 6, 30):
        r = width // 2 if t >= fall else width - 2
        if bump and bump[0] <= t < bump[1]:
            r = int(r * 1.25)
        rank = [width] * (depth - 2) + [r, 10]
        recs.append({"step": t, "train_acc": 1.0 if t >= t_fit else 0.5, "test_acc": 0.9 if t >= t_rise else 0.3,
                     "train_loss": 0.0, "test_loss": 0.0, "rank": rank, "erank": [float(x) for x in rank],
                     "norm": 100.0 * 0.9999 ** t, "last_norm": 10.0})
    return {"spec": {"depth": depth, "n_train": n, "weight_decay": wd, "alpha": alpha, "steps": steps, "seed": seed},
            "records": recs}


def test_report_indicators_on_constructed_runs():
    from companion.reports import deep_grokking as R
    cfg = dataclasses.replace(E.SCALES["cpu"], width=16, seeds=(0, 1), depths=(3, 7), tunnel_fracs=(0.6, 0.75))
    res = {"sweep": {"a": _fake_run(3, 2000, 5000), "a1": _fake_run(3, 2000, 5000, seed=1, fall=3000),
                     "c": _fake_run(7, 10000, 10000)},
           "alpha": {"ctl": _fake_run(3, 100, 100, alpha=1.0)},
           "decay": {"dec": _fake_run(3, 2000, 10 ** 9, wd=0.001, fall=10 ** 9)},
           "data": {"big": _fake_run(3, 2000, 3000, n=400, bump=(3000, 6000), fall=1500)}, "regime": {}}
    m = R.metrics(res, cfg)
    steps = E.eval_steps(10000, 1000, 6, 30)
    first = lambda x: min(s for s in steps if s >= x)  # noqa: E731  (the first evaluation at or after x)
    a, a1 = m["runs"]["a"], m["runs"]["a1"]
    assert a["t_fit"] == first(2000) and a["test_at_fit"] == 0.3 and a["t_gen"] == first(5000)
    assert a["gain_after_fit"] == pytest.approx(0.6) and a["pen_erank_change_after_fit"] == pytest.approx(-3 / 7)
    # the rank onset is searched from the end of the transient, not from t_fit: it can come before fitting
    assert a["rank_onset"] == first(5000) and a1["rank_onset"] == first(3000)
    assert m["runs"]["big"]["rank_onset"] == first(1500) < m["runs"]["big"]["t_fit"]
    assert m["runs"]["big"]["rank_onset_minus_fit_decades"] < 0
    s0, s1 = m["per_seed"]
    assert s0["init_gain_excess"] == pytest.approx(0.6) and s0["decay_final_excess"] == pytest.approx(0.6)
    assert s0["decay_rank_change_excess"] == pytest.approx(-3 / 7)  # the decay control's rank never falls
    assert s1["alpha"] == {} and s1["init_gain_excess"] is None  # seed 1 has no controls: nothing to compare
    # the larger set's rank falls at 1500, rises by 25% from 3000 and falls back at 6000: a double
    # descent only without the peak condition (its first fall starts where the search starts)
    big = m["runs"]["big"]
    assert big["rank_dd_depth_from_t0_any"] == pytest.approx(0.2, abs=2e-3)  # 1.25 -> 1: a 20% fall
    assert big["rank_dd_depth"] == 0.0 and big["rank_rise_fall_depth"] == pytest.approx(0.2, abs=2e-3)
    assert m["runs"]["a"]["rank_dd_depth"] == 0.0 and s0["dd_excess"] == 0.0
    # depth: c fits at its last evaluation; the deep net is 0.5 behind in train accuracy at a's t_fit
    assert s0["fit_lead"] == 0.5 and s0["gen_lead"] == pytest.approx(0.6) and "deep" not in s1
    assert [x["seed"] for x in m["per_deep_seed"]] == [0]
    # tunnels at t_fit against 9.6 and 12: a (ranks 16, 14, 10): 0 and 1 layers; c (16 x 5, 8, 10): 1 and 2
    assert a["tunnel_at_fit"] == {"0.6": 0, "0.75": 1} and s0["tunnel_gain"] == {"0.6": 1, "0.75": 1}
    assert s0["tunnel_gain_min"] == 1
    # the norm curves of a and big are identical; their ranks differ by 14 - 8 at most (1500 to 3000)
    assert s0["norm_distance_n"] == 0.0 and s0["rank_distance_n"] == pytest.approx(6 / 14)
    assert s0["rank_distance_seeds"] == pytest.approx(6 / 14)  # seed 1 falls at 3000, seed 0 at 5000
    assert s0["norm_gap_n"] == 0.0 and s0["norm_sep_ratio"] is None  # no seed spread of the norm: no ratio
    assert s0["rank_separation"] == pytest.approx(0.0)


def test_curve_distance_closed_forms():
    from companion.reports import deep_grokking as R
    a, b = _fake_run(3, 10, 10), _fake_run(3, 10, 10)
    for r in b["records"]:
        r["norm"] *= 1.1
    assert R.curve_distance(a, b, "norm") == pytest.approx(0.1)
    assert R.curve_distance(a, b, "norm", how="max") == pytest.approx(0.1 / 1.1)
