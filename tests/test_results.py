"""Atomic writes, the result cache and the artifact swap."""
import json
import os

import pytest

from companion import chapters, outputs, results


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
    outputs.swap_dir(new, dest)
    assert (dest / "metrics.json").read_text() == "new"
    assert not (dest / "stale.png").exists()  # no mix of old and new artifacts
    assert (dest / "chapter.ipynb").read_text() == "notebook"  # carried until the CLI replaces it
    assert not new.exists() and not (tmp_path / "run.old").exists()


def test_chapters_depend_only_on_the_modules_they_import():
    from companion.results import PACKAGE_DIR, compute_files

    def names(files):
        return {f.relative_to(PACKAGE_DIR).as_posix() for f in files}
    sc, wu = (names(chapters.get(c).sources()) for c in ("scaling-cooldown", "warmup"))
    assert "optim/lion.py" in wu and "optim/lion.py" not in sc
    assert "optim/averaging.py" in sc and "optim/averaging.py" not in wu
    assert {"train.py", "models/gpt.py", "chapters.py", "reports/warmup.py", "__init__.py"} <= wu
    assert "reports/scaling_cooldown_figures.py" in sc  # imported by the notebook, not by the report
    assert not {"catalog.py", "cli.py", "book.py"} & (sc | wu)
    # the result cache of a chapter is keyed on the compute modules among them
    compute = names(compute_files("warmup"))
    assert "metrics/noise.py" in compute and "reports/warmup.py" not in compute
    assert results.compute_hash("warmup") != results.compute_hash("scaling-cooldown")


@pytest.mark.parametrize("cid", list(chapters.CHAPTERS))
def test_cache_key_covers_every_module_the_experiment_imports_but_presentation(cid):
    """By exclusion: a new concept package that an experiment imports is in its key without
    being listed anywhere; only the named presentation/infrastructure modules are left out."""
    from companion.results import NOT_COMPUTE, PACKAGE_DIR, compute_files, module_files
    module = f"companion.experiments.{chapters.get(cid).module}"
    every = {f.relative_to(PACKAGE_DIR).as_posix() for f in module_files(module)}
    keyed = {f.relative_to(PACKAGE_DIR).as_posix() for f in compute_files(cid)}
    assert keyed <= every and f"experiments/{chapters.get(cid).module}.py" in keyed
    # closed under imports: every companion module a keyed file imports is keyed, unless it is one of
    # the named non-compute modules
    for f in compute_files(cid):
        for name in results.companion_imports(f.read_text()):
            imported = results._module_file(name)
            if imported is not None and not results.is_not_compute(name):
                assert imported.relative_to(PACKAGE_DIR).as_posix() in keyed, (cid, f.name, name)
    packages = {n.split("/")[0] for n in keyed if "/" in n}
    assert packages - {"experiments"}, "the experiment's own packages (models, optim, ...) are keyed"


def test_a_changed_compute_module_changes_the_key(monkeypatch):
    before = results.compute_hash("cobo")
    results.compute_hash.cache_clear()
    real = results.normalized_source
    monkeypatch.setattr(results, "normalized_source",
                        lambda p: real(p) + ("#changed" if p.name == "stacked.py" else ""))
    assert results.compute_hash("cobo") != before
    assert results.compute_hash("warmup") == (results.compute_hash.cache_clear() or results.compute_hash("warmup"))
    results.compute_hash.cache_clear()


def test_normalised_source_ignores_docs_comments_presets_and_defaults(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text('"""Module doc."""\nfrom dataclasses import dataclass\n\n\n@dataclass(frozen=True)\n'
                 'class Config:\n    lr: float = param(0.1, "help")\n\n\nSCALES = {"cpu": Config()}\n\n\n'
                 'def f(x):\n    """Doc."""\n    return x + 1  # one\n')
    b.write_text('from dataclasses import dataclass\n\n\n@dataclass(frozen=True)\nclass Config:\n'
                 '    lr: float = param(0.5, "other help")\n\n\nSCALES = {"cpu": Config(lr=2.0)}\n\n\n'
                 'def f(x):\n    # comment\n    return x + 1\n')
    c.write_text(b.read_text().replace("x + 1", "x + 2"))
    assert results.normalized_source(a) == results.normalized_source(b)
    assert results.normalized_source(b) != results.normalized_source(c)


def test_config_key_is_built_by_exclusion():
    from companion.experiments.scaling_cooldown import SCALES
    cfg = SCALES["smoke"]
    key = results.config_key(cfg, drop=("targets",))
    assert "targets" not in key and key["lr"] == cfg.lr and len(key) == len(vars(cfg)) - 1
    with pytest.raises(KeyError):
        results.config_key(cfg, drop=("no_such_field",))
