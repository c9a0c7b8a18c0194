"""The comigs chapter's library (MoE-LoRA users, federation, Markov users) against independent
computations: per-token loops for the gates and the load-balancing term, plain LoRA fine-tuning
(models/lora.py) for one user with one expert, separate single-user models for the stacked
forward, closed-form payload counts, and empirical transition counts for the synthetic users."""
import math

import pytest
import torch

from companion.collab import federation as F
from companion.collab import markov
from companion.collab.moe_lora import MoEGPT, gate, load_balance
from companion.models.gpt import GPT, GPTConfig
from companion.models.lora import add_lora


def _base(seed=0, d=16, layers=2):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, seq_len=8, n_layer=layers, n_head=2, d_model=d, style="gpt2"))


def _batches(U, seed=0, n=4, T=8, V=11):
    g = {"train": torch.Generator().manual_seed(seed), "val": torch.Generator().manual_seed(seed + 1)}

    def batch(split, b, phase="expert"):
        x = torch.randint(V, (U, b, T + 1), generator=g[split])
        if split == "val":
            x = (x * 3) % V  # another distribution: train and val batches are told apart in the tests
        return x[..., :-1], x[..., 1:]
    return batch


def _perturb(model, seed=1):
    """Non-zero B (and distinct users) so that every expert and user matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable().values():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------- gates and load balancing

def _gate_loop(z, present, k):
    U, N, E = z.shape
    out = torch.zeros_like(z)
    for u in range(U):
        idx = [e for e in range(E) if present[u, e]]
        for t in range(N):
            zz = {e: z[u, t, e].item() for e in idx}
            if k == 1:
                p = {e: math.exp(v) / sum(math.exp(w) for w in zz.values()) for e, v in zz.items()}
                e = max(p, key=p.get)
                out[u, t, e] = p[e]
            else:
                top = sorted(zz, key=zz.get, reverse=True)[:k]
                s = sum(math.exp(zz[e]) for e in top)
                for e in top:
                    out[u, t, e] = math.exp(zz[e]) / s
    return out


@pytest.mark.parametrize("k", [1, 2, 3])
def test_gate_equals_a_per_token_loop(k):
    z = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    present = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.allclose(gate(z, present, k), _gate_loop(z, present, k), atol=1e-12)


def _lb_loop(z, present, k, iota):
    U, N, E = z.shape
    out = []
    for u in range(U):
        idx = [e for e in range(E) if present[u, e]]
        Eu, kk = len(idx), min(k, len(idx))
        f, P = {e: 0.0 for e in idx}, {e: 0.0 for e in idx}
        for t in range(N):
            top = sorted(idx, key=lambda e: z[u, t, e].item(), reverse=True)[:kk]
            if kk == 1:  # gating.py: select = the gate p_e* at the chosen expert, 0 elsewhere
                s = sum(math.exp(z[u, t, e].item()) for e in idx)
                sel = {e: (math.exp(z[u, t, e].item()) / s if e in top else 0.0) for e in idx}
            else:  # softmax of the top-k logits with the others set to 0
                zt = {e: (z[u, t, e].item() if e in top else 0.0) for e in idx}
                s = sum(math.exp(v) for v in zt.values())
                sel = {e: math.exp(zt[e]) / s for e in idx}
            for e in idx:
                f[e] += (e in top) / kk / N
                P[e] += sel[e] / N
        c = {e: (1 / (Eu * iota) if e == 0 else (Eu - 1) / ((1 - iota) * Eu)) for e in idx}
        out.append(Eu ** 2 / Eu * sum(f[e] * P[e] * c[e] for e in idx))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("k,iota", [(1, 0.5), (2, 0.3), (3, 0.6)])
def test_load_balance_equals_a_per_token_loop(k, iota):
    z = torch.randn(3, 9, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    present = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.allclose(load_balance(z, present, k, iota), _lb_loop(z, present, k, iota), atol=1e-12)


def test_load_balance_is_inert_with_dense_gates_and_equal_weights():
    """k = E and iota = 1/2 with E = 2 (the released Table-1 setting): LB is the constant 1, no
    gradient; with k = 1 it has one."""
    z = torch.randn(2, 9, 2, dtype=torch.float64, requires_grad=True)
    present = torch.ones(2, 2, dtype=torch.bool)
    lb = load_balance(z, present, 2, 0.5)
    assert torch.allclose(lb, torch.ones(2, dtype=torch.float64), atol=1e-14)
    assert torch.autograd.grad(lb.sum(), z)[0].abs().max() < 1e-14
    assert torch.autograd.grad(load_balance(z, present, 1, 0.5).sum(), z)[0].abs().max() > 1e-3


# ---------------------------------------------------------------- the stacked model

def test_users_are_independent_slices():
    """User u's logits in a stacked model equal those of a one-user model holding u's tensors,
    and a user's gradient depends on its own batch only."""
    base = _base()
    m = MoEGPT(base, (2, 3, 1), r=4, alpha=8, attn=("qkv", "proj"), top_k=2)
    _perturb(m)
    x = torch.randint(11, (3, 2, 8))
    logits = m(x)
    for u in range(3):
        one = MoEGPT(base, (m.n_experts[u],), r=4, alpha=8, attn=("qkv", "proj"), top_k=2)
        with torch.no_grad():
            for n, p in one.trainable().items():
                src = m.trainable()[n][u:u + 1]
                p.copy_(src[(slice(None),) + tuple(slice(0, s) for s in p.shape[1:])])
        assert torch.allclose(one(x[u:u + 1])[0], logits[u], atol=1e-5)
    other = x.clone()
    other[1:] = torch.randint(11, (2, 2, 8))
    assert torch.equal(m(other)[0], logits[0])  # user 0's output ignores the other users' batches
    y = torch.randint(11, (3, 2, 8))
    g = torch.autograd.grad(m.loss(x, y)[0], list(m.trainable().values()))
    assert all(t[1:].abs().max() == 0 for t in g)


def test_absent_experts_get_no_weight():
    m = MoEGPT(_base(), (1, 2), r=2, alpha=4)
    _perturb(m)
    for layer in m.moe_layers():
        layer.record = True
    m(torch.randint(11, (2, 3, 8)))
    for layer in m.moe_layers():
        assert layer.gates[0, :, 1].abs().max() == 0 and torch.allclose(layer.gates[0, :, 0], torch.ones(1))
        assert torch.allclose(layer.gates.sum(-1), torch.ones(1))


def test_one_user_one_expert_is_plain_lora_fine_tuning():
    """U = 1, E = 1, uniform gating: the federated trainer equals LoRA (models/lora.py) on the
    base's fc and proj, trained by a hand-written AdamW + cosine loop on the same batches."""
    base = _base(d=16, layers=1)
    m = MoEGPT(base, (1,), r=4, alpha=8, attn=(), gating="uniform")
    sch = F.Schedule(rounds=3, local_steps=4, batch=4, lr=1e-2, weight_decay=0.01)
    ref = add_lora(_base(d=16, layers=1), {"blocks.0.mlp.fc": None, "blocks.0.mlp.proj": None}, r=4, alpha=8)
    with torch.no_grad():
        for name in ("fc", "proj"):
            ref.blocks[0].mlp.get_submodule(name).A[0].copy_(m.moe_layers()[0].experts[0].get_submodule(name).A[0])
    F.train(m, F.METHODS["Local"], _batches(1), sch)
    params = [p for p in ref.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=sch.lr, betas=(0.9, 0.95), weight_decay=sch.weight_decay)
    total = sch.rounds * sch.local_steps
    batch = _batches(1)
    for t in range(total):
        for gr in opt.param_groups:
            gr["lr"] = sch.lr / 10 + (sch.lr - sch.lr / 10) * (1 + math.cos(math.pi * t / total)) / 2
        x, y = batch("train", sch.batch)
        _, loss = ref(x[0], y[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name in ("fc", "proj"):
        ours, theirs = m.moe_layers()[0].experts[0].get_submodule(name), ref.blocks[0].mlp.get_submodule(name)
        assert torch.allclose(ours.A[0], theirs.A[0], atol=1e-5) and torch.allclose(ours.B[0], theirs.B[0], atol=1e-5)
        assert ours.B.abs().max() > 1e-3  # it did train


# ---------------------------------------------------------------- federation

def _run(method, n_experts=(2, 2, 2), **kw):
    m = MoEGPT(_base(), n_experts, r=2, alpha=4, attn=("proj",))
    sent, trace = [], F.Trace()
    sch = F.Schedule(rounds=2, local_steps=3, batch=3, router_every=2, router_iters=2, final_average=True, **kw)
    out = F.train(m, F.METHODS[method], _batches(len(n_experts)), sch, payload=sent.append, trace=trace)
    return m, sent, trace, out


def test_after_a_round_shared_tensors_are_identical_and_local_ones_differ():
    m, _, _, _ = _run("1G1S")
    for n, p in m.trainable().items():
        same = all(torch.equal(p[0], p[u]) for u in range(1, p.shape[0]))
        if ".experts.1." in n or n.endswith(".router"):
            assert not same, n
        else:
            assert same, n  # expert 0 and attention adapters: bit-identical


def test_payload_never_holds_a_specialist_or_router_and_counts_match_the_closed_form():
    counts = {}
    for method in ("1G1S", "FedAvg", "2G", "Local", "2S"):
        m, sent, _, out = _run(method)
        for s in sent:
            assert not any(".experts.1." in n or n.endswith(".router") for n in s) or method in ("FedAvg", "2G")
            assert not any(n.endswith(".router") for n in s)
        counts[method] = out["uploads"]
    d, dff, r, L = 16, 64, 2, 2
    P_G = L * (r * d + dff * r + r * dff + d * r)  # one expert's LoRA on fc and proj, every layer
    P_psi = L * (r * d + d * r)  # attention proj LoRA
    assert (counts["1G1S"] == P_G + P_psi).all() and (counts["FedAvg"] == 2 * P_G + P_psi).all()
    assert (counts["2G"] == counts["FedAvg"]).all() and (counts["Local"] == 0).all() and (counts["2S"] == 0).all()
    assert (counts["1G1S"] - P_psi)[0, 0] / (counts["FedAvg"] - P_psi)[0, 0] == 0.5


def test_heterogeneous_experts_average_over_holders_only():
    """All adapters shared (2G) with users holding 1, 2, 3 experts: after the last round expert 1 is
    the mean of its two holders' uploads, expert 2 its one holder's upload, a non-holder's slice is
    left alone, and the payload counts what each user holds."""
    m = MoEGPT(_base(), (1, 2, 3), r=2, alpha=4, attn=("proj",))
    sent = []
    sch = F.Schedule(rounds=2, local_steps=3, batch=3, router_every=2, router_iters=2, final_average=True)
    out = F.train(m, F.METHODS["2G"], _batches(3), sch,
                  payload=lambda s: sent.append({n: (w.clone(), t.clone()) for n, (w, t) in s.items()}))
    last = sent[-1]
    e1 = next(n for n in m.trainable() if ".experts.1." in n)
    e2 = e1.replace(".experts.1.", ".experts.2.")
    assert last[e1][0].tolist() == [False, True, True] and last[e2][0].tolist() == [False, False, True]
    p1, p2 = m.trainable()[e1], m.trainable()[e2]
    assert torch.allclose(p1[1], last[e1][1][1:].mean(0), atol=1e-7) and torch.equal(p1[1], p1[2])
    assert torch.equal(p1[0], last[e1][1][0]) and not torch.equal(p1[0], p1[1])
    assert torch.equal(p2[2], last[e2][1][2])
    assert out["uploads"][0, 0] < out["uploads"][0, 1] < out["uploads"][0, 2]


def test_router_sees_only_validation_batches():
    _, _, trace, _ = _run("1G1S")
    phases = {(p, s) for p, s in trace.batches}
    assert phases == {("expert", "train"), ("router", "val")}
    assert sum(p == "router" for p, _ in trace.batches) == (2 * 3 // 2) * 2  # every 2nd of 6 steps, 2 iterations
    _, _, trace, _ = _run("1G1S-train")
    assert {s for p, s in trace.batches if p == "router"} == {"train"}
    _, _, trace, _ = _run("1G1S-joint")
    assert {p for p, _ in trace.batches} == {"expert"}


@pytest.mark.parametrize("quirk", [False, True])
def test_router_gradient_is_the_validation_gradient_unless_the_quirk_is_on(quirk):
    """At every router step the router's .grad equals the gradient of that validation batch's loss
    alone; with the released code's quirk, the first step of each phase carries the training
    gradients accumulated since the last phase."""
    gaps = []

    def check(model, x, y):
        routers = [p for n, p in model.trainable().items() if n.endswith(".router")]
        want = torch.autograd.grad(model.loss(x, y).sum(), routers)
        gaps.append(max((p.grad - w).abs().max().item() for p, w in zip(routers, want)))
    m = MoEGPT(_base(), (2, 2), r=2, alpha=4, attn=("proj",))
    F.train(m, F.METHODS["1G1S"], _batches(2), F.Schedule(rounds=2, local_steps=3, batch=3, router_every=2,
                                                          router_iters=2, quirk=quirk), on_router_step=check)
    assert len(gaps) == 6
    if quirk:  # the first step of each phase carries the leaked training gradients, the second does not
        assert min(gaps[0::2]) > 1e-4 and max(gaps[1::2]) < 1e-6
    else:
        assert max(gaps) < 1e-6


# ---------------------------------------------------------------- synthetic users

def test_markov_users_follow_their_chains():
    us = markov.users((0.3, 0.7), dict(train=60_000, val=100, test=100), vocab=5, concentration=1.0, seed=3)
    for u, a in enumerate((0.3, 0.7)):
        tok, src = us.train.tokens[u], us.train.source[u]
        assert abs(float((src == markov.PRIVATE).float().mean()) - a) < 0.06
        for which, P in ((markov.SHARED, us.shared), (markov.PRIVATE, us.private[u])):
            mask = src[1:] == which
            counts = torch.zeros(5, 5)
            counts.index_put_((tok[:-1][mask], tok[1:][mask]), torch.ones(int(mask.sum())), accumulate=True)
            emp = counts / counts.sum(1, keepdim=True)
            assert (emp - P.float()).abs().max() < 0.05
    ctrl = markov.users((0.5,), dict(train=100, val=100, test=100), vocab=5, seed=3, control=True)
    assert torch.equal(ctrl.private[0], ctrl.shared)
    assert torch.equal(markov.users((0.9,), dict(train=10, val=10, test=10), vocab=5, concentration=1.0,
                                   seed=3).shared, us.shared)


def test_windows_cover_each_target_once_and_batches_are_windows():
    us = markov.users((0.5, 0.5), dict(train=300, val=200, test=(130, 200)), vocab=7, concentration=1.0, seed=1)
    x, y, sx, sy = us.test.windows(16)
    assert x.shape == (2, 8, 16)  # (130 - 1) // 16 windows from the shorter stream
    assert torch.equal(y.flatten(1)[:, :-1], x.flatten(1)[:, 1:])
    assert torch.equal(sy.flatten(1)[:, :-1], sx.flatten(1)[:, 1:])
    bx, by, bs = us.train.batch(5, 16, torch.Generator().manual_seed(0))
    for u in range(2):
        for b in range(5):
            w = torch.cat([bx[u, b], by[u, b, -1:]])
            assert torch.equal(by[u, b, :-1], bx[u, b, 1:])
            starts = [i for i in range(300 - 16) if torch.equal(us.train.tokens[u, i:i + 17], w)]
            assert starts and any(torch.equal(us.train.source[u, s + 1:s + 17], bs[u, b]) for s in starts)


def test_the_last_average_is_uploaded_but_not_sent_back_by_default():
    """As the released collab_run.py: after the last round every user keeps its own last local
    state, so even the generalist differs across users; the upload is still counted."""
    m = MoEGPT(_base(), (2, 2), r=2, alpha=4, attn=("proj",))
    out = F.train(m, F.METHODS["1G1S"], _batches(2), F.Schedule(rounds=2, local_steps=3, batch=3))
    g = next(p for n, p in m.trainable().items() if ".experts.0." in n)
    assert not torch.equal(g[0], g[1]) and out["uploads"].shape == (2, 2) and (out["uploads"] > 0).all()


def test_text_users_draw_each_segment_from_its_labelled_part():
    """With distinct ids (token = its position in the corpus) every private-labelled token lies in
    the user's own part of its split, every shared one in the shared part, consecutive tokens of a
    segment are consecutive text, and train and test text never overlap; the control draws private
    segments from the shared text."""
    from companion.collab import text_users as TU
    ids = torch.arange(40_000)
    us = TU.users(ids, (0.3, 0.7), dict(train=3000, val=500, test=2000), seg=(8, 24), seed=1)
    reg = TU.regions(ids, 2)
    for split in ("train", "val", "test"):
        sp = getattr(us, split)
        shared = TU.part(reg[1], split)
        for u in range(2):
            own = TU.part(reg[2 + u], split)
            tok, src = sp.tokens[u, :int(sp.lengths[u])], sp.source[u, :int(sp.lengths[u])]
            inside = lambda t, p: (t >= p[0]) & (t <= p[-1])  # noqa: E731
            assert inside(tok[src == markov.PRIVATE], own).all() and inside(tok[src == markov.SHARED], shared).all()
            if split == "train":
                assert abs(float((src == markov.PRIVATE).float().mean()) - (0.3, 0.7)[u]) < 0.15
            # consecutive text inside segments: a break at most once per segment (segments >= 8 tokens)
            assert float((tok[1:] - tok[:-1] == 1).float().mean()) > 1 - 1 / 8 - 0.02
    assert int(TU.part(reg[2], "train")[-1]) < int(TU.part(reg[2], "test")[0])
    ctrl = TU.users(ids, (0.5,), dict(train=2000, val=200, test=200), seg=(8, 24), seed=1, control=True)
    shared = TU.part(TU.regions(ids, 1)[1], "train")
    assert ((ctrl.train.tokens >= shared[0]) & (ctrl.train.tokens <= shared[-1])).all()
    assert (ctrl.train.source == markov.PRIVATE).any()
    assert int(TU.pretraining(ids, 2)[-1]) < int(reg[1][0])
