"""A SYNTHETIC grade file with exactly the released schema, to exercise the pipeline offline.

Nothing here is the paper's data. Identifiers are visibly synthetic (course "SYN-C001",
question "SYN-Q00001", program "Synthetic program A", model "synthetic-strong"); only the
vocabularies that are labels rather than data are the release's (question types, the
released prompt_type strings, english/french, bachelor/master/online). The defaults are
deliberately unlike the paper's headline numbers, so that a synthetic figure can never pass
for a reproduction; the real course list and programs are never used.

Model: a question q of course k has a difficulty l_q ~ N(mu + o_k, sigma^2), with a course
offset o_k ~ N(0, course_sigma^2), shared by every model and strategy (this is what
correlates the strategies), and

    p_{q,m,s} = sigmoid(l_q + delta_m + delta_s + delta_open 1[open] + delta_fr 1[french]),
    c_{q,m,s} ~ Bernoulli(p_{q,m,s}).

MCQ have `n_options` options (a share `multi_share` with two correct ones); a correct answer
selects the gold set, a wrong one a random other set. An open answer that is correct is
graded "correct" with probability `p_top` and "almost correct" otherwise; a wrong one "mostly
incorrect" with probability `p_near_miss`, else "wrong answer". Self-refine rows exist on MCQ
only, as in the paper. `truth()` gives the expected per-strategy accuracies (conditional on
the drawn difficulties) and their standard errors, from the per-row probabilities.
"""
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from companion.assessment.released import COLUMNS, LEVEL_VALUE
from companion.results import atomic_write_bytes, atomic_write_json

# the released prompt_type strings (model_answers_*.json), then self-refine and expert
# prompting, whose CSV strings are not documented (ours)
STRATEGIES = ("zero_shot", "one_shot", "cot_zero_shot", "cot_four_shot", "tree_of_thought", "metacog",
              "self_refine", "expert_prompting")
MCQ_ONLY = ("self_refine",)
YEARS = ("bachelor", "master", "online")


@dataclass(frozen=True)
class Spec:
    n_courses: int = 50
    questions_per_course: int = 112  # the mean; sizes are drawn in [q/2, 3q/2]
    n_programs: int = 5
    mcq_share: float = 0.5
    french_share: float = 0.3
    multi_share: float = 0.1
    n_options: int = 4
    mu: float = 0.2
    sigma: float = 1.2
    course_sigma: float = 0.5  # a course-level offset ~ N(0, course_sigma^2), so that courses differ
    model_offsets: dict = field(default_factory=lambda: {"synthetic-strong": 0.0, "synthetic-weak": -1.0})
    strategy_offsets: dict = field(default_factory=lambda: dict(zip(
        STRATEGIES, (0.0, 0.1, 0.2, 0.3, 0.15, 0.05, 0.25, 0.2))))
    open_offset: float = -0.6
    french_offset: float = -0.2
    p_top: float = 0.7
    p_near_miss: float = 0.4
    labels: bool = True  # grades as labels (True) or numbers (False)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _courses(spec: Spec, rng) -> pd.DataFrame:
    programs = [f"Synthetic program {chr(65 + i)}" for i in range(spec.n_programs)]
    lo, hi = max(1, spec.questions_per_course // 2), max(1, (3 * spec.questions_per_course) // 2)
    return pd.DataFrame({
        "course_id": [f"SYN-C{k + 1:03d}" for k in range(spec.n_courses)],
        "program": rng.choice(programs, spec.n_courses),
        "language": np.where(rng.random(spec.n_courses) < spec.french_share, "french", "english"),
        "year": rng.choice(YEARS, spec.n_courses),
        "n_questions": rng.integers(lo, hi + 1, spec.n_courses),
        "offset": rng.normal(0.0, spec.course_sigma, spec.n_courses)})


def _wrong(gold: tuple, n_options: int, rng) -> tuple:
    """A random option set other than gold (a single option, or a pair for a multi-answer gold)."""
    while True:
        k = len(gold)
        pick = tuple(sorted(rng.choice(n_options, k, replace=False).tolist()))
        if pick != gold:
            return pick


def _index_text(ix: tuple) -> str:
    return str(ix[0]) if len(ix) == 1 else "[" + ", ".join(map(str, ix)) + "]"


def generate(spec: Spec, seed: int) -> tuple:
    """(frame of the eleven released columns as text, per-row success probabilities)."""
    rng = np.random.default_rng(seed)
    courses = _courses(spec, rng)
    rows, probs, qn = [], [], 0
    for c in courses.itertuples():
        for _ in range(int(c.n_questions)):
            qn += 1
            qid = f"SYN-Q{qn:05d}"
            mcq = rng.random() < spec.mcq_share
            level = rng.normal(spec.mu, spec.sigma) + c.offset + (0 if mcq else spec.open_offset) \
                + (spec.french_offset if c.language == "french" else 0)
            gold = None
            if mcq:
                k = 2 if rng.random() < spec.multi_share else 1
                gold = tuple(sorted(rng.choice(spec.n_options, k, replace=False).tolist()))
            for model, dm in spec.model_offsets.items():
                for s, ds in spec.strategy_offsets.items():
                    if s in MCQ_ONLY and not mcq:
                        continue
                    p = float(sigmoid(level + dm + ds))
                    ok = rng.random() < p
                    if mcq:
                        sel = gold if ok else _wrong(gold, spec.n_options, rng)
                        grade = "correct" if ok else "wrong answer"
                    else:
                        sel = None
                        if ok:
                            grade = "correct" if rng.random() < spec.p_top else "almost correct"
                        else:
                            grade = "mostly incorrect" if rng.random() < spec.p_near_miss else "wrong answer"
                    rows.append((c.course_id, qid, "mcq" if mcq else "open_answer", s, model,
                                 _index_text(gold) if mcq else "", _index_text(sel) if mcq else "",
                                 grade if spec.labels else f"{LEVEL_VALUE[grade]:.4f}", c.language,
                                 c.program, c.year))
                    probs.append(p)
    return pd.DataFrame(rows, columns=list(COLUMNS)), np.array(probs)


def truth(frame: pd.DataFrame, p: np.ndarray, spec: Spec) -> dict:
    """The generator's expected accuracies given the drawn difficulties: per model and
    binarisation, per strategy (mean of the per-row success probabilities; under B1 an open
    answer counts only when graded "correct", probability p_top p) with its standard error,
    the macro mean and the expected "any strategy" rate."""
    out = {"data_source": "synthetic", "spec": asdict(spec), "expected": {}}
    mcq = (frame.question_type == "mcq").to_numpy()
    for b in ("B1", "B2"):
        pb = p if b == "B2" else np.where(mcq, p, spec.p_top * p)
        f = frame.assign(pb=pb, miss=np.log1p(-np.minimum(pb, 1 - 1e-15)))
        for model, rows in f.groupby("model"):
            g = rows.groupby("prompt_type").pb
            acc = g.mean()
            se = g.apply(lambda x: math.sqrt(float((x * (1 - x)).sum())) / len(x))
            any_ = 1 - np.exp(rows.groupby("question_id").miss.sum())
            out["expected"].setdefault(model, {})[b] = {
                "per_strategy": {s: float(v) for s, v in acc.items()},
                "se": {s: float(v) for s, v in se.items()},
                "macro": float(acc.mean()), "any": float(any_.mean())}
    return out


def write(frame: pd.DataFrame, p: np.ndarray, spec: Spec, path) -> tuple:
    """Write the CSV and its sidecar `<name>.truth.json` (ground truth, data_source); returns both paths."""
    from pathlib import Path
    path = Path(path)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())
    side = path.with_name(path.stem + ".truth.json")
    atomic_write_json(side, truth(frame, p, spec))
    return path, side


def read_truth(path) -> dict:
    return json.loads(open(path).read())
