"""Claims: a paper's headline statement checked against this run's numbers.

A claim knows how to read our number from the run's metrics and the test it must pass;
`evaluate` turns a list of claims into the rows of claims.json:
{"claim", "paper_value", "our_value", "holds", "scale"}. Every claim must be able to
fail: tests/test_claims.py feeds each one metrics on which it must report holds = false.
"""
import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # the paper's statement, as we test it
    paper_value: str  # the paper's number or wording, with its figure
    our_value: Callable[[dict], float]  # read from metrics.json
    holds: Callable[[float], bool]  # the test on our value
    test: str  # the test in words, shown in the table
    fmt: str = "{:.4g}"

    def evaluate(self, metrics: dict, scale: str) -> dict:
        ours = float(self.our_value(metrics))
        return {"id": self.id, "claim": self.claim, "paper_value": self.paper_value,
                "our_value": ours if math.isfinite(ours) else None,  # None: never happened, or undefined
                "our_value_text": self.fmt.format(ours), "test": self.test,
                "holds": bool(self.holds(ours)), "scale": scale}


def finite(x):
    """inf and nan ("never", "undefined") as None, recursively, so that metrics.json is
    standard JSON."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def num(v) -> float:
    """A metric for a claim: None (never / undefined) reads as nan, which fails every test."""
    return math.nan if v is None else v


def evaluate(claims, metrics: dict, scale: str) -> list:
    return [c.evaluate(metrics, scale) for c in claims]


def table(rows: list) -> pd.DataFrame:
    """The claims table as readers see it."""
    df = pd.DataFrame(rows)
    df["verdict"] = df["holds"].map({True: "reproduced", False: "not reproduced"})
    return df[["claim", "paper_value", "our_value_text", "test", "verdict", "scale"]].rename(
        columns={"claim": "claim", "paper_value": "paper", "our_value_text": "ours"})
