"""The update-dynamics, representation and gradient-noise probes against direct computations."""
import math

import numpy as np
import pytest
import torch

from companion.metrics import noise, representation, updates
from companion.models.gpt import GPT, GPTConfig
from companion.train import train


def _tiny(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, seq_len=8, n_layer=1, n_head=2, d_model=16, style="gpt2"))


def _batch(t, B=8, T=8):
    g = torch.Generator().manual_seed(t)
    x = torch.randint(0, 11, (B, T), generator=g)
    return x, torch.roll(x, -1, 1)


def test_equilibrium_angles_known_values():
    # brief, section 4: 7.9e-3 rad at eta = 6e-3 and 1.03e-2 at 1e-2 (lambda 0.1, beta1 0.9)
    assert updates.equilibrium_angle("adamw", 6e-3, 0.1) == pytest.approx(7.9e-3, abs=5e-5)
    assert updates.equilibrium_angle("adamw", 1e-2, 0.1) == pytest.approx(1.03e-2, abs=5e-5)
    assert updates.equilibrium_angle("sgdm", 0.1, 5e-4, (0.9,)) == pytest.approx(math.sqrt(1e-4 / 1.9))
    with pytest.raises(ValueError, match="allowed"):
        updates.equilibrium_angle("adagrad", 1e-2, 0.1)


def test_angle_in_float64_resolves_small_angles():
    a = torch.tensor([1.0, 0.0], dtype=torch.float32)
    b = torch.tensor([math.cos(1e-4), math.sin(1e-4)], dtype=torch.float32)
    assert float(updates.angle(a, b)) == pytest.approx(1e-4, rel=1e-2)


def test_update_probe_matches_a_direct_computation():
    model = _tiny()
    opt = torch.optim.AdamW(model.param_groups(0.1, decay_embeddings=True), lr=1e-2, betas=(0.9, 0.95))
    probe = updates.UpdateProbe(model, every=3, dense=2)
    before = {}

    class Keep:  # the weights before every step, kept independently of the probe
        def before_step(self, t, model, optimizer, batch):
            before[t] = {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}

        def after_step(self, t, model, optimizer):
            pass

    after = {}

    class KeepAfter(Keep):
        def after_step(self, t, model, optimizer):
            after[t] = {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}

    train(model, opt, lambda t: 1.0, _batch, 0, 7, lr=1e-2, probes=[KeepAfter(), probe], progress=False)
    assert [r["step"] for r in probe.records] == [0, 1, 3, 6]
    for rec in probe.records:
        t = rec["step"]
        total_sq, angles = 0.0, []
        for n, lay in rec["layers"].items():
            w0, w1 = before[t][n], after[t][n]
            cos = (w0 * w1).sum() / np.linalg.norm(w0) / np.linalg.norm(w1)
            assert lay["angle"] == pytest.approx(np.arccos(np.clip(cos, -1, 1)), rel=1e-6, abs=1e-12)
            assert lay["l2"] == pytest.approx(np.linalg.norm(w1 - w0), rel=1e-9)
            rc = (w0 * w1).sum(1) / np.linalg.norm(w0, axis=1) / np.linalg.norm(w1, axis=1)
            ra = np.arccos(np.clip(rc, -1, 1))
            assert lay["row_angle_rms"] == pytest.approx(np.sqrt((ra ** 2).mean()), rel=1e-6)
            total_sq += ((w1 - w0) ** 2).sum()
            angles.append(ra)
        assert rec["total"]["l2"] == pytest.approx(math.sqrt(total_sq), rel=1e-9)
        assert rec["total"]["row_angle_rms"] == pytest.approx(np.sqrt((np.concatenate(angles) ** 2).mean()), rel=1e-6)
    first = probe.records[0]["layers"]
    assert all(v["cos_gm"] is None for v in first.values())  # no momentum before the first step
    assert all(v["cos_gm"] is not None for v in probe.records[1]["layers"].values())


def test_rrc_matches_a_direct_computation():
    model = _tiny()
    x, _ = _batch(99)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    probe = representation.RRCProbe(model, x, every=1, dense=1)
    lin = model.blocks[0].mlp.fc
    store = {}
    h = lin.register_forward_pre_hook(lambda m, a: store.__setitem__("x", a[0].detach().clone()))
    with torch.no_grad():
        model(x)
    h.remove()
    W0 = lin.weight.detach().clone()
    train(model, opt, lambda t: 1.0, _batch, 0, 1, lr=0.5, clip=0, probes=[probe], progress=False)
    X = store["x"].flatten(0, 1).double()
    expect = (X @ (lin.weight.detach().double() - W0.double()).T).norm() / (X @ W0.double().T).norm()
    assert probe.records[0]["layers"]["blocks.0.mlp.fc"] == pytest.approx(float(expect), rel=1e-6)
    assert probe.records[0]["logits"] > 0


def test_snr_estimator_recovers_a_known_snr():
    # micro-batch gradients G_k = mu + mean of b per-sample noises, noise ~ N(0, s^2 I)
    torch.manual_seed(0)
    D, b, K, s = 2000, 4, 8, 0.5
    mu = torch.randn(D) * 0.1
    phis = []
    for _ in range(200):
        samples = mu + s * torch.randn(K, b, D)
        G = samples.mean(1)
        est = noise.gradient_snr(G.square().sum(1).tolist(), float(G.mean(0).square().sum()), b, K * b)
        phis.append((est["g2"], est["tr_sigma"]))
    g2 = np.mean([p[0] for p in phis])
    tr = np.mean([p[1] for p in phis])
    assert g2 == pytest.approx(float(mu.square().sum()), rel=0.05)
    assert tr == pytest.approx(D * s * s, rel=0.02)
    assert g2 / tr == pytest.approx(float(mu.square().sum()) / (D * s * s), rel=0.05)


def test_kappa_limits():
    assert noise.kappa(0.0, 16) == 1.0
    assert noise.kappa(1e9, 16) == pytest.approx(0.25, rel=1e-6)
    assert noise.kappa(0.1, 16) == pytest.approx(math.sqrt(1.1 / 2.6))


def test_snr_probe_leaves_training_unchanged():
    def run(with_probe):
        model = _tiny()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        probes = [noise.SNRProbe(model, micro=4, every=2, dense=1)] if with_probe else []
        hist, _ = train(model, opt, lambda t: 1.0, _batch, 0, 5, lr=1e-2, probes=probes, progress=False)
        return hist.train_loss, probes
    base, _ = run(False)
    probed, probes = run(True)
    assert probed == base
    assert [r["step"] for r in probes[0].records] == [0, 2, 4]
    assert all(r["tr_sigma"] > 0 for r in probes[0].records)
