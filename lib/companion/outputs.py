"""Output folders of chapter runs: which folders a run may replace, one writer at a time, a
private staging folder per run, and the leftovers of interrupted runs.

A run writes its artifacts into a staging folder of its own beside the output folder and
swaps it in whole when it ends (`swap_dir`), so a reader of the output folder sees the
previous complete result or the new one, never a mix. It may replace only a folder that is
recognisably a run's (the `MARKER` file, or exactly the artifacts of a run from before the
marker): `--out` pointed at a folder of the user's own is refused before anything is
written. Everything this module creates beside an output folder `out` is hidden and named
`.<out>.<kind>-<random>` (`STAGE`, `OLD`, the CLI's notebook), so cleaning up never touches a
file it did not make, nor a sibling output's.
"""
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from companion.results import _UMASK, repo_root

MARKER = ".companion-run"  # written into every output folder; its presence makes the folder replaceable
RESULT_FILES = {"metrics.json", "claims.json", "verifications.json", "provenance.json"}
LOCK_ENV = "COMPANION_OUT_LOCKED"  # set by the CLI for the kernel: the output folder whose lock it holds
STAGE_ENV = "COMPANION_STAGE"  # set by the CLI: the staging folder the kernel writes into (the CLI swaps)
_RANDOM = r"[A-Za-z0-9_]{8}"  # tempfile's suffix/prefix alphabet and length


class OutputError(ValueError):
    """An output folder that must not be written; the message is one line."""


def is_run_folder(path: Path) -> bool:
    """A folder a run wrote: it holds the marker, or exactly a run's artifacts (a run from
    before the marker: provenance.json naming a chapter, result files, figures/*.png and that
    chapter's notebook, nothing else)."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if MARKER in names:
        return True
    try:
        chapter = json.loads((path / "provenance.json").read_text())["chapter"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    figures = path / "figures"
    return (names <= RESULT_FILES | {"figures", f"{chapter}.ipynb"}
            and (not figures.exists() or (figures.is_dir() and all(
                p.is_file() and p.suffix == ".png" for p in figures.iterdir()))))


def check_target(out: Path):
    """Refuse (OutputError) an output folder a run must not replace or cannot write. `out`
    must be resolved (Path.resolve): the check, the lock and the swap see one folder."""
    root = repo_root().resolve()
    if out == Path(out.anchor):
        raise OutputError(f"output folder {out} is not allowed")
    if out == root or root.is_relative_to(out):
        raise OutputError(f"output folder {out} is the project or holds it: choose a folder of its own "
                          "(default: _build/runs/<chapter>/<scale>)")
    if out.is_relative_to(root) and not out.is_relative_to(root / "_build"):
        raise OutputError(f"output folder {out} is inside the project: use a folder under _build/ or "
                          "outside the project")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not is_run_folder(out):
        raise OutputError(f"output folder {out} holds files that are not a run's (no {MARKER}): a run replaces "
                          "its whole output folder, so choose a new or empty folder, or an earlier run's")
    parent = out.parent  # staging, the swap's renames and the lock live beside `out`
    while not parent.exists():
        parent = parent.parent
    check_writable(parent, f"output folder {out}")


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


class Lock:
    """The output folder's lock: an flock on a hidden `.<name>.lock` beside it (the file is
    kept; the lock goes with the process). A second run into the same folder is refused with
    one line. Re-acquiring in a process that already holds it (a notebook run twice in one
    kernel after a failure) takes it over instead of refusing itself."""

    _held = {}  # path -> open file, this process's locks

    def __init__(self, out: Path):
        self.path = lock_path(out)
        self.out = out

    def acquire(self):
        old = Lock._held.pop(self.path, None)
        if old is not None:
            old.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.seek(0)
            who = f.read().strip()
            f.close()
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise OutputError(f"another run{f' ({who})' if who else ''} is writing into {self.out}: wait for it "
                              "to finish or choose another output folder") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
        f.flush()
        Lock._held[self.path] = f
        return self

    def release(self):
        f = Lock._held.pop(self.path, None)
        if f is not None:
            f.close()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def held_by_caller(out: Path) -> bool:
    """Whether the process that started this kernel (the CLI) holds `out`'s lock."""
    return os.environ.get(LOCK_ENV) == str(out)


def staging(out: Path) -> Path:
    """A new private staging folder beside `out` (`.<name>.partial-XXXXXXXX/`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    os.chmod(stage, 0o777 & ~_UMASK)
    (stage / "figures").mkdir()
    return stage


def notebook_prefix(out: Path, chapter_id: str) -> str:
    """Prefix of the CLI's temporary executed notebook beside `out`."""
    return f".{out.name}.{chapter_id}."


def _ours(out: Path, chapter_id: str = None) -> re.Pattern:
    name = re.escape(out.name)
    kinds = [rf"partial-{_RANDOM}", rf"old-{_RANDOM}"]
    if chapter_id:
        kinds.append(rf"{re.escape(chapter_id)}\.{_RANDOM}\.ipynb")
    return re.compile(rf"^\.{name}\.(?:{'|'.join(kinds)})$")


def leftovers(out: Path, chapter_id: str = None) -> list:
    """What interrupted runs into `out` left beside it (staging folders, a swap's backup, the
    CLI's temporary notebooks): only names this module makes. Remove them only while holding
    `out`'s lock."""
    if not out.parent.is_dir():
        return []
    pattern = _ours(out, chapter_id)
    return sorted(p for p in out.parent.iterdir() if pattern.match(p.name) and not p.is_symlink())


def clean_leftovers(out: Path, chapter_id: str = None) -> list:
    """Remove `leftovers(out)`; returns their names (to report them). A run killed inside the
    swap (between its two renames) left the previous complete result as a `.<out>.old-*`
    backup and no `out`: that result is put back first."""
    if not out.exists() and not out.is_symlink():
        backups = [p for p in leftovers(out) if ".old-" in p.name and p.is_dir()]
        if backups:
            max(backups, key=lambda p: p.stat().st_mtime).rename(out)
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


def swap_dir(new: Path, dest: Path, carry_notebooks: bool = True):
    """Replace folder `dest` by `new` with two renames (the previous one kept as a hidden
    `.<dest>.old-*` backup until the second rename is done). With `carry_notebooks`, executed
    notebooks in dest that `new` lacks (a run through papermill directly) are carried over."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink():
        raise OutputError(f"output folder {dest} is a symbolic link: give the folder it points to")
    old = None
    if dest.exists():
        if carry_notebooks:
            for p in dest.iterdir():
                if p.is_file() and p.suffix == ".ipynb" and not (new / p.name).exists():
                    shutil.copy2(p, new / p.name)
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.rmdir(old)
        dest.rename(old)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
