"""Lion, LionA and LionAR against their defining properties (brief, section 5)."""
import math

import numpy as np
import pytest
import torch

from companion.optim.lion import Lion, LionA, LionAR, adamw_update_rms, lion_equilibrium_angle


def _param(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(*shape, generator=g) * 0.02)
    return p, g


def test_lion_update_is_a_sign_with_norm_sqrt_c():
    p, g = _param((8, 5))
    opt = Lion([p], lr=0.01, betas=(0.9, 0.99), weight_decay=0.0)
    for _ in range(3):
        p.grad = torch.randn(8, 5, generator=g)
        m = opt.state[p]["exp_avg"].clone() if opt.state[p] else torch.zeros(8, 5)
        c = 0.9 * m + 0.1 * p.grad
        w0 = p.detach().clone()
        opt.step()
        u = (w0 - p.detach()) / 0.01
        assert u.square().sum().item() == pytest.approx(int((c != 0).sum()), rel=1e-5)
        assert torch.allclose(u.abs(), torch.ones_like(u), atol=1e-4)
        assert torch.allclose(opt.state[p]["exp_avg"], 0.99 * m + 0.01 * p.grad, atol=1e-7)


def test_lion_decoupled_weight_decay():
    p, _ = _param((4, 4))
    p.grad = torch.zeros(4, 4)  # sign(0) = 0: only the decay acts
    w0 = p.detach().clone()
    Lion([p], lr=0.1, weight_decay=0.5).step()
    assert torch.allclose(p.detach(), w0 * (1 - 0.05))


def test_liona_fixes_the_l2_norm():
    p, g = _param((16, 8))
    opt = LionA([p], lr=0.01)
    for _ in range(3):
        p.grad = torch.randn(16, 8, generator=g)
        p.grad[0] = 0.0  # zeros in sign(c) would shrink a plain Lion update
        w0 = p.detach().clone()
        opt.step()
        norm = ((w0 - p.detach()) / 0.01).norm().item()
        assert norm == pytest.approx(adamw_update_rms(0.9) * math.sqrt(16 * 8), rel=1e-5)


def test_lion_equilibrium_angle_known_value():
    # sqrt(pi/2) * sqrt(2 * 3e-2 * 0.1) * sqrt(0.01 + 0.81 * 0.01 / 1.99)
    expect = math.sqrt(math.pi / 2) * math.sqrt(6e-3) * math.sqrt(0.01 + 0.81 * 0.01 / 1.99)
    assert lion_equilibrium_angle(3e-2, 0.1, (0.9, 0.99)) == pytest.approx(expect)
    # the brief's calibration measured 0.0115 rad (3e-2) and 0.0066 rad (1e-2) per LionAR step
    assert lion_equilibrium_angle(3e-2, 0.1, (0.9, 0.99)) == pytest.approx(0.01152, abs=1e-5)
    assert math.atan(lion_equilibrium_angle(1e-2, 0.1, (0.9, 0.99))) == pytest.approx(0.0066485, rel=1e-4)


@pytest.mark.parametrize("nesterov,ibc", [(False, False), (True, True)])
def test_lionar_keeps_row_norms_and_rotates_by_the_set_angle(nesterov, ibc):
    p, g = _param((12, 10))
    r0 = p.detach().norm(dim=1).double().numpy()
    bias = torch.nn.Parameter(torch.zeros(10))
    opt = LionAR([{"params": [p], "weight_decay": 0.1}, {"params": [bias], "weight_decay": 0.0}],
                 lr=3e-2, betas=(0.98, 0.98) if nesterov else (0.9, 0.99), rho=0.0,
                 nesterov=nesterov, inverse_bias_correction=ibc)
    for t in range(1, 6):
        p.grad, bias.grad = torch.randn(12, 10, generator=g), torch.randn(10, generator=g)
        w0 = p.detach().double().numpy().copy()
        opt.step()
        w1 = p.detach().double().numpy()
        np.testing.assert_allclose(np.linalg.norm(w1, axis=1), r0, rtol=1e-5)
        cos = (w0 * w1).sum(1) / np.linalg.norm(w0, axis=1) / np.linalg.norm(w1, axis=1)
        eta_r = opt.angle(opt.param_groups[0], t)
        np.testing.assert_allclose(np.arccos(np.clip(cos, -1, 1)), math.atan(eta_r), rtol=1e-3)
    if ibc:
        assert opt.angle(opt.param_groups[0], 1) == pytest.approx(
            0.02 * lion_equilibrium_angle(3e-2, 0.1, (0.98, 0.98)))


def test_lionar_lr_factor_scales_the_angle():
    p, g = _param((6, 6))
    opt = LionAR([p], lr=1e-2, weight_decay=0.1)
    opt.param_groups[0]["lr_factor"] = 0.25
    p.grad = torch.randn(6, 6, generator=g)
    w0 = p.detach().double().clone()
    opt.step()
    a = torch.arccos(torch.nn.functional.cosine_similarity(w0, p.detach().double(), dim=1))
    assert torch.allclose(a, torch.full_like(a, math.atan(0.25 * lion_equilibrium_angle(1e-2, 0.1))), rtol=1e-3)


@pytest.mark.parametrize("nonrot", ["sign", "relative"])
def test_lionar_steps_on_what_it_does_not_rotate(nonrot):
    """A 1-D gain (no decay: not rotated) moves by -eta sign(c) (REQ) or, relative, by
    -eta_r rms(gain at its first step) sign(c), eta_r taken at the rotated group's lambda."""
    w, _ = _param((6, 4))
    gain = torch.nn.Parameter(torch.full((4,), 1.5))
    opt = LionAR([{"params": [w], "weight_decay": 0.1}, {"params": [gain], "weight_decay": 0.0}],
                 lr=0.05, betas=(0.9, 0.99), nonrot=nonrot)
    g = torch.tensor([1.0, -2.0, 3.0, -0.5])
    for step in range(2):
        w.grad, gain.grad = torch.randn(6, 4), g
        before = gain.detach().clone()
        opt.step()
        size = 0.05 if nonrot == "sign" else lion_equilibrium_angle(0.05, 0.1, (0.9, 0.99)) * 1.5
        assert torch.allclose(before - gain.detach(), size * torch.sign(g), atol=1e-6)


def test_lionar_rejects_an_unknown_nonrot():
    w, _ = _param((3, 3))
    with pytest.raises(ValueError, match="nonrot must be 'sign' or 'relative'"):
        LionAR([w], nonrot="abs")


def test_inverse_bias_correction_and_lr_factor_reach_the_gains_too():
    """An explicit warmup scales every step; the recipe's implicit one must as well: the gain's
    step at update t is eta * lr_factor * (1 - beta1^t)."""
    w, _ = _param((5, 3))
    gain = torch.nn.Parameter(torch.ones(3))
    opt = LionAR([{"params": [w], "weight_decay": 0.1}, {"params": [gain], "weight_decay": 0.0}],
                 lr=0.1, betas=(0.9, 0.9), inverse_bias_correction=True)
    for group in opt.param_groups:
        group["lr_factor"] = 0.5
    for t in (1, 2, 3):
        w.grad, gain.grad = torch.randn(5, 3), torch.ones(3)
        before = gain.detach().clone()
        opt.step()
        assert torch.allclose(before - gain.detach(), torch.full((3,), 0.1 * 0.5 * (1 - 0.9 ** t)), atol=1e-7)
