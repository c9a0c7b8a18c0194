"""The book builds with warnings as errors, shows every chapter's figures and a current dashboard."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from companion import book, chapters
from conftest import ROOT


def test_dashboard_is_generated_from_committed_claims():
    assert (ROOT / book.DASHBOARD).read_text() == book.dashboard_markdown(), \
        "book/dashboard.md is stale: run `python -m companion build --no-html`"
    for ch in chapters.CHAPTERS.values():
        assert ch.id in book.dashboard_markdown()


def test_toc_lists_every_chapter_under_its_part():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = {p["caption"]: [c["file"] for c in p["chapters"]] for p in toc["parts"]}
    for ch in chapters.CHAPTERS.values():
        assert ch.part in chapters.PARTS
        assert f"book/chapters/{ch.id}" in parts[ch.part]
    captions = [c for c in parts if c in chapters.PARTS]
    assert captions == sorted(captions, key=chapters.PARTS.index)


def test_committed_chapters_are_executed_with_claims():
    for ch in chapters.CHAPTERS.values():
        nb = json.loads(ch.notebook.read_text())
        meta = nb["metadata"]["companion"]
        assert meta["scale"] in ("cpu", "gpu")
        outs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert not any(o["output_type"] == "error" for o in outs)
        run = ROOT / "data" / "runs" / ch.id / meta["scale"]
        rows = json.loads((run / "claims.json").read_text())
        assert rows and all(r["scale"] == meta["scale"] for r in rows)
        assert len(list((run / "figures").glob("*.png"))) == sum("image/png" in o.get("data", {}) for o in outs)


def test_book_builds_with_warnings_as_errors(tmp_path):
    jb = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists()
    for cid in chapters.CHAPTERS:
        page = (html / "book" / "chapters" / f"{cid}.html").read_text()
        assert page.count("<img") >= 6 and "holds" in page
        assert "tag_injected-parameters" not in page  # papermill's cell is removed from the page
        if chapters.get(cid).contract >= 2:  # numbered figures with captions from the cell metadata
            assert page.count('class="caption-number"') >= 6
        assert "glue:text" not in page and "TqdmWarning" not in page and "it/s]" not in page
    dash = (html / "book" / "dashboard.html").read_text()
    assert "All chapters:" in dash and "mixed" in dash
    shutil.rmtree(tmp_path / "_build", ignore_errors=True)


def test_committed_chapters_are_clean_for_readers():
    """What a reader downloads: no stderr (progress bars, TqdmWarnings), no absolute paths of the
    machine that built it, papermill's cell tagged for removal, the parameters cell hidden."""
    for ch in chapters.CHAPTERS.values():
        text = ch.notebook.read_text()
        nb = json.loads(text)
        outs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert not [o for o in outs if o.get("name") == "stderr"], ch.id
        assert str(ROOT) not in text, f"{ch.id}: absolute build path in the committed notebook"
        tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"] if c["cell_type"] == "code"]
        assert any("parameters" in t and "hide-cell" in t for t in tags), ch.id
        assert all("remove-cell" in t for t in tags if "injected-parameters" in t), ch.id
