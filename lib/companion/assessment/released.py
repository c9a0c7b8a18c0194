"""The released files of Borges et al. (PNAS 2024), read and validated.

`grade_per_question.csv` (epfl-nlp/NLP4Education, data/) has one row per (question, model,
prompting strategy) and eleven columns (COLUMNS). `load_grades` reads it as text, checks the
schema and every value, and returns a `Grades` whose frame keeps the raw columns and adds the
parsed ones:

* `gold`, `selected`: the MCQ answer as a tuple of option indices (a multi-answer question
  has several; "2", "2.0" and "[0, 2]" are all read), None on open-answer rows;
* `grade_level`: one of LEVELS when the grade is a label (case and spaces ignored; "mostly
  correct" is read as "almost correct", as the released grader does), else None;
* `grade_value`: the grade as a number in [0, 1]: the number itself, or for a label its
  position on the four-level scale (LEVEL_VALUE: our encoding, used only for the "mean raw
  grade"; the release does not document one);
* `program`: a missing program (the online courses have none) reads "no program (online)".

Every malformed input raises its own subclass of GradesError with one line that names the
file, what is wrong (quoting the first offending rows) and what is allowed. Oddities that do
not make the file unusable (extra columns, unknown model names, a strategy count other than
eight, self-refine rows on open questions, an MCQ row without a selected answer) are warned
about (GradesWarning) and listed in `Grades.notes`; no row is ever dropped silently.
"""
import ast
import json
import math
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from companion.data import sha256
from companion.results import atomic_write_bytes, repo_root

REPOSITORY = "https://github.com/epfl-nlp/NLP4Education"
COMMIT = "6330c50"
LICENCE = "CC BY-NC-ND 4.0 (data from the online courses: CC BY 4.0)"
COLUMNS = ("course_id", "question_id", "question_type", "prompt_type", "model", "correct_mcq_index",
           "model_selected_mcq_index", "grade", "language", "program", "year")
QUESTION_TYPES = ("mcq", "open_answer")
MODELS = ("gpt-4", "gpt-3.5-turbo")
LEVELS = ("correct", "almost correct", "mostly incorrect", "wrong answer")
LEVEL_VALUE = {"correct": 1.0, "almost correct": 2 / 3, "mostly incorrect": 1 / 3, "wrong answer": 0.0}
SYNONYMS = {"mostly correct": "almost correct", "wrong": "wrong answer", "incorrect": "wrong answer"}
NO_PROGRAM = "no program (online)"
NULLS = {"", "nan", "none", "null"}
PER_QUESTION = ("course_id", "question_type", "language", "program", "year", "gold")
SYNTHETIC_PREFIX = "SYN-"  # the generator's ids (companion.assessment.synthetic)


class GradesError(ValueError):
    """A released file that cannot be used; the message is one line."""


class MissingFileError(GradesError, FileNotFoundError):
    pass


class DownloadRefused(GradesError):
    pass


class PointerFileError(GradesError):
    """A Git LFS pointer instead of the file (a clone without `git lfs pull`)."""


class EmptyFileError(GradesError):
    pass


class SchemaError(GradesError):
    pass


class QuestionTypeError(GradesError):
    pass


class GradeValueError(GradesError):
    pass


class IndexValueError(GradesError):
    pass


class DuplicateRowError(GradesError):
    pass


class InconsistentQuestionError(GradesError):
    pass


class GradesWarning(UserWarning):
    pass


def where(name: str) -> str:
    return (f"{name} is published in the data/ folder of {REPOSITORY} (commit {COMMIT}; licence {LICENCE})")


def resolve(source: str, name: str, parameter: str, allow_download: bool = False) -> Path:
    """The local path of `source` (a path, or an http(s) URL fetched once into
    _build/data/nlp4education/ when allow_download is set)."""
    if source.startswith(("http://", "https://")):
        if not allow_download:
            raise DownloadRefused(f"{parameter} is a URL ({source}) and downloads are off: set allow_download "
                                  f"to true, or download {name} yourself and give its path")
        dest = repo_root() / "_build" / "data" / "nlp4education" / Path(source.split("?")[0]).name
        if not dest.is_file():
            try:
                with urllib.request.urlopen(source, timeout=120) as r:
                    atomic_write_bytes(dest, r.read())
            except OSError as e:
                raise MissingFileError(f"download of {source} failed ({e.__class__.__name__}); {where(name)}: "
                                       f"download it and set {parameter} to its path") from None
        return dest
    p = Path(source).expanduser()
    if not p.is_file():
        raise MissingFileError(f"{parameter}: file {p} not found; {where(name)}: download it and set "
                               f"{parameter} to its path")
    return p


def check_readable(path: Path, name: str):
    """Refuse an empty file or a Git LFS pointer before parsing it."""
    head = Path(path).read_bytes()[:200]
    if not head.strip():
        raise EmptyFileError(f"{path} is empty; {where(name)}")
    if head.startswith(b"version https://git-lfs"):
        raise PointerFileError(f"{path} is a Git LFS pointer, not {name}: run `git lfs pull` in your clone of "
                               f"{REPOSITORY}, or download the file itself")


@dataclass
class Grades:
    frame: pd.DataFrame  # the raw columns (text) and the parsed ones (see the module docstring)
    path: str
    sha256: str
    data_source: str  # "synthetic" when every question id is the generator's, else "supplied" (the user's file)
    grade_encoding: str  # labels | numeric | mixed
    grade_values: list  # the distinct raw grades, as they appear (sorted)
    strategies: dict  # model -> sorted strategies with rows
    extra_columns: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # the warnings, as text

    @property
    def models(self) -> list:
        return sorted(self.strategies)

    def provenance(self) -> dict:
        f = self.frame
        return {"path": self.path, "sha256": self.sha256, "rows": len(f), "questions": int(f.question_id.nunique()),
                "courses": int(f.course_id.nunique()), "data_source": self.data_source,
                "grade_encoding": self.grade_encoding, "grade_values": self.grade_values,
                "strategies": self.strategies, "extra_columns": self.extra_columns, "notes": self.notes}


def _first(frame, mask, cols, n=3) -> str:
    """The first offending rows (file line numbers: the header is line 1)."""
    rows = frame[mask].head(n)
    return "; ".join(f"line {i + 2}: " + ", ".join(f"{c}={frame.at[i, c]!r}" for c in cols) for i in rows.index)


def _is_null(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip().lower() in NULLS


def parse_index(v):
    """An MCQ index cell as a sorted tuple of ints ('2', '2.0', '[0, 2]'), None when null.
    Raises ValueError on anything else."""
    if _is_null(v):
        return None
    s = str(v).strip()
    x = ast.literal_eval(s) if s.startswith(("[", "(")) else float(s)
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    out = []
    for item in items:
        f = float(item)
        if not f.is_integer() or f < 0:
            raise ValueError(s)
        out.append(int(f))
    if not out:
        raise ValueError(s)
    return tuple(sorted(set(out)))


def parse_grade(v):
    """(level or None, value in [0, 1]) of a grade cell; raises ValueError on anything else."""
    s = " ".join(str(v).strip().lower().replace("_", " ").split())
    s = SYNONYMS.get(s, s)
    if s in LEVEL_VALUE:
        return s, LEVEL_VALUE[s]
    f = float(s)
    if not 0.0 <= f <= 1.0:
        raise ValueError(s)
    return None, f


def _parse(frame, col, fn, path, error, allowed):
    out, bad = [], []
    for i, v in zip(frame.index, frame[col]):
        try:
            out.append(fn(v))
        except (ValueError, SyntaxError, TypeError):
            out.append(None)
            bad.append(i)
    if bad:
        mask = frame.index.isin(bad)
        raise error(f"{path}: {len(bad)} row(s) with an unreadable {col} ({_first(frame, mask, [col])}); "
                    f"allowed: {allowed}")
    return out


def load_grades(source, allow_download: bool = False) -> Grades:
    """Read and validate grade_per_question.csv (see the module docstring)."""
    name, parameter = "grade_per_question.csv", "grades_csv"
    path = resolve(str(source), name, parameter, allow_download)
    check_readable(path, name)
    notes = []

    def note(msg):
        notes.append(msg)
        warnings.warn(msg, GradesWarning, stacklevel=3)

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SchemaError(f"{path} is not a readable CSV ({str(e).splitlines()[0]})") from None
    except pd.errors.EmptyDataError:
        raise EmptyFileError(f"{path} has no header; {where(name)}") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(f"{path}: missing column(s) {', '.join(missing)}; present: {', '.join(frame.columns)}; "
                          f"required: {', '.join(COLUMNS)}")
    if len(frame) == 0:
        raise EmptyFileError(f"{path} has a header but no rows")
    extra = [c for c in frame.columns if c not in COLUMNS]
    if extra:
        note(f"{path}: extra column(s) kept: {', '.join(extra)}")
    for c in COLUMNS:
        frame[c] = frame[c].str.strip()

    bad = ~frame.question_type.isin(QUESTION_TYPES)
    if bad.any():
        raise QuestionTypeError(f"{path}: {int(bad.sum())} row(s) with question_type outside "
                                f"{{{', '.join(QUESTION_TYPES)}}} ({_first(frame, bad, ['question_type'])})")
    for c in ("question_id", "course_id", "model", "prompt_type"):
        bad = frame[c] == ""
        if bad.any():
            raise SchemaError(f"{path}: {int(bad.sum())} row(s) with an empty {c} ({_first(frame, bad, [c])}); "
                              f"every row needs a {c}")
    unknown = sorted(set(frame.model) - set(MODELS))
    if unknown and not frame.question_id.str.startswith(SYNTHETIC_PREFIX).all():
        note(f"{path}: model name(s) not in the paper ({', '.join(MODELS)}): {', '.join(unknown)}")

    parsed = _parse(frame, "grade", parse_grade, path, GradeValueError,
                    f"a number in [0, 1] or one of {', '.join(LEVELS)} (or 'mostly correct')")
    frame["grade_level"] = [p[0] for p in parsed]
    frame["grade_value"] = [p[1] for p in parsed]
    labels = frame.grade_level.notna()
    encoding = "labels" if labels.all() else "numeric" if not labels.any() else "mixed"
    if encoding == "mixed":
        note(f"{path}: grades mix labels ({int(labels.sum())} rows) and numbers ({int((~labels).sum())} rows)")
    numbers = sorted(frame.grade_value[~labels].unique())
    if len(numbers) > len(LEVELS):
        note(f"{path}: {len(numbers)} distinct numeric grades (more than the grader's four levels): B1 reads "
             "grade = 1, B2 grade >= 1/2")

    ints = "an option index (e.g. 2) or a list of them (e.g. [0, 2])"
    frame["gold"] = _parse(frame, "correct_mcq_index", parse_index, path, IndexValueError, ints)
    frame["selected"] = _parse(frame, "model_selected_mcq_index", parse_index, path, IndexValueError, ints)
    mcq = frame.question_type == "mcq"
    no_gold = mcq & frame.gold.isna()
    if no_gold.any():
        raise IndexValueError(f"{path}: {int(no_gold.sum())} MCQ row(s) without correct_mcq_index "
                              f"({_first(frame, no_gold, ['question_id', 'correct_mcq_index'])}); null is "
                              "allowed only on open_answer rows")
    no_answer = mcq & frame.selected.isna()
    if no_answer.any():
        note(f"{path}: {int(no_answer.sum())} MCQ row(s) without model_selected_mcq_index, scored as wrong")
    frame.loc[~mcq, ["gold", "selected"]] = None

    frame["program"] = frame.program.where(~frame.program.str.lower().isin(NULLS), NO_PROGRAM)

    dup = frame.duplicated(["question_id", "model", "prompt_type"], keep=False)
    if dup.any():
        raise DuplicateRowError(f"{path}: {int(dup.sum())} rows repeat a (question_id, model, prompt_type) "
                                f"({_first(frame, dup, ['question_id', 'model', 'prompt_type'])}); each must "
                                "appear once")
    keys = frame.assign(gold=frame.gold.astype(str))  # the parsed answer: "2" and "2.0" are one answer
    for c in PER_QUESTION:
        n = keys.groupby("question_id")[c].nunique()
        if (n > 1).any():
            q = n[n > 1].index[0]
            raise InconsistentQuestionError(f"{path}: {c} differs between the rows of question {q!r} "
                                            f"({', '.join(sorted(keys.loc[keys.question_id == q, c].unique()))}) "
                                            f"and of {int((n > 1).sum())} question(s) in all; it must be constant "
                                            "within a question")

    refine = frame.prompt_type.str.contains("refine", case=False)
    if (refine & ~mcq).any():
        note(f"{path}: {int((refine & ~mcq).sum())} self-refine row(s) on open questions (the paper runs "
             "self-refine on MCQ only)")
    strategies = {m: sorted(g.prompt_type.unique()) for m, g in frame.groupby("model")}
    for m, s in strategies.items():
        if len(s) != 8:
            note(f"{path}: model {m} has {len(s)} prompting strategies, not the paper's 8: {', '.join(s)}")
    synthetic = bool(frame.question_id.str.startswith(SYNTHETIC_PREFIX).all())
    return Grades(frame=frame.reset_index(drop=True), path=str(path), sha256=sha256(path),
                  data_source="synthetic" if synthetic else "supplied", grade_encoding=encoding,
                  grade_values=sorted(frame.grade.unique()), strategies=strategies, extra_columns=extra,
                  notes=notes)


COURSE_KEYS = ("course_id", "course_name", "course_program", "course_language", "course_year")
YEARS = ("bachelor", "master", "online")


def _json_list(path: Path, name: str, keys) -> list:
    check_readable(path, name)
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SchemaError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise SchemaError(f"{path}: expected a JSON list of objects, as the released {name}")
    for i, x in enumerate(items):
        missing = [k for k in keys if k not in x]
        if missing:
            raise SchemaError(f"{path}: entry {i} lacks {', '.join(missing)}; present: {', '.join(x)}; "
                              f"required: {', '.join(keys)}")
    return items


def load_courses(path) -> pd.DataFrame:
    """courses.json: one row per course entry (several entries may share a name); a missing
    program reads NO_PROGRAM. Raises SchemaError on a missing key or an unknown level."""
    items = _json_list(Path(path), "courses.json", COURSE_KEYS)
    frame = pd.DataFrame(items, columns=list(COURSE_KEYS))
    frame["course_id"] = frame.course_id.astype(str)
    frame["course_program"] = [NO_PROGRAM if _is_null(p) else p for p in frame.course_program]
    bad = ~frame.course_year.isin(YEARS)
    if bad.any():
        raise SchemaError(f"{path}: course_year outside {{{', '.join(YEARS)}}} "
                          f"({', '.join(map(repr, frame.course_year[bad].unique()))})")
    if frame.course_id.duplicated().any():
        repeated = ", ".join(frame.course_id[frame.course_id.duplicated()])
        raise DuplicateRowError(f"{path}: course_id repeated ({repeated}); each course appears once")
    return frame


QUESTION_KEYS = ("question_id", "course_id", "question_type")
QUESTION_EXTRAS = ("blooms_rating", "question_difficulty", "multiple_correct_answers")


def load_questions(path) -> pd.DataFrame:
    """questions.json reduced to what the breakdowns use: question_id and, where present,
    blooms_rating, question_difficulty and multiple_correct_answers (None where absent)."""
    items = _json_list(Path(path), "questions.json", QUESTION_KEYS)
    return pd.DataFrame([{"question_id": str(x["question_id"]), **{k: x.get(k) for k in QUESTION_EXTRAS}}
                         for x in items])


def unmatched(ids, known) -> dict:
    """How many of `ids` (distinct) are not in `known`, with up to five examples."""
    missing = sorted(set(map(str, ids)) - set(map(str, known)))
    return {"n": len(missing), "of": len(set(map(str, ids))), "examples": missing[:5]}
