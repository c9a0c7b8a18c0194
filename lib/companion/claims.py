"""Claims: a paper's headline statement checked against this run's numbers, over seeds.

A claim reads one number from a run's metrics (`our_value`) and states, before the run, the
rule that number must pass (`rule`: `below`, `above`, `within`). When the metrics hold one
entry per seed (`metrics["per_seed"]`, a list of per-seed metric dicts), the claim is read on
every seed and on the mean across seeds, and gets one of three verdicts:

* **holds**: the rule holds on the mean, on every seed, and on the whole 95% interval of
  the mean (Student t over seeds), so that the result is not a lucky draw;
* **mixed**: the rule holds on some seeds, or the interval straddles the threshold;
* **fails**: the rule holds on no seed.

With a single value (`scope="run"`, or a chapter without seeds) the verdict is holds or
fails, and the row says `n_seeds = 1`. "Matches" is `within(lo, hi)` (two-sided), "beats"
and "does not reach" are strict. A check that is true by construction of the setup (a ratio
fixed by the chosen step counts, an identity of the algorithm) is a `Verification`, shown in
its own table, not a claim. tests/test_claims.py feeds each claim metrics that make it fail.
"""
import math
from dataclasses import dataclass
from typing import Callable, Union

import pandas as pd
from scipy import stats

from companion.plotting import html_table

VERDICTS = ("holds", "mixed", "fails")


@dataclass(frozen=True)
class Rule:
    """The pre-stated test on a number: lo < x < hi (strict ends) or lo <= x <= hi."""
    lo: float = -math.inf
    hi: float = math.inf
    strict: bool = True

    def __call__(self, x: float) -> bool:
        if x is None or not math.isfinite(x):
            return False
        if self.strict:
            return self.lo < x < self.hi
        return self.lo <= x <= self.hi


def below(threshold: float, strict: bool = True) -> Rule:
    """x < threshold ("beats", "does not reach" when read as a difference)."""
    return Rule(hi=threshold, strict=strict)


def above(threshold: float, strict: bool = True) -> Rule:
    return Rule(lo=threshold, strict=strict)


def within(lo: float, hi: float) -> Rule:
    """lo <= x <= hi: "matches", two-sided."""
    return Rule(lo=lo, hi=hi, strict=False)


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # the paper's statement, as we test it
    paper_value: str  # the paper's number or wording, with its figure
    our_value: Callable[[dict], float]  # read from one seed's metrics (or the run's, scope="run")
    rule: Union[Rule, Callable[[float], bool]]  # the pre-stated test on our value
    test: str  # the test in words, shown in the table (say so if it was chosen after a run)
    fmt: str = "{:.4g}"
    scope: str = "per_seed"  # "per_seed": read on every seed; "run": one value for the run

    def values(self, metrics: dict) -> list:
        if self.scope == "per_seed" and metrics.get("per_seed"):
            return [float(self.our_value(m)) for m in metrics["per_seed"]]
        return [float(self.our_value(metrics))]

    def evaluate(self, metrics: dict, scale: str) -> dict:
        vals = self.values(metrics)
        s = summarize(vals)
        verdict, k = decide(self.rule, vals, s)
        text = self.fmt.format(s["mean"]) if math.isfinite(s["mean"]) else "—"
        if len(vals) > 1:
            text += f" (sd {_fmt_sd(self.fmt, s['sd'])}; seeds " + ", ".join(self.fmt.format(v) for v in vals) + ")"
        return {"id": self.id, "claim": self.claim, "paper_value": self.paper_value,
                "our_value": _finite(s["mean"]), "our_value_text": text, "test": self.test,
                "per_seed": [_finite(v) for v in vals], "n_seeds": len(vals), "k_holds": k,
                "mean": _finite(s["mean"]), "sd": _finite(s["sd"]), "ci95": s["ci95"],
                "verdict": verdict, "holds": verdict == "holds", "scale": scale}


@dataclass(frozen=True)
class Verification:
    """A check of the implementation or of the set-up (an identity, a ratio fixed by the
    chosen step counts): it must hold, but it is no evidence for the paper."""
    id: str
    check: str
    our_value: Callable[[dict], float]
    rule: Union[Rule, Callable[[float], bool]]
    test: str
    fmt: str = "{:.4g}"

    def evaluate(self, metrics: dict) -> dict:
        v = float(self.our_value(metrics))
        return {"id": self.id, "check": self.check, "our_value": _finite(v), "our_value_text": self.fmt.format(v),
                "test": self.test, "passes": bool(self.rule(v))}


def summarize(vals) -> dict:
    """Mean, sample sd and the 95% Student-t interval of the mean (None for one value)."""
    n = len(vals)
    mean = sum(vals) / n
    if n < 2 or not all(math.isfinite(v) for v in vals):
        return {"mean": mean, "sd": math.nan, "ci95": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def decide(rule, vals, s=None):
    """(verdict, number of seeds on which the rule holds); see the module docstring."""
    s = s or summarize(vals)
    k = sum(bool(rule(v)) for v in vals)
    if len(vals) == 1:
        return ("holds" if k else "fails"), k
    if k == 0:
        return "fails", 0
    interval_ok = s["ci95"] is not None and rule(s["ci95"][0]) and rule(s["ci95"][1])
    return ("holds" if k == len(vals) and rule(s["mean"]) and interval_ok else "mixed"), k


def _fmt_sd(fmt, sd):
    return fmt.replace("+", "").format(sd) if math.isfinite(sd) else "—"


def _finite(x):
    return x if isinstance(x, float) and math.isfinite(x) else None


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


def verify(checks, metrics: dict) -> list:
    return [c.evaluate(metrics) for c in checks]


MARK = {"holds": "✓ holds", "mixed": "≈ mixed", "fails": "✗ fails"}


def verdict_text(row: dict) -> str:
    """'✓ holds (3/3 seeds)'; a row without seeds (a chapter before contract v2) reads as one seed."""
    verdict = verdict_of(row)
    n = row.get("n_seeds", 1)
    return f"{MARK[verdict]} ({row.get('k_holds', int(row['holds']))}/{n} seed{'s' if n > 1 else ''})"


def verdict_of(row: dict) -> str:
    """holds / mixed / fails; a row from before contract v2 has only the boolean."""
    return row.get("verdict") or ("holds" if row["holds"] else "fails")


def verdict_counts(rows: list) -> str:
    """'7 hold, 2 mixed, 1 fail (of 10 claims)'."""
    n = {v: sum(verdict_of(r) == v for r in rows) for v in VERDICTS}
    return f"{n['holds']} hold, {n['mixed']} mixed, {n['fails']} fail (of {len(rows)} claims)"


def frame(rows: list, published: list = None) -> pd.DataFrame:
    """The claims table as a DataFrame: verdict first, then the claim, ours, the paper's, the test.
    With `published` (the committed run's rows), a column shows that run's verdict."""
    df = pd.DataFrame({"verdict": [verdict_text(r) for r in rows], "claim": [r["claim"] for r in rows],
                       "ours": [r["our_value_text"] for r in rows], "paper": [r["paper_value"] for r in rows],
                       "test": [r["test"] for r in rows]})
    if published is not None:
        pub = {r.get("id"): r for r in published}
        df.insert(1, "published run", [verdict_text(pub[r["id"]]) if r.get("id") in pub else "—" for r in rows])
    return df


def table(rows: list, published: list = None):
    """The claims table as readers see it (HTML without the index column)."""
    return html_table(frame(rows, published))


def verification_table(rows: list):
    df = pd.DataFrame({"check": [r["check"] for r in rows], "ours": [r["our_value_text"] for r in rows],
                       "test": [r["test"] for r in rows],
                       "passes": ["✓ yes" if r["passes"] else "✗ no" for r in rows]})
    return html_table(df)


def seed_stats(per_seed: list) -> dict:
    """{"mean": ..., "sd": ...}: the per-seed metric dicts reduced leaf by leaf (numbers only;
    dicts recursively), so that the prose can quote means and spreads from metrics.json."""
    def reduce(items, fn):
        first = items[0]
        if isinstance(first, dict):
            return {k: reduce([x[k] for x in items], fn) for k in first
                    if all(isinstance(x, dict) and k in x for x in items)}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            vals = [math.nan if x is None else float(x) for x in items]
            return _finite(fn(vals))
        return None
    mean = reduce(per_seed, lambda v: sum(v) / len(v))
    sd = reduce(per_seed, lambda v: summarize(v)["sd"])
    return {"mean": mean, "sd": sd}
