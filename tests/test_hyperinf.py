"""The hyperinf experiment against independent computations: the speaker data set on a
constructed text, the label flips, the LoRA classifier at initialisation, and the synthetic
studies on small matrices."""
import dataclasses
import math

import pytest
import torch

from companion.experiments import hyperinf as E
from companion.params import ParamError

TEXT = "A:\nabcdefgh\nij\n\nB:\nklmnopqrstu\n\nC:\nzzzzzzzzzz\n\nA:\nxy"


def test_corrupted_examples_keep_length_and_half_are_corrupted(data_dir):
    text = open_text()
    chunks, labels = E.corrupted_examples(text, 48, 400, 0, "garble", 0.3)
    assert all(len(c) == 48 for c in chunks) and 0.4 < sum(labels) / 400 < 0.6
    clean = [c for c, y in zip(chunks, labels) if y == 1]
    assert all(c in text for c in clean)
    assert sum(c in text for c, y in zip(chunks, labels) if y == 0) <= 2  # corrupted text is (almost) never verbatim
    typo, labels = E.corrupted_examples(text, 48, 100, 1, "typo", 1.0)
    assert all(len(c) == 48 for c in typo) and all((c in text) == (y == 1) for c, y in zip(typo, labels))


def open_text():
    from companion.data import path
    return path("tinyshakespeare").read_text(encoding="utf-8")


def test_speaker_examples_cut_each_speech_into_chunks():
    chunks, labels = E.speaker_examples(TEXT, ("A", "B"), 4)
    assert chunks == ["abcd", "efgh", "klmn", "opqr"] and labels == [0, 0, 1, 1]  # "\nij" and "xy" too short


@pytest.fixture(scope="module")
def runner(data_dir):
    cfg = dataclasses.replace(E.SCALES["smoke"], n_train=100, n_val=30, noise=0.2)
    return E._Runner(cfg, torch.device("cpu"), progress=False)


def test_flips_are_exact_and_splits_disjoint(runner):
    d = runner.data(3)
    assert int(d["noisy"].sum()) == 20
    assert torch.equal(d["y_noisy"][d["noisy"]], 1 - d["y"][d["noisy"]])  # binary: 1 - y, as the official code
    assert torch.equal(d["y_noisy"][~d["noisy"]], d["y"][~d["noisy"]])
    rows = {tuple(r) for r in torch.cat([d["x"], d["x_val"], d["x_test"]]).tolist()}
    assert len(rows) > 0.95 * (len(d["x"]) + len(d["x_val"]) + len(d["x_test"]))  # chunks are distinct text
    assert not torch.equal(runner.data(4)["noisy"], d["noisy"])


def test_multiclass_flips_go_to_another_class(data_dir):
    cfg = dataclasses.replace(E.SCALES["smoke"], task="speaker", speakers=("GLOUCESTER", "DUKE VINCENTIO", "ROMEO"),
                              n_train=200)
    d = E._Runner(cfg, torch.device("cpu"), False).data(0)
    assert (d["y_noisy"][d["noisy"]] != d["y"][d["noisy"]]).all() and d["y"].max() == 2


def test_lora_classifier_trains_only_adapters_and_head(runner):
    model = runner.model(3)
    names = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    L = runner.cfg.n_layer
    assert names == sorted([f"gpt.blocks.{i}.attn.qkv.{m}.{j}" for i in range(L) for m in "AB" for j in (0, 1)]
                           + ["head.bias", "head.weight"])
    base = E.Classifier(runner.model(1).gpt, 2)  # B = 0: the adapters change nothing at initialisation
    x = torch.randint(0, 65, (3, runner.cfg.seq_len))
    base.head.load_state_dict(model.head.state_dict())
    with torch.no_grad():
        assert torch.allclose(model(x), base(x), atol=1e-6)


def test_too_few_chunks_is_a_parameter_error(data_dir):
    cfg = dataclasses.replace(E.SCALES["smoke"], task="speaker", n_train=100000)
    with pytest.raises(ParamError, match="exceed the"):
        E._Runner(cfg, torch.device("cpu"), False).data(0)


def test_synthetic_studies_on_small_matrices():
    cfg = dataclasses.replace(E.SCALES["smoke"], conv_dims=(16,), conv_ns=(8, 200), kappas=(10.0, 1e4), kappa_dim=32)
    rows = {(r["n"], r["method"]): r["errors"] for r in E.convergence(cfg)}
    for n in (8, 200):
        assert rows[(n, "schulz (I/‖A‖_F)")][-1] < 1e-10 and len(rows[(n, "cg")]) == cfg.conv_iters + 1
        assert len(rows[(n, "datainf")]) == 1
    for r in E.kappa_sweep(cfg):
        if r["init"] != "cg":
            assert abs(r["measured"] - r["predicted"]) <= 2
    assert E.iterations_to_tol([1.0, 1e-3, 1e-7], 1e-6) == 2 and E.iterations_to_tol([1.0], 1e-6) == math.inf


def test_bad_configurations(data_dir):
    with pytest.raises(ParamError, match="two distinct"):
        dataclasses.replace(E.SCALES["smoke"], speakers=("ROMEO", "ROMEO")).validate()
    with pytest.raises(ParamError, match="strictly increasing"):
        dataclasses.replace(E.SCALES["smoke"], ranks=(4, 1)).validate()
