"""Every claim can fail: fed metrics that contradict the paper, it reports holds = false."""
import pytest

from companion import claims as C
from companion.reports import scaling_cooldown as E

# metrics that agree with the paper (calibration-like numbers)
AGREE = {
    "cd_vs_cos_rel_gap_max": -0.01, "sqrt_minus_linear": -0.006, "short_minus_main_cooldown": 0.01,
    "long_minus_main_cooldown": 0.002, "swa_minus_constant": -0.09, "cooldown_minus_swa": -0.01,
    "cycle_mismatch": 0.05, "scaling_rel_gap_worst": -0.005, "scaling_rel_gap_max_abs": 0.01, "compute_ratio": 0.6,
}
# for each claim: a change of the metrics under which the paper's claim is false
CONTRADICT = {
    "wsd-matches-cosine": {"cd_vs_cos_rel_gap_max": 0.03},
    "sqrt-beats-linear": {"sqrt_minus_linear": 0.02},
    "cooldown-length": {"short_minus_main_cooldown": -0.01},
    "cooldown-plateau": {"long_minus_main_cooldown": -0.05},
    "swa-helps": {"swa_minus_constant": -0.01},
    "swa-below-cooldown": {"cooldown_minus_swa": 0.02},
    "cycle-mismatch": {"cycle_mismatch": -0.01},
    "scaling-no-worse": {"scaling_rel_gap_worst": 0.02},
    "scaling-diagonal": {"scaling_rel_gap_max_abs": 0.05},
    "compute-saved": {"compute_ratio": 0.9},
}


def test_every_claim_has_a_counterexample():
    assert {c.id for c in E.CLAIMS} == set(CONTRADICT)


@pytest.mark.parametrize("claim", E.CLAIMS, ids=lambda c: c.id)
def test_claim_holds_and_fails(claim):
    assert claim.evaluate(AGREE, "cpu")["holds"] is True
    row = claim.evaluate({**AGREE, **CONTRADICT[claim.id]}, "cpu")
    assert row["holds"] is False


def test_rows_have_the_contract_schema():
    rows = C.evaluate(E.CLAIMS, AGREE, "cpu")
    for r in rows:
        assert {"claim", "paper_value", "our_value", "holds", "scale"} <= set(r)
        assert isinstance(r["our_value"], float) and r["scale"] == "cpu"
    df = C.table(rows)
    assert list(df["verdict"].unique()) == ["reproduced"]
