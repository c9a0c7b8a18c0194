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
