"""The paper's metrics on per-question grades (question q, model m, strategy s).

Correctness c_{q,m,s} in {0, 1}:

* MCQ: 1[selected option set = gold set] (an exact match for multi-answer questions); the
  partial credit |sel ∩ gold| / |sel ∪ gold| is reported beside it;
* open answers, two binarisations of the grader's four levels: B1 = 1[correct] and
  B2 = 1[correct or almost correct]. A numeric grade is read as B1 = 1[grade = 1] and
  B2 = 1[grade >= 1/2] (our reading: the release does not document its encoding).

S_{q,m} is the set of strategies with a row for (q, m): eight on MCQ and seven on open
questions when self-refine is MCQ-only, so nothing here assumes eight. Per model:

* acc_{m,s} = mean of c over the questions that have strategy s;
* macro = (1/|S|) sum_s acc_{m,s}; micro = sum_{q,s} c / sum_q |S_{q,m}|;
* any = mean_q max_s c, all = mean_q min_s c, mean_q = mean_s c (the per-question mean);
* majority: on MCQ the plurality of the selected option sets over S_{q,m}, correct iff it is
  unique and equals gold (a tie counts as wrong; `majority_tie_correct` counts a tie as
  right when gold is among the tied sets); on open answers 1[sum_s c > |S_{q,m}| / 2];
* a course's score under an aggregate (one strategy, mean, majority, any, all) is the mean of
  the per-question value over its questions (questions weighted equally: the points of the
  real exams are not released); the course passes iff score >= tau; a program's pass rate is
  the fraction of its courses that pass.
"""
from collections import Counter

import numpy as np
import pandas as pd

BINARISATIONS = ("B1", "B2")
AGGREGATES = ("mean", "majority", "any", "all")
BREAKDOWNS = ("question_type", "language", "year", "program")
QUESTION_EXTRAS = ("blooms_rating", "question_difficulty")  # from questions.json, when joined


def tau_key(tau: float) -> str:
    return f"{tau:g}"


def correctness(frame: pd.DataFrame, b: str) -> np.ndarray:
    """c_{q,m,s} per row under binarisation b (B1 or B2); MCQ rows by exact match."""
    if b not in BINARISATIONS:
        raise ValueError(f"binarisation {b!r}: allowed {', '.join(BINARISATIONS)}")
    mcq = (frame.question_type == "mcq").to_numpy()
    exact = np.array([s is not None and s == g for s, g in zip(frame.selected, frame.gold)], dtype=float)
    v = frame.grade_value.to_numpy(dtype=float)
    graded = (v >= 1 - 1e-9) if b == "B1" else (v >= 0.5)
    return np.where(mcq, exact, graded.astype(float))


def partial_credit(frame: pd.DataFrame) -> np.ndarray:
    """|sel ∩ gold| / |sel ∪ gold| per MCQ row (no answer: 0); NaN on open rows."""
    out = []
    for s, g in zip(frame.selected, frame.gold):
        if g is None:
            out.append(np.nan)
        else:
            s = set(s or ())
            out.append(len(s & set(g)) / len(s | set(g)))
    return np.array(out)


def _plurality(votes: list, gold) -> tuple:
    """(majority correct, tie, tie-correct sensitivity) of one MCQ question's selected sets."""
    counts = Counter(votes).most_common()
    top = [v for v, n in counts if n == counts[0][1]]
    if len(top) > 1:
        return 0.0, 1, float(gold in top)
    return float(top[0] == gold), 0, float(top[0] == gold)


def per_question(frame: pd.DataFrame, b: str) -> pd.DataFrame:
    """One row per (model, question): |S|, mean, any, all, majority (and its tie flags) of c."""
    f = frame[["model", "question_id", "course_id", "question_type", "language", "year", "program"]].copy()
    f["c"] = correctness(frame, b)
    out = f.groupby(["model", "question_id"], sort=True).agg(
        course_id=("course_id", "first"), question_type=("question_type", "first"), language=("language", "first"),
        year=("year", "first"), program=("program", "first"), n_strategies=("c", "size"), correct=("c", "sum"),
        mean=("c", "mean"), any=("c", "max"), all=("c", "min"))
    votes, gold = {}, {}
    for key, sel, g, t in zip(zip(frame.model, frame.question_id), frame.selected, frame.gold, frame.question_type):
        if t == "mcq":
            votes.setdefault(key, []).append(sel)
            gold[key] = g
    maj, tie, tie_ok = [], [], []
    for key, qtype, correct, n in zip(out.index, out.question_type, out.correct, out.n_strategies):
        if qtype == "mcq":
            m, t, k = _plurality(votes[key], gold[key])
        else:
            m = float(correct > n / 2)
            t, k = 0, m
        maj.append(m)
        tie.append(t)
        tie_ok.append(k)
    out["majority"], out["tie"], out["majority_tie_correct"] = maj, tie, tie_ok
    return out.reset_index()


def summary(frame: pd.DataFrame, b: str, pq: pd.DataFrame = None) -> dict:
    """model -> acc per strategy, macro, micro, any, all, majority, ties, n questions (see the
    module docstring); `pq` is per_question(frame, b) when already computed."""
    c = correctness(frame, b)
    pq = per_question(frame, b) if pq is None else pq
    out = {}
    for model, rows in frame.assign(c=c).groupby("model", sort=True):
        acc = rows.groupby("prompt_type").c.mean()
        q = pq[pq.model == model]
        mcq_only = rows.groupby("prompt_type").question_type.apply(lambda t: bool((t == "mcq").all()))
        out[model] = {"per_strategy": {s: float(v) for s, v in acc.items()},
                      "n_per_strategy": {s: int(n) for s, n in rows.groupby("prompt_type").size().items()},
                      "mcq_only": {s: bool(v) for s, v in mcq_only.items()},
                      "macro": float(acc.mean()), "micro": float(rows.c.sum() / q.n_strategies.sum()),
                      **{a: float(q[a].mean()) for a in ("any", "all", "majority", "majority_tie_correct")},
                      "ties": int(q.tie.sum()), "n_questions": int(len(q))}
    return out


def extras(frame: pd.DataFrame) -> dict:
    """model -> MCQ partial credit, mean raw grade of open answers, and the rate at which the
    `grade` column disagrees with the index comparison on MCQ rows (grade >= 1/2 read as right)."""
    out = {}
    pc = partial_credit(frame)
    exact = correctness(frame, "B2")
    for model in sorted(frame.model.unique()):
        rows = (frame.model == model).to_numpy()
        mcq = rows & (frame.question_type == "mcq").to_numpy()
        open_ = rows & ~mcq
        by_grade = frame.grade_value.to_numpy(dtype=float)[mcq] >= 0.5
        out[model] = {"mcq_partial_credit": float(np.nanmean(pc[mcq])) if mcq.any() else None,
                      "mcq_exact": float(exact[mcq].mean()) if mcq.any() else None,
                      "open_mean_raw_grade": float(frame.grade_value[open_].mean()) if open_.any() else None,
                      "mcq_grade_disagreement": float((by_grade != exact[mcq].astype(bool)).mean())
                      if mcq.any() else None}
    return out


def breakdowns(frame: pd.DataFrame, b: str, pq: pd.DataFrame, by=BREAKDOWNS) -> dict:
    """column -> value -> summary of the rows with that value (questions.json's blooms_rating
    and question_difficulty too when the frame carries them); `pq` is per_question(frame, b)."""
    out = {}
    for col in by:
        if col not in frame.columns:
            continue
        if col not in pq.columns:
            pq = pq.merge(frame[["question_id", col]].drop_duplicates("question_id"), on="question_id")
        out[col] = {str(v): summary(rows, b, pq[pq[col] == v]) for v, rows in frame.groupby(col, sort=True)}
    return out


def course_scores(pq: pd.DataFrame, frame: pd.DataFrame, b: str) -> dict:
    """model -> course -> aggregate -> score (one strategy's name is an aggregate too), and the
    number of questions per course."""
    per_strategy = frame.assign(c=correctness(frame, b)).groupby(["model", "course_id", "prompt_type"]).c.mean()
    agg = pq.groupby(["model", "course_id"])[list(AGGREGATES)].mean()
    n = pq.groupby(["model", "course_id"]).size()
    out = {}
    for (model, course), row in agg.iterrows():
        d = out.setdefault(model, {})
        d[course] = {"n_questions": int(n[(model, course)]), **{a: float(row[a]) for a in AGGREGATES},
                     **{s: float(v) for s, v in per_strategy[(model, course)].items()}}
    return out


def pass_rates(scores: dict, taus, aggregates) -> dict:
    """aggregate -> tau -> fraction of courses with score >= tau (courses lacking an aggregate,
    e.g. a strategy they have no rows for, are left out of that aggregate's rate)."""
    out = {}
    for a in aggregates:
        vals = [d[a] for d in scores.values() if a in d]
        out[a] = {tau_key(t): float(np.mean([v >= t for v in vals])) if vals else None for t in taus}
    return out


def program_table(scores: dict, programs: dict, taus, aggregates) -> dict:
    """program -> {"n_courses", "pass": aggregate -> tau -> rate} for one model's course scores;
    `programs` maps course_id -> program."""
    out = {}
    for p in sorted(set(programs[k] for k in scores)):
        sub = {k: v for k, v in scores.items() if programs[k] == p}
        out[p] = {"n_courses": len(sub), "pass": pass_rates(sub, taus, aggregates)}
    return out


def analyse(frame: pd.DataFrame, taus, tau_grid) -> dict:
    """Everything the chapter reads, per binarisation: summary, extras, breakdowns, course
    scores, pass rates over tau_grid (and the strategies), program tables at taus."""
    programs = dict(zip(frame.course_id, frame.program))
    out = {"extras": extras(frame)}
    for b in BINARISATIONS:
        pq = per_question(frame, b)
        scores = course_scores(pq, frame, b)
        strategies = sorted(frame.prompt_type.unique())
        out[b] = {"summary": summary(frame, b, pq),
                  "breakdowns": breakdowns(frame, b, pq, BREAKDOWNS + QUESTION_EXTRAS),
                  "courses": scores,
                  "pass_rate": {m: pass_rates(s, tau_grid, AGGREGATES + tuple(strategies)) for m, s in scores.items()},
                  "programs": {m: program_table(s, programs, taus, AGGREGATES) for m, s in scores.items()},
                  "invariants": invariants(pq, scores, tau_grid)}
    return out


def invariants(pq: pd.DataFrame, scores: dict, tau_grid) -> dict:
    """Violations of what must hold on any data for binary c: per question all <= majority <=
    any and all <= mean <= any; every course pass rate non-increasing in tau."""
    order = int(((pq["all"] > pq.majority) | (pq.majority > pq["any"]) | (pq["all"] > pq["mean"] + 1e-12)
                 | (pq["mean"] > pq["any"] + 1e-12)).sum())
    taus = sorted(tau_grid)
    mono = 0
    for s in scores.values():
        rates = pass_rates(s, taus, AGGREGATES)
        for a in AGGREGATES:
            r = [rates[a][tau_key(t)] for t in taus]
            mono += int(any(y > x for x, y in zip(r, r[1:])))
    return {"order_violations": order, "monotone_violations": mono}
