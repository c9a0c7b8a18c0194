"""Reliability: what a crash, a copied file or a careless user leaves behind is detected and
never presented as a result (issue 15)."""
import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from companion import results
from companion.data import CharCorpus
from companion.models.gpt import GPTConfig
from companion.optim import schedules
from companion.train import CharLM, adamw


def test_a_cache_entry_copied_over_another_is_recomputed_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    a = results.cached("cobo", "run", {"x": 1}, lambda ckpt: 34.2)
    b = results.cached("cobo", "run", {"x": 2}, lambda ckpt: 88.8)
    fa, fb = sorted((tmp_path / "cobo").glob("run-*.pt"), key=lambda p: torch.load(p, weights_only=False)["value"])
    shutil.copy(fb, fa)  # the other sub-run's valid entry under this one's file name
    with pytest.warns(UserWarning, match="for another configuration"):
        again = results.cached("cobo", "run", {"x": 1}, lambda ckpt: 34.2)
    assert (a, b, again) == (34.2, 88.8, 34.2)
    assert results.LEDGER[-1][2] is False  # computed, not reused
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is trusted again, silently
        assert results.cached("cobo", "run", {"x": 1}, lambda ckpt: -1.0) == 34.2


def test_a_truncated_cache_entry_is_recomputed_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_CACHE", str(tmp_path))
    results.cached("cobo", "run", {"x": 1}, lambda ckpt: 1.0)
    f = next((tmp_path / "cobo").glob("run-*.pt"))
    f.write_bytes(f.read_bytes()[:20])
    with pytest.warns(UserWarning, match="unreadable"):
        assert results.cached("cobo", "run", {"x": 1}, lambda ckpt: 2.0) == 2.0


def _lm():
    corpus = CharCorpus("to be, or not to be: that is the question. " * 40, val_frac=0.2)
    gcfg = GPTConfig(vocab_size=corpus.vocab_size, seq_len=16, n_layer=1, n_head=2, d_model=16)
    return CharLM(corpus, gcfg, batch_size=4, eval_batches=2, seed=0, dev=torch.device("cpu"), progress=False,
                  checkpoint_every=2)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign"])
def test_a_corrupt_checkpoint_is_moved_aside_and_the_sub_run_restarts(tmp_path, damage):
    """A checkpoint that cannot be read no longer blocks every rerun: it is named, moved to
    <file>.corrupt, and the sub-run restarts, giving the uninterrupted run's numbers."""
    lm, sched = _lm(), schedules.make("constant", warmup=1)
    m = lm.model()
    ref, _ = lm.fit(m, adamw(m, 1e-2), sched, 0, 6, lr=1e-2, eval_every=3)
    ckpt = tmp_path / "sub.ckpt"
    if damage == "foreign":
        torch.save({"something": "else"}, ckpt)
    else:
        ckpt.write_bytes(b"\x80\x02garbage" if damage == "garbage" else b"PK\x03\x04")
    m = lm.model()
    with pytest.warns(UserWarning, match=r"sub\.ckpt could not be read.*moved to .*sub\.ckpt\.corrupt"):
        h, _ = lm.fit(m, adamw(m, 1e-2), sched, 0, 6, lr=1e-2, eval_every=3, checkpoint=ckpt)
    assert h.val_loss == ref.val_loss and h.train_loss == ref.train_loss
    assert (tmp_path / "sub.ckpt.corrupt").exists() and not ckpt.exists()


# ---------------------------------------------------------------- bad input, every subcommand

def _tree(path: Path) -> dict:
    """(relative path -> (size, mtime)) of everything below `path`, hidden files included."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def _repo_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=ROOT, capture_output=True,
                          text=True).stdout


def _user_folder(tmp):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("x")
    return ["--out", str(tmp / "mine")]


def _a_file(tmp):
    (tmp / "file").write_text("x")
    return ["--out", str(tmp / "file")]


def _claims(content):
    def make(tmp):
        (tmp / "runs").mkdir()
        (tmp / "runs" / "claims.json").write_text(content)
        return ["--dir", str(tmp / "runs")]
    return make


def _data_dir_with(name, content):
    def make(tmp, env, monkeypatch):
        d = tmp / "data"
        d.mkdir()
        for f in Path(env["COMPANION_DATA"]).iterdir():
            (d / f.name).symlink_to(f)
        (d / name).unlink()
        (d / name).write_text(content)
        return {"COMPANION_DATA": str(d)}
    return make


def _unreadable_data(tmp, env, monkeypatch):
    """A data file the disk cannot read (EIO; chmod cannot make one unreadable for root)."""
    from companion import data

    def eio(path):
        raise OSError(errno.EIO, "Input/output error", str(path))
    monkeypatch.setattr(data, "sha256", eio)
    return {}


def _cache_at(folder):
    return lambda tmp, env, monkeypatch: {"COMPANION_CACHE": folder}


def _held_lock(tmp):
    return ["--out", str(tmp / "busy")]


def _symlink_to_busy(tmp):
    """--out through a symbolic link to a folder another run holds: the same folder, refused."""
    (tmp / "busy").mkdir()
    (tmp / "link").symlink_to(tmp / "busy")
    return ["--out", str(tmp / "link")]


@contextlib.contextmanager
def _locked_elsewhere(out: Path):
    """`out`'s lock held by another process (a lock this process holds would be taken over)."""
    p = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                          "from companion import outputs\n"
                          f"outputs.Lock(Path({str(out)!r})).acquire()\nprint('ready', flush=True)\ntime.sleep(600)"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield
    finally:
        p.kill()
        p.wait()


S = ["--scale", "smoke"]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="the case is a machine without CUDA")
# (argv, extra argv from tmp, env from (tmp, env), the line's expected text)
BAD_INPUTS = [
    (["run", "cobo", *S], _user_folder, None, "holds files that are not a run's"),
    (["run", "cobo", *S, "--out", "."], None, None, "is the project or holds it"),
    (["run", "cobo", *S, "--out", str(ROOT)], None, None, "is the project or holds it"),
    (["run", "cobo", *S, "--out", str(ROOT.parent)], None, None, "is the project or holds it"),
    (["run", "cobo", *S, "--out", ""], None, None, "--out is empty"),
    (["run", "cobo", *S, "--out", "   "], None, None, "--out is empty"),
    (["run", "cobo", *S], _a_file, None, "exists and is not a folder"),
    (["run", "cobo", *S, "--out", "/proc/companion_out"], None, None, "is not writable"),
    (["run", "cobo", *S], _held_lock, None, "another run (pid"),
    (["run", "cobo", *S, "-p", "steps", "20", "-p", "steps", "30"], None, None, "'steps' is given twice"),
    (["run", "cobo", *S, "-p", "methods", ""], None, None, "expects a non-empty"),
    (["run", "cobo", *S, "-p", "seed", "-1"], None, None, "parameter 'seed' must be in"),
    (["run", "cobo", *S, "-p", "seed", "nan"], None, None, "parameter 'seed' expects an int"),
    (["run", "warmup", *S, "-p", "clip", "inf"], None, None, "expects a finite float"),
    (["run", "warmup", *S, "-p", "warmups", "0.0,,0.1"], None, None, "parameter 'warmups' expects a float, got ''"),
    (["run", "warmup", *S, "-p", "scale", "cpu"], None, None, "unknown parameter 'scale'"),
    (["run", "warmup", *S, "-p", "out_dir", "/tmp/x"], None, None, "unknown parameter 'out_dir'"),
    pytest.param(["run", "warmup", "--scale", "gpu"], None, None, "CUDA is not available here", marks=NO_CUDA),
    pytest.param(["run", "warmup", *S, "-p", "device", "cuda"], None, None, "CUDA is not available", marks=NO_CUDA),
    (["run", "scaling-cooldown", *S, "-p", "lr", "0.005"], None, None, "must be one of 'lr_grid'"),
    (["run", "hyperinf", *S], None, _data_dir_with("tinyshakespeare.txt", "First Citizen:\n"),
     "tinyshakespeare"),
    (["run", "hyperinf", *S], None, _unreadable_data, "dataset 'tinyshakespeare' could not be read"),
    (["run", "hyperinf", *S], None, _cache_at("/proc/companion_cache"), "set COMPANION_CACHE"),
    pytest.param(["compute", "cobo", "--scale", "gpu"], None, None, "CUDA is not available here", marks=NO_CUDA),
    (["run", "cobo", *S, "-p", "quad_clients", "1000", "-p", "quad_dim", "100000"], None, None,
     "this configuration would run for ~"),
    (["compute", "warmup", *S, "-p", "steps", "10000000", "-p", "d_model", "8192"], None, None, "or add --force"),
    (["compute", "cobo", *S, "-p", "nope", "1"], None, None, "unknown parameter 'nope'"),
    (["compute", "cobo", *S, "-p", "steps", "20", "-p", "steps", "20"], None, None, "given twice"),
    (["compute", "cobo", *S], None, _cache_at("/proc/companion_cache"), "set COMPANION_CACHE"),
    (["build", "--chapter", "nosuch", "--no-html"], None, None, "unknown chapter 'nosuch'"),
    (["build", "--scale", "huge"], None, None, "invalid choice: 'huge'"),
    pytest.param(["build", "--scale", "gpu", "--no-html"], None, None, "CUDA is not available here", marks=NO_CUDA),
    (["run", "cobo", *S, "--out", str(ROOT / "book" / "chapters")], None, None, "is inside the project"),
    (["run", "cobo", *S], _symlink_to_busy, None, "another run (pid"),
    (["claims", "nosuch"], None, None, "unknown chapter 'nosuch'; chapters:"),
    (["claims", "nosuch", "--dir", "/tmp"], None, None, "unknown chapter 'nosuch'"),
    (["claims", "--dir", "/no/such/folder"], None, None, "is not a folder"),
    (["claims"], _claims("{"), None, "cannot be read as JSON"),
    (["claims"], _claims('{"claim": 1}'), None, "holds a dict, not the list"),
    (["claims"], _claims('[{"claim": "x"}]'), None, "row 0 is not a claim (missing scale"),
    (["claims", "cobo"], _claims("[]"), None, "no claims of cobo under"),
    (["list", "--frobnicate"], None, None, "unrecognized arguments: --frobnicate"),
    ([], None, None, "the following arguments are required: cmd (see 'python -m companion --help')"),
    (["run", "--scale", "smoke"], None, None, "(see 'python -m companion run --help')"),
]


@pytest.mark.parametrize("argv,extra,env_fn,message", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, extra, env_fn, message, tmp_path, data_dir,
                                                         monkeypatch, capsys):
    from companion import cli
    work = tmp_path / "work"
    work.mkdir()
    cache = tmp_path / "cache"
    env = {"COMPANION_DATA": str(data_dir), "COMPANION_CACHE": str(cache)}
    argv = argv + (extra(work) if extra else [])
    env |= env_fn(work, env, monkeypatch) if env_fn else {}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(ROOT)
    with contextlib.ExitStack() as stack:
        if extra in (_held_lock, _symlink_to_busy):  # another process holds the folder's lock
            stack.enter_context(_locked_elsewhere((work / "busy").resolve()))
        before = (_tree(work), _tree(cache), _repo_state())
        capsys.readouterr()
        rc = cli.main(argv)
        err = capsys.readouterr().err
        after = (_tree(work), _tree(cache), _repo_state())
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert before == after


# ---------------------------------------------------------------- output folders

def test_only_an_earlier_runs_folder_is_replaceable(tmp_path):
    from companion import outputs
    legacy = tmp_path / "legacy"  # written before the marker existed: nothing but run artifacts
    (legacy / "figures").mkdir(parents=True)
    for f in ("metrics.json", "claims.json", "provenance.json", "cobo.ipynb"):
        (legacy / f).write_text("{}")
    (legacy / "provenance.json").write_text('{"chapter": "cobo"}')
    assert outputs.is_run_folder(legacy)
    (legacy / "figures" / "fig1.pdf").write_text("mine")  # a user's figures folder is not a run's
    assert not outputs.is_run_folder(legacy)
    (legacy / "figures" / "fig1.pdf").unlink()
    (legacy / "analysis.ipynb").write_text("{}")  # nor a notebook of another name
    assert not outputs.is_run_folder(legacy)
    (legacy / "analysis.ipynb").unlink()
    (legacy / "notes.txt").write_text("mine")
    assert not outputs.is_run_folder(legacy)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "paper.ipynb").write_text("{}")  # notebooks alone, no provenance: a user's
    assert not outputs.is_run_folder(tmp_path / "user")
    (legacy / outputs.MARKER).write_text("{}")
    assert outputs.is_run_folder(legacy)  # the marker says the run wrote it, whatever else is there
    outputs.check_target(tmp_path / "new" / "deeper")  # a folder that does not exist yet is fine
    (tmp_path / "empty").mkdir()
    outputs.check_target(tmp_path / "empty")


def test_leftovers_of_interrupted_runs_are_removed_and_a_half_done_swap_is_undone(tmp_path):
    from companion import outputs
    out = tmp_path / "run"
    (out / "figures").mkdir(parents=True)
    (out / "metrics.json").write_text('{"a": 1}')
    new = outputs.staging(out)
    (new / "metrics.json").write_text('{"a": 2}')
    real_rename = Path.rename

    def killed_after_first_rename(self, target):
        real_rename(self, target)
        if self == out:
            raise KeyboardInterrupt  # the process dies between the swap's two renames
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "rename", killed_after_first_rename)
        with pytest.raises(KeyboardInterrupt):
            outputs.swap_dir(new, out)
    assert not out.exists()  # the moment a reader would find nothing
    litter = [tmp_path / ".run.cobo.abcd1234.ipynb"]
    litter[0].write_text("{}")
    mine = [tmp_path / "run.old", tmp_path / "run.partial", tmp_path / ".sibling.cobo.abcd1234.ipynb",
            tmp_path / ".run.partial-2.partial-abcd1234"]  # the user's, and a sibling output's
    for p in mine:
        p.mkdir() if "ipynb" not in p.name else p.write_text("{}")
    gone = outputs.clean_leftovers(out, "cobo")
    assert json.loads((out / "metrics.json").read_text()) == {"a": 1}  # the previous complete result is back
    assert sorted(gone) == sorted([new.name, ".run.cobo.abcd1234.ipynb"]) and not any(p.exists() for p in litter)
    assert all(p.exists() for p in mine)


def test_each_run_stages_in_a_folder_of_its_own(tmp_path):
    from companion import outputs
    a, b = outputs.staging(tmp_path / "run"), outputs.staging(tmp_path / "run")
    assert a != b and a.parent == b.parent == tmp_path and (a / "figures").is_dir()
    assert a.stat().st_mode & 0o777 == 0o777 & ~results._UMASK  # normal permissions, not mkdtemp's 0700


def test_papermill_parameters_the_chapter_does_not_declare_are_refused():
    from companion import chapters
    specs = chapters.get("cobo").param_specs()
    papermill_cell = '# Parameters\nscale = "smoke"\nnope = 1\nstepz = 3\n'
    ns = {"In": ["", "scale = None\nsteps = None", papermill_cell, "import companion"], "cfg": 1, "session": 2}
    assert chapters.undeclared(ns, specs) == ["nope", "stepz"]
    # a notebook run again in its kernel (names it assigned itself) or interactively: nothing injected
    assert chapters.undeclared({**ns, "In": ["", "scale = None", "cfg = 1"]}, specs) == []


def test_papermill_run_directly_with_a_misspelled_parameter_fails_at_its_first_cell(tmp_path, data_dir):
    out = tmp_path / "nb.ipynb"
    env = {**os.environ, "COMPANION_DATA": str(data_dir), "COMPANION_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "papermill", "hyperinf.ipynb", str(out), "-p", "scale", "smoke",
                        "-p", "out_dir", str(tmp_path / "run"), "-p", "nope", "1"], cwd=ROOT / "book" / "chapters",
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    errors = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "ParamError" and "unknown parameter 'nope'" in errors[0]["evalue"]
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- crashes and concurrent runs

def _run(out, cache, data_dir, *extra, **kw):
    env = {**os.environ, "COMPANION_DATA": str(data_dir), "COMPANION_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "companion", "run", "hyperinf", "--scale", "smoke",
                             "-p", "threads", "1", "--out", str(out), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(pred, timeout=120):
    t0 = time.time()
    while not pred():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """One complete smoke run of the cheapest chapter (and its warm cache)."""
    base = tmp_path_factory.mktemp("runs")
    p = _run(base / "first", base / "cache", data_dir)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return base


def _snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _started(tmp, cache):
    return any(tmp.glob(".out.partial-*"))


def _computing(tmp, cache):
    return (cache / "hyperinf").exists() and any((cache / "hyperinf").glob("*.pt"))


def _drawing(tmp, cache):
    return any(tmp.glob(".out.partial-*/figures/*.png"))


@pytest.mark.parametrize("when,sig", [(_started, signal.SIGKILL), (_computing, signal.SIGINT),
                                      (_drawing, signal.SIGKILL)], ids=["start-SIGKILL", "compute-SIGINT",
                                                                        "figures-SIGKILL"])
def test_a_killed_run_leaves_the_previous_complete_result_and_the_rerun_matches(finished, data_dir, tmp_path, when,
                                                                                sig):
    """Killed before its first sub-run, inside one, or while the notebook draws its figures."""
    out = tmp_path / "out"
    shutil.copytree(finished / "first", out)
    before = _snapshot(out)
    cache = tmp_path / "cache"  # cold: the kill lands where `when` says
    p = _run(out, cache, data_dir, start_new_session=True)
    _wait_for(lambda: when(tmp_path, cache))
    os.killpg(p.pid, sig)  # the CLI and its kernel, as a terminal's Ctrl-C or an OOM kill would
    p.communicate(timeout=60)
    assert _snapshot(out) == before  # the previous complete result, untouched
    r = _run(out, cache, data_dir)
    _, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m == json.loads((finished / "first" / "metrics.json").read_text())
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        p.name for p in (finished / "first" / "figures").iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out.partial", "out.partial", ".out.hyperinf."))]


def test_a_second_run_into_the_same_folder_is_refused_and_the_first_completes(finished, data_dir, tmp_path):
    out, cache = tmp_path / "out", finished / "cache"
    first = _run(out, cache, data_dir)
    _wait_for(lambda: any(tmp_path.glob(".out.partial-*")))  # the first run holds the lock and has staged
    second = _run(out, cache, data_dir)
    _, err2 = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=300)
    assert second.returncode == 2 and "another run (pid" in err2 and len(err2.strip().splitlines()) == 1
    assert first.returncode == 0, err1
    nb = json.loads((out / "hyperinf.ipynb").read_text())
    embedded = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert embedded == len(list((out / "figures").glob("*.png"))) > 0


def test_leftovers_are_cleaned_and_reported_and_a_stale_failure_notebook_removed(finished, data_dir, tmp_path):
    out = tmp_path / "out"
    (tmp_path / ".out.partial-dead0001").mkdir()
    (tmp_path / "out.failed.ipynb").write_text("{}")
    (tmp_path / ".out.hyperinf.dead0001.ipynb").write_text("{}")
    r = _run(out, finished / "cache", data_dir)
    _, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    assert "removed what interrupted runs left" in err and ".out.partial-dead0001" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]
    assert (out / "hyperinf.ipynb").stat().st_mode & 0o777 == 0o666 & ~results._UMASK


# ---------------------------------------------------------------- fuzzing the parameters

_VALUES = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False).map(repr),  # flush-denormal is on
    st.lists(st.integers(-100, 10**6).map(str), max_size=6).map(",".join),
    st.lists(st.sampled_from(["0.1", "1e-3", "x", "", " ", "2:4", "50%", "int8", "cobo", "true", "-0"]),
             max_size=5).map(",".join),
    st.text(max_size=12),
)


def _in_spec(spec, v) -> bool:
    items = v if isinstance(v, tuple) else (v,)
    if "choices" in spec:
        return all(x in spec["choices"] for x in items)
    if "range" in spec:
        lo, hi = spec["range"]
        return all(lo <= x <= hi for x in items)
    return True


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_parameter_values_are_accepted_in_spec_or_refused_with_one_line(data, data_dir, monkeypatch):
    """Any string for any parameter of any chapter: the CLI's checks either accept it (and then
    it is in the declared range or choices, and the experiment's own validate accepted the
    whole Config) or raise the one-line errors that exit 2; never anything else."""
    from companion import chapters, cli
    from companion import params as P
    monkeypatch.setenv("COMPANION_DATA", str(data_dir))
    ch = data.draw(st.sampled_from(sorted(chapters.CHAPTERS)))
    specs = {k: v for k, v in chapters.get(ch).param_specs().items() if k not in ("scale", "out_dir", "device")}
    name = data.draw(st.sampled_from(sorted(specs)))
    value = data.draw(_VALUES)
    try:
        _, _, cfg, run_opts, given = cli._prepare(ch, "smoke", [(name, value)])
    except (P.ParamError, cli.DataError):
        return
    got = run_opts.get(name, given.get(name))
    assert _in_spec(specs[name], got), (ch, name, value, got)
    if name in given:
        assert getattr(cfg, name) == got


def test_the_work_estimate_scales_the_preset_and_names_only_real_fields():
    import dataclasses

    from companion import budget, chapters
    for ch in chapters.CHAPTERS.values():
        assert budget.unknown_drivers(ch) == [], ch.id
        preset = ch.experiment().SCALES["cpu"]
        assert budget.estimate_minutes(ch, "cpu", preset) == ch.minutes["cpu"]
    cobo = chapters.get("cobo")
    cfg = dataclasses.replace(cobo.experiment().SCALES["cpu"], quad_clients=16, quad_dim=40)
    assert budget.estimate_minutes(cobo, "cpu", cfg) == pytest.approx(cobo.minutes["cpu"] * 2 ** 2 * 2)


def test_two_processes_needing_one_cache_entry_compute_it_once(tmp_path):
    """The second waits on the entry's lock, then reuses what the first stored."""
    script = (
        "import sys, time\n"
        "from companion import results\n"
        "def slow(ckpt):\n"
        f"    open({str(tmp_path / 'computed')!r}, 'a').write('x')\n"
        "    time.sleep(3)\n"
        "    return 42\n"
        "print(results.cached('cobo', 'shared', {'k': 1}, slow))\n")
    env = {**os.environ, "COMPANION_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)]
    _wait_for(lambda: (tmp_path / "computed").exists(), timeout=60)
    procs.append(subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o.strip() for o, _ in outs] == ["42", "42"]
    assert (tmp_path / "computed").read_text() == "x"  # computed once
    assert "waiting for another run that is computing" in outs[1][1]
