"""Run records: atomic writes, the result cache keyed by configuration, provenance.

Everything a run writes goes through a temporary file in the same folder followed by
an atomic rename, so an interrupted run leaves the previous complete file or none.
"""
import ast
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def repo_root() -> Path:
    """The project root (the folder holding _toc.yml): from the package's own location in
    an editable install, else the current directory."""
    for p in (PACKAGE_DIR.parents[1], Path.cwd()):
        if (p / "_toc.yml").exists():
            return p
    return Path.cwd()


def atomic_write_bytes(path, blob: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n").encode())


def _jsonable(x):
    if isinstance(x, (set, tuple)):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def stable_hash(obj, n: int = 16) -> str:
    """SHA-256 of the canonical JSON of obj (sorted keys), truncated to n hex digits."""
    blob = json.dumps(obj, sort_keys=True, default=_jsonable, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


# The modules whose code determines computed numbers. A chapter's cached results are keyed
# on the source of those of them that its experiment imports (compute_hash), so editing a
# report, the CLI, the book or another chapter's modules never invalidates them.
COMPUTE = ("models", "optim", "metrics", "compress", "influence", "collab", "experiments", "train.py", "data.py", "mnist.py", "device.py")


def _module_file(module: str):
    """companion.a.b -> lib/companion/a/b.py (or .../b/__init__.py); None if not a module."""
    p = PACKAGE_DIR.joinpath(*module.split(".")[1:])
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    return p / "__init__.py" if (p / "__init__.py").is_file() else None


def _companion_imports(path: Path) -> set:
    """Names of the companion modules (or of names inside them) a source file imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "companion"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "companion":
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # `from companion import x`: x may be a module
    return out


def module_files(*modules: str) -> list:
    """The source files of `modules` and of every companion module they import, transitively
    (packages' __init__ files included: importing a.b runs a/__init__.py)."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        f = _module_file(name)
        if f is not None and f not in seen:
            seen.add(f)
            todo += _companion_imports(f)
    return sorted(seen)


def source_hash(files) -> str:
    """Hash of the given library files' paths and contents."""
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(p.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def lib_hash() -> str:
    """Hash of the whole library's Python sources (recorded in provenance)."""
    return source_hash(PACKAGE_DIR.rglob("*.py"))


@lru_cache(maxsize=None)
def compute_hash(chapter: str) -> str:
    """Hash of the compute modules that `chapter`'s experiment imports (every compute
    module for a name that is not a chapter)."""
    from companion import catalog
    module = next((e["module"] for e in catalog.ENTRIES if e["id"] == chapter), None)
    files = module_files(f"companion.experiments.{module}") if module else PACKAGE_DIR.rglob("*.py")
    return source_hash(f for f in files if f.relative_to(PACKAGE_DIR).parts[0] in COMPUTE)


def cache_dir() -> Path:
    """Where computed results live: $COMPANION_CACHE, else _build/cache under the project."""
    env = os.environ.get("COMPANION_CACHE")
    return Path(env) if env else repo_root() / "_build" / "cache"


# (name, seconds it took to compute, reused?) of every cached() call in this process
LEDGER = []


def cached(chapter: str, name: str, key: dict, compute, enabled: bool = True):
    """Return compute(checkpoint) for this (chapter, name, key), reusing a stored result whose
    key (the configuration plus the compute modules' source hash, never the device) matches.

    Long experiments are split into named sub-runs so that an interrupted run resumes from
    its last finished sub-run; `checkpoint` is a path next to the entry where compute may
    keep mid-run state (see train.train) to resume inside a sub-run too."""
    full_key = {"chapter": chapter, "name": name, "config": key, "lib": compute_hash(chapter)}
    path = cache_dir() / chapter / f"{name}-{stable_hash(full_key)}.pt"
    if enabled and path.exists():
        try:
            entry = torch.load(path, weights_only=False)
            LEDGER.append((name, entry.get("seconds", float("nan")), True))
            return entry["value"]
        except Exception:  # a damaged cache entry is recomputed, never trusted
            pass
    t0 = time.time()
    value = compute(path.with_suffix(".ckpt") if enabled else None)
    LEDGER.append((name, time.time() - t0, False))
    if enabled:
        buf = io.BytesIO()
        torch.save({"key": full_key, "value": value, "seconds": LEDGER[-1][1]}, buf)
        atomic_write_bytes(path, buf.getvalue())
    return value


@lru_cache(maxsize=1)
def git_commit() -> str:
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
    import numpy

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    for mod in ("pandas", "matplotlib", "seaborn", "papermill"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


class Provenance:
    """What a reader needs to trust or repeat a run: commit, versions, device, seed, scale,
    parameters, torch threads, wall time."""

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
        # results reused from the cache were computed earlier: say so, with their cost
        self.record["subruns_computed"] = sum(not reused for _, _, reused in LEDGER)
        self.record["subruns_reused_from_cache"] = sum(reused for _, _, reused in LEDGER)
        self.record["compute_time_s"] = round(sum(s for _, s, _ in LEDGER), 1)
        return self.record
