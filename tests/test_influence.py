"""LoRA adapters, per-sample gradients, GFIM/FIM and influence scores (hyperinf chapter)
against independent computations: a loop of single-sample gradients, the Kronecker form of
the GFIM, dense solves, scikit-learn's ROC-AUC."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from companion.influence import curvature as C
from companion.influence import scores as I
from companion.influence import solvers as S
from companion.models.lora import LoRALinear, add_lora, lora_parameters


def test_lora_starts_as_the_base_and_adds_scaled_low_rank_rows():
    torch.manual_seed(0)
    base = nn.Linear(8, 12)
    lora = LoRALinear(base, r=2, blocks=((0, 4), (8, 12)))
    x = torch.randn(5, 8)
    assert torch.equal(lora(x), base(x))
    for b in lora.B:
        nn.init.normal_(b)
    y = lora(x)
    assert torch.allclose(y, base(x) + x @ lora.delta().T, atol=1e-6)
    assert torch.allclose(y[:, 4:8], base(x)[:, 4:8])  # the key rows are not adapted
    assert lora.scale == pytest.approx(2 * 2 / 2 ** 0.5)  # rsLoRA, alpha = 2r
    with pytest.raises(ValueError, match="disjoint"):
        LoRALinear(base, 2, blocks=((0, 6), (4, 12)))


def test_add_lora_freezes_everything_but_the_adapters():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    add_lora(model, {"0": None}, r=2)
    assert sorted(lora_parameters(model)) == ["0.A.0", "0.B.0"]
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("0.A")
                   and not n.startswith("0.B"))


def _model(r=2):
    torch.manual_seed(1)
    model = add_lora(nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)), {"0": None, "2": None}, r)
    for n, p in lora_parameters(model).items():
        nn.init.normal_(p, std=0.5)
    return model


def test_per_sample_grads_equal_a_loop_of_single_sample_grads():
    model = _model()
    x, y = torch.randn(7, 6), torch.randint(0, 3, (7,))
    per = C.per_sample_grads(model, x, y, F.cross_entropy, chunk=3)
    params = lora_parameters(model)
    for i in range(7):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]), list(params.values()))
        for (n, _), g in zip(params.items(), grads):
            assert torch.allclose(per[n][i], g, atol=1e-6)


def test_layout_transposes_b_and_the_gfim_shape_does_not_depend_on_the_rank():
    x, y = torch.randn(9, 6), torch.randint(0, 3, (9,))
    shapes = {}
    for r in (1, 8):
        model = _model(r)
        g = C.hyperinf_layout(C.per_sample_grads(model, x, y, F.cross_entropy))
        assert g["0.A.0"].shape == (9, r, 6) and g["0.B.0"].shape == (9, r, 5)
        shapes[r] = {n: C.gfim(v).shape for n, v in g.items()}
        assert C.fim(g["0.A.0"]).shape == (6 * r, 6 * r)
    assert shapes[1] == shapes[8]


def test_gfim_inverse_is_the_kronecker_structured_fisher_inverse():
    """v (K + lam I)^{-1} = unvec((I_r (x) (K + lam I))^{-1} vec(v)), row-major vec."""
    g = torch.randn(20, 3, 4, dtype=torch.float64)
    v = torch.randn(3, 4, dtype=torch.float64)
    lam = 0.2
    K = C.gfim(g)
    kron = torch.kron(torch.eye(3, dtype=torch.float64), K + lam * torch.eye(4, dtype=torch.float64))
    dense = torch.linalg.solve(kron, v.reshape(-1)).reshape(3, 4)
    assert torch.allclose(I.inverse_hvp("exact_gfim", g, v, lam, extra_damping=0.0), dense, atol=1e-12)


def test_hyperinf_equals_the_exact_gfim_inverse_when_converged():
    g = torch.randn(50, 2, 6, dtype=torch.float64)
    v = torch.randn(2, 6, dtype=torch.float64)
    exact = I.inverse_hvp("exact_gfim", g, v, 0.1, extra_damping=0.0)
    h = I.inverse_hvp("hyperinf", g, v, 0.1, schulz_iters=60, schulz_init="frobenius", extra_damping=0.0)
    assert torch.allclose(h, exact, atol=1e-10)


def test_exact_fim_and_tracin():
    g = torch.randn(30, 2, 3, dtype=torch.float64)
    v = torch.randn(2, 3, dtype=torch.float64)
    flat = g.reshape(30, 6)
    dense = torch.linalg.solve(flat.T @ flat / 30 + 0.1 * torch.eye(6, dtype=torch.float64), v.reshape(-1))
    assert torch.allclose(I.inverse_hvp("exact_fim", g, v, 0.1), dense.reshape(2, 3), atol=1e-12)
    assert torch.equal(I.inverse_hvp("tracin", g, v, 0.1), v)
    scores = I.influence({"w": g}, {"w": v}, "tracin")
    assert torch.allclose(scores, -(flat @ v.reshape(-1)))
    with pytest.raises(ValueError, match="unknown method"):
        I.inverse_hvp("magic", g, v, 0.1)


def test_roc_auc_and_detection_curve():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (200,), generator=g).double()  # many ties
    noisy = torch.rand(200, generator=g) < 0.2
    assert I.roc_auc(scores, noisy) == pytest.approx(roc_auc_score(noisy.numpy(), scores.numpy()))
    x, y = I.detection_curve(noisy.double(), noisy)  # a perfect score
    k = int(noisy.sum())
    assert y[k] == 1.0 and y[k - 1] < 1.0 and x[-1] == 1.0 and y[0] == 0.0


def test_scaled_lissa_in_the_scores_is_the_dense_neumann_series():
    g = torch.randn(25, 2, 3, dtype=torch.float64)
    v = torch.randn(2, 3, dtype=torch.float64)
    flat = g.reshape(25, 6)
    A = flat.T @ flat / 25 + 0.1 * torch.eye(6, dtype=torch.float64)
    assert I.fim_frobenius(flat, 0.1) == pytest.approx(torch.linalg.matrix_norm(A).item(), rel=1e-12)
    dense = S.lissa_scaled(A, v.reshape(-1), iters=7).x  # s = ||A||_F + 1 computed densely
    assert torch.allclose(I.inverse_hvp("lissa_scaled", g, v, 0.1, lissa_iters=7), dense.reshape(2, 3), atol=1e-12)


def test_lissa_growth_is_the_spectral_radius_of_the_official_step():
    g = 3 * torch.randn(40, 2, 4, dtype=torch.float64)
    flat = g.reshape(40, 8)
    lam = 0.05
    step = (1 + lam) * torch.eye(8, dtype=torch.float64) - flat.T @ flat / 40
    assert I.lissa_growth(g, lam) == pytest.approx(torch.linalg.eigvalsh(step).abs().max().item(), rel=1e-10)
    wide = torch.randn(5, 2, 4, dtype=torch.float64)  # 8 parameters, 5 samples: F is singular
    assert I.lissa_growth(wide, lam) == pytest.approx(
        max(1 + lam, torch.linalg.eigvalsh(wide.reshape(5, 8).T @ wide.reshape(5, 8) / 5)[-1].item() - 1 - lam))
