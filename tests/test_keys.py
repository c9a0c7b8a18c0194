"""A sub-run's cache key holds every Config field the sub-run reads, so that changing any of
them (`-p eval_batches 8`) recomputes it instead of reusing results made with another value.

Each chapter's experiment runs at smoke scale with a Config that records attribute reads and
a `cached` that attributes the reads made inside each sub-run's computation to that sub-run."""
import dataclasses

import pytest

from companion import chapters, results
from companion import device as devices


def _fields_in(key) -> dict:
    """Every (name, value) at any depth of a key."""
    out = {}
    if isinstance(key, dict):
        for k, v in key.items():
            out[k] = v
            out.update(_fields_in(v))
    return out


def traced(cfg, stack):
    names = {f.name for f in dataclasses.fields(cfg)}

    class Traced(type(cfg)):
        def __getattribute__(self, name):
            if name in names and stack:
                stack[-1].add(name)
            return super().__getattribute__(name)

    return Traced(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})


@pytest.mark.parametrize("cid", list(chapters.CHAPTERS))
def test_every_field_a_subrun_reads_is_in_its_key(cid, tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    exp = chapters.get(cid).experiment()
    if not hasattr(exp, "cached"):
        pytest.skip("the experiment caches nothing by name")
    stack, seen = [], []

    def tracing_cached(chapter, name, key, compute, enabled=True):
        stack.append(set())
        try:
            return results.cached(chapter, name, key, compute, enabled)
        finally:
            seen.append((name, key, stack.pop()))

    monkeypatch.setattr(exp, "cached", tracing_cached)
    cfg = traced(exp.SCALES["smoke"], stack)
    exp.run(cfg, devices.setup(0, 1, "cpu"), progress=False)
    assert seen
    missing = {}
    for name, key, read in seen:
        fields = _fields_in(key)
        lost = sorted(f for f in read if f not in fields)  # (a run may read a replaced copy: the LR sweep)
        if lost:
            missing[name] = lost
    assert not missing, f"{cid}: sub-runs read Config fields that are not in their cache keys: {missing}"
