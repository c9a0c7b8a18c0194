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


@pytest.mark.parametrize("cid", list(chapters.CHAPTERS))
def test_golden_names_the_machine_it_was_recorded_on(cid):
    # conftest.py compares values only on a machine with this fingerprint
    meta = json.loads((ROOT / "tests" / "goldens" / f"{cid}.ipynb").read_text())["metadata"]["companion"]
    assert len(meta.get("recorded_on", "")) == 16, f"golden of {cid} predates fingerprints: run `make golden`"


def test_machine_fingerprint_tracks_what_decides_rounding(monkeypatch):
    import torch
    from companion import device
    here = device.machine_fingerprint()
    assert device.machine_fingerprint() == here and len(here) == 16
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    other_kernels = device.machine_fingerprint()
    assert other_kernels != here  # e.g. ATEN_CPU_CAPABILITY=default: other kernels
    monkeypatch.setattr(device, "DEFAULT_CPU_THREADS", device.DEFAULT_CPU_THREADS + 1)
    assert len({here, other_kernels, device.machine_fingerprint()}) == 3  # threads alone change it too
