"""The install cell: the first code cell of every chapter, hidden in the book.

A chapter opened in Colab, on Binder or downloaded from the book runs in a kernel that may not
have the companion library. This cell clones the book's repository and installs its library
there, and does nothing where `companion` is importable (every run of `python -m companion`, so
it never changes a result: `chapters.code_cells` leaves it out of the execution key). The
repository's URL is written into the cell by `stamp` (`make book REPO_URL=...`, or the Pages
workflow), or given at run time as COMPANION_REPO.
"""
import ast
import json
import re
from pathlib import Path

from companion.chapters import BOOTSTRAP_TAG as TAG
from companion.results import atomic_write_bytes

TAGS = [TAG, "remove-cell"]  # remove-cell: not shown in the book, kept in the downloadable notebook

TEMPLATE = '''\
# Colab, Binder or a downloaded copy: install the companion library from the book's repository
# (hidden in the book; does nothing where `companion` is already importable).
REPO_URL, REPO_BRANCH = {url!r}, {branch!r}  # written by `make book REPO_URL=...`
import importlib.util
if importlib.util.find_spec("companion") is None:
    import os, subprocess, sys
    url = os.environ.get("COMPANION_REPO") or REPO_URL
    if not url:
        raise RuntimeError("the companion library is not installed and this notebook names no repository: run "
                           "%env COMPANION_REPO=https://github.com/OWNER/REPO (the book's) and rerun this cell")
    root = os.path.abspath("companion-book")
    if not os.path.isdir(root):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", REPO_BRANCH, url, root], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", root], check=True)
    sys.path.insert(0, os.path.join(root, "lib"))'''

_STAMP = re.compile(r"^REPO_URL, REPO_BRANCH = ('[^'\n]*'), ('[^'\n]*')", re.M)


def cell_source(url: str = "", branch: str = "main") -> str:
    return TEMPLATE.format(url=url, branch=branch)


def is_bootstrap(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and TAG in cell.get("metadata", {}).get("tags", [])


def stamped(nb: dict):
    """(url, branch) written in the notebook's install cell, or None when it has none."""
    cell = next((c for c in nb["cells"] if is_bootstrap(c)), None)
    if cell is None:
        return None
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    m = _STAMP.search(src)
    return (ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))) if m else None


def with_bootstrap(nb: dict, url: str = "", branch: str = "main") -> dict:
    """The notebook with exactly one install cell, the first code cell, naming `url`."""
    cells = [c for c in nb["cells"] if not is_bootstrap(c)]
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    cell = {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(TAGS)}, "outputs": [],
            "source": cell_source(url, branch).splitlines(keepends=True)}  # lines, as Jupyter writes them
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        cell["id"] = "companion-bootstrap"  # cell ids exist from nbformat 4.5 on
    old = next((c for c in nb["cells"] if is_bootstrap(c)), None)
    if old is not None:  # keep what an execution recorded (papermill's timings), replace the code
        cell = {**old, "source": cell["source"], "metadata": {**old.get("metadata", {}), "tags": list(TAGS)}}
    return {**nb, "cells": cells[:first_code] + [cell] + cells[first_code:]}


def stamp(nb_path, url: str = "", branch: str = "main") -> bool:
    """Write the install cell naming `url` into a notebook file; True when the file changed."""
    path = Path(nb_path)
    nb = json.loads(path.read_text())
    new = with_bootstrap(nb, url, branch)
    if new == nb:
        return False
    atomic_write_bytes(path, (json.dumps(new, indent=1, ensure_ascii=False) + "\n").encode())
    return True
