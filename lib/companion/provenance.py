"""Provenance: what a reader needs to trust or repeat a run (commit, versions, device, seed,
scale, parameters, torch threads, times)."""
import platform
import subprocess
import time
from functools import lru_cache
from importlib import metadata

import torch

from companion.results import LEDGER, lib_hash, repo_root

# distributions whose versions a run records (read with importlib.metadata, imported or not)
PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib", "seaborn", "papermill",
            "myst-nb", "jupyter-book")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD's short hash, with '+dirty-lib' when the library has uncommitted changes."""
    root = repo_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("+dirty-lib" if dirty else "")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class Provenance:
    """Started with the run; `finish` adds versions and times. `wall_time_s` is the whole
    notebook run; `compute_time_s` is what its results cost when they were computed (sub-runs
    reused from the cache were computed earlier, so it can exceed the wall time)."""

    def __init__(self, chapter: str, scale: str, params: dict, device: str):
        self.t0 = time.time()
        self.record = {
            "chapter": chapter, "scale": scale, "seed": params.get("seed"), "parameters": params,
            "device": device, "torch_threads": torch.get_num_threads(), "git_commit": git_commit(),
            "lib_hash": lib_hash(), "host": platform.node(), "platform": platform.platform(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.t0)),
        }

    def finish(self) -> dict:
        self.record["versions"] = package_versions()
        self.record["wall_time_s"] = round(time.time() - self.t0, 1)
        self.record["subruns_computed"] = sum(not reused for _, _, reused in LEDGER)
        self.record["subruns_reused_from_cache"] = sum(reused for _, _, reused in LEDGER)
        self.record["compute_time_s"] = round(sum(s for _, s, _ in LEDGER), 1)
        return self.record


def table(record: dict):
    """The provenance as a two-column table (versions one per row, parameters left out: the
    configuration table at the top of the chapter shows them)."""
    import pandas as pd

    from companion.plotting import html_table
    rows = [(k, v) for k, v in record.items() if k not in ("parameters", "versions", "host")]
    rows += [(f"version: {k}", v) for k, v in record.get("versions", {}).items()]
    return html_table(pd.DataFrame(rows, columns=["", "value"]))
