"""The nbval goldens cannot go stale: their code must be the chapters' code.

The goldens themselves (tests/goldens/*.ipynb) are re-executed and compared cell by cell
by nbval (see addopts in pyproject.toml); `make golden` regenerates them."""
import json

import pytest

from companion import chapters
from conftest import ROOT


@pytest.mark.parametrize("cid", list(chapters.CHAPTERS))
def test_golden_code_equals_chapter_code(cid):
    golden = ROOT / "tests" / "goldens" / f"{cid}.ipynb"
    assert golden.exists(), f"no golden for {cid}: run `make golden`"
    g, c = json.loads(golden.read_text()), json.loads(chapters.get(cid).notebook.read_text())
    assert chapters.code_cells(g) == chapters.code_cells(c), f"golden of {cid} is stale: run `make golden`"
    assert g["metadata"]["companion"]["scale"] == "smoke"
