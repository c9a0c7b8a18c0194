"""The deep-grokking library pieces against independent computations."""
import math

import numpy as np
import pytest
import torch

from companion.metrics import features as F
from companion.metrics import grokking as G
from companion.models.mlp import MLP


@pytest.mark.parametrize("k", [1, 5, 17])
def test_numerical_rank_matches_numpy_on_low_rank_features(k):
    g = torch.Generator().manual_seed(k)
    H = (torch.randn(300, k, generator=g, dtype=torch.float64) @ torch.randn(k, 40, generator=g, dtype=torch.float64)
         + 3.0)  # rank-k features plus a constant offset (removed by centring)
    C = np.cov(H.numpy(), rowvar=False)
    assert F.numerical_rank(H) == np.linalg.matrix_rank(C) == k
    assert np.allclose(F.covariance(H).numpy(), C)


def test_numerical_rank_tolerance_depends_on_dtype():
    # singular values of the covariance 1, 1e-9: kept by the float64 rule, dropped by float32's
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(50, 2, generator=g, dtype=torch.float64))
    H = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    H = (H - H.mean(0)) / H.std(0) * torch.tensor([1.0, math.sqrt(1e-9)], dtype=torch.float64)
    X = H @ Q.T
    assert F.numerical_rank(X) == 2
    assert F.numerical_rank(X, rtol=50 * torch.finfo(torch.float32).eps) == 1


def test_effective_rank_isotropic_and_low_rank():
    g = torch.Generator().manual_seed(1)
    iso = torch.randn(20000, 16, generator=g, dtype=torch.float64)
    assert 15.0 < F.effective_rank(iso) <= 16.0
    low = torch.randn(500, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 30, generator=g, dtype=torch.float64)
    assert F.effective_rank(low) <= 3.0 + 1e-9
    assert F.effective_rank(torch.ones(10, 4)) == 0.0


def test_tunnel_length_counts_layers_below_the_threshold():
    assert F.tunnel_length([400, 350, 299, 120, 10], width=400) == 3  # threshold 300
    assert F.tunnel_length([400, 301], width=400) == 0


def test_alpha_scaling_multiplies_the_parameter_norm_exactly():
    torch.manual_seed(0)
    base = MLP(depth=5, width=32, d_in=20, d_out=10)
    torch.manual_seed(0)
    scaled = MLP(depth=5, width=32, d_in=20, d_out=10, alpha=8.0)
    assert scaled.weight_norm() == pytest.approx(8.0 * base.weight_norm(), rel=1e-12)
    for p, q in zip(base.parameters(), scaled.parameters()):
        assert torch.equal(q, 8.0 * p)  # biases too


def test_mlp_layers_and_features():
    m = MLP(depth=4, width=16, d_in=12, d_out=10)
    assert len(m.linears) == 4
    out, feats = m(torch.randn(7, 3, 4), return_features=True)
    assert out.shape == (7, 10) and [f.shape[1] for f in feats] == [16, 16, 16, 10]
    assert torch.equal(out, feats[-1])  # no output activation
    with pytest.raises(ValueError, match="depth"):
        MLP(depth=1)


def test_grokking_indicators():
    steps = [10, 100, 1000, 10000, 100000]
    train = [0.2, 0.995, 1.0, 1.0, 1.0]
    test = [0.1, 0.2, 0.25, 0.7, 0.9]
    assert G.fit_step(steps, train) == 100
    assert G.generalization_step(steps, test) == 10000  # first >= (0.9 + 0.1) / 2
    assert G.grokking_delay(steps, train, test) == 9900
    assert G.grokking_delay(steps, [0.5] * 5, test) == math.inf


def test_linear_probe_separable_and_random_labels():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 32, generator=g) * 3
    y = torch.randint(0, 10, (3000,), generator=g)
    H = centers[y] + 0.3 * torch.randn(3000, 32, generator=g)
    acc = F.linear_probe_accuracy(H[:2000], y[:2000], H[2000:], y[2000:], lr=1e-2)
    assert acc > 0.98  # linearly separable classes
    noise = torch.randn(3000, 32, generator=g)
    chance = F.linear_probe_accuracy(noise[:2000], y[:2000], noise[2000:], y[2000:], lr=1e-2)
    assert chance < 0.2  # features carry no label information


def test_two_stage_detection_on_constructed_curves():
    steps = [int(10 ** (1 + 4 * i / 80)) for i in range(81)]  # 10 ... 1e5, log-spaced
    x = np.log10(steps)
    sig = lambda c: 1 / (1 + np.exp(-(x - c) * 8))  # noqa: E731
    one = (0.1 + 0.8 * sig(3.0)).tolist()
    two = (0.1 + 0.4 * sig(2.5) + 0.4 * sig(4.2)).tolist()
    assert G.two_stage(steps, one) is None
    plateau = G.two_stage(steps, two)
    assert plateau is not None and 10 ** 2.5 < plateau[0] < plateau[1] < 10 ** 4.2
    dip = (0.1 + 0.4 * sig(2.5) - 0.02 * sig(3.2) + 0.42 * sig(4.2)).tolist()
    assert G.two_stage(steps, dip) is not None
    assert G.two_stage(steps, (0.1 + 0.05 * sig(2.5) + 0.05 * sig(4.2)).tolist()) is None  # rises too small


def test_descent_onset_and_double_descent_on_constructed_series():
    steps = list(range(0, 1000, 10))
    flat_then_fall = [100.0 if s < 500 else 100.0 - 0.1 * (s - 500) for s in steps]
    assert G.descent_onset(steps, flat_then_fall) == 550  # 5% below the running max 100 at s = 550
    assert G.descent_onset(steps, flat_then_fall, drop=0.5) == math.inf
    assert G.descent_onset(steps, [1.0] * len(steps)) == math.inf
    # 100 -> 80 -> 100 -> 70: a double descent with the trough near 250 and the peak near 500
    zig = np.interp(steps, [0, 250, 500, 990], [100, 80, 100, 70]).tolist()
    trough, peak = G.double_descent(steps, zig)
    assert 230 <= trough <= 270 and 480 <= peak <= 520
    assert G.double_descent(steps, np.interp(steps, [0, 250, 990], [100, 80, 100]).tolist()) is None
    assert G.double_descent(steps, np.interp(steps, [0, 250, 500, 990], [100, 98, 100, 70]).tolist()) is None
    assert G.double_descent(steps, zig, rel=0.25) is None


def test_the_peak_condition_and_the_rise_then_fall_on_constructed_series():
    steps = list(range(0, 1000, 10))
    zig = np.interp(steps, [0, 250, 500, 990], [100, 80, 100, 70]).tolist()  # falls from its first point
    assert G.double_descent(steps, zig, from_peak=True) is None  # the first fall is the start's own
    rise_first = np.interp(steps, [0, 150, 300, 600, 990], [90, 100, 80, 100, 70]).tolist()
    trough, peak = G.double_descent(steps, rise_first, from_peak=True)
    assert 280 <= trough <= 320 and 580 <= peak <= 620
    assert G.double_descent_depth(steps, rise_first, from_peak=True) == pytest.approx(0.19, abs=0.01)  # ~100 -> 80
    trough, peak = G.rise_fall(steps, zig)
    assert 230 <= trough <= 270 and 480 <= peak <= 520
    assert G.detector_depth(G.rise_fall, steps, zig) == pytest.approx(0.24, abs=0.01)  # ~80 -> 100, smoothed
    assert G.rise_fall(steps, np.interp(steps, [0, 990], [100, 50]).tolist()) is None
