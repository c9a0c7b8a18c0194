"""The deep-grokking experiment's machinery: evaluation grid, configuration errors, and an
interrupted run resuming to the same numbers as an uninterrupted one."""
import dataclasses

import pytest
import torch

from companion import device
from companion.experiments import deep_grokking as E
from companion.params import ParamError

TINY = dataclasses.replace(E.SCALES["smoke"], depths=(3,), steps=(120,), width=16, n_train=300, n_test=200,
                           n_evals=8, probe_evals=2, stage_depth=0, regime_depth=0)


def test_eval_steps_are_log_spaced_from_zero_to_the_end():
    s = E.eval_steps(30000, 40)
    assert s[0] == 0 and s[-1] == 30000 and s == sorted(set(s))
    assert 30 <= len(s) <= 41 and s[1:6] == [1, 2, 3, 4, 5] and s[-2] < 25000
    probes = E.probe_steps(s, 4)
    assert len(probes) == 4 and max(probes) == 30000 and min(probes) >= 200 and probes <= set(s)
    assert E.probe_steps(s, 0) == set()


@pytest.mark.parametrize("change,match", [
    (dict(depths=(4, 12), steps=(1, 2, 3)), "one value or one per depth"),
    (dict(depths=(12, 4)), "increasing order"),
    (dict(data="digits", n_train=1500, n_test=1000), "exceed the 1797 images"),
])
def test_bad_configurations_are_refused(change, match):
    with pytest.raises(ParamError, match=match):
        dataclasses.replace(E.SCALES["cpu"], **change).validate()


def test_plan_names_every_run_uniquely():
    runs = [s.name for g in E.plan(E.SCALES["gpu"]).values() for s in g]
    assert len(runs) == len(set(runs)) == 3 + 1 + 3


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(E, "CHECKPOINT_EVERY", 50)
    dev = device.setup(0, 1)
    spec = E.RunSpec(3, TINY.n_train, 0.01, TINY.steps[0])
    whole = E._Runner(dataclasses.replace(TINY, seed=1), dev, False).run(spec)

    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path / "cache2"))
    real_write, writes = E.atomic_write_bytes, []

    def write_then_stop(path, blob):
        real_write(path, blob)
        writes.append(path)
        if len(writes) == 2:  # stopped right after the checkpoint at step 100
            raise KeyboardInterrupt
    monkeypatch.setattr(E, "atomic_write_bytes", write_then_stop)
    runner = E._Runner(dataclasses.replace(TINY, seed=1), dev, False)
    with pytest.raises(KeyboardInterrupt):
        runner.run(spec)
    monkeypatch.setattr(E, "atomic_write_bytes", real_write)
    resumed = runner.run(spec)
    assert not list((tmp_path / "cache2").rglob("*.ckpt"))  # the checkpoint is removed at the end
    assert resumed["records"] == whole["records"]
    r = whole["records"][-1]
    assert len(r["rank"]) == len(r["erank"]) == 3 and r["rank"][-1] <= 10 and len(r["probe_acc"]) == 3
    assert all(0.0 <= r[k] <= 1.0 for k in ("train_acc", "test_acc"))


def _fake_run(depth, t_fit, t_rise, steps=10000, width=16):
    """Records of a constructed run: train accuracy jumps to 1 at t_fit, test accuracy rises
    from 0.3 to 0.9 at t_rise, the penultimate rank halves at t_rise, the norm decays from
    the start."""
    recs = []
    for t in E.eval_steps(steps, 30):
        late = t >= t_rise
        rank = [width] * (depth - 2) + [width // 2 if late else width - 2, 10]
        recs.append({"step": t, "train_acc": 1.0 if t >= t_fit else 0.5, "test_acc": 0.9 if late else 0.3,
                     "train_loss": 0.0, "test_loss": 0.0, "rank": rank, "erank": [float(r) for r in rank],
                     "norm": 100.0 * 0.9999 ** t, "last_norm": 10.0})
    return {"spec": {"depth": depth, "n_train": 100, "weight_decay": 0.01, "steps": steps}, "records": recs}


def test_report_indicators_on_constructed_runs():
    from companion.reports import deep_grokking as R
    cfg = dataclasses.replace(E.SCALES["cpu"], width=16)
    res = {"depth": {"a": _fake_run(3, 100, 2000), "b": _fake_run(5, 500, 5000), "c": _fake_run(7, 10000, 10000)},
           "stage": {}, "regime": {}}
    m = R.metrics(res, cfg)
    a, b, c = (m["runs"][k] for k in "abc")
    steps = E.eval_steps(10000, 30)
    first = lambda x: min(s for s in steps if s >= x)  # noqa: E731  (the first evaluation at or after x)
    assert a["t_fit"] == first(100) and a["test_at_fit"] == 0.3 and a["t_gen"] == first(2000)
    assert b["pen_erank_change_after_fit"] == pytest.approx(8 / 14 - 1)
    assert b["rank_onset"] == first(5000) and b["rank_onset_minus_gen_decades"] == 0.0
    assert a["norm_onset"] == first(513)  # 0.9999^t <= 0.95 from t = 513 on
    # c fits at its last evaluation: nothing after fitting can be measured, the claims read b
    assert c["evals_after_fit"] == 0 and m["grok_run"] == "b"
    assert m["fit_lead"] == 0.5 and m["tunnel"] == {"3": 2, "5": 2, "7": 2}  # 8 < 12 and 10 < 12
    assert m["gen_lead"] == pytest.approx(0.6)  # at a's t_gen: a at 0.9, c still at 0.3
