"""Conventions of the report modules (figures apart, named `*_figure`, files short) and the
book's one smoother, against a direct computation."""
import ast
from pathlib import Path

import numpy as np

from companion import catalog
from companion.metrics.smoothing import moving_average

REPORTS = Path(__file__).resolve().parents[1] / "lib" / "companion" / "reports"


def _functions(path):
    return [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)]


def test_every_chapter_has_a_figures_module_of_public_functions_named_figure():
    for e in catalog.ENTRIES:
        figs = REPORTS / f"{e['module']}_figures.py"
        assert figs.exists(), f"{e['id']}: no reports/{figs.name}"
        public = [f.name for f in _functions(figs) if not f.name.startswith("_")]
        assert public and all(n.endswith("_figure") for n in public), (figs.name, public)
        src = figs.read_text()
        assert "plt.show(" not in src and "savefig(" not in src, f"{figs.name}: figures are shown/saved by the notebook"


def test_no_figure_function_outside_the_figures_modules_and_no_report_over_400_lines():
    for path in REPORTS.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, f"{path.name} is over 400 lines: split it"
        if not path.stem.endswith("_figures"):
            stray = [f.name for f in _functions(path) if f.name.endswith("_figure")]
            assert not stray, f"{path.name} defines figure functions {stray}: they belong in {path.stem}_figures"


def test_moving_average_is_the_centred_mean_cut_at_the_ends():
    x = np.random.default_rng(0).normal(size=30)
    for k in (1, 3, 5, 25):
        y = moving_average(x, k)
        h = k // 2
        assert len(y) == len(x)
        ref_inner = np.convolve(x, np.ones(2 * h + 1) / (2 * h + 1), mode="valid")
        assert np.allclose(y[h:len(x) - h], ref_inner)
        assert np.isclose(y[0], x[:h + 1].mean()) and np.isclose(y[-1], x[-h - 1:].mean())
    assert moving_average([2.0] * 7, 5) == [2.0] * 7
