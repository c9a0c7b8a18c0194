"""companion.assessment: the loader against malformed files, the metrics against a brute-force
recomputation on the same CSV, the generator against its own expectations, and the
Beta-Binomial analysis against closed forms, quadrature and the brief's derived values."""
import csv
import json
import math
import subprocess
import sys
import warnings
from collections import Counter, defaultdict

import numpy as np
import pytest
from scipy import integrate, stats

from companion import chapters, data
from companion.assessment import implied, released, scores, synthetic
from companion.experiments import ai_assessment as E
from companion.reports import ai_assessment as R
from companion.reports import ai_assessment_figures as F
from conftest import ROOT

pytestmark = pytest.mark.filterwarnings("ignore::companion.assessment.released.GradesWarning")
TAUS, GRID = (0.5, 0.6, 0.7), (0.3, 0.45, 0.5, 0.6, 0.7, 0.9)
SMALL = synthetic.Spec(n_courses=6, questions_per_course=24, multi_share=0.3)


def is_marked_synthetic(fig) -> bool:
    return any(t.get_gid() == F.WATERMARK_GID for t in fig.texts)


def write_synthetic(tmp_path, spec=SMALL, seed=0, name="g.csv"):
    frame, p = synthetic.generate(spec, seed)
    path, side = synthetic.write(frame, p, spec, tmp_path / name)
    return path, side, frame


# -------------------------------------------------------------- brute force (plain Python)

def brute_force(path):
    """The paper's metrics recomputed from the CSV with csv and loops only (no pandas)."""
    def parse_ix(s):
        s = s.strip()
        if not s:
            return None
        items = [x for x in s.strip("[]").split(",") if x.strip()]
        return tuple(sorted({int(float(x)) for x in items}))

    def level_value(g):
        g = " ".join(g.strip().lower().split())
        table = {"correct": 1.0, "almost correct": 2 / 3, "mostly correct": 2 / 3, "mostly incorrect": 1 / 3,
                 "wrong answer": 0.0}
        return table[g] if g in table else float(g)

    rows = list(csv.DictReader(open(path)))
    out = {}
    for b in ("B1", "B2"):
        c = {}
        for r in rows:
            if r["question_type"] == "mcq":
                v = 1.0 if parse_ix(r["model_selected_mcq_index"]) == parse_ix(r["correct_mcq_index"]) else 0.0
            else:
                g = level_value(r["grade"])
                v = 1.0 if (g >= 1 - 1e-9 if b == "B1" else g >= 0.5) else 0.0
            c[(r["model"], r["question_id"], r["prompt_type"])] = (v, r)
        per_model = {}
        for model in sorted({k[0] for k in c}):
            strat = defaultdict(list)
            per_q = defaultdict(list)
            for (m, q, s), (v, r) in c.items():
                if m == model:
                    strat[s].append(v)
                    per_q[q].append((v, r))
            acc = {s: sum(v) / len(v) for s, v in strat.items()}
            total = sum(len(v) for v in per_q.values())
            q_vals = {}
            for q, items in per_q.items():
                vs = [v for v, _ in items]
                r0 = items[0][1]
                if r0["question_type"] == "mcq":
                    votes = Counter(parse_ix(r["model_selected_mcq_index"]) for _, r in items)
                    top = max(votes.values())
                    winners = [k for k, n in votes.items() if n == top]
                    maj = 1.0 if len(winners) == 1 and winners[0] == parse_ix(r0["correct_mcq_index"]) else 0.0
                else:
                    maj = 1.0 if sum(vs) > len(vs) / 2 else 0.0
                q_vals[q] = {"mean": sum(vs) / len(vs), "any": max(vs), "all": min(vs), "majority": maj,
                             "course": r0["course_id"], "program": r0["program"] or released.NO_PROGRAM}
            courses = defaultdict(list)
            for v in q_vals.values():
                courses[v["course"]].append(v)
            course_scores = {k: {a: sum(v[a] for v in vs) / len(vs) for a in scores.AGGREGATES}
                             for k, vs in courses.items()}
            pass_rate = {a: {t: sum(s[a] >= t for s in course_scores.values()) / len(course_scores) for t in GRID}
                         for a in scores.AGGREGATES}
            per_model[model] = {"per_strategy": acc, "macro": sum(acc.values()) / len(acc),
                                "micro": sum(v for v, _ in c.values() if _["model"] == model) / total,
                                **{a: sum(v[a] for v in q_vals.values()) / len(q_vals)
                                   for a in ("any", "all", "majority")},
                                "courses": course_scores, "pass_rate": pass_rate}
        out[b] = per_model
    return out


@pytest.mark.parametrize("labels", [True, False])
def test_pipeline_equals_a_brute_force_recomputation(tmp_path, labels):
    spec = synthetic.Spec(n_courses=6, questions_per_course=24, multi_share=0.3, labels=labels)
    path, _, _ = write_synthetic(tmp_path, spec)
    got = scores.analyse(released.load_grades(path).frame, TAUS, GRID)
    want = brute_force(path)
    n = 0
    for b in ("B1", "B2"):
        for m, w in want[b].items():
            s = got[b]["summary"][m]
            for k in ("macro", "micro", "any", "all", "majority"):
                assert abs(s[k] - w[k]) < 1e-12, (b, m, k)
                n += 1
            for st, v in w["per_strategy"].items():
                assert abs(s["per_strategy"][st] - v) < 1e-12
            for course, agg in w["courses"].items():
                for a, v in agg.items():
                    assert abs(got[b]["courses"][m][course][a] - v) < 1e-12
            for a, per_tau in w["pass_rate"].items():
                for t, v in per_tau.items():
                    assert abs(got[b]["pass_rate"][m][a][scores.tau_key(t)] - v) < 1e-12
    assert n == 2 * 2 * 5


def _csv(tmp_path, rows, name="h.csv", header=released.COLUMNS):
    p = tmp_path / name
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return p


def test_majority_ties_and_multi_answer_by_hand(tmp_path):
    # one MCQ (gold {0, 2}) with 4 strategies: two select {0, 2}, two select {1}: a tie -> wrong,
    # correct under the tie sensitivity; one open question graded correct / almost / mostly incorrect
    mcq = [("C1", "Q1", "mcq", s, "gpt-4", "[0, 2]", sel, "0", "english", "Physics", "bachelor")
           for s, sel in (("a", "[0, 2]"), ("b", "[2, 0]"), ("c", "1"), ("d", "1.0"))]
    opn = [("C1", "Q2", "open_answer", s, "gpt-4", "", "", g, "english", "Physics", "bachelor")
           for s, g in (("a", "Correct"), ("b", "mostly correct"), ("c", "mostly incorrect"))]
    with pytest.warns(released.GradesWarning, match="4 prompting strategies"):
        g = released.load_grades(_csv(tmp_path, mcq + opn))
    s = scores.summary(g.frame, "B2")["gpt-4"]
    assert s["ties"] == 1 and s["majority"] == 0.5 and s["majority_tie_correct"] == 1.0  # open: 2 of 3 right
    assert s["any"] == 1.0 and s["all"] == 0.0 and s["per_strategy"]["c"] == 0.0
    assert s["micro"] == pytest.approx(4 / 7, abs=1e-15) and s["macro"] == 0.5  # strategies a, b right; c, d wrong
    b1 = scores.summary(g.frame, "B1")["gpt-4"]
    assert b1["majority"] == 0.0  # open: only one of three "correct"
    pc = scores.partial_credit(g.frame)
    assert list(pc[:4]) == [1.0, 1.0, 0.0, 0.0] and np.isnan(pc[4:]).all()


# -------------------------------------------------------------- the loader

def test_a_valid_file_round_trips(tmp_path):
    path, _, frame = write_synthetic(tmp_path)
    g = released.load_grades(path)
    assert g.data_source == "synthetic" and g.grade_encoding == "labels" and not g.notes
    assert list(g.frame[list(released.COLUMNS)].itertuples(index=False)) == list(frame.itertuples(index=False))
    assert g.sha256 == data.sha256(path) and g.provenance()["rows"] == len(frame)
    mcq = g.frame[g.frame.question_type == "mcq"]
    assert all(isinstance(x, tuple) for x in mcq.gold) and any(len(x) == 2 for x in mcq.gold)
    assert g.frame[g.frame.question_type == "open_answer"].gold.isna().all()
    assert set(g.strategies["synthetic-strong"]) == set(synthetic.STRATEGIES)


def _variant(tmp_path, path, edit, name):
    rows = list(csv.reader(open(path)))
    rows = edit(rows)
    p = tmp_path / name
    with open(p, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return p


def _set(rows, col, value, row=1):
    i = rows[0].index(col)
    rows[row][i] = value
    return rows


BROKEN = {
    "missing-column": (lambda r: [x[:7] + x[8:] for x in r], released.SchemaError, "missing column(s) grade"),
    "unknown-grade": (lambda r: _set(r, "grade", "half right"), released.GradeValueError, "half right"),
    "grade-out-of-range": (lambda r: _set(r, "grade", "1.5"), released.GradeValueError, "[0, 1]"),
    "duplicate-row": (lambda r: r + [r[1]], released.DuplicateRowError, "repeat"),
    "bad-question-type": (lambda r: _set(r, "question_type", "essay"), released.QuestionTypeError, "essay"),
    "bad-index": (lambda r: _set(r, "correct_mcq_index", "b"), released.IndexValueError, "correct_mcq_index"),
    "inconsistent": (lambda r: _set(r, "language", "german"), released.InconsistentQuestionError, "language"),
    "header-only": (lambda r: r[:1], released.EmptyFileError, "no rows"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_malformed_file_raises_its_error(tmp_path, case):
    path, _, _ = write_synthetic(tmp_path)
    edit, error, words = BROKEN[case]
    if case == "bad-index":  # an MCQ row
        rows = list(csv.reader(open(path)))
        k = next(i for i, r in enumerate(rows) if r[2] == "mcq")
        p = _variant(tmp_path, path, lambda r: _set(r, "correct_mcq_index", "b", row=k), case)
    else:
        p = _variant(tmp_path, path, edit, case)
    with pytest.raises(error) as e:
        released.load_grades(p)
    msg = str(e.value)
    assert "\n" not in msg and words in msg and str(p) in msg
    assert type(e.value) is error  # its own class, not another malformation's


def test_pointer_empty_and_missing_files(tmp_path):
    lfs = tmp_path / "lfs.csv"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 4194304\n")
    with pytest.raises(released.PointerFileError, match="git lfs pull"):
        released.load_grades(lfs)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(released.EmptyFileError):
        released.load_grades(empty)
    with pytest.raises(released.MissingFileError) as e:
        released.load_grades(tmp_path / "nope.csv")
    assert isinstance(e.value, FileNotFoundError)
    for words in ("nope.csv", "epfl-nlp/NLP4Education", "CC BY-NC-ND", "grades_csv"):
        assert words in str(e.value)
    with pytest.raises(released.DownloadRefused, match="allow_download"):
        released.load_grades("https://example.org/grade_per_question.csv")


def test_null_gold_on_mcq_is_an_error_and_oddities_are_warnings(tmp_path):
    path, _, _ = write_synthetic(tmp_path)
    rows = list(csv.reader(open(path)))
    k = next(i for i, r in enumerate(rows) if r[2] == "mcq")
    qid = rows[k][1]
    no_gold = _variant(tmp_path, path, lambda r: [x if x[1] != qid else x[:5] + [""] + x[6:] for x in r], "ng.csv")
    with pytest.raises(released.IndexValueError, match="only on open_answer"):
        released.load_grades(no_gold)

    def odd(r):
        r = [x + ["extra"] for x in r]
        r[0][-1] = "note"
        r[k][6] = ""  # an MCQ row without a selected answer
        return [x for x in r if x[3] != "metacog"]  # 7 strategies
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        g = released.load_grades(_variant(tmp_path, path, odd, "odd.csv"))
    text = " ".join(map(str, (x.message for x in w)))
    assert "note" in g.extra_columns and "extra column" in text and "7 prompting strategies" in text
    assert "without model_selected_mcq_index" in text and len(g.notes) >= 3
    assert g.frame.selected.isna().sum() >= 1  # kept, scored as wrong
    assert len(g.frame) == len(rows) - 1 - sum(x[3] == "metacog" for x in rows[1:])


def test_courses_json_is_the_release_list():
    c = released.load_courses(data.path("nlp4education-courses"))
    assert len(c) == 54 and c.course_id.is_unique
    counts = c.course_program.value_counts().to_dict()
    assert counts["Physics"] == 17 and counts["Computer Science"] == 17 and counts[released.NO_PROGRAM] == 15
    assert c.course_year.value_counts().to_dict() == {"online": 29, "bachelor": 14, "master": 11}
    assert c.course_language.value_counts().to_dict() == {"English": 37, "French": 17}
    assert data.DATASETS["nlp4education-courses"].licence.startswith("CC BY-NC-ND 4.0")


def test_questions_json_join(tmp_path):
    path, _, frame = write_synthetic(tmp_path)
    qids = sorted(frame.question_id.unique())
    items = [{"question_id": q, "course_id": "x", "question_type": "mcq", "blooms_rating": ["remember", "apply"][i % 2],
              "question_difficulty": "easy"} for i, q in enumerate(qids[:-3])]
    qp = tmp_path / "questions.json"
    qp.write_text(json.dumps(items))
    q = released.load_questions(qp)
    assert released.unmatched(frame.question_id, q.question_id) == {"n": 3, "of": len(qids), "examples": qids[-3:]}
    merged = released.load_grades(path).frame.merge(q, on="question_id", how="left")
    br = scores.analyse(merged, TAUS, GRID)["B2"]["breakdowns"]
    assert set(br["blooms_rating"]) == {"remember", "apply"}
    n = sum(v["synthetic-strong"]["n_questions"] for v in br["blooms_rating"].values())
    assert n == len(qids) - 3


# -------------------------------------------------------------- the generator

def test_generator_recovers_its_expected_accuracies():
    spec = synthetic.Spec()  # the cpu size
    frame, p = synthetic.generate(spec, 1)
    assert list(frame.columns) == list(released.COLUMNS)
    assert frame.question_id.str.startswith("SYN-Q").all() and frame.course_id.str.startswith("SYN-C").all()
    assert frame.program.str.startswith("Synthetic program").all()
    assert set(frame.model) == {"synthetic-strong", "synthetic-weak"}
    assert not ((frame.prompt_type == "self_refine") & (frame.question_type == "open_answer")).any()
    t = synthetic.truth(frame, p, spec)
    parsed = frame.assign(gold=[released.parse_index(x) for x in frame.correct_mcq_index],
                          selected=[released.parse_index(x) for x in frame.model_selected_mcq_index],
                          grade_value=[released.parse_grade(x)[1] for x in frame.grade])
    for b in ("B1", "B2"):
        got = scores.summary(parsed, b)
        for m, e in t["expected"].items():
            for s, mean in e[b]["per_strategy"].items():
                se = e[b]["se"][s]
                assert abs(got[m]["per_strategy"][s] - mean) < 4 * se, (m, b, s)
                assert se < 0.012  # about +-2 points at 4 SE on the cpu size
    s = scores.summary(parsed, "B2")
    for k in ("macro", "any", "majority"):
        assert s["synthetic-strong"][k] > s["synthetic-weak"][k]
    # the defaults are not the paper's numbers
    assert abs(s["synthetic-strong"]["macro"] - 0.658) > 0.05 and abs(s["synthetic-strong"]["any"] - 0.851) > 0.03


# -------------------------------------------------------------- the implications

def test_beta_binomial_fit_reproduces_the_two_numbers_and_the_brief():
    f = implied.fit(0.658, 0.851, 8)
    assert abs(f["mean"] - 0.658) < 1e-6 and abs(f["any"] - 0.851) < 1e-6
    # the brief's derived values (section 4)
    assert f["a"] == pytest.approx(0.389, abs=5e-4) and f["b"] == pytest.approx(0.202, abs=5e-4)
    assert f["rho"] == pytest.approx(0.63, abs=5e-3) and f["all"] == pytest.approx(0.43, abs=5e-3)
    assert implied.at_least_beta(f["a"], f["b"], 8, 5) == pytest.approx(0.64, abs=5e-3)
    assert implied.any_beta(f["a"], f["b"], 7) == pytest.approx(0.843, abs=5e-4)
    assert implied.any_independent(0.658, 8) == pytest.approx(0.9998, abs=5e-5)
    with pytest.raises(ValueError, match="no exchangeable fit"):
        implied.fit(0.658, 0.9999, 8)  # above what independence allows


def test_closed_forms_against_quadrature_and_sums():
    a, b = 0.7, 1.3
    pdf = stats.beta(a, b).pdf
    for S in (1, 3, 8):
        any_q = integrate.quad(lambda p: (1 - (1 - p) ** S) * pdf(p), 0, 1, limit=200)[0]
        all_q = integrate.quad(lambda p: p ** S * pdf(p), 0, 1, limit=200)[0]
        assert implied.any_beta(a, b, S) == pytest.approx(any_q, abs=1e-7)
        assert implied.all_beta(a, b, S) == pytest.approx(all_q, abs=1e-7)
        maj = sum(stats.betabinom.pmf(k, S, a, b) for k in range(S + 1) if k > S / 2)
        assert implied.majority_beta(a, b, S) == pytest.approx(maj, abs=1e-12)
        ind = sum(math.comb(S, k) * 0.6 ** k * 0.4 ** (S - k) for k in range(S + 1) if k > S / 2)
        assert implied.majority_independent(0.6, S) == pytest.approx(ind, abs=1e-12)


def test_monte_carlo_gives_back_the_fit():
    f = implied.fit(0.658, 0.851, 8)
    mc = implied.monte_carlo(f["a"], f["b"], 8, 10**6, seed=3, chunk=300_000)
    assert abs(mc["mean"] - 0.658) < 0.003 and abs(mc["any"] - 0.851) < 0.003
    assert mc["se_any"] == pytest.approx(math.sqrt(0.851 * 0.149 / 1e6), rel=0.01)


def test_pass_probability_known_values():
    # the brief's table (section 5c) and a direct binomial sum
    assert implied.pass_probability(0.658, 20, 0.5) == pytest.approx(0.955, abs=5e-4)
    assert implied.pass_probability(0.658, 50, 0.6) == pytest.approx(0.845, abs=5e-4)
    assert implied.pass_probability(0.658, 100, 0.7) == pytest.approx(0.219, abs=5e-4)
    assert implied.pass_probability(0.851, 20, 0.7) == pytest.approx(0.979, abs=5e-4)
    assert implied.need(0.6, 50) == 30 and implied.need(0.7, 20) == 14 and implied.need(0.7, 21) == 15
    n, pi, tau = 37, 0.62, 0.6
    direct = sum(math.comb(n, k) * pi ** k * (1 - pi) ** (n - k) for k in range(math.ceil(tau * n), n + 1))
    assert implied.pass_probability(pi, n, tau) == pytest.approx(direct, abs=1e-12)
    # course-level variation pulls the probability toward one half
    assert implied.pass_probability(0.658, 100, 0.6, kappa=5) < implied.pass_probability(0.658, 100, 0.6)
    assert implied.pass_probability(0.658, 100, 0.7, kappa=5) > implied.pass_probability(0.658, 100, 0.7)
    assert 0.64 <= implied.tau_star(0.658, 50) <= 0.68


# -------------------------------------------------------------- the chapter's data modes

def _released_copy(tmp_path):
    """A generator file made to look released: real-looking ids and the paper's model names."""
    path, _, frame = write_synthetic(tmp_path, synthetic.Spec(n_courses=8, questions_per_course=40))
    frame = frame.assign(question_id=frame.question_id.str.replace("SYN-Q", "Q"),
                         course_id=frame.course_id.str.replace("SYN-C", "C"),
                         model=frame.model.map({"synthetic-strong": "gpt-4", "synthetic-weak": "gpt-3.5-turbo"}))
    p = tmp_path / "grade_per_question.csv"
    frame.to_csv(p, index=False)
    return p


def test_watermark_whenever_the_data_are_synthetic(tmp_path):
    cfg = chapters.configure(chapters.get("ai-assessment"), "smoke", {})
    res = {**E.analysis(cfg), "digits": E.digits(cfg)}
    m = R.metrics(res, cfg)
    assert res["data_source"] == m["data_source"] == "synthetic" and m["watermark"] is True
    for fig in (F.strategies_figure(res), F.breakdown_figure(res), F.pass_rate_figure(res, cfg)):
        assert is_marked_synthetic(fig) and fig._suptitle.get_text().startswith(R.SYNTHETIC_TITLE)
    assert R.title(m, "x").startswith("SYNTHETIC")
    assert {c.id for c in R.claims_for(m)} == {c.id for c in R.CLAIMS}
    # a generator file passed as grades_csv is still synthetic
    path, _, _ = write_synthetic(tmp_path)
    cfg2 = chapters.configure(chapters.get("ai-assessment"), "smoke", {"grades_csv": str(path)})
    assert E.analysis(cfg2)["data_source"] == "synthetic"


def test_released_mode_compares_with_the_paper(tmp_path):
    p = _released_copy(tmp_path)
    cfg = chapters.configure(chapters.get("ai-assessment"), "smoke", {"grades_csv": str(p), "n_seeds": 1})
    res = {**E.analysis(cfg), "digits": E.digits(cfg)}
    m = R.metrics(res, cfg)
    assert m["data_source"] == "supplied" and m["watermark"] is False and res["truth"] is None
    for fig in (F.strategies_figure(res), F.breakdown_figure(res), F.pass_rate_figure(res, cfg)):
        assert not is_marked_synthetic(fig) and "SYNTHETIC" not in fig._suptitle.get_text()
        assert "not verified to be the release" in fig._suptitle.get_text()
    c = m["comparison"]
    s = res["scores"]["B1"]["summary"]["gpt-4"]
    assert c["mean"]["B1-macro"] == s["macro"] and c["any"]["B1"] == s["any"]
    # one definition for both numbers: the one closest on the worse of the two
    worst = {v: max(abs(x - 0.658), abs(c["any"][v[:2]] - 0.851)) for v, x in c["mean"].items()}
    assert c["best_variant"] == min(worst, key=worst.get)
    assert c["mean_deviation"] == c["mean"][c["best_variant"]] - 0.658
    assert c["any_deviation"] == c["any"][c["best_variant"][:2]] - 0.851
    assert c["gpt4_minus_gpt35_min"] > 0
    from companion import claims
    rows = claims.evaluate(R.claims_for(m), m, "smoke")
    assert {r["id"] for r in rows} == {c.id for c in R.CLAIMS + R.RELEASED_CLAIMS}
    assert all(r["verdict"] in ("holds", "fails") for r in rows)
    assert {v.id for v in R.verifications_for(m)} == {v.id for v in R.COMMON_VERIFICATIONS}
    assert m["joins"]["courses_json"]["n"] == 8  # C001... are not the release's ids


def _cli(*args, out=None):
    cmd = [sys.executable, "-m", "companion", "run", "ai-assessment", "--scale", "smoke", *args]
    if out is not None:
        cmd += ["--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("case", ["missing", "malformed", "released-without-file", "synthetic-with-file", "url"])
def test_bad_input_is_refused_before_anything_runs(tmp_path, case):
    out = tmp_path / "out"
    good, _, _ = write_synthetic(tmp_path)
    bad = _variant(tmp_path, good, lambda r: r + [r[1]], "dup.csv")
    args, words = {
        "missing": (["-p", "grades_csv", str(tmp_path / "none.csv")], "not found"),
        "malformed": (["-p", "grades_csv", str(bad)], "repeat a (question_id, model, prompt_type)"),
        "released-without-file": (["-p", "mode", "released"], "needs grades_csv"),
        "synthetic-with-file": (["-p", "mode", "synthetic", "-p", "grades_csv", str(good)], "mode 'synthetic'"),
        "url": (["-p", "grades_csv", "https://example.org/g.csv"], "allow_download"),
    }[case]
    r = _cli(*args, out=out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert not out.exists()


RELEASED_AGREE = {"comparison": {"mean_deviation": -0.02, "any_deviation": 0.01, "gpt4_minus_gpt35_min": 0.05}}
RELEASED_CONTRADICT = {"released-mean": {"mean_deviation": 0.04}, "released-any": {"any_deviation": -0.035},
                       "gpt4-beats-gpt35": {"gpt4_minus_gpt35_min": 0.005}}


@pytest.mark.parametrize("claim", R.RELEASED_CLAIMS, ids=[c.id for c in R.RELEASED_CLAIMS])
def test_released_claims_hold_and_fail(claim):
    assert claim.evaluate(RELEASED_AGREE, "cpu")["verdict"] == "holds"
    bad = {"comparison": {**RELEASED_AGREE["comparison"], **RELEASED_CONTRADICT[claim.id]}}
    assert claim.evaluate(bad, "cpu")["verdict"] == "fails"
    assert claim.evaluate({"comparison": {"has_gpt4": 0}}, "cpu")["verdict"] == "fails"  # no GPT-4 rows


def test_gold_written_two_ways_is_one_answer(tmp_path):
    rows = [("C1", "Q1", "mcq", st, "gpt-4", gold, "2", "correct", "english", "Physics", "bachelor")
            for st, gold in (("a", "2"), ("b", "2.0"), ("c", "[2]"))]
    g = released.load_grades(_csv(tmp_path, rows))
    assert set(g.frame.gold) == {(2,)} and g.data_source == "supplied"


def test_more_than_four_numeric_grades_are_warned_about(tmp_path):
    rows = [("C1", f"Q{i}", "open_answer", "a", "gpt-4", "", "", f"{i / 10:.1f}", "english", "", "online")
            for i in range(6)]
    with pytest.warns(released.GradesWarning, match="6 distinct numeric grades"):
        g = released.load_grades(_csv(tmp_path, rows))
    assert set(g.frame.program) == {released.NO_PROGRAM}
    assert list(scores.correctness(g.frame, "B2")) == [0, 0, 0, 0, 0, 1]  # only 0.5 reaches one half


def test_majority_reading_of_the_mean():
    f = implied.fit_majority(0.658, 0.851, 8)
    assert abs(f["majority"] - 0.658) < 1e-9 and abs(f["any"] - 0.851) < 1e-9
    assert f["mean"] == pytest.approx(0.671, abs=1e-3) and f["rho"] == pytest.approx(0.65, abs=5e-3)


def test_digits_aggregate_against_loops_and_the_control():
    from companion.assessment import solvers
    spec = solvers.Solvers(n_test=300, n_train=150)
    C = solvers.correct_matrix(spec, 0)
    assert C.shape == (8, 300) and set(np.unique(C)) <= {0.0, 1.0}
    a = solvers.aggregate(C)
    cols = [[C[s][q] for s in range(8)] for q in range(300)]
    assert a["any"] == pytest.approx(sum(max(c) for c in cols) / 300, abs=1e-15)
    assert a["majority"] == pytest.approx(sum(sum(c) > 4 for c in cols) / 300, abs=1e-15)
    assert a["all"] == pytest.approx(sum(min(c) for c in cols) / 300, abs=1e-15)
    prod = 1.0
    for s in range(8):
        prod *= 1 - sum(C[s]) / 300
    assert a["any_independent"] == pytest.approx(1 - prod, abs=1e-12)
    pairs = [np.corrcoef(C[s], C[t])[0, 1] for s in range(8) for t in range(s + 1, 8)]
    assert a["phi"] == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
    r = solvers.study(spec, 0)
    assert r["solvers"]["accuracy"] == pytest.approx(r["control"]["accuracy"], abs=0)  # permutation keeps them
    assert r["solvers"]["gap"] > 0.05 and abs(r["control"]["gap"]) < 0.02 and abs(r["control"]["phi"]) < 0.05
    # no shared difficulty: the gap closes
    free = solvers.aggregate(solvers.correct_matrix(solvers.Solvers(n_test=300, n_train=150, sigma_shared=0.0,
                                                                    sigma_own=0.8), 0))
    assert free["gap"] < r["solvers"]["gap"] / 2
