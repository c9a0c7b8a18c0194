"""Every warmup claim can fail: fed metrics that contradict the paper, it reports holds = false."""
import pytest

from companion.reports import warmup as E

# metrics that agree with the paper (calibration-like numbers)
AGREE = {
    "adamw_gap_high_lr": 0.2, "adamw_gap_low_lr": 0.01, "permanent_gap": 0.02,
    "early_angle_over_equilibrium": {"no_warmup": 30.0, "warmup": 0.5},
    "max_warmup_angle_over_equilibrium": {"no_warmup": 50.0, "warmup": 1.2},
    "liona_minus_lionar_max_gap": 0.3, "lionar_over_adamw_max_gap": 0.1, "snr_early_over_late": 8.0,
    "hm_no_warmup_minus_best_lionar_warmup": -0.01,
}
CONTRADICT = {
    "adamw-warmup-gap": {"adamw_gap_high_lr": 0.01},
    "gap-grows-with-lr": {"adamw_gap_low_lr": 0.15},
    "permanent-gap": {"permanent_gap": -0.01},
    "early-angle-large": {"early_angle_over_equilibrium": {"no_warmup": 1.5, "warmup": 0.5}},
    "warmup-angle-bounded": {"max_warmup_angle_over_equilibrium": {"no_warmup": 50.0, "warmup": 6.0}},
    "liona-needs-warmup": {"liona_minus_lionar_max_gap": 0.02},
    "lionar-reduces-need": {"lionar_over_adamw_max_gap": 0.9},
    "snr-high-early": {"snr_early_over_late": 1.2},
    "hm-no-warmup": {"hm_no_warmup_minus_best_lionar_warmup": 0.05},
}


def test_every_claim_has_a_counterexample():
    assert {c.id for c in E.CLAIMS} == set(CONTRADICT)


@pytest.mark.parametrize("claim", E.CLAIMS, ids=lambda c: c.id)
def test_claim_holds_and_fails(claim):
    assert claim.evaluate(AGREE, "cpu")["holds"] is True
    assert claim.evaluate({**AGREE, **CONTRADICT[claim.id]}, "cpu")["holds"] is False


def test_no_gap_at_high_lr_cannot_pass_the_lr_claim():
    # a negative or zero high-LR gap must not make "the gap grows with LR" hold by division
    claim = next(c for c in E.CLAIMS if c.id == "gap-grows-with-lr")
    assert claim.evaluate({**AGREE, "adamw_gap_high_lr": -0.01}, "cpu")["holds"] is False
