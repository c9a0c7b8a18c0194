"""Collaborative-learning core (cobo chapter) against independent computations: the stacked
MLPs against torch.nn per client, the simplex projection against a brute-force QP, CoBo's
model step against a loop, the pair-sampling rate against its schedule."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from companion.collab import cobo
from companion.collab import methods as M
from companion.collab import partition as P
from companion.collab import stacked as S


def test_stacked_forward_and_gradients_equal_one_mlp_per_client():
    params = S.init(3, (5, 7, 4), seed=0)
    params = {k: v + 0.1 * torch.randn_like(v) for k, v in params.items()}  # make the clients differ
    x, y = torch.randn(3, 6, 5), torch.randint(0, 4, (3, 6))
    losses, grads = S.loss_and_grads(params, x, y)
    for m in range(3):
        net = S.linear_reference(params, m)
        loss = F.cross_entropy(net(x[m]), y[m])
        loss.backward()
        assert losses[m].item() == pytest.approx(loss.item(), rel=1e-6)
        assert torch.allclose(grads["W0"][m], net[0].weight.grad.T, atol=1e-6)
        assert torch.allclose(grads["b1"][m], net[2].bias.grad, atol=1e-6)
    acc, _ = S.evaluate(params, x[0], y)  # a shared test set
    assert acc.shape == (3,)


def test_every_client_starts_from_the_same_model():
    p = S.init(4, (3, 2), seed=1)
    assert all(torch.equal(v[0], v[3]) for v in p.values())


def _brute_force_simplex(v):
    """argmin ||w - v|| over the simplex: the best feasible KKT point over every support."""
    best, best_d = None, float("inf")
    for r in range(1, len(v) + 1):
        for S_ in itertools.combinations(range(len(v)), r):
            s = list(S_)
            w = torch.zeros_like(v)
            w[s] = v[s] - (v[s].sum() - 1) / len(s)
            if (w >= -1e-12).all() and (d := (w - v).norm().item()) < best_d:
                best, best_d = w, d
    return best


def test_simplex_projection_matches_a_brute_force_qp_and_is_idempotent():
    g = torch.Generator().manual_seed(0)
    V = torch.randn(40, 5, generator=g, dtype=torch.float64) * 2
    W = cobo.proj_simplex(V)
    assert torch.allclose(W.sum(1), torch.ones(40, dtype=torch.float64)) and (W >= 0).all()
    for v, w in zip(V, W):
        assert torch.allclose(w, _brute_force_simplex(v), atol=1e-10)
    assert torch.allclose(cobo.proj_simplex(W), W, atol=1e-12)


def test_box_update_keeps_w_symmetric_and_in_the_box():
    W = torch.full((5, 5), 0.5)
    i, j = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 4])
    W = cobo.update_weights(W, i, j, torch.tensor([10.0, -10.0, 1.0]), gamma=0.1)
    assert torch.equal(W, W.T) and W.min() >= 0 and W.max() <= 1
    assert W[0, 3] == 1.0 and W[1, 4] == 0.0 and W[2, 4] == pytest.approx(0.6)


def test_pair_sampling_rate_matches_the_schedule():
    g = torch.Generator().manual_seed(0)
    n = 20
    for schedule, t in (("const", 5), ("mixed_code", 5), ("mixed_code", 2500), ("inv_t", 400)):
        p = cobo.pair_probability(schedule, t, n, 4000)
        counts = [len(cobo.sample_pairs(n, p, g)[0]) for _ in range(400)]
        rate = sum(counts) / (400 * n * (n - 1) / 2)
        assert rate == pytest.approx(p, rel=0.05)
    assert cobo.pair_probability("mixed_code", 799, n, 4000) == 2 / n
    assert cobo.pair_probability("mixed_code", 2500, n, 4000) == pytest.approx(0.02)
    assert cobo.pair_probability("mixed_paper", 7, n, 4000) == 2 / n  # 0.2% of 4000 rounds
    assert cobo.pair_probability("mixed_paper", 8, n, 4000) == 2 / n  # then min(2/n, 100/(t+1))
    assert cobo.pair_probability("mixed_paper", 1999, n, 4000) == pytest.approx(0.05)
    assert cobo.pair_probability("inv_t", 8, n, 4000) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        cobo.pair_probability("sometimes", 0, n, 10)


def test_consensus_step_with_oracle_weights_is_within_cluster_consensus_sgd():
    """x_i - eta (m_i + rho sum_k w_ik (x_i - x_k)) with W = the cluster blocks, by a loop."""
    cluster = torch.tensor([0, 0, 1, 1, 1])
    W = (cluster[:, None] == cluster[None, :]).double()
    X, G = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    eta, rho = 0.1, 0.7
    stepped = X - eta * (G + rho * cobo.laplacian(W) @ X)
    for i in range(5):
        mates = [k for k in range(5) if cluster[k] == cluster[i]]
        pull = sum(X[i] - X[k] for k in mates)
        assert torch.allclose(stepped[i], X[i] - eta * (G[i] + rho * pull))


def test_recovery_counts_pairs_on_the_right_side_of_one_half():
    same = torch.tensor([0, 0, 1])[:, None] == torch.tensor([0, 0, 1])[None, :]
    assert cobo.recovery(same.float(), same) == 1.0
    assert cobo.recovery(torch.ones(3, 3), same) == pytest.approx(2 / 6)


def _federation(seed=0):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 6, generator=g), torch.randint(0, 4, (300,), generator=g)
    return P.permuted_clusters(x, y, x[:50], y[:50], (2, 3), 20, seed), (x, y)


def test_permuted_clusters_are_disjoint_within_a_cluster_and_relabelled_consistently():
    fed, (x, y) = _federation()
    assert fed.x.shape == (5, 20, 6) and fed.cluster.tolist() == [0, 0, 1, 1, 1]
    rows = [{tuple(r.tolist()) for r in fed.x[i]} for i in range(5)]
    assert not rows[2] & rows[3] and not rows[0] & rows[1]
    assert torch.equal(fed.y_test[0], y[:50])  # cluster 0: identity
    pi = {}
    for a, b in zip(y[:50].tolist(), fed.y_test[2].tolist()):  # one permutation per cluster
        assert pi.setdefault(a, b) == b
    assert torch.equal(fed.y_test[2], fed.y_test[4])


def test_class_group_clusters_make_labels_collide():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 3, generator=g), torch.arange(400) % 4
    fed = P.class_group_clusters(x, y, x[:80], y[:80], (2, 2), 30, classes_per_cluster=2, seed=0)
    assert fed.n_classes == 2 and set(fed.y.unique().tolist()) == {0, 1}
    classes = {tuple(r.tolist()): c for r, c in zip(x[:80], y[:80].tolist())}
    assert {classes[tuple(r.tolist())] for r in fed.x_test[2]} == {2, 3}  # cluster 1 owns classes 2 and 3
    assert {classes[tuple(r.tolist())] for r in fed.x_test[0]} == {0, 1}


def test_schedule_ablations_keep_the_data_order():
    """With rho = 0 CoBo's weights do not touch the models: two schedules must give the same
    models, i.e. pair sampling and midpoint batches do not consume the minibatch stream."""
    fed, _ = _federation()
    hp = M.Hyper(steps=30, batch=4, hidden=(5,), rho=0.0, eval_every=10)
    a = M.train("cobo", fed, hp, seed=0)
    b = M.train("cobo", fed, M.Hyper(**{**hp.__dict__, "schedule": "none"}), seed=0)
    assert torch.equal(a["acc"], b["acc"]) and b["pairs"] > a["pairs"]
    assert not torch.equal(a["W"], b["W"])


def test_oracle_with_one_cluster_is_fedavg_and_local_differs():
    fed, _ = _federation()
    fed.cluster = torch.zeros(5, dtype=torch.long)
    hp = M.Hyper(steps=20, batch=4, hidden=(5,), eval_every=10)
    o, f, loc = (M.train(m, fed, hp, seed=0) for m in ("oracle", "fedavg", "local"))
    assert torch.allclose(o["loss"], f["loss"]) and not torch.allclose(loc["loss"], f["loss"])


def test_federated_clustering_estimate_is_the_cluster_mean_when_clusters_are_apart():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 0.0], [-10.0, 0.0]])
    cluster = torch.tensor([0] * 5 + [1] * 5)
    G = centres[cluster] + 0.1 * torch.randn(10, 2, generator=g)
    est = M._threshold_average(G, k=5, iters=5)  # the 5 nearest: the client's own cluster
    for k in (0, 1):
        assert torch.allclose(est[cluster == k], G[cluster == k].mean(0).expand(5, 2), atol=1e-6)


def test_ifca_samples_the_given_fraction_of_clients():
    fed, _ = _federation()
    r = M.train("ifca", fed, M.Hyper(steps=10, batch=4, hidden=(5,), ifca_frac=0.4, eval_every=5), seed=0)
    assert r["grads"] == 10 * 2 * (2 + 1)  # 2 of 5 clients, K = 2 losses + 1 gradient each


def test_midpoint_inner_product_uses_each_clients_own_data():
    """Two clients with the same inputs and opposite labels: their gradients at the shared
    midpoint conflict (the released LLM code, using client i's data twice, would see agreement)."""
    x = torch.randn(1, 40, 3).expand(2, 40, 3).clone()
    y = torch.stack([torch.zeros(40, dtype=torch.long), torch.ones(40, dtype=torch.long)])
    fed = P.Federation(x, y, x, y, torch.tensor([0, 1]), 2)
    X = S.init(2, (3, 2), seed=0)
    inner = M._midpoint_inner(X, fed, torch.tensor([0]), torch.tensor([1]), 40, torch.Generator().manual_seed(0))
    assert inner.item() < 0


def test_momentum_is_per_model_and_skips_masked_models():
    mom = M._Momentum(0.9)
    g = {"w": torch.tensor([[1.0], [2.0]])}
    m = mom(g, torch.tensor([True, False]))
    assert m["w"].tolist() == [[1.0], [0.0]]  # first step of model 0: m = g; model 1 untouched
    m = mom({"w": torch.tensor([[3.0], [4.0]])})
    assert m["w"].flatten().tolist() == pytest.approx([0.9 * 1 + 0.1 * 3, 4.0])  # model 1: first step, m = g


def test_every_preset_is_valid_and_plans_its_groups():
    from companion.experiments import cobo as E
    for scale, cfg in E.SCALES.items():
        cfg.validate()
        plan = E.plan(cfg)
        assert set(plan) == {"silo", "sampling", "sweep_data", "sweep_clusters", "sweep_clients", "rho", "device"}
        assert len(plan["silo"]) == cfg.n_seeds * len(cfg.methods)
    assert sum(E.SCALES["gpu"].device_sizes) == 80  # the paper's cross-device client count
