"""Windowed SWA and EMA against direct computations."""
import torch
import torch.nn as nn

from companion.optim.averaging import EMA, WindowedSWA


def _model(value):
    m = nn.Linear(3, 2)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(value)
    return m


def test_swa_of_identical_snapshots_is_the_snapshot():
    m, swa = _model(0.7), WindowedSWA(horizon=4, interval=1)
    for _ in range(4):
        swa.update(m)
    for k, v in m.state_dict().items():
        assert torch.equal(swa.average()[k], v)


def test_swa_of_two_snapshots_is_their_mean():
    swa = WindowedSWA(horizon=2, interval=1)
    swa.update(_model(1.0))
    swa.update(_model(4.0))
    assert torch.allclose(swa.average()["weight"], torch.full((2, 3), 2.5))


def test_swa_windows_restart_and_interval():
    swa = WindowedSWA(horizon=4, interval=2)  # snapshots at counts 0 and 2 of each window
    for v in [1.0, 100.0, 3.0, 100.0, 10.0, 100.0, 20.0, 100.0]:
        swa.update(_model(v))
    assert len(swa.windows) == 2
    assert torch.allclose(swa.windows[0]["bias"], torch.full((2,), 2.0))
    assert torch.allclose(swa.average()["bias"], torch.full((2,), 15.0))
    assert torch.allclose(swa.average(2)["bias"], torch.full((2,), 8.5))


def test_swa_incomplete_window_is_none():
    swa = WindowedSWA(horizon=5)
    swa.update(_model(1.0))
    assert swa.average() is None


def test_ema_recursion():
    ema = EMA(decay=0.9, interval=1)
    for v in (1.0, 2.0, 3.0):
        ema.update(_model(v))
    expected = 1.0
    for v in (2.0, 3.0):
        expected += 0.1 * (v - expected)
    assert torch.allclose(ema.average()["bias"], torch.full((2,), expected))
