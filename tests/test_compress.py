"""Number formats and magnitude sparsity (sparsity-quantization chapter) against independent
computations: the OCP MX v1.0 element table, exact round trips, N:M counts, Theorem 3.5 and a
hand-built counterexample for the other order."""
import itertools

import pytest
import torch

from companion.compress import formats as Fm
from companion.compress import sparsity as Sp

FORMATS = ["int8", "int4", "hbfp8", "hbfp6", "hbfp4", "mxfp8", "mxfp6", "mxfp4"]


def heavy_tailed(rows=64, cols=256, seed=0):
    """0.02 x Student-t with 4 degrees of freedom (normal / sqrt(chi2_4 / 4)), seeded."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    chi2 = torch.randn(4, rows, cols, generator=g, dtype=torch.float64).square().sum(0)
    return 0.02 * z / torch.sqrt(chi2 / 4)


@pytest.mark.parametrize("name,maximum,smallest", [
    ("fp8_e4m3", 448.0, 2.0 ** -9), ("fp6_e3m2", 28.0, 2.0 ** -4),
    ("fp6_e2m3", 7.5, 2.0 ** -3), ("fp4_e2m1", 6.0, 2.0 ** -1)])
def test_mx_element_formats_match_the_ocp_table(name, maximum, smallest):
    fmt = Fm.ELEMENTS[name]
    assert fmt.max_normal == maximum and fmt.min_subnormal == smallest
    # the largest normal is (2 - 2^-m) 2^emax for E3M2/E2M3/E2M1; E4M3 gives its top code to NaN
    top_code = (2 - 2.0 ** -fmt.mbits) * 2.0 ** fmt.emax
    assert maximum == top_code - (2.0 ** (fmt.emax - fmt.mbits) if fmt.ebits == 4 else 0)
    # a block whose largest element is 2^emax has scale 1: the element values round-trip exactly
    v = torch.tensor([2.0 ** fmt.emax, maximum, -maximum, smallest, -smallest, 0.0, 3 * smallest], dtype=torch.float64)
    assert torch.equal(Fm.mx(v, name), v)
    # with scale 1, an element below half the smallest subnormal flushes to zero
    e = torch.tensor([2.0 ** fmt.emax, smallest / 3], dtype=torch.float64)
    assert Fm.mx(e, name)[1] == 0.0


@pytest.mark.parametrize("name", FORMATS)
def test_quantizers_keep_zeros_and_are_idempotent(name):
    q = Fm.quantizer(name)
    x = heavy_tailed()
    x[:, ::7] = 0.0
    y = q(x)
    assert (y[:, ::7] == 0).all()
    assert y.shape == x.shape and y.dtype == x.dtype
    if not name.startswith("int"):  # block formats: a quantized tensor is representable, quantizing is idempotent
        assert torch.equal(q(y), y)


@pytest.mark.parametrize("bits", [4, 8])
def test_int_grid_values_round_trip(bits):
    """With the row maximum M fixing s = 2M/(2^b - 1), every grid value s*k, k in
    [-2^(b-1), 2^(b-1) - 1], with |s*k| <= M is returned exactly."""
    levels = 2 ** (bits - 1)
    s = 0.01
    M = s * (2 ** bits - 1) / 2
    k = torch.arange(-levels, levels, dtype=torch.float64)
    grid = s * k[(s * k).abs() <= M]
    row = torch.cat([grid, torch.tensor([M], dtype=torch.float64)])[None]
    assert torch.allclose(Fm.int_quant(row, bits)[0, :-1], grid, rtol=0, atol=1e-15)


def test_int_quant_is_the_closed_form_grid():
    w = torch.tensor([[0.35, 0.55, 3.0, -1.0]], dtype=torch.float64)
    s = 2 * 3.0 / 15
    expect = s * (torch.clamp(torch.round(w / s) + 8, 0, 15) - 8)
    assert torch.allclose(Fm.int_quant(w, 4), expect)
    assert torch.allclose(expect, torch.tensor([[0.4, 0.4, 2.8, -0.8]], dtype=torch.float64))


def test_hbfp_block_exponent_and_step():
    x = torch.zeros(128, dtype=torch.float64)
    x[0], x[1], x[64] = 3.0, 0.3, 0.01  # block 1: e = 2, step 2^(2-7); block 2: e = -6
    y = Fm.hbfp(x, 7, 64)
    assert y[0] == 3.0 and y[1] == torch.round(torch.tensor(0.3) / 2 ** -5) * 2 ** -5
    assert y[64] == torch.round(torch.tensor(0.01) / 2 ** -13) * 2 ** -13


def test_stochastic_rounding_is_seeded_and_unbiased():
    x = torch.full((20000,), 0.3, dtype=torch.float64)
    a = Fm.int_quant(torch.cat([x, torch.ones(1, dtype=torch.float64)]), 4, rounding="stochastic",
                     generator=torch.Generator().manual_seed(0))
    b = Fm.int_quant(torch.cat([x, torch.ones(1, dtype=torch.float64)]), 4, rounding="stochastic",
                     generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and abs(float(a[:-1].mean()) - 0.3) < 0.005


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (2, 8)])
def test_nm_mask_keeps_exactly_n_of_every_m_and_the_largest(n, m):
    x = heavy_tailed()
    keep = Sp.nm_mask(x, n, m)
    groups = keep.reshape(64, -1, m)
    assert (groups.sum(-1) == n).all()
    mags = x.abs().reshape(64, -1, m)
    kept_min = torch.where(groups, mags, torch.inf).amin(-1)
    dropped_max = torch.where(groups, -torch.inf, mags).amax(-1)
    assert (kept_min >= dropped_max).all()


def test_unstructured_mask_counts_and_ties():
    x = heavy_tailed()
    keep = Sp.unstructured_mask(x, 0.5)
    assert int(keep.sum()) == x.numel() // 2
    assert float(x.abs()[keep].min()) >= float(x.abs()[~keep].max())
    t = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert Sp.unstructured_mask(t, 0.5).tolist() == [True, True, False, False]  # ties: earlier kept


@pytest.mark.parametrize("frac", [0.0, 0.3, 0.5, 0.75, 0.99])
def test_unstructured_mask_equals_a_stable_sort(frac):
    """The selection-based mask against the definition: keep the first numel - k entries of a
    stable descending sort of |x| (many ties: small integers)."""
    g = torch.Generator().manual_seed(1)
    for x in (torch.randint(-3, 4, (7, 13), generator=g).float(), heavy_tailed(8, 32)):
        k = int(frac * x.numel())
        order = torch.argsort(x.abs().flatten(), stable=True, descending=True)
        ref = torch.zeros(x.numel(), dtype=torch.bool)
        ref[order[:x.numel() - k]] = True
        assert torch.equal(Sp.unstructured_mask(x, frac), ref.reshape(x.shape))


@pytest.mark.parametrize("name,sparsity", list(itertools.product(FORMATS, ["2:4", "50%"])))
def test_s_then_q_error_is_at_most_the_sum_of_the_errors(name, sparsity):
    """Theorem 3.5 in L1: sparsity keeps every block's largest element, so the block scale and
    the kept elements' rounding are those of Q(x)."""
    q, x = Fm.quantizer(name), heavy_tailed(seed=1)
    e_s = (x * Sp.mask(x, sparsity) - x).abs().sum()
    e_q = (q(x) - x).abs().sum()
    e_sq = (Sp.s_then_q(x, sparsity, q) - x).abs().sum()
    assert e_sq <= e_s + e_q + 1e-12
    if sparsity == "2:4":  # groups inside one block, deterministic rounding: S then Q is the better order
        assert e_sq <= (Sp.q_then_s(x, sparsity, q) - x).abs().sum() + 1e-12


def test_q_then_s_can_exceed_the_sum_of_the_errors():
    """Theorem 3.6 by example: INT4 rounds 0.35 up and 0.55 down to the same 0.4, so 1:2 sparsity
    after quantization keeps the first and prunes the larger original element."""
    q = lambda x: Fm.int_quant(x, 4)  # noqa: E731
    x = torch.tensor([[0.35, 0.55, 3.0, 0.0]], dtype=torch.float64)
    e_s = (x * Sp.mask(x, "1:2") - x).abs().sum()
    e_q = (q(x) - x).abs().sum()
    e_qs = (Sp.q_then_s(x, "1:2", q) - x).abs().sum()
    e_sq = (Sp.s_then_q(x, "1:2", q) - x).abs().sum()
    assert e_qs > e_s + e_q + 0.04 and e_sq <= e_s + e_q


def test_compressed_linear_forward_and_straight_through_gradient():
    from companion.compress.layers import CompressedLinear, Spec
    torch.manual_seed(0)
    dense = torch.nn.Linear(64, 8).double()
    spec = Spec("2:4", "int4", "sq")
    layer = CompressedLinear(dense, spec)
    x = torch.randn(5, 64, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    w_c = Fm.int_quant(dense.weight.detach() * Sp.nm_mask(dense.weight.detach(), 2, 4), 4)
    assert torch.allclose(y, torch.nn.functional.linear(Fm.int_quant(x.detach(), 4), w_c, dense.bias))
    y.sum().backward()
    # straight-through: d(sum y)/dW = sum over the batch of the (compressed) inputs, for every weight
    assert torch.allclose(layer.weight.grad, Fm.int_quant(x.detach(), 4).sum(0).expand(8, 64))
    assert torch.allclose(x.grad, w_c.sum(0).expand(5, 64))


def test_compress_model_skips_the_head():
    from companion.compress.layers import CompressedLinear, Spec, compress_model
    model = torch.nn.Sequential()
    model.add_module("fc", torch.nn.Linear(8, 8))
    model.add_module("lm_head", torch.nn.Linear(8, 4))
    compress_model(model, Spec("50%", "mxfp4"))
    assert isinstance(model.fc, CompressedLinear) and not isinstance(model.lm_head, CompressedLinear)
    with pytest.raises(ValueError, match="order must be"):
        Spec("2:4", "int8", "xy").weight(torch.ones(4, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_block_exponent_is_exact_one_ulp_below_powers_of_two(dtype):
    from companion.compress import formats as F
    powers = torch.tensor([2.0 ** k for k in range(-10, 11)], dtype=dtype)
    below = torch.nextafter(powers, torch.zeros_like(powers))  # one ulp below 2^k: floor(log2) = k - 1
    k = torch.arange(-10, 11).to(dtype)
    assert torch.equal(F.floor_log2(powers), k) and torch.equal(F.floor_log2(below), k - 1)
    assert torch.equal(F.ceil_log2(powers), k) and torch.equal(F.ceil_log2(below), k)
    # the MX block scale of a block whose max is one ulp below 2^k is 2^(k - 1 - emax), as OCP defines
    x = torch.zeros(32, dtype=dtype)
    x[0] = below[12]  # just below 2^2
    q = F.mx(x.float(), "fp8_e4m3")
    assert q[0] == pytest.approx(float(below[12]), rel=2 ** -3)
