"""Borges et al. (PNAS 2024), Could ChatGPT get an engineering degree?

The chapter cannot call GPT-3.5 or GPT-4, and the released per-question grades are not
available offline, so a run has two parts:

* the measurement pipeline (companion.assessment.scores) on a grade file: the released
  grade_per_question.csv when `grades_csv` names it (mode "released"), else a SYNTHETIC file
  with the released schema (companion.assessment.synthetic; mode "synthetic"), written to
  disk and read back through the same loader a user's file goes through;
* what the paper's two headline numbers imply (companion.assessment.implied): the
  independence baseline, the exchangeable Beta-Binomial fitted to them, its Monte-Carlo
  check, and course-pass probabilities against the number of questions and tau;
* an illustration of the aggregation (companion.assessment.solvers): eight noisy digit
  classifiers as strategies, per seed, where the correlation that the Beta-Binomial infers
  from two numbers can be compared with the measured one, beside a permutation control.

courses.json (the release's course list; the data registry's offline copy unless
`courses_json` names another) gives the release's structure: programs, levels, languages.
"""
import math
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from companion import data
from companion.assessment import implied, released, scores, solvers, synthetic
from companion.params import ParamError, param
from companion.results import cached, config_key

CHAPTER = "ai-assessment"
PAPER_MEAN, PAPER_ANY, PAPER_S = 0.658, 0.851, 8  # the paper's abstract: GPT-4, 8 strategies
CLAIM_TAUS = (0.6, 0.7)  # the thresholds the claims read, whatever the tables' taus
CLAIM_SIZES = (10, 15, 20, 30, 40, 50, 70, 100, 150, 200)  # the course sizes the pass claims read


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "seed of the synthetic grades and of the Monte-Carlo check", range=(0, 2**31 - 1))
    mode: str = param("auto", "auto: released if grades_csv is given, else synthetic", choices=("auto", "released",
                                                                                                 "synthetic"))
    grades_csv: str = param("", "path (or URL, with allow_download) of the released grade_per_question.csv; "
                            "'' = none")
    questions_json: str = param("", "path of the released questions.json (Bloom and difficulty breakdowns); "
                                "'' = none")
    courses_json: str = param("", "path of courses.json; '' = the offline copy in the data registry")
    allow_download: bool = param(False, "let grades_csv / questions_json be URLs (never in CI)")
    n_courses: int = param(50, "synthetic: courses", range=(1, 10_000))
    questions_per_course: int = param(112, "synthetic: mean questions per course (drawn in [q/2, 3q/2])",
                                      range=(1, 100_000))
    labels: bool = param(True, "synthetic: grades written as labels (true) or as numbers (false)")
    taus: tuple[float, ...] = param((0.5, 0.6, 0.7), "pass thresholds of the tables", range=(0.0, 1.0))
    tau_grid: tuple[float, ...] = param(tuple(round(0.3 + 0.05 * i, 2) for i in range(13)),
                                        "pass thresholds of the curves", range=(0.0, 1.0))
    course_sizes: tuple[int, ...] = param((20, 50, 100), "questions per course of the pass-probability table",
                                          range=(1, 100_000))
    kappa: float = param(20.0, "concentration of the course-level success probability in the pass bands "
                         "(pi_k ~ Beta(pi kappa, (1 - pi) kappa))", range=(0.1, 1e6))
    max_strategies: int = param(16, "largest number of strategies S in the any/majority-of-S curves",
                                range=(8, 1000))
    mc_draws: int = param(1_000_000, "questions drawn by the Monte-Carlo check of the Beta-Binomial fit",
                          range=(1000, 10**9))
    n_seeds: int = param(3, "seeds of the digits illustration (seeds seed .. seed + n_seeds - 1)", range=(1, 100))
    digits_shared: float = param(0.7, "digits: per-image corruption shared by every strategy (the difficulty)",
                                 range=(0.0, 10.0))
    digits_own: float = param(0.25, "digits: each strategy's own input noise", range=(0.0, 10.0))
    digits_min_pixels: int = param(16, "digits: fewest of the 64 pixels a strategy sees", range=(1, 64))
    digits_train: int = param(400, "digits: training images per strategy", range=(20, 897))

    def validate(self):
        for name in ("taus", "tau_grid", "course_sizes"):
            v = getattr(self, name)
            if list(v) != sorted(set(v)):
                raise ParamError(f"parameter {name!r} must be strictly increasing; got {','.join(map(str, v))}")
        if self.mode == "released" and not self.grades_csv:
            raise ParamError("mode 'released' needs grades_csv (the path of grade_per_question.csv from "
                             f"{released.REPOSITORY}); allowed without it: auto, synthetic")
        if self.mode == "synthetic" and self.grades_csv:
            raise ParamError("mode 'synthetic' ignores grades_csv: leave grades_csv empty, or use mode auto")
        for name, loader in (("grades_csv", released.load_grades), ("questions_json", released.load_questions),
                             ("courses_json", released.load_courses)):
            if getattr(self, name):
                try:
                    _load(loader, *_stamp(getattr(self, name), name, self.allow_download))
                except released.GradesError as e:
                    raise ParamError(f"{name}: {e}") from None

    @property
    def data_mode(self) -> str:
        return "released" if self.grades_csv else "synthetic"


SCALES = {
    "smoke": Config(n_courses=10, questions_per_course=30, mc_draws=100_000, n_seeds=2),
    "cpu": Config(),
    # nothing needs a GPU: the cpu configuration with a larger Monte-Carlo check
    "gpu": Config(mc_draws=10_000_000, n_seeds=5),
}

FILES = {"grades_csv": "grade_per_question.csv", "questions_json": "questions.json", "courses_json": "courses.json"}


def _stamp(source: str, name: str, allow_download: bool) -> tuple:
    """(local path, size, mtime): the key under which a file's validation is cached."""
    p = released.resolve(source, FILES[name], name, allow_download)
    st = p.stat()
    return str(p), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=8)
def _load(loader, path: str, size: int, mtime: int):
    return loader(path)


def courses_path(cfg: Config) -> Path:
    return Path(cfg.courses_json).expanduser() if cfg.courses_json else data.path("nlp4education-courses")


def grades(cfg: Config, workdir: Path) -> tuple:
    """(Grades, generator truth or None): the user's file, or a synthetic one written into workdir."""
    if cfg.data_mode == "released":
        return _load(released.load_grades, *_stamp(cfg.grades_csv, "grades_csv", cfg.allow_download)), None
    spec = synthetic.Spec(n_courses=cfg.n_courses, questions_per_course=cfg.questions_per_course, labels=cfg.labels)
    frame, p = synthetic.generate(spec, cfg.seed)
    path, _ = synthetic.write(frame, p, spec, workdir / "synthetic_grade_per_question.csv")
    return released.load_grades(path), synthetic.truth(frame, p, spec)


def course_structure(courses) -> dict:
    """The release's course list: entries, distinct names, counts per program, level and language."""
    return {"entries": len(courses), "names": int(courses.course_name.nunique()),
            "program": courses.course_program.value_counts().sort_index().to_dict(),
            "year": courses.course_year.value_counts().sort_index().to_dict(),
            "language": courses.course_language.value_counts().sort_index().to_dict(),
            "program_year": {p: g.course_year.value_counts().sort_index().to_dict()
                             for p, g in courses.groupby("course_program")}}


def implications(cfg: Config) -> dict:
    """The analyses of the paper's two numbers (companion.assessment.implied)."""
    fit8 = implied.fit(PAPER_MEAN, PAPER_ANY, PAPER_S)
    fit7 = implied.fit(PAPER_MEAN, PAPER_ANY, PAPER_S - 1)
    fit_maj = implied.fit_majority(PAPER_MEAN, PAPER_ANY, PAPER_S)  # 65.8% read as a majority vote
    a, b = fit8["a"], fit8["b"]
    Ss = list(range(1, cfg.max_strategies + 1))
    curves = {"S": Ss,
              "any_independent": [implied.any_independent(PAPER_MEAN, S) for S in Ss],
              "majority_independent": [implied.majority_independent(PAPER_MEAN, S) for S in Ss],
              "any_beta": [implied.any_beta(a, b, S) for S in Ss],
              "majority_beta": [implied.majority_beta(a, b, S) for S in Ss],
              "all_beta": [implied.all_beta(a, b, S) for S in Ss]}
    pis = {"single": PAPER_MEAN, "majority": fit8["majority"], "any": PAPER_ANY}
    table = {str(n): {scores.tau_key(t): {k: implied.pass_probability(pi, n, t) for k, pi in pis.items()}
                      for t in cfg.taus} for n in cfg.course_sizes}
    banded = {str(n): {scores.tau_key(t): {k: implied.pass_probability(pi, n, t, cfg.kappa) for k, pi in pis.items()}
                       for t in cfg.taus} for n in cfg.course_sizes}
    ns = sorted(set((5,) + CLAIM_SIZES + tuple(cfg.course_sizes)))
    per_n = {scores.tau_key(t): {k: {"iid": [implied.pass_probability(pi, n, t) for n in ns],
                                     "course_level": [implied.pass_probability(pi, n, t, cfg.kappa) for n in ns]}
                                 for k, pi in pis.items()} for t in cfg.taus}
    per_tau = {k: {str(n): [implied.pass_probability(pi, n, t) for t in cfg.tau_grid] for n in cfg.course_sizes}
               for k, pi in pis.items()}
    n_paper = 5579  # questions in the paper (a secondary summary; see the chapter)
    gap = implied.any_independent(PAPER_MEAN, PAPER_S) - PAPER_ANY
    gap_majority = implied.any_independent(fit_maj["mean"], PAPER_S) - PAPER_ANY
    fit8 = {**fit8, "none": 1 - fit8["any"],
            "any_S7": implied.any_beta(a, b, PAPER_S - 1)}  # open questions have no self-refine
    return {"paper": {"mean": PAPER_MEAN, "any": PAPER_ANY, "S": PAPER_S},
            "fit": fit8, "fit_S7": fit7, "fit_majority": fit_maj, "curves": curves, "pi": pis,
            "independence": {"any": implied.any_independent(PAPER_MEAN, PAPER_S),
                             "majority": implied.majority_independent(PAPER_MEAN, PAPER_S),
                             "all": PAPER_MEAN ** PAPER_S, "gap": gap, "gap_majority_reading": gap_majority,
                             "n_questions": n_paper,
                             "z": gap / math.sqrt(PAPER_ANY * (1 - PAPER_ANY) / n_paper)},
            "monte_carlo": implied.monte_carlo(a, b, PAPER_S, cfg.mc_draws, cfg.seed),
            "pass_claims": {scores.tau_key(t): {k: [implied.pass_probability(pi, n, t) for n in CLAIM_SIZES]
                                                for k, pi in pis.items()} for t in CLAIM_TAUS},
            "pass_table": table, "pass_table_course_level": banded, "per_n": {"n": ns, **per_n},
            "per_tau": {"tau": list(cfg.tau_grid), **per_tau},
            "tau_star": {k: {str(n): implied.tau_star(pi, n) for n in cfg.course_sizes} for k, pi in pis.items()}}


def analysis(cfg: Config) -> dict:
    courses = released.load_courses(courses_path(cfg))
    with tempfile.TemporaryDirectory(prefix="ai-assessment-") as tmp:
        g, truth = grades(cfg, Path(tmp))
        frame = g.frame
        joins = {"courses_json": released.unmatched(frame.course_id, courses.course_id)}
        if cfg.questions_json:
            q = _load(released.load_questions, *_stamp(cfg.questions_json, "questions_json", cfg.allow_download))
            joins["questions_json"] = released.unmatched(frame.question_id, q.question_id)
            frame = frame.merge(q, on="question_id", how="left")
        source = g.provenance()
        if g.data_source == "synthetic" and truth is None:  # a generator file given as grades_csv
            source["notes"] = source["notes"] + ["every question id is the generator's: treated as synthetic"]
        if truth is not None:
            source["path"] = os.path.basename(source["path"])  # a temporary file
        return {"data_source": g.data_source, "source": source, "truth": truth, "joins": joins,
                "scores": scores.analyse(frame, cfg.taus, cfg.tau_grid),
                "courses": course_structure(courses), "implied": implications(cfg)}


def file_keys(cfg: Config) -> dict:
    """The SHA-256 of every input file: a changed file is another run."""
    out = {"courses_json": data.sha256(courses_path(cfg))}
    for name in ("grades_csv", "questions_json"):
        if getattr(cfg, name):
            out[name] = data.sha256(_stamp(getattr(cfg, name), name, cfg.allow_download)[0])
    return out


def seeds(cfg: Config) -> list:
    return list(range(cfg.seed, cfg.seed + cfg.n_seeds))


def digits(cfg: Config) -> list:
    """The digits illustration per seed (companion.assessment.solvers.study)."""
    spec = solvers.Solvers(n_solvers=PAPER_S, n_train=cfg.digits_train, min_pixels=cfg.digits_min_pixels,
                           sigma_shared=cfg.digits_shared, sigma_own=cfg.digits_own)
    return [solvers.study(spec, s) for s in seeds(cfg)]


DIGITS = ("seed", "n_seeds", "digits_shared", "digits_own", "digits_min_pixels", "digits_train")


def run(cfg: Config, dev=None, progress: bool = True) -> dict:
    """The analysis of the grades and of the paper's numbers (cached by configuration and input
    files), and the digits illustration (cached by its own fields); seconds at cpu scale."""
    import dataclasses
    fields = {f.name for f in dataclasses.fields(cfg)}
    key = {**config_key(cfg, drop=tuple(d for d in DIGITS if d != "seed")), "files": file_keys(cfg)}
    out = cached(CHAPTER, "analysis", key, lambda _ckpt: analysis(cfg))
    out = {**out, "digits": cached(CHAPTER, "digits", config_key(cfg, drop=tuple(sorted(fields - set(DIGITS)))),
                                   lambda _ckpt: digits(cfg))}
    if progress:
        print(f"{CHAPTER}: analysis done ({out['data_source']} grades; digits: {cfg.n_seeds} seeds)", flush=True)
    return out
