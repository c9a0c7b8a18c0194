"""The published book: its configuration, the install cell, the workflow, and a real browser."""
import json
import os
import re
import shutil
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from companion import book
from companion import chapters as CH
from companion.site import bootstrap, browser, config
from conftest import PY, ROOT

EXAMPLE = ("https://github.com/example-owner/companion-book", "main")


# --- configuration --------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("https://github.com/o/r", "https://github.com/o/r"),
    ("https://github.com/o/r.git", "https://github.com/o/r"),
    ("https://github.com/o/r/", "https://github.com/o/r"),
    ("https://gitlab.example.org/group/sub/r", "https://gitlab.example.org/group/sub/r")])
def test_repository_urls_are_normalised(url, expected):
    assert config.check_repo(url, "main") == (expected, "main")


@pytest.mark.parametrize("url, branch", [
    ("", "main"), ("http://github.com/o/r", "main"), ("ftp://github.com/o/r", "main"),
    ("https://github.com/o", "main"), ("https://github.com/o/r x", "main"), ("https://github.com/o/r'", "main"),
    ("https://github.com/o/r", ""), ("https://github.com/o/r", "a..b"), ("https://github.com/o/r", "-x"),
    ("https://github.com/o/r", "a b")])
def test_bad_repository_or_branch_is_refused(url, branch):
    with pytest.raises(config.SiteError):
        config.check_repo(url, branch)


def test_local_config_has_no_repository_and_the_published_one_has_every_button():
    local = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "repository" not in local and "launch_buttons" not in local
    pub = config.published_config(*EXAMPLE)
    assert pub["repository"] == {"url": EXAMPLE[0], "branch": "main", "path_to_book": ""}
    assert pub["html"]["use_repository_button"] and pub["html"]["use_issues_button"]
    assert pub["launch_buttons"]["colab_url"] and pub["launch_buttons"]["binderhub_url"]
    assert all(os.path.isabs(p) for p in pub["sphinx"]["local_extensions"].values())
    other = config.published_config("https://gitlab.example.org/g/r", "main")
    assert not other["launch_buttons"]["colab_url"]  # Colab and Binder open GitHub repositories only


# --- the install cell -----------------------------------------------------------------------

@pytest.mark.parametrize("cid", [c for c in CH.CHAPTERS if CH.get(c).notebook.exists()])
def test_every_chapter_has_one_current_install_cell_first(cid):
    nb = json.loads(CH.get(cid).notebook.read_text())
    cells = [c for c in nb["cells"] if bootstrap.is_bootstrap(c)]
    assert len(cells) == 1, "run `python -m companion stamp URL` (or make stamp)"
    first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert first_code is cells[0]
    assert "remove-cell" in cells[0]["metadata"]["tags"]
    src = "".join(cells[0]["source"]) if isinstance(cells[0]["source"], list) else cells[0]["source"]
    assert src == bootstrap.cell_source(*bootstrap.stamped(nb)), "the install cell is not the current template"
    assert cells[0]["outputs"] == []  # it did nothing where the library was installed


def test_stamping_changes_neither_the_chapter_code_nor_its_execution_key(tmp_path):
    ch = CH.get("hyperinf")
    cfg = CH.configure(ch, "smoke", {})
    copy = tmp_path / "hyperinf.ipynb"
    shutil.copyfile(ch.notebook, copy)
    before = CH.execution_key(ch, "smoke", cfg, copy)
    assert bootstrap.stamp(copy, *EXAMPLE)
    assert not bootstrap.stamp(copy, *EXAMPLE)  # idempotent
    nb = json.loads(copy.read_text())
    assert bootstrap.stamped(nb) == EXAMPLE
    assert CH.execution_key(ch, "smoke", cfg, copy) == before
    assert CH.code_cells(nb) == CH.code_cells(json.loads(ch.notebook.read_text()))


def test_the_install_cell_is_added_once_before_the_first_code_cell():
    nb = {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Title"},
        {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": [], "execution_count": None}]}
    out = bootstrap.with_bootstrap(bootstrap.with_bootstrap(nb, *EXAMPLE), *EXAMPLE)
    assert [c["cell_type"] for c in out["cells"]] == ["markdown", "code", "code"]
    assert bootstrap.is_bootstrap(out["cells"][1]) and "id" not in out["cells"][1]  # no ids before nbformat 4.5


def _run_cell(tmp_path, env_repo, url=""):
    """Run the install cell where `companion` is not importable: the clone is real (a local
    repository), pip is recorded instead of run."""
    script = f"""
import importlib.util, json, subprocess, sys
real_find, real_run, calls = importlib.util.find_spec, subprocess.run, []
importlib.util.find_spec = lambda name, *a: None if name == "companion" else real_find(name, *a)
def run(cmd, **kw):
    calls.append(cmd)
    return real_run(cmd, **kw) if cmd[0] == "git" else None
subprocess.run = run
try:
    exec({bootstrap.cell_source(url, "main")!r})
    print(json.dumps({{"calls": calls, "path": sys.path[0]}}))
except RuntimeError as e:
    print(json.dumps({{"error": str(e)}}))
"""
    env = {**os.environ, "COMPANION_REPO": env_repo}
    out = subprocess.run([PY, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_install_cell_clones_the_repository_and_installs_its_library(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "lib" / "companion").mkdir(parents=True)
    (origin / "lib" / "companion" / "__init__.py").write_text("")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run(git + ["init", "-q", str(origin)], check=True)
    subprocess.run(git + ["-C", str(origin), "add", "."], check=True)
    subprocess.run(git + ["-C", str(origin), "commit", "-qm", "x"], check=True)
    work = tmp_path / "work"
    work.mkdir()
    got = _run_cell(work, env_repo=origin.as_uri())
    root = work / "companion-book"
    assert (root / "lib" / "companion" / "__init__.py").is_file()
    assert got["calls"][0][:2] == ["git", "clone"] and origin.as_uri() in got["calls"][0]
    assert got["calls"][1][1:] == ["-m", "pip", "install", "--quiet", "-e", str(root)]
    assert got["path"] == str(root / "lib")


def test_install_cell_without_a_repository_says_what_to_set(tmp_path):
    got = _run_cell(tmp_path, env_repo="")
    assert "COMPANION_REPO" in got["error"]


# --- the workflow and Binder ----------------------------------------------------------------

WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def test_workflow_matches_the_github_workflow_schema():
    exe = os.path.join(os.path.dirname(PY), "check-jsonschema")
    out = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_workflow_pins_actions_deploys_only_from_the_default_branch_and_names_no_owner():
    text = WORKFLOW.read_text()
    wf = yaml.safe_load(text)
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action} is not pinned to a commit"
        assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{action} has no version comment"
    assert "github.com/" not in text.replace("${{ github.server_url }}", "")  # no owner written in
    assert "${{ github.server_url }}/${{ github.repository }}" in text
    assert wf["permissions"] == {"contents": "read"}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"} and "permissions" not in build
    assert "pull_request" in deploy["if"] and "default_branch" in deploy["if"]
    runs = " ".join(s.get("run", "") for s in build["steps"])
    assert "bash .ci/run" in runs and "companion html" in runs and "companion check-site" in runs
    assert "companion build" not in runs  # the workflow executes no chapter
    kinds = {s.get("uses", "").split("@")[0]: s.get("if", "") for s in build["steps"]}
    assert "pull_request" in kinds["actions/upload-pages-artifact"]


def test_binder_installs_the_same_pins_and_the_library():
    req = (ROOT / "binder" / "requirements.txt").read_text()
    assert "-r ../requirements.txt" in req
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK) and "pip install --no-deps -e ." in post.read_text()


# --- the real browser -----------------------------------------------------------------------

def _png(path, width, height=40):
    plt.imsave(path, np.full((height, width, 3), 0.5))


def _page(body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>"
            f"<div class='bd-article' style='max-width:600px'>{body}</div></body></html>")


def test_checker_reports_every_kind_of_breakage_and_passes_a_clean_page(tmp_path, chromium):
    site = tmp_path / "site"
    site.mkdir()
    _png(site / "small.png", 200)
    _png(site / "big.png", 2000)
    (site / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=good.html" />')
    (site / "good.html").write_text(_page(
        "<h1 id='here'>Fine</h1><p>A table that fits:</p><table><tr><td>a</td><td>1.0</td></tr></table>"
        "<img src='small.png'><a href='big.png'><img src='big.png' style='width:300px'></a>"
        "<a href='bad.html'>bad</a> <a href='good.html#here'>here</a> <a href='https://example.org/'>out</a>"))
    (site / "bad.html").write_text(_page(
        "<script>const A = 1;</script><script>const A = 2;</script>"
        "<script src='https://cdn.example.org/lib.js'></script>"
        "<img src='missing.png'><img src='big.png' style='width:300px'>"
        "<div style='overflow-x:auto'><table><tr><td>" + "x" * 400 + "</td></tr></table></div>"
        "<span class='math'>\\(x^2\\)</span><p>raw \\(y\\) here</p>"
        "<p>accuracy NaN</p><pre>Traceback (most recent call last)</pre><p>TqdmWarning: no</p>"
        f"<p data-where='{site.resolve()}/x'>path</p>"
        "<a href='nowhere.html'>gone</a><a href='good.html#absent'>no anchor</a>"
        "<div style='width:1500px'>wide</div>"))
    report = browser.check_site(site, screens=tmp_path / "screens")
    assert report.pages == 3
    good = [p for p in report.problems if p.startswith("good.html")]
    assert good == []
    bad = "\n".join(report.problems)
    for expected in ["bad.html [desktop]: JavaScript error: uncaught Identifier 'A' has already been declared",
                     "bad.html [desktop]: request to https://cdn.example.org/lib.js",
                     "bad.html [phone]: image missing.png is not decoded",
                     "bad.html [desktop]: image big.png is shown at 300 of its 2000 px",
                     "bad.html [desktop]: table 'xxxx",
                     "bad.html [desktop]: 1 of 1 equations not typeset",
                     "bad.html [desktop]: raw TeX delimiters",
                     "bad.html [desktop]: the text shows 'NaN'", "the text shows 'Traceback'",
                     "the text shows 'TqdmWarning'", "bad.html [desktop]: the page contains the build machine's path",
                     "bad.html: link to nowhere.html which is not in the build",
                     "bad.html: link to good.html#absent, an anchor that is not on that page",
                     "bad.html [phone]: the page is"]:
        assert expected in bad, f"not reported: {expected}\n{bad}"
    assert not any("image big.png" in p and "phone" in p for p in report.problems)  # the 80% rule is for desktops
    assert len(report.screens) == 2 * 2 and all(s.stat().st_size > 0 for s in report.screens)


@pytest.fixture(scope="module")
def published(tmp_path_factory, chromium):
    """The book built as the Pages workflow builds it (with a repository), from the committed chapters."""
    out = tmp_path_factory.mktemp("published")
    assert book.build_html(EXAMPLE, out) == 0
    return out / "_build" / "html"


def test_published_book_passes_the_browser_check(published):
    screens = ROOT / "_build" / "screens"
    shutil.rmtree(screens, ignore_errors=True)
    report = browser.check_site(published, screens=screens, forbidden_paths=[str(ROOT)])
    assert report.problems == []
    chapters = [c for c in CH.CHAPTERS.values() if c.notebook.exists()]
    assert report.pages >= len(chapters) + 3
    assert max(report.seconds.values()) < 30, report.seconds  # seconds per page, both widths


def test_published_chapters_have_launch_buttons_and_downloads_that_install_the_library(published):
    url = EXAMPLE[0]
    owner_repo = url.removeprefix("https://github.com/")
    for ch in CH.CHAPTERS.values():
        if not ch.notebook.exists():
            continue
        html = (published / "book" / "chapters" / f"{ch.id}.html").read_text()
        assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/book/chapters/{ch.id}.ipynb" in html
        assert f"https://mybinder.org/v2/gh/{owner_repo}/main" in html
        assert f'href="{url}"' in html and f"{url}/issues/new" in html
        assert f"_sources/book/chapters/{ch.id}.ipynb" in html
        nb = json.loads((published / "_sources" / "book" / "chapters" / f"{ch.id}.ipynb").read_text())
        assert bootstrap.stamped(nb) == EXAMPLE
    assert (published / "_static" / "mathjax" / "tex-chtml.js").is_file()


# --- the commands ---------------------------------------------------------------------------

def _cli(*args, cwd=ROOT):
    return subprocess.run([PY, "-m", "companion", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, says", [
    (("check-site", "/nonexistent/html"), "no built book at /nonexistent/html"),
    (("html", "--repo-url", "ftp://x/y/z"), "is not an https URL"),
    (("stamp", "https://github.com/o/r", "--branch", "a..b"), "is not a branch name"),
    (("build", "--repo-url", "github.com/o/r", "--no-html"), "is not an https URL")])
def test_site_commands_refuse_bad_input_in_one_line_writing_nothing(args, says):
    before = {p: p.read_bytes() for p in (ROOT / "book" / "chapters").glob("*.ipynb")}
    site_config = ROOT / "_build" / "site" / "_config.yml"
    had_config = site_config.read_bytes() if site_config.exists() else None
    out = _cli(*args)
    assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert (site_config.read_bytes() if site_config.exists() else None) == had_config
