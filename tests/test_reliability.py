"""Reliability: what a crash, a copied file or a careless user leaves behind is detected and
never presented as a result (issue 15)."""
import shutil
import warnings

import pytest
import torch

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
