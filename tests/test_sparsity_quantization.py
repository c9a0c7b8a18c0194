"""The sparsity-quantization experiment and report against independent computations: the
tensor errors of a case with exact quantization, the per-block outputs of the GPT, and the
orthogonality bound on a constructed grid."""
import math

import pandas as pd
import pytest
import torch

from companion.experiments import sparsity_quantization as E
from companion.models.gpt import GPT, GPTConfig
from companion.params import ParamError
from companion.reports import sparsity_quantization as R


def test_tensor_errors_when_quantization_is_exact():
    """Distinct integers up to 127 with a block maximum of 127 are HBFP8 values (step 1): Q is
    the identity, so S->Q = Q->S = S, eps_Q = 0, no mismatch; eps_S is the pruned part, the
    two smallest magnitudes of every group of 4."""
    g = torch.Generator().manual_seed(0)
    mags = torch.stack([torch.randperm(126, generator=g)[:63] + 1 for _ in range(3)]).float()
    x = torch.cat([torch.full((3, 1), 127.0), mags], 1) * torch.where(torch.rand(3, 64, generator=g) < 0.5, -1, 1)
    row = E.tensor_errors(x, "2:4", "hbfp8")
    pruned = x.abs().reshape(3, 16, 4).sort(-1).values[..., :2]
    assert row["l1_Q"] == 0 and row["mismatch"] == 0
    assert row["l1_S"] == pytest.approx(pruned.sum().item())
    assert row["l2_S"] == pytest.approx((pruned.square().sum() / x.square().sum()).sqrt().item(), rel=1e-6)
    assert row["l1_SQ"] == row["l1_QS"] == row["l1_S"] and row["l2_SQ"] == row["l2_QS"] == row["l2_S"]


def test_tensor_errors_stochastic_rounding_is_paired_and_seeded():
    x = 0.02 * torch.randn(16, 64, generator=torch.Generator().manual_seed(3))
    a = E.tensor_errors(x, "2:4", "hbfp4", "stochastic", seed=5)
    assert a == E.tensor_errors(x, "2:4", "hbfp4", "stochastic", seed=5)
    assert a != E.tensor_errors(x, "2:4", "hbfp4", "stochastic", seed=6)
    assert a["l1_SQ"] <= a["l1_S"] + a["l1_Q"] * (1 + 1e-6)  # Thm 3.5 with the same noise in both


def test_block_outputs_are_the_residual_stream_and_the_logits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, seq_len=8, n_layer=3, n_head=2, d_model=16, style="gpt2")).eval()
    x = torch.randint(0, 11, (2, 8))
    outs = E.block_outputs(model, [(x, None)], torch.device("cpu"))
    assert len(outs) == 4
    with torch.no_grad():
        h = model.wte(x) + model.wpe(torch.arange(8))
        for i, block in enumerate(model.blocks):
            h = block(h)
            assert torch.allclose(outs[i], h)
        assert torch.allclose(outs[-1], model(x)[0])


def test_linear_inputs_reproduce_each_layer_output():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, seq_len=8, n_layer=2, n_head=2, d_model=16, style="gpt2")).eval()
    seen = E.linear_inputs(model, [(torch.randint(0, 11, (2, 8)), None)], torch.device("cpu"))
    assert set(seen) == {f"blocks.{i}.{m}" for i in range(2) for m in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}
    w, x = seen["blocks.1.mlp.fc"]
    assert w.shape == (64, 16) and x.shape == (16, 16)


def _grid(dense, s_ft, q, sq):
    rows = [dict(stage="one-shot", order="dense", sparsity="", format="", ce=dense),
            dict(stage="one-shot", order="Q", sparsity="", format="int4", ce=q),
            dict(stage="sparse-ft", order="S", sparsity="2:4", format="", ce=s_ft),
            dict(stage="sparse-ft", order="sq", sparsity="2:4", format="int4", ce=sq)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("sq,above", [(2.40, True), (2.25, False)])
def test_orthogonality_bound_is_dense_plus_both_degradations(sq, above):
    cfg = E.Config(sparsities=("2:4",), formats=("int4",), ft_formats=("int4",))
    o = R.orthogonality(_grid(2.0, 2.1, 2.2, sq), cfg).iloc[0]
    assert o.bound == pytest.approx(2.3) and (o.excess > 0) == above
    assert o.ppl_bound == pytest.approx(math.exp(2.1) + math.exp(2.2) - math.exp(2.0))


@pytest.mark.parametrize("change,message", [
    (dict(ft_formats=("int4",), formats=("int8",)), "subset of formats"),
    (dict(d_model=66, n_head=2), "divisible by 4"),
    (dict(tensor_shape=(64, 250)), "divisible by 4"),
    (dict(sparsities=("2:4", "2:4")), "distinct"),
])
def test_bad_configurations_are_refused(change, message):
    with pytest.raises(ParamError, match=message):
        E.Config(**change).validate()


def test_presets_are_valid():
    for cfg in E.SCALES.values():
        cfg.validate()
