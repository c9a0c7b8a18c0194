"""`python -m companion`: list, run, compute, build, html, check-site, stamp, claims.

Every bad input (unknown chapter or parameter, wrong type, out-of-range value, a parameter
given twice, unknown scale, missing, corrupted or unreadable dataset, an output folder that
is not a run's or cannot be written, an unwritable cache, another run writing into the same
folder) is reported as one line on stderr with exit status 2, before any kernel starts and
before anything is written. A failure during the computation exits 1 with the notebook's path.
"""
import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from companion import budget
from companion import chapters as CH
from companion import outputs
from companion import params as P
from companion.book import ClaimsError
from companion.data import DataError
from companion.results import _UMASK, atomic_write_bytes, cache_dir, repo_root
from companion.site.config import SiteError


class UsageError(Exception):
    pass


PROG = "python -m companion"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the whole usage)
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _check_cache():
    """The result cache can be written (checked before a kernel computes for minutes; nothing
    is created: the nearest existing folder on its path is probed)."""
    d = cache_dir()
    probe = d
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"result cache {d} cannot be created ({probe} is not a folder); set COMPANION_CACHE "
                         "to a writable folder")
    outputs.check_writable(probe, f"result cache {d}", "; set COMPANION_CACHE to a writable folder")


def _check_gpu_scale(ch, scale: str, force: bool):
    """The gpu preset on a machine without CUDA would run for hours: refuse unless forced."""
    import torch
    if scale == "gpu" and not torch.cuda.is_available() and not force:
        raise P.ParamError(f"scale 'gpu' is sized for one GPU (~{ch.minutes['gpu']:g} min there) and CUDA is not "
                           "available here, where it would take many times longer: use --scale cpu, or add --force")


def _prepare(chapter_id: str, scale: str, pairs, force: bool = False):
    """Validate everything a run needs; returns (chapter, scale, config, run options, overrides)."""
    ch = CH.get(chapter_id)
    if scale not in P.SCALES + ("auto",):
        raise P.ParamError(f"unknown scale {scale!r}; scales: {', '.join(P.SCALES)}, auto")
    scale = CH.resolve_scale(scale)
    _check_gpu_scale(ch, scale, force)
    specs = ch.param_specs()
    allowed = [k for k in specs if k not in ("scale", "out_dir")]
    given = {}
    for name, value in pairs or []:
        P.check_names([name], allowed)
        if name in given:
            raise P.ParamError(f"parameter {name!r} is given twice; give each parameter once")
        given[name] = P.coerce(name, specs[name], value)
    run_opts = {k: given.pop(k) for k in list(given) if k in P.RUN_OPTIONS}
    cfg = CH.configure(ch, scale, given)
    if run_opts.get("device") == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise P.ParamError("parameter 'device' is 'cuda' but CUDA is not available; allowed here: auto, cpu")
    refusal, _ = budget.check(ch, scale, cfg, force)
    if refusal:
        raise P.ParamError(refusal)
    _check_datasets(ch, cfg)
    return ch, scale, cfg, run_opts, given


def _note_duration(ch, scale, cfg):
    """A line on stderr when the configuration is expected to run long (after all the checks)."""
    _, note = budget.check(ch, scale, cfg, force=True)
    if note:
        print(note, file=sys.stderr, flush=True)


def _check_datasets(ch, cfg):
    """Every data file the run will read is present and verified (DataError otherwise): the
    chapter's own, or those its configuration names (Config.datasets()), if it has that."""
    from companion import data
    for name in cfg.datasets() if hasattr(cfg, "datasets") else ch.datasets:
        try:
            data.path(name)
        except OSError as e:  # present but unreadable (EIO, permissions): the file is named
            raise DataError(f"dataset {name!r} could not be read ({e.filename or ''}: {e.strerror or e}); "
                            "check the file or set COMPANION_DATA to a good copy") from None


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return str(path.resolve())


def execute(ch, scale, cfg, run_opts, overrides, out: Path, log_output=False, then=None) -> Path:
    """Execute the chapter notebook with papermill into `out` (see design.md); returns the
    executed notebook's path. Holding `out`'s lock, the CLI makes a private staging folder,
    the kernel's Session writes the artifacts into it, the CLI adds the executed notebook and
    swaps the whole folder in; `then(notebook)` (publishing) runs before the lock is released."""
    import logging

    logging.getLogger("papermill").setLevel(logging.ERROR)  # parameters are validated above, not by papermill
    out = Path(out).resolve()  # one spelling for the check, the lock, the kernel and the swap
    outputs.check_target(out)
    _check_cache()
    with outputs.Lock(out):
        gone = outputs.clean_leftovers(out, ch.id)
        if gone:
            print(f"removed what interrupted runs left beside {out}: {', '.join(gone)}", file=sys.stderr)
        _note_duration(ch, scale, cfg)
        stage = outputs.staging(out)
        os.environ[outputs.LOCK_ENV], os.environ[outputs.STAGE_ENV] = str(out), str(stage)
        try:
            _execute(ch, scale, cfg, run_opts, overrides, out, stage, log_output)
        finally:
            os.environ.pop(outputs.LOCK_ENV, None)
            os.environ.pop(outputs.STAGE_ENV, None)
        if not (stage / "metrics.json").exists():
            raise RuntimeError(f"{ch.id} ran to its end without writing its results (Session.finish); "
                               f"{out} is unchanged")
        outputs.swap_dir(stage, out, carry_notebooks=False)
        out.with_name(out.name + ".failed.ipynb").unlink(missing_ok=True)  # describes an earlier attempt
        dest = out / f"{ch.id}.ipynb"
        if then is not None:
            then(dest)
        return dest


def _execute(ch, scale, cfg, run_opts, overrides, out: Path, stage: Path, log_output):
    import papermill as pm
    for var in ("COMPANION_DATA", "COMPANION_CACHE"):  # the kernel runs in book/chapters: pass absolute paths
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).resolve())
    key = CH.execution_key(ch, scale, cfg)
    parameters = {"scale": scale, "out_dir": _rel(out), **run_opts,
                  **{k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}}
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=outputs.notebook_prefix(out, ch.id), suffix=".ipynb")
    os.close(fd)
    failed = out.with_name(out.name + ".failed.ipynb")
    t0 = time.time()
    try:
        pm.execute_notebook(str(ch.notebook), tmp, parameters=parameters, cwd=str(ch.notebook.parent),
                            kernel_name="python3", progress_bar=False, log_output=log_output)
    except BaseException as e:
        if Path(tmp).exists():
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, failed)
        if isinstance(e, KeyboardInterrupt):
            raise
        name = getattr(e, "ename", type(e).__name__)
        raise RuntimeError(f"{ch.id} failed at scale {scale}: {name}: {getattr(e, 'evalue', e)} "
                           f"(executed notebook: {failed})") from None
    nb = clean_notebook(json.loads(Path(tmp).read_text()))
    nb["metadata"]["companion"] = {"key": key, "scale": scale, "config": dataclasses.asdict(cfg),
                                   "wall_time_s": round(time.time() - t0, 1)}
    atomic_write_bytes(stage / f"{ch.id}.ipynb", (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode())
    Path(tmp).unlink(missing_ok=True)


def clean_notebook(nb: dict) -> dict:
    """What a reader downloads: no stderr streams (progress bars, warnings), papermill's
    injected-parameters cell removed from the rendered page (kept in the file: it records
    how the notebook was run)."""
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"] = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream"
                                                                       and o.get("name") == "stderr")]
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    pm = nb.get("metadata", {}).get("papermill", {})
    for k, v in pm.items():  # the machine's paths are no one else's business
        if isinstance(v, str) and v.startswith(str(repo_root())):
            pm[k] = _rel(Path(v))
    return nb


def cmd_list(args):
    for ch in CH.CHAPTERS.values():
        times = ", ".join(f"{s} ~{ch.minutes[s]:g} min" for s in P.SCALES)
        scale, _ = CH.published(ch)
        state = f"published at {scale}, {'current' if CH.is_current(ch, scale) else 'stale'}" if scale else "unpublished"
        print(f"{ch.id:20s} {ch.title}  [{times}] ({state})")
        if args.verbose:
            exp = ch.experiment()
            for name, spec in ch.param_specs().items():
                presets = ""
                if name not in P.RUN_OPTIONS:
                    presets = "  (" + ", ".join(f"{s}: {getattr(exp.SCALES[s], name)}" for s in P.SCALES) + ")"
                print(f"    {name:14s} {P.describe(spec)}{presets}")
    return 0


def cmd_run(args):
    if args.out is not None and not args.out.strip():
        raise UsageError("--out is empty; give a folder, or leave --out out for _build/runs/<chapter>/<scale>")
    ch, scale, cfg, run_opts, overrides = _prepare(args.chapter, args.scale, args.param, args.force)
    out = Path(args.out) if args.out else repo_root() / "_build" / "runs" / ch.id / scale
    t0 = time.time()
    nb = execute(ch, scale, cfg, run_opts, overrides, out, log_output=args.verbose)
    from companion.claims import verdict_counts
    rows = json.loads((nb.parent / "claims.json").read_text())
    print(f"{ch.id} ({scale}): {verdict_counts(rows)}; "
          f"{len(list((nb.parent / 'figures').glob('*.png')))} figures; {time.time() - t0:.0f} s; notebook {nb}")
    return 0


def cmd_compute(args):
    from companion import device
    ch, scale, cfg, run_opts, _ = _prepare(args.chapter, args.scale, args.param, args.force)
    _check_cache()
    _note_duration(ch, scale, cfg)
    dev = device.setup(getattr(cfg, "seed", 0), run_opts.get("threads", 0), run_opts.get("device", "auto"))
    t0 = time.time()
    ch.experiment().run(cfg, dev, progress=True)
    print(f"{ch.id} ({scale}) computed on {device.describe(dev)} in {time.time() - t0:.0f} s; "
          f"results cached under {os.environ.get('COMPANION_CACHE', '_build/cache')}")
    return 0


def _repo(args):
    """(url, branch) from --repo-url/--branch, checked; None without --repo-url."""
    from companion.site import config
    if args.repo_url is None:
        return None
    return config.check_repo(args.repo_url, args.branch)


def cmd_build(args):
    from companion import book
    repo = _repo(args)
    scale = CH.resolve_scale(args.scale)
    only = [CH.get(c).id for c in args.chapter or []]
    for ch in CH.CHAPTERS.values():
        if not only or ch.id in only:
            _check_gpu_scale(ch, scale, args.force)
    for ch in CH.CHAPTERS.values():
        if only and ch.id not in only:
            continue
        if CH.is_current(ch, scale) and not args.force:
            print(f"{ch.id}: up to date at scale {scale}")
            continue
        cfg = CH.configure(ch, scale, {})
        _check_datasets(ch, cfg)
        print(f"{ch.id}: executing at scale {scale} (~{ch.minutes[scale]:g} min)", flush=True)
        out = repo_root() / "_build" / "runs" / ch.id / scale
        execute(ch, scale, cfg, {}, {}, out, then=lambda nb, ch=ch: book.publish(ch, scale, nb.parent, nb))
    book.write_dashboard()
    if args.no_html:
        return 0
    return book.build_html(repo)


def cmd_html(args):
    from companion import book
    return book.build_html(_repo(args), args.out)


def cmd_check_site(args):
    from companion.site import browser
    root = Path(args.dir)
    if not (root / "index.html").is_file():
        raise UsageError(f"no built book at {root} (no index.html): run `make html` first, or give its folder")
    try:
        browser.find_chromium()
    except browser.BrowserMissing as e:
        raise UsageError(str(e)) from None
    t0 = time.time()
    report = browser.check_site(root, screens=args.screens)
    for line in report.problems:
        print(line)
    print(f"{report.pages} pages at {len(browser.WIDTHS)} widths ({', '.join(map(str, browser.WIDTHS.values()))} px) "
          f"in {time.time() - t0:.0f} s: {len(report.problems)} problems"
          + (f"; screenshots in {args.screens}" if args.screens else ""))
    return 1 if report.problems else 0


def cmd_stamp(args):
    """Write the repository into the install cell of every committed chapter (what Colab opens)."""
    from companion.site import bootstrap, config
    repo = config.check_repo(args.repo_url, args.branch)
    chapters = [ch for ch in CH.CHAPTERS.values() if ch.notebook.exists()]
    if args.check:
        off = [ch.id for ch in chapters if bootstrap.stamped(json.loads(ch.notebook.read_text())) != repo]
        for cid in off:
            print(f"{cid}: its install cell does not name {repo[0]} at {repo[1]}")
        return 1 if off else 0
    changed = [ch.id for ch in chapters if bootstrap.stamp(ch.notebook, *repo)]
    print(f"install cells name {repo[0]} at {repo[1]}: {len(changed)} chapters changed"
          + (f" ({', '.join(changed)}); commit book/chapters" if changed else ""))
    return 0


def cmd_claims(args):
    from companion import book
    if args.chapter:
        CH.get(args.chapter)  # unknown chapter: one line listing the chapters
    if args.dir and not Path(args.dir).is_dir():
        raise UsageError(f"--dir {args.dir} is not a folder")
    rows = book.load_claims(args.dir, args.chapter)
    if not rows:
        where = f"under {args.dir}" if args.dir else "in data/runs"
        raise UsageError(f"no claims of {args.chapter} {where}" if args.chapter else f"no claims.json found {where}")
    from companion.claims import verdict_text
    for r in rows:
        print(f"{verdict_text(r)} [{r.get('chapter', '')}/{r['scale']}] {r['claim']}: ours "
              f"{r.get('our_value_text', r['our_value'])} | paper {r['paper_value']}")
    return 0


def _repo_options(s):
    s.add_argument("--repo-url", help="the book's repository (https://github.com/OWNER/REPO): adds the repository, "
                                      "issue and launch buttons and names it in downloaded notebooks")
    s.add_argument("--branch", default="main", help="the repository's branch (default main)")


def parser():
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    s = sub.add_parser("list", help="chapters, scales and expected times")
    s.add_argument("-v", "--verbose", action="store_true", help="also list every parameter and its presets")
    s.set_defaults(fn=cmd_list)
    for name, fn, helptext in (("run", cmd_run, "execute a chapter notebook with papermill"),
                               ("compute", cmd_compute, "fill the result cache without Jupyter (e.g. on a GPU)")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("chapter")
        s.add_argument("--scale", default="auto", help="smoke | cpu | gpu | auto (default)")
        s.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="override one parameter (repeatable)")
        s.add_argument("--force", action="store_true", help="run the gpu preset without CUDA, or a configuration "
                                                            "estimated to take more than a week")
        if name == "run":
            s.add_argument("--out", help="artifact folder (default _build/runs/<chapter>/<scale>); an existing "
                                         "folder must be an earlier run's or empty")
            s.add_argument("-v", "--verbose", action="store_true", help="stream the notebook's output")
        s.set_defaults(fn=fn)
    s = sub.add_parser("build", help="execute stale chapters, publish their runs, build the HTML book")
    s.add_argument("--scale", default="auto", choices=P.SCALES + ("auto",))
    s.add_argument("--force", action="store_true", help="re-execute every chapter (and allow the gpu preset "
                                                        "without CUDA)")
    s.add_argument("--no-html", action="store_true", help="skip the jupyter-book build")
    s.add_argument("--chapter", action="append", metavar="ID", help="only this chapter (repeatable)")
    _repo_options(s)
    s.set_defaults(fn=cmd_build)
    s = sub.add_parser("html", help="build the HTML book from the committed chapters (nothing is executed)")
    _repo_options(s)
    s.add_argument("--out", help="jupyter-book's --path-output: the HTML goes to OUT/_build/html (default: here)")
    s.set_defaults(fn=cmd_html)
    s = sub.add_parser("check-site", help="open every page of a built book in headless Chromium and report problems")
    s.add_argument("dir", nargs="?", default="_build/html", help="the HTML folder (default _build/html)")
    s.add_argument("--screens", default="_build/screens", help="screenshot folder (default _build/screens)")
    s.set_defaults(fn=cmd_check_site)
    s = sub.add_parser("stamp", help="name the repository in every chapter's install cell (for Colab)")
    s.add_argument("repo_url", help="https://github.com/OWNER/REPO")
    s.add_argument("--branch", default="main", help="the branch the install cell clones (default main)")
    s.add_argument("--check", action="store_true", help="only report chapters naming another repository; exit 1 if any")
    s.set_defaults(fn=cmd_stamp)
    s = sub.add_parser("claims", help="print claims tables (committed runs by default)")
    s.add_argument("chapter", nargs="?")
    s.add_argument("--dir", help="a run folder (holding claims.json) instead of data/runs")
    s.set_defaults(fn=cmd_claims)
    return p


def main(argv=None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.fn(args)
    except (UsageError, P.ParamError, DataError, outputs.OutputError, ClaimsError, SiteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused something the checks could not foresee
        print(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished sub-runs are cached; rerun to resume", file=sys.stderr)
        return 130
