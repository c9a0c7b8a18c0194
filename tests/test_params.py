"""Parameter schema: coercion, ranges, presets, and the notebooks' parameters cells."""
import json

import papermill as pm
import pytest

from companion import chapters
from companion import params as P


@pytest.mark.parametrize("cid", list(chapters.CHAPTERS))
def test_every_preset_is_valid(cid):
    ch = chapters.get(cid)
    for scale in P.SCALES:
        chapters.configure(ch, scale, {})


@pytest.mark.parametrize("cid", list(chapters.CHAPTERS))
def test_notebook_parameters_cell_declares_every_parameter(cid):
    ch = chapters.get(cid)
    declared = pm.inspect_notebook(str(ch.notebook))
    assert set(declared) == set(ch.param_specs())
    nb = json.loads(ch.notebook.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1


def test_coercion_from_strings_and_values():
    spec_int = {"type": int, "range": (1, 10)}
    assert P.coerce("n", spec_int, "3") == 3 and P.coerce("n", spec_int, 3.0) == 3
    with pytest.raises(P.ParamError, match=r"'n' must be in \[1, 10\]; got 11"):
        P.coerce("n", spec_int, "11")
    with pytest.raises(P.ParamError, match="expects an int"):
        P.coerce("n", spec_int, True)
    spec_tuple = {"type": tuple[float, ...], "range": (0.0, 1.0)}
    assert P.coerce("f", spec_tuple, "0.1, 0.2") == (0.1, 0.2)
    assert P.coerce("f", spec_tuple, [0.5]) == (0.5,)
    with pytest.raises(P.ParamError, match="non-empty"):
        P.coerce("f", spec_tuple, "")
    with pytest.raises(P.ParamError, match="finite"):
        P.coerce("x", {"type": float}, "nan")
    assert P.coerce("b", {"type": bool}, "false") is False


def test_configure_applies_overrides_and_cross_checks():
    ch = chapters.get("scaling-cooldown")
    cfg = chapters.configure(ch, "smoke", {"lr": "0.012", "targets": "40,80"})
    assert cfg.lr == 0.012 and cfg.targets == (40, 80)
    with pytest.raises(P.ParamError, match="must be one of 'lr_grid'"):  # the LR sweep includes the chosen LR
        chapters.configure(ch, "smoke", {"lr": "0.01"})
    with pytest.raises(P.ParamError, match="widths' and 'depths' must have the same length"):
        chapters.configure(ch, "smoke", {"widths": "32,64,96"})
    with pytest.raises(P.ParamError, match="warmup"):
        chapters.configure(ch, "smoke", {"warmup": 200})
    with pytest.raises(P.ParamError, match="unknown parameter 'lrr'"):
        chapters.configure(ch, "smoke", {"lrr": 1})
