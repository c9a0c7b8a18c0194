"""Output folders of chapter runs: which folders a run may replace, one writer at a time, a
private staging folder per run, and the leftovers of interrupted runs.

A run writes its artifacts into a staging folder of its own beside the output folder and
swaps it in whole when it ends (`swap_dir`), so a reader of the output folder sees the
previous complete result or the new one, never a mix. It may replace only a folder that is
recognisably a run's (the `MARKER` file, or nothing but run artifacts): `--out` pointed at a
folder of the user's own is refused before anything is written.
"""
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

MARKER = ".companion-run"  # written into every output folder; its presence makes the folder replaceable
ARTIFACTS = {"metrics.json", "claims.json", "verifications.json", "provenance.json", "figures", MARKER}
LOCK_ENV = "COMPANION_OUT_LOCKED"  # set by the CLI for the kernel: the output folder it holds the lock of


class OutputError(ValueError):
    """An output folder that must not be written; the message is one line."""


def is_run_folder(path: Path) -> bool:
    """A folder a run wrote: it holds the marker, or only run artifacts (runs before the marker)."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    return MARKER in names or all(n in ARTIFACTS or n.endswith(".ipynb") for n in names)


def check_target(out: Path):
    """Refuse (OutputError) an output folder a run must not replace or cannot write."""
    out = Path(os.path.abspath(out))
    if str(out) in ("", "/"):
        raise OutputError("output folder '/' is not allowed")
    from companion.results import repo_root
    root = repo_root().resolve()
    real = out.resolve()
    if real == root or root.is_relative_to(real):
        raise OutputError(f"output folder {out} is the project or holds it: choose a folder of its own "
                          "(default: _build/runs/<chapter>/<scale>)")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not is_run_folder(out):
        raise OutputError(f"output folder {out} holds files that are not a run's (no {MARKER}): a run replaces "
                          "its whole output folder, so choose a new or empty folder, or an earlier run's")
    probe_dir = out
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    check_writable(probe_dir, f"output folder {out}")


def check_writable(folder: Path, what: str, hint: str = ""):
    """Create and remove a probe file in `folder` (os.access is not enough: root passes it on /proc)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".companion-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{what} is not writable ({folder}: {e.strerror or e}){hint}") from None


def lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


@contextmanager
def locked(out: Path, wait: bool = False):
    """Hold the output folder's lock (a hidden `.<name>.lock` file beside it, kept). A second
    run into the same folder is refused with one line (or waits, with `wait`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock_path(out), "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            f.seek(0)
            who = f.read().strip()
            raise OutputError(f"another run{f' ({who})' if who else ''} is writing into {out}: wait for it to "
                              "finish or choose another output folder") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
        f.flush()
        yield
    finally:
        f.close()  # closing the file releases the lock


def held_by_caller(out: Path) -> bool:
    """Whether the process that started this kernel (the CLI) holds `out`'s lock."""
    return os.environ.get(LOCK_ENV) == str(Path(out).resolve())


def staging(out: Path) -> Path:
    """A new private staging folder beside `out` (`.<name>.partial-XXXX/`, normal permissions)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    os.chmod(stage, 0o777 & ~_umask())
    (stage / "figures").mkdir()
    return stage


def leftovers(out: Path, chapter_id: str = None) -> list:
    """What interrupted runs into `out` left beside it: staging folders (this version's and the
    older shared `<out>.partial`), a half-swapped `<out>.old`, the CLI's hidden temporary
    notebooks. Only safe to remove while holding `out`'s lock."""
    parent = out.parent
    if not parent.exists():
        return []
    found = sorted(parent.glob(f".{out.name}.partial-*")) + [p for p in (
        out.with_name(out.name + ".partial"), out.with_name(out.name + ".old")) if p.exists()]
    if chapter_id:
        found += sorted(parent.glob(f"{notebook_prefix(out, chapter_id)}*.ipynb"))
    return found


def notebook_prefix(out: Path, chapter_id: str) -> str:
    """The CLI's temporary executed notebook beside `out` (named after `out`, so that cleaning
    one output folder's leftovers never touches a concurrent run into a sibling folder)."""
    return f".{out.name}.{chapter_id}."


def clean_leftovers(out: Path, chapter_id: str = None) -> list:
    """Remove `leftovers(out)`; returns their names (to report them). A run killed inside the
    swap (between its two renames) left the previous complete result as `<out>.old` and no
    `out`: that result is put back first."""
    old = out.with_name(out.name + ".old")
    if old.is_dir() and not out.exists():
        old.rename(out)
    gone = []
    for p in leftovers(out, chapter_id):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        gone.append(p.name)
    return gone


def write_marker(stage: Path, chapter_id: str, scale: str):
    (stage / MARKER).write_text(json.dumps({"chapter": chapter_id, "scale": scale}) + "\n")


def swap_dir(new: Path, dest: Path):
    """Replace folder `dest` by `new` with two renames; files in dest that `new` lacks
    (the executed notebook written by the CLI) are carried over."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        for p in dest.iterdir():
            if p.is_file() and p.suffix == ".ipynb" and not (new / p.name).exists():
                shutil.copy2(p, new / p.name)
        dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    from companion.results import _UMASK
    return _UMASK
