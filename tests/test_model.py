"""The GPT, its FLOP count and the trainer's branching, against independent computations."""
import torch

from companion.metrics.flops import forward_flops_per_sequence, non_embedding_params
from companion.models.gpt import GPT, GPTConfig
from companion.optim import schedules
from companion.train import adamw, snapshot, train


def _tiny(style="llama"):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, seq_len=16, n_layer=2, n_head=2, d_model=16, style=style))


def _batches(n_tokens):
    """A batch function of the step only, over a fixed random token stream."""
    data = torch.randint(11, (n_tokens,), generator=torch.Generator().manual_seed(1))

    def batch(t):
        g = torch.Generator().manual_seed(t)
        s = torch.randint(len(data) - 17, (4,), generator=g)
        chunk = data[s[:, None] + torch.arange(17)]
        return chunk[:, :-1], chunk[:, 1:]
    return batch


def test_causal_mask_future_tokens_do_not_change_past_logits():
    for style in ("llama", "gpt2"):
        m = _tiny(style).eval()
        x = torch.randint(11, (2, 16))
        y = x.clone()
        y[:, 9:] = (y[:, 9:] + 3) % 11
        with torch.no_grad():
            a, b = m(x)[0], m(y)[0]
        assert torch.allclose(a[:, :9], b[:, :9], atol=1e-6)
        assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_loss_is_cross_entropy_of_logits():
    m = _tiny()
    x, y = torch.randint(11, (3, 16)), torch.randint(11, (3, 16))
    logits, loss = m(x, y)
    ref = -torch.log_softmax(logits, -1).gather(-1, y[..., None]).mean()
    assert torch.allclose(loss, ref, atol=1e-6)


def test_tied_embeddings_and_weight_decay_groups():
    m = _tiny()
    assert m.lm_head.weight is m.wte.weight
    decay, rest = m.param_groups(0.1)
    linear = [mod.weight for mod in m.modules() if isinstance(mod, torch.nn.Linear) and mod is not m.lm_head]
    assert {id(p) for p in decay["params"]} == {id(p) for p in linear}
    assert id(m.wte.weight) in {id(p) for p in rest["params"]}
    assert sum(p.numel() for p in decay["params"] + rest["params"]) == m.num_params()


def test_flop_count_matches_a_direct_count_of_the_matmuls():
    cfg = GPTConfig(vocab_size=11, seq_len=16, n_layer=2, n_head=2, d_model=16)
    L, d, f = cfg.seq_len, cfg.d_model, cfg.d_ff
    # 2 FLOPs per multiply-add of every weight matrix, per token, plus attention scores,
    # softmax (3 per entry), weighted values; embedding lookup counted as a matmul.
    weights = 2 * L * non_embedding_params(cfg)
    attn = cfg.n_layer * (2 * L * L * d + 3 * cfg.n_head * L * L + 2 * L * L * d)
    emb = 2 * 2 * L * cfg.vocab_size * d
    assert forward_flops_per_sequence(cfg) == weights + attn + emb


def test_branch_reproduces_a_direct_run_bit_for_bit():
    """Constant trunk to 12, then a cooldown from the snapshot at 12, equals WSD to 15."""
    batch = _batches(400)

    wsd = schedules.make("wsd", total=15, warmup=3, cooldown_frac=0.2)
    m1 = _tiny()
    o1 = adamw(m1, 1e-2)
    h_direct, _ = train(m1, o1, wsd, batch, 0, 15, lr=1e-2, progress=False)
    m2 = _tiny()
    o2 = adamw(m2, 1e-2)
    h_trunk, snaps = train(m2, o2, schedules.make("constant", warmup=3), batch, 0, 14, lr=1e-2,
                           snapshot_at=[12], progress=False)
    m3 = _tiny()
    o3 = adamw(m3, 1e-2)
    m3.load_state_dict(snaps[12]["model"])
    o3.load_state_dict(snaps[12]["optimizer"])
    h_branch, _ = train(m3, o3, wsd, batch, 12, 15, lr=1e-2, progress=False)
    assert h_trunk.train_loss[:12] + h_branch.train_loss == h_direct.train_loss
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m3.state_dict()[k]), k
    assert snapshot(m3, o3)["optimizer"]["state"][0]["step"] == 15


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path):
    batch = _batches(300)

    sched = schedules.make("cosine", total=10, warmup=2)
    m1 = _tiny()
    h_full, _ = train(m1, adamw(m1, 1e-2), sched, batch, 0, 10, lr=1e-2, progress=False)

    class Crash:
        def __init__(self):
            self.n = 0

        def __call__(self, model):
            self.n += 1
            if self.n == 7:
                raise KeyboardInterrupt

    ckpt = tmp_path / "run.ckpt"
    m2 = _tiny()
    try:
        train(m2, adamw(m2, 1e-2), sched, batch, 0, 10, lr=1e-2, progress=False, on_step=[Crash()],
              checkpoint=ckpt, checkpoint_every=3)
    except KeyboardInterrupt:
        pass
    assert ckpt.exists()  # saved after update 6
    m3 = _tiny()
    h_resumed, _ = train(m3, adamw(m3, 1e-2), sched, batch, 0, 10, lr=1e-2, progress=False,
                         checkpoint=ckpt, checkpoint_every=3)
    assert h_resumed.train_loss == h_full.train_loss and h_resumed.steps == list(range(10))
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m3.state_dict()[k]), k
    assert not ckpt.exists()  # removed once the run is complete


def test_charlm_wires_train_to_its_corpus_stream_and_validation_batches():
    """CharLM.fit is `train` on the corpus's batches of stream seed + k and its fixed validation
    batches: bitwise what the hand-wired call gives, and another stream gives other numbers."""
    from companion.data import CharCorpus
    from companion.train import CharLM
    corpus = CharCorpus("to be, or not to be: that is the question. " * 40, val_frac=0.2)
    gcfg = GPTConfig(vocab_size=corpus.vocab_size, seq_len=16, n_layer=1, n_head=2, d_model=16)
    lm = CharLM(corpus, gcfg, batch_size=4, eval_batches=2, seed=3, dev=torch.device("cpu"), progress=False)
    a, b = lm.model(), lm.model()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    sched = schedules.make("constant", warmup=2)
    h, _ = lm.fit(a, adamw(a, 1e-2), sched, 0, 6, lr=1e-2, eval_every=3, stream=1)
    ref, _ = train(b, adamw(b, 1e-2), sched, lambda t: corpus.train_batch(t, 4, 16, 3 + 1), 0, 6, lr=1e-2,
                   val_batches=corpus.val_batches(2, 4, 16), eval_every=3, progress=False)
    assert h.train_loss == ref.train_loss and h.val_loss == ref.val_loss
    c = lm.model()
    other, _ = lm.fit(c, adamw(c, 1e-2), sched, 0, 6, lr=1e-2, eval_every=3, stream=0)
    assert other.train_loss != h.train_loss
