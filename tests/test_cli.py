"""Bad input: one line on stderr, exit status 2, before any kernel starts, nothing written."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def companion(*args, env=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "companion", *args], capture_output=True, text=True,
                          cwd=ROOT, env=e, timeout=120)


BAD = [
    (["run", "no-such-chapter"], "unknown chapter 'no-such-chapter'; chapters: scaling-cooldown"),
    (["run", "scaling-cooldown", "-p", "stepz", "3"], "unknown parameter 'stepz'; allowed:"),
    (["run", "scaling-cooldown", "-p", "lr", "fast"], "parameter 'lr' expects a float, got 'fast'"),
    (["run", "scaling-cooldown", "-p", "seed", "1.5"], "parameter 'seed' expects an int"),
    (["run", "scaling-cooldown", "-p", "lr", "7"], "parameter 'lr' must be in [1e-06, 1.0]; got 7.0"),
    (["run", "scaling-cooldown", "-p", "targets", "500,x"], "parameter 'targets' expects an int"),
    (["run", "scaling-cooldown", "-p", "targets", "1000,500"], "'targets' must be strictly increasing"),
    (["run", "scaling-cooldown", "-p", "targets", "500"], "'targets' needs at least two lengths"),
    (["run", "scaling-cooldown", "-p", "device", "tpu"], "parameter 'device' must be one of auto, cpu, cuda"),
    (["run", "scaling-cooldown", "--scale", "huge"], "unknown scale 'huge'; scales: smoke, cpu, gpu, auto"),
    (["run", "deep-grokking", "-p", "data", "cifar"], "parameter 'data' must be one of mnist-test-split, mnist, digits"),
    (["run", "deep-grokking", "-p", "n_train", "9000"], "exceed the 10000 images of data=mnist-test-split"),
    # offline (COMPANION_DATA without the 60,000 training images) the paper's data is refused up front
    (["run", "deep-grokking", "-p", "data", "mnist"], "dataset 'mnist-train-images' not found"),
    (["run", "sparsity-quantization", "-p", "sparsities", "3:4"], "parameter 'sparsities' must be one of 50%"),
    (["run", "sparsity-quantization", "-p", "ft_formats", "fp16"], "parameter 'ft_formats' must be one of int8"),
    (["run", "sparsity-quantization", "-p", "formats", "int8", "-p", "ft_formats", "int4"],
     "parameter 'ft_formats' must be a subset of formats (int8); got int4"),
    (["run", "sparsity-quantization", "-p", "d_model", "66", "-p", "n_head", "2"],
     "sparsity 2:4 of 'sparsities' needs a last dimension divisible by 4; got 66"),
    (["run", "hyperinf", "-p", "task", "sentiment"], "parameter 'task' must be one of typo, garble, shuffle, speaker"),
    (["run", "hyperinf", "-p", "ranks", "16,4"], "parameter 'ranks' must be strictly increasing"),
    (["run", "cobo", "-p", "schedule", "sometimes"], "parameter 'schedule' must be one of const, inv_t, mixed_paper"),
    (["run", "cobo", "-p", "methods", "fedavg,oracle"], "parameter 'methods' must include cobo and local"),
    (["run", "cobo", "-p", "per_client", "400"], "4 clients x 400 points exceed the 1347 training points"),
    (["run", "cobo", "-p", "device_partition", "class_groups"],
     "device_partition=class_groups: 10 clusters x 2 classes exceed the 10 classes; give at most 5 device_sizes"),
    (["run"], "the following arguments are required: chapter"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(args, message, data_dir, tmp_path):
    out = tmp_path / "out"
    r = companion(*args, *(["--out", str(out)] if args[:1] == ["run"] and len(args) > 1 else []))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0]
    assert not out.exists()


def test_missing_dataset(tmp_path):
    r = companion("run", "scaling-cooldown", "--scale", "smoke", "--out", str(tmp_path / "o"),
                  env={"COMPANION_DATA": str(tmp_path)})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "dataset 'tinyshakespeare' not found" in r.stderr and "put Tiny Shakespeare" in r.stderr
    assert not (tmp_path / "o").exists()


def test_corrupted_dataset(tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text("First Citizen:\n")
    r = companion("run", "scaling-cooldown", "--scale", "smoke", "--out", str(tmp_path / "o"),
                  env={"COMPANION_DATA": str(tmp_path)})
    assert r.returncode == 2 and "is corrupted" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir_as_user(tmp_path, data_dir):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    r = companion("run", "scaling-cooldown", "--scale", "smoke", "--out", str(locked / "o"))
    assert r.returncode == 2 and "not writable" in r.stderr


def test_unwritable_output_dir(tmp_path, data_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    r = companion("run", "scaling-cooldown", "--scale", "smoke", "--out", str(blocker / "o"))
    assert r.returncode == 2 and "not writable" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "keep me"


def test_existing_results_survive_bad_input(tmp_path, data_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"old": 1}')
    r = companion("run", "scaling-cooldown", "--out", str(out), "-p", "lr", "-1")
    assert r.returncode == 2
    assert (out / "metrics.json").read_text() == '{"old": 1}'


def test_list_shows_every_chapter_with_scales():
    r = companion("list", "-v")
    assert r.returncode == 0
    assert "scaling-cooldown" in r.stdout and "smoke ~" in r.stdout and "gpu ~" in r.stdout
    assert "published at cpu" in r.stdout
    assert "targets" in r.stdout and "cpu: (300, 600, 900)" in r.stdout
