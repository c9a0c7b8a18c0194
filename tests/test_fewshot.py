"""Meta-learning a network (the fo-maml chapter's MNIST-1D part) against independent computations:
the functional CNN against torch.nn layers, MAML through the unrolled inner step against a dense
Hessian, the first-order estimators' known relations on a network, the task sampler's bookkeeping,
and the peak-memory counter against allocations of known size."""
import numpy as np
import pytest
import torch
from torch.func import grad, hessian

from companion.meta import estimators as E
from companion.meta.fewshot import Episodes, Sampler, mnist1d
from companion.meta.outer import fit
from companion.metrics.memory import peak_tensor_bytes
from companion.models.cnn1d import CNN1d

ALPHA = 0.4


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_functional_cnn_equals_the_torch_nn_layers(activation):
    net = CNN1d(channels=4, n_out=3, layers=3, activation=activation)
    theta = net.init(torch.Generator().manual_seed(0), torch.float64)
    assert theta.numel() == net.size
    convs = [torch.nn.Conv1d(1 if i == 0 else 4, 4, 5, stride=2, padding=2, dtype=torch.float64) for i in range(3)]
    head = torch.nn.Linear(4 * 5, 3, dtype=torch.float64)
    params = [p for m in convs + [head] for p in (m.weight, m.bias)]
    with torch.no_grad():
        offset = 0
        for p in params:
            p.copy_(theta[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
    x = torch.randn(7, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = x.unsqueeze(1)
    act = torch.nn.ReLU() if activation == "relu" else torch.nn.GELU()
    for conv in convs:
        h = act(conv(h))
    assert torch.allclose(net(theta, x), head(h.flatten(1)), rtol=0, atol=1e-12)


def test_initialisation_is_pytorchs_default_range():
    net = CNN1d(channels=8, n_out=5)
    theta = net.init(torch.Generator().manual_seed(0))
    first = theta[:8 * 5].abs()  # the first conv's weights: fan_in = 5
    assert float(first.max()) <= 1 / 5 ** 0.5 and float(first.max()) > 0.8 / 5 ** 0.5


@pytest.fixture(scope="module")
def episodes():
    """Three 3-way 2-shot tasks on a tiny GELU CNN (smooth, as finite differences need), in float64."""
    net = CNN1d(channels=3, n_out=3, layers=2, activation="gelu")
    e = Sampler(tuple(range(10)), "train", n_way=3, k_shot=2, query=3, net=net).sample(
        3, torch.Generator().manual_seed(0))
    d = torch.float64
    return Episodes(net, e.xs.to(d), e.ys, e.xq.to(d), e.yq), net.init(torch.Generator().manual_seed(2), d)


def test_maml_through_the_unrolled_step_equals_the_dense_hessian_formula(episodes):
    """grad F_i = (I - alpha grad^2 f_i^in(x)) grad f_i^out(x - alpha grad f_i^in(x)), with the
    Hessian formed densely (torch.func.hessian) for each task."""
    tasks, x = episodes
    (xs, ys), (xq, yq) = tasks.batch()
    ref = []
    for i in range(tasks.T):
        def f_in(z):
            return tasks.loss(z, (xs[i], ys[i]))
        y = x - ALPHA * grad(f_in)(x)
        H = hessian(f_in)(x)
        ref.append((torch.eye(x.numel(), dtype=x.dtype) - ALPHA * H) @ grad(lambda z: tasks.loss(z, (xq[i], yq[i])))(y))
    got = E.batch_estimates("maml", tasks, x, ALPHA)
    assert torch.allclose(got, torch.stack(ref), rtol=0, atol=1e-10)


def test_first_order_estimators_on_a_network(episodes):
    """The symmetric estimator approaches MAML as delta shrinks (O(delta^2) on a smooth network:
    ~4x per halving, asserted as > 3x), FO-MAML does not, and Reptile with one step is the support
    gradient."""
    tasks, x = episodes
    exact = E.meta_gradient("maml", tasks, x, ALPHA)

    def err(name, **kw):
        return float((E.meta_gradient(name, tasks, x, ALPHA, **kw) - exact).norm() / exact.norm())
    e1, e2 = err("sym", delta=1e-2, K=3), err("sym", delta=5e-3, K=3)
    assert e2 < 1e-3 and e1 / e2 > 3
    assert err("fomaml") > 10 * e1
    A, c = tasks.batch()
    support_grad = tasks.grad_inner(x.expand(tasks.T, -1), A, c).mean(0)
    assert torch.allclose(E.meta_gradient("reptile", tasks, x, ALPHA, inner_steps=1), support_grad, atol=1e-12)


def test_sampler_draws_labelled_tasks_from_its_part():
    x_test, _ = mnist1d("test")
    s = Sampler(tuple(range(10)), "test", n_way=4, k_shot=3, query=2)
    e = s.sample(5, torch.Generator().manual_seed(0))
    assert e.xs.shape == (5, 12, 40) and e.xq.shape == (5, 8, 40) and e.T == 5
    for i in range(5):
        assert torch.equal(torch.bincount(e.ys[i], minlength=4), torch.full((4,), 3))
        assert torch.equal(torch.bincount(e.yq[i], minlength=4), torch.full((4,), 2))
        signals = torch.cat([e.xs[i], e.xq[i]])
        assert all(bool((x_test == row).all(1).any()) for row in signals)  # every signal is a test signal
        assert len({tuple(r.tolist()) for r in signals}) == len(signals)  # none drawn twice
    again = s.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(again.xs, e.xs) and torch.equal(again.yq, e.yq)
    with pytest.raises(ValueError, match="n_way"):
        Sampler((0, 1), n_way=3)


def test_mnist1d_is_generated_offline_and_leaves_the_global_seeds_alone():
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    x, y = mnist1d("train")
    assert np.random.rand() == expected
    assert x.shape == (4000, 40) and y.shape == (4000,) and set(y.tolist()) == set(range(10))
    assert mnist1d("all")[0].shape == (5000, 40)


def test_peak_memory_counts_live_tensors_only():
    def allocations():
        a = torch.ones(1000)  # 4,000 bytes
        b = torch.ones(2000)  # 8,000 bytes: 12,000 alive at once
        del a
        c = torch.ones(500)  # 2,000 bytes: 10,000 alive
        return b, c
    assert peak_tensor_bytes(allocations) == 12_000
    x = torch.ones(10_000)
    assert peak_tensor_bytes(lambda: (x.view(100, 100), x.add_(1))) == 0  # a view and an in-place op


def test_peak_memory_sees_the_batched_tensors_under_vmap_and_grad(episodes):
    """Under torch.func the counter sees the physical, batched tensors: the same per-task
    computation over twice the tasks holds (nearly) twice the bytes."""
    tasks, x = episodes
    peaks = []
    for n in (1, 2):
        idx = torch.arange(n)
        peaks.append(peak_tensor_bytes(lambda: E.batch_estimates("maml", tasks, x, ALPHA, idx)))
    assert peaks[0] > 0 and 1.6 < peaks[1] / peaks[0] < 2.4


def test_fit_logs_its_evaluations_and_moves_theta(episodes):
    tasks, x = episodes
    sampler = Sampler(tuple(range(10)), "train", n_way=3, k_shot=2, query=3, net=tasks.net)
    log = fit(sampler, "fomaml", x.float(), 5, ALPHA, 2, 1e-2, lambda th: float(th.norm()), 2)
    assert log["t"] == [0, 2, 4, 5] and len(log["score"]) == 4
    assert log["score"][0] == pytest.approx(float(x.norm()), rel=1e-6) and log["score"][-1] != log["score"][0]
