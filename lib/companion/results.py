"""Run records: atomic writes and the result cache keyed by configuration and compute source.

Everything a run writes goes through a temporary file in the same folder followed by
an atomic rename, so an interrupted run leaves the previous complete file or none.
"""
import ast
import fcntl
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
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


# Modules that cannot change a computed number: they present, register or drive runs (reports,
# plotting, book, cli, chapters, catalog, claims, bench), parse parameters (params), or store and
# describe results (results, provenance). Every other companion module an experiment imports,
# transitively, keys its cached results, so a new concept package is in the key without anyone
# listing it.
NOT_COMPUTE = ("reports", "plotting", "book", "cli", "__main__", "chapters", "catalog", "claims", "bench",
               "params", "results", "provenance")


def _module_file(module: str):
    """companion.a.b -> lib/companion/a/b.py (or .../b/__init__.py); None if not a module."""
    p = PACKAGE_DIR.joinpath(*module.split(".")[1:])
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    return p / "__init__.py" if (p / "__init__.py").is_file() else None


def companion_imports(source: str) -> set:
    """Names of the companion modules (or of names inside them) a piece of source imports."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "companion"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "companion":
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # `from companion import x`: x may be a module
    return out


def is_not_compute(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[1] in NOT_COMPUTE


def module_files(*modules: str, skip=lambda module: False) -> list:
    """The source files of `modules` and of every companion module they import, transitively
    (packages' __init__ files included: importing a.b runs a/__init__.py). Modules for which
    `skip(name)` is true are left out and not followed."""
    seen, visited, todo = set(), set(), list(modules)
    while todo:
        name = todo.pop()
        if name in visited or skip(name):
            continue
        visited.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        f = _module_file(name)
        if f is not None and f not in seen:
            seen.add(f)
            todo += companion_imports(f.read_text())
    return sorted(seen)


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def normalized_source(path: Path) -> str:
    """The code of a source file without what cannot change a computed number: comments,
    docstrings, the module's `SCALES` presets and the defaults (and help texts) of its `Config`
    fields. Presets are safe to leave out because every sub-run's own key holds the values of
    the fields it reads (config_key)."""
    tree = ast.parse(Path(path).read_text())
    tree.body = [n for n in tree.body if not (isinstance(n, (ast.Assign, ast.AnnAssign)) and any(
        isinstance(t, ast.Name) and t.id == "SCALES" for t in (n.targets if isinstance(n, ast.Assign) else [n.target])))]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Config":
            for item in node.body:
                if isinstance(item, ast.AnnAssign):
                    item.value = None
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and _is_docstring(body[0]):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def source_hash(files, normalize: bool = False) -> str:
    """Hash of the given library files' paths and contents (normalised: see normalized_source)."""
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(p.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(normalized_source(p).encode() if normalize else p.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def lib_hash() -> str:
    """Hash of the whole library's Python sources (recorded in provenance)."""
    return source_hash(PACKAGE_DIR.rglob("*.py"))


def compute_files(chapter: str) -> list:
    """The files that key `chapter`'s cached results: every companion module its experiment
    imports, transitively, except the presentation modules (every non-presentation module for
    a name that is not a chapter)."""
    from companion import catalog
    module = next((e["module"] for e in catalog.ENTRIES if e["id"] == chapter), None)
    if module:
        return module_files(f"companion.experiments.{module}", skip=is_not_compute)
    return sorted(f for f in PACKAGE_DIR.rglob("*.py") if not is_not_compute(
        "companion." + ".".join(f.relative_to(PACKAGE_DIR).with_suffix("").parts)))


@lru_cache(maxsize=None)
def compute_hash(chapter: str) -> str:
    """Hash of the normalised source of compute_files(chapter)."""
    return source_hash(compute_files(chapter), normalize=True)


def config_key(cfg, drop=()) -> dict:
    """A sub-run's cache key built by exclusion: every Config field except those in `drop`
    (fields the sub-run provably does not read, e.g. the lengths of *other* runs)."""
    import dataclasses
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = set(drop) - names
    if unknown:
        raise KeyError(f"config_key: not Config fields: {sorted(unknown)}")
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in drop}


def _load_entry(path: Path):
    try:
        entry = torch.load(path, weights_only=False)
        return entry if isinstance(entry, dict) and "value" in entry else None
    except Exception:
        return None


def load_checkpoint(path, map_location=None):
    """A mid-run checkpoint (train.train, the MLP loop), or None when there is none. One that
    cannot be read (a crash while writing it on a filesystem without atomic rename, a disk
    error, a foreign file) is moved aside to `<path>.corrupt`, named in a warning, and the
    sub-run restarts from its beginning: it never blocks a rerun."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        saved = torch.load(path, weights_only=False, map_location=map_location)
        if not isinstance(saved, dict) or "step" not in saved:
            raise ValueError("not a checkpoint of this library")
        return saved
    except Exception as e:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        warnings.warn(f"checkpoint {path} could not be read ({type(e).__name__}: {e}); moved to {aside}, "
                      "restarting that sub-run", stacklevel=2)
        return None


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
    if not enabled:
        return _compute(name, compute, path, full_key, enabled)
    hit = _reuse(name, path, full_key, quiet=True)  # a hit takes no lock (a read-only cache works)
    if hit is not _MISS:
        return hit
    # one writer per entry: a concurrent run that needs the same sub-run waits, then reuses it
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.stem}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another run that is computing {path.name}", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        hit = _reuse(name, path, full_key)
        return hit if hit is not _MISS else _compute(name, compute, path, full_key, enabled)


_MISS = object()


def _reuse(name, path, full_key, quiet=False):
    """The stored value if the entry at `path` exists and holds this key, else _MISS. A damaged
    entry, or one whose stored key is another's (a copied or swapped file), is never trusted."""
    if not path.exists():
        return _MISS
    entry = _load_entry(path)
    if entry is not None and stable_hash(entry.get("key")) == stable_hash(full_key):
        LEDGER.append((name, entry.get("seconds", float("nan")), True))
        return entry["value"]
    if not quiet:
        warnings.warn(f"cache entry {path} is {'unreadable' if entry is None else 'for another configuration'}: "
                      "recomputing it", stacklevel=4)
    return _MISS


def _compute(name, compute, path, full_key, enabled):
    t0 = time.time()
    value = compute(path.with_suffix(".ckpt") if enabled else None)
    LEDGER.append((name, time.time() - t0, False))
    if enabled:
        buf = io.BytesIO()
        torch.save({"key": full_key, "value": value, "seconds": LEDGER[-1][1]}, buf)
        atomic_write_bytes(path, buf.getvalue())
    return value


