"""Schedule values at known points, including every phase boundary (brief, section 5)."""
import math

import pytest

from companion.optim import schedules as S


def test_cooldown_shapes_known_values():
    assert S.cooldown_shape(0.25, "1-sqrt") == pytest.approx(0.5)
    assert S.cooldown_shape(0.5, "1-sqrt") == pytest.approx(1 - math.sqrt(0.5))
    assert S.cooldown_shape(0.5, "1-sqrt") == pytest.approx(0.2929, abs=1e-4)
    assert S.cooldown_shape(0.5, "linear") == 0.5
    assert S.cooldown_shape(0.5, "1-square") == 0.75
    assert S.cooldown_shape(0.5, "cosine") == pytest.approx(0.5)
    for shape in S.COOLDOWN_SHAPES:
        assert S.cooldown_shape(0.0, shape) == pytest.approx(1.0)
        assert S.cooldown_shape(1.0, shape) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="allowed"):
        S.cooldown_shape(0.5, "cubic")


def test_wsd_boundaries():
    N, W, frac = 100, 10, 0.2  # N_d = 20, N_h = 80
    s = S.make("wsd", total=N, warmup=W, cooldown_frac=frac, shape="linear")
    assert s(0) == pytest.approx(0.01)  # warmup starts at 1% of the peak
    assert s(W - 1) == pytest.approx(0.9 + 0.1 * 0.01)
    assert s(W) == 1.0
    assert s(79) == 1.0  # N_h - 1: last plateau step
    assert s(80) == 1.0  # N_h: p = 0, c(0) = 1
    assert s(90) == pytest.approx(0.5)
    assert s(99) == pytest.approx(1 / 20)  # N - 1: p = 19/20
    assert s(100) == 0.0 and s(150) == 0.0  # t >= N: the final factor f
    f = S.make("wsd", total=N, warmup=W, cooldown_frac=frac, shape="1-sqrt", final=0.1)
    assert f(N) == 0.1 and f(85) == pytest.approx(0.1 + 0.9 * 0.5)


def test_cosine_known_values():
    N, W = 110, 10
    s = S.make("cosine", total=N, warmup=W, final=0.1)
    assert s(W) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert s(N) == pytest.approx(0.1) and s(N + 50) == pytest.approx(0.1)
    assert all(s(t) >= s(t + 1) for t in range(W, N))


def test_wsd_equals_constant_before_cooldown():
    """What makes branching exact: the same multiplier, bit for bit, until N_h."""
    w, c = S.make("wsd", total=500, warmup=25), S.make("constant", warmup=25)
    assert [w(t) for t in range(400)] == [c(t) for t in range(400)]
    assert w(400) == 1.0 and w(401) < 1.0


def test_trapezoid_boundaries():
    N, W = 200, 20  # cooldown over the last 100 steps
    s = S.make("trapezoid", total=N, warmup=W, cooldown_frac=0.5)
    assert s(0) == pytest.approx(1 / W)  # the first update already moves, at 1/W of the peak
    assert s(W - 1) == 1.0 and s(W) == 1.0
    assert s(99) == 1.0 and s(100) == 1.0  # cooldown starts at N - N_c = 100 with s = 1
    assert s(150) == pytest.approx(0.5)
    assert s(N - 1) == pytest.approx(1 / 100)
    assert s(N) == 0.0
    s0 = S.make("trapezoid", total=N, warmup=0)
    assert s0(0) == 1.0
