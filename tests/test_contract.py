"""Contract v2: the prose of a chapter quotes the run, never a typed number.

Dynamic check: in a chapter executed at smoke scale, every number glued for the prose equals
the value at that path of the run's metrics.json, and every `{glue:text}` role of the
Markdown names something that was glued. Static check: the committed chapter's Markdown
has no decimal number outside math, code, glue roles and clauses that say the number is the
paper's."""
import ast
import json
import re

import pytest

from companion import catalog, chapters
from conftest import ROOT

V2 = [e["id"] for e in catalog.ENTRIES if e.get("contract", 1) >= 2]
ROLE = re.compile(r"\{glue:text\}`([^`]+)`")
STRIP = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\{glue(:\w+)?\}`[^`]*`|`[^`]*`|\{cite(:\w+)?\}`[^`]*`|\]\([^)]*\)", re.S)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")


def glued(nb: dict) -> dict:
    """name -> value of every glue output of an executed notebook."""
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if meta:
                text = o["data"]["application/papermill.record/text/plain"]
                try:
                    out[meta["name"]] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    out[meta["name"]] = text
    return out


def at_path(obj, path: str):
    """metrics.json's value at a glue name (dotted path; keys may contain dots, e.g. "0.05")."""
    parts = path.split(".")
    while parts:
        if isinstance(obj, list):
            obj, parts = obj[int(parts[0])], parts[1:]
            continue
        for n in range(len(parts), 0, -1):  # the longest key that matches
            key = ".".join(parts[:n])
            if key in obj:
                obj, parts = obj[key], parts[n:]
                break
        else:
            raise KeyError(path)
    return obj


def markdown(nb: dict) -> list:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"] + \
        [c.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption", "") for c in nb["cells"]]


def role_names(nb: dict) -> set:
    return {m.rsplit(":", 1)[0] if re.search(r":[^:]*[a-zA-Z%]$", m) else m
            for text in markdown(nb) for m in ROLE.findall(text)}


def typed_decimals(text: str) -> list:
    """Decimal numbers outside math, code, roles and links, unless their sentence names the paper."""
    out = []
    for clause in re.split(r"(?<=[.;!?])\s+|\n\s*\n|\n[*-] ", STRIP.sub(" ", text)):
        if "paper" not in clause.lower():
            out += DECIMAL.findall(clause)
    return out


def test_typed_decimals_are_found_and_paper_numbers_are_not():
    assert typed_decimals("SWA lowers the loss by 0.080 nats.") == ["0.080"]
    assert typed_decimals("within 0.3 perplexity (the paper's Fig. 3)") == []
    assert typed_decimals("by {glue:text}`mean.x:.3f` nats, $\\lambda = 0.1$, `lr 0.002`") == []


@pytest.mark.parametrize("cid", V2)
def test_v2_chapter_prose_has_no_typed_run_numbers(cid):
    nb = json.loads(chapters.get(cid).notebook.read_text())
    typed = [(t[:60], d) for t in markdown(nb) for d in typed_decimals(t)]
    assert not typed, f"{cid}: decimal numbers typed into the prose (glue them, or mark them as the paper's): {typed}"


@pytest.mark.parametrize("cid", V2)
def test_v2_committed_chapter_glues_what_its_prose_quotes(cid):
    nb = json.loads(chapters.get(cid).notebook.read_text())
    metrics = json.loads((ROOT / "data" / "runs" / cid / nb["metadata"]["companion"]["scale"] / "metrics.json")
                         .read_text())
    g = glued(nb)
    missing = role_names(nb) - set(g)
    assert not missing, f"{cid}: the prose quotes names that the run did not glue: {sorted(missing)}"
    for name in role_names(nb):
        try:
            expected = at_path(metrics, name)
        except (KeyError, IndexError, ValueError, TypeError):
            continue  # configuration, scale, verdicts, words
        assert g[name] == expected, f"{cid}: glued {name} = {g[name]!r}, metrics.json has {expected!r}"
