"""Atomic writes, the result cache and the artifact swap."""
import json
import os

import pytest

from companion import chapters, results


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    f = tmp_path / "metrics.json"
    results.atomic_write_json(f, {"v": 1})

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        results.atomic_write_json(f, {"v": 2})
    assert json.loads(f.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_cache_reuses_only_a_matching_key(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    calls = []

    def compute(v):
        calls.append(v)
        return {"loss": v}

    assert results.cached("ch", "run", {"lr": 1}, lambda ck: compute(1)) == {"loss": 1}
    assert results.cached("ch", "run", {"lr": 1}, lambda ck: compute(99)) == {"loss": 1}
    assert results.cached("ch", "run", {"lr": 2}, lambda ck: compute(2)) == {"loss": 2}
    assert calls == [1, 2]
    for p in (tmp_path / "ch").iterdir():  # a damaged entry is recomputed, not trusted
        p.write_bytes(b"garbage")
    assert results.cached("ch", "run", {"lr": 1}, lambda ck: compute(3)) == {"loss": 3}


def test_stable_hash_ignores_key_order():
    assert results.stable_hash({"a": 1, "b": [1, 2]}) == results.stable_hash({"b": [1, 2], "a": 1})
    assert results.stable_hash({"a": 1}) != results.stable_hash({"a": 2})


def test_swap_dir_replaces_whole_folders(tmp_path):
    dest, new = tmp_path / "run", tmp_path / "run.partial"
    dest.mkdir()
    (dest / "metrics.json").write_text("old")
    (dest / "stale.png").write_text("old figure")
    (dest / "chapter.ipynb").write_text("notebook")
    new.mkdir()
    (new / "metrics.json").write_text("new")
    chapters.swap_dir(new, dest)
    assert (dest / "metrics.json").read_text() == "new"
    assert not (dest / "stale.png").exists()  # no mix of old and new artifacts
    assert (dest / "chapter.ipynb").read_text() == "notebook"  # carried until the CLI replaces it
    assert not new.exists() and not (tmp_path / "run.old").exists()


def test_chapters_depend_only_on_the_modules_they_import():
    from companion.results import COMPUTE, PACKAGE_DIR, module_files

    def names(files):
        return {f.relative_to(PACKAGE_DIR).as_posix() for f in files}
    sc, wu = (names(chapters.get(c).sources()) for c in ("scaling-cooldown", "warmup"))
    assert "optim/lion.py" in wu and "optim/lion.py" not in sc
    assert "optim/averaging.py" in sc and "optim/averaging.py" not in wu
    assert {"train.py", "models/gpt.py", "chapters.py", "reports/warmup.py", "__init__.py"} <= wu
    assert not {"catalog.py", "cli.py", "book.py"} & (sc | wu)
    # the result cache of a chapter is keyed on the compute modules among them
    compute = names(module_files("companion.experiments.warmup"))
    assert "metrics/noise.py" in compute and "reports/warmup.py" not in compute
    assert results.compute_hash("warmup") != results.compute_hash("scaling-cooldown")
    assert all(n.split("/")[0] in COMPUTE or n in ("__init__.py", "chapters.py", "results.py", "params.py",
                                                   "catalog.py", "claims.py", "plotting.py") for n in compute)
