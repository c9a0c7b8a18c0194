"""The chapter registry and the session a chapter notebook runs in.

A chapter is a notebook `book/chapters/<id>.ipynb` backed by an experiment module
`companion.experiments.<module>` that defines `Config` (its parameters, a frozen dataclass
with an optional `validate()`), `SCALES` (a preset Config per scale) and `run(cfg, dev,
progress)` (pure compute, cached); its report module `companion.reports.<module>` turns the
results into metrics, `CLAIMS` and figures.
"""
import dataclasses
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from companion import device as devices
from companion import outputs
from companion import params as P
from companion.catalog import ENTRIES, PARTS
from companion.provenance import Provenance
from companion.results import (atomic_write_bytes, atomic_write_json, companion_imports, module_files, repo_root,
                               source_hash, stable_hash)


@dataclass(frozen=True)
class Chapter:
    id: str
    title: str
    part: str
    module: str
    datasets: tuple
    minutes: dict  # expected wall minutes per scale (smoke/cpu on 2 CPU cores, gpu on one H100)
    contract: int = 1  # 2: the chapter follows contract v2 (see catalog.py)

    @property
    def notebook(self) -> Path:
        return repo_root() / "book" / "chapters" / f"{self.id}.ipynb"

    def experiment(self):
        return importlib.import_module(f"companion.experiments.{self.module}")

    def param_specs(self) -> dict:
        return {**P.RUN_OPTIONS, **P.fields(self.experiment().Config)}

    def sources(self) -> list:
        """The library files a run of this chapter executes: its experiment and report modules,
        every companion module its notebook's code cells import, the session machinery, and
        every companion module they import (the catalog excepted)."""
        roots = ("companion", "companion.chapters", f"companion.experiments.{self.module}",
                 f"companion.reports.{self.module}", *notebook_imports(self.notebook))
        return [f for f in module_files(*roots) if f.name != "catalog.py"]


def notebook_imports(nb_path) -> list:
    """The companion modules the code cells of a notebook import."""
    out = []
    for src in code_cells(json.loads(Path(nb_path).read_text())):
        try:
            out += sorted(companion_imports(src))
        except SyntaxError:  # IPython magics: nothing of ours to find
            continue
    return out


CHAPTERS = {e["id"]: Chapter(**e) for e in ENTRIES}


def get(chapter_id: str) -> Chapter:
    if chapter_id not in CHAPTERS:
        raise P.ParamError(f"unknown chapter {chapter_id!r}; chapters: {', '.join(CHAPTERS)}")
    return CHAPTERS[chapter_id]


def resolve_scale(scale: str) -> str:
    if scale == "auto":
        import torch
        return "gpu" if torch.cuda.is_available() else "cpu"
    return scale


def configure(ch: Chapter, scale: str, overrides: dict):
    """The experiment Config for `scale` with `overrides` applied; raises ParamError."""
    specs = P.fields(ch.experiment().Config)
    P.check_names(overrides, list(specs))
    values = {k: P.coerce(k, specs[k], v) for k, v in overrides.items() if v is not None}
    base = ch.experiment().SCALES[resolve_scale(scale)]
    cfg = dataclasses.replace(base, **values)
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


BOOTSTRAP_TAG = "bootstrap"  # the install cell's tag (companion.site.bootstrap)


def code_cells(nb: dict) -> list:
    """Sources of the code cells that define a chapter: papermill's injected cell and the
    install cell (companion.site.bootstrap: a no-op wherever the library is importable, and
    its repository URL is not the chapter's) are left out."""
    skip = {"injected-parameters", BOOTSTRAP_TAG}
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code" and not skip & set(c.get("metadata", {}).get("tags", []))]


def execution_key(ch: Chapter, scale: str, cfg, nb_path=None) -> str:
    """What an executed chapter depends on: its code cells, the source of the library modules
    it runs (Chapter.sources), its catalog entry, the scale and the experiment parameters.
    `make book` skips chapters whose key is unchanged."""
    nb = json.loads(Path(nb_path or ch.notebook).read_text())
    return stable_hash({"code": code_cells(nb), "lib": source_hash(ch.sources()), "entry": dataclasses.asdict(ch),
                        "scale": scale, "config": dataclasses.asdict(cfg)})


def published(ch: Chapter):
    """(scale, execution key) stored in the committed executed chapter, or (None, None)."""
    meta = json.loads(ch.notebook.read_text())["metadata"].get("companion", {})
    return meta.get("scale"), meta.get("key")


def is_current(ch: Chapter, scale: str) -> bool:
    """Whether the committed chapter was executed at `scale` with today's code, library and presets."""
    stored_scale, key = published(ch)
    return stored_scale == scale and key == execution_key(ch, scale, configure(ch, scale, {}))


def injected(namespace: dict) -> list:
    """The names papermill assigned in the cell it injected ("# Parameters", the latest such
    input of this kernel, from IPython's `In`), or [] when papermill did not run the notebook."""
    import ast
    src = next((c for c in reversed(namespace.get("In") or []) if c.lstrip().startswith("# Parameters")), None)
    if src is None:
        return []
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return []
    return [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]


def undeclared(namespace: dict, specs: dict) -> list:
    """Parameters papermill injected that the chapter does not declare (papermill only warns)."""
    return sorted(k for k in injected(namespace) if k not in specs)


class Session:
    """A chapter run inside its notebook: config, device, provenance and artifacts.

    Artifacts are staged in a private folder beside `out_dir` and swapped into it whole (by
    `finish`, or by the CLI once it has added the executed notebook; companion.outputs), so
    an interrupted or concurrent run never leaves a mix: the output folder holds the
    previous complete artifacts, the new ones, or none."""

    def __init__(self, chapter_id: str, namespace: dict):
        self.chapter = get(chapter_id)
        specs = self.chapter.param_specs()
        extra = undeclared(namespace, specs)
        if extra:
            raise P.ParamError(f"unknown parameter{'s' * (len(extra) > 1)} {', '.join(map(repr, extra))}; "
                               f"allowed: {', '.join(specs)}")
        given = {k: namespace[k] for k in specs if k in namespace}
        run = {k: P.coerce(k, P.RUN_OPTIONS[k], given.get(k, P.RUN_OPTIONS[k]["default"])) for k in P.RUN_OPTIONS}
        self.scale = resolve_scale(run["scale"])
        self.overrides = {k: v for k, v in given.items() if k not in P.RUN_OPTIONS and v is not None}
        self.cfg = configure(self.chapter, self.scale, self.overrides)
        self.dev = devices.setup(getattr(self.cfg, "seed", 0), run["threads"], run["device"])
        out = run["out_dir"] or f"_build/runs/{chapter_id}/{self.scale}"
        self.out_dir = (Path(out) if Path(out).is_absolute() else repo_root() / out).resolve()
        self.under_cli = outputs.held_by_caller(self.out_dir)
        if self.under_cli:  # the CLI holds the lock, made the staging folder and swaps it in
            self.lock, self.stage = None, Path(os.environ[outputs.STAGE_ENV])
        else:  # papermill called directly: check, lock, clean and stage here
            outputs.check_target(self.out_dir)
            self.lock = outputs.Lock(self.out_dir).acquire()
            outputs.clean_leftovers(self.out_dir, chapter_id)
            self.stage = outputs.staging(self.out_dir)
        self.provenance = Provenance(chapter_id, self.scale, {**run, **dataclasses.asdict(self.cfg)},
                                     devices.describe(self.dev))
        self.published_scale = published(self.chapter)[0] if self.chapter.notebook.exists() else None
        self.n_figures = 0

    @property
    def is_published_setting(self) -> bool:
        """Whether this run has the published chapter's scale and its preset parameters."""
        return self.published_scale in (None, self.scale) and not self.overrides

    def note(self):
        """A short note at the top of a chapter run at another scale or with other parameters."""
        from IPython.display import Markdown, display
        if self.is_published_setting:
            return
        what = [f"scale `{self.scale}`" + (f" (published: `{self.published_scale}`)"
                                           if self.scale != self.published_scale else "")]
        if self.overrides:
            what.append("parameters " + ", ".join(f"`{k} = {v}`" for k, v in self.overrides.items()))
        display(Markdown(f"> **This is not the published run**: {'; '.join(what)}. Figures, numbers and verdicts "
                         "below are this run's; the claims table shows the published verdicts beside them."))

    def compute(self, progress: bool = True):
        """The experiment's results (cached by configuration; see results.cached)."""
        return self.chapter.experiment().run(self.cfg, self.dev, progress=progress)

    def figure(self, fig, name: str, caption: str = None):
        """Save `fig` as figures/<name>.png and show it. The caption belongs in the cell's
        metadata (mystnb.figure: caption and name, so that the book numbers it); a chapter
        before contract v2 passes it here and gets it printed under the figure."""
        from IPython.display import Markdown, display

        from companion.plotting import png_bytes, plt
        atomic_write_bytes(self.stage / "figures" / f"{name}.png", png_bytes(fig))
        self.n_figures += 1
        plt.show()
        if caption is not None:
            display(Markdown(f"**Figure {self.n_figures}.** {caption} *(scale: `{self.scale}`; "
                             f"`figures/{name}.png`)*"))

    def glue(self, metrics: dict, words: dict = None, claim_rows=()):
        """Make the run's numbers quotable in the prose (myst-nb glue, `{glue:text}` roles):
        every number of metrics.json under its dotted path (per_seed.0.x, mean.x, ...), the
        configuration as cfg.<field>, the scale, the words whose direction comes from the run,
        and each claim's verdict as verdict.<claim id>."""
        try:
            from myst_nb import glue
        except ImportError:  # outside the book's environment (e.g. Colab): the prose roles are not rendered
            return
        from companion.claims import verdict_text
        for name, v in flatten(metrics):
            glue(name, v, display=False)
        for k, v in dataclasses.asdict(self.cfg).items():
            glue(f"cfg.{k}", ", ".join(map(str, v)) if isinstance(v, (tuple, list)) else v, display=False)
        glue("scale", self.scale, display=False)
        for k, v in (words or {}).items():
            glue(k, v, display=False)
        for r in claim_rows:
            glue(f"verdict.{r['id']}", verdict_text(r), display=False)

    def published_claims(self):
        """The committed run's claims rows when this run is not that run (else None)."""
        if self.is_published_setting or self.published_scale is None:
            return None
        f = repo_root() / "data" / "runs" / self.chapter.id / self.published_scale / "claims.json"
        return json.loads(f.read_text()) if f.exists() else None

    def claims_table(self, rows: list):
        from companion import claims
        return claims.table(rows, self.published_claims())

    def finish(self, metrics: dict, claim_rows: list, verifications: list = None) -> dict:
        """Write metrics.json, claims.json (and verifications.json) and provenance.json, then
        swap the staged artifacts into out_dir. Returns the provenance record."""
        prov = self.provenance.finish()
        atomic_write_json(self.stage / "metrics.json", metrics)
        atomic_write_json(self.stage / "claims.json", claim_rows)
        if verifications is not None:
            atomic_write_json(self.stage / "verifications.json", verifications)
        atomic_write_json(self.stage / "provenance.json", prov)
        outputs.write_marker(self.stage, self.chapter.id, self.scale)
        if not self.under_cli:
            outputs.swap_dir(self.stage, self.out_dir)
            self.lock.release()
        return prov


def flatten(x, prefix=""):
    """(dotted path, number) for every number in nested dicts and lists (bools and None left out)."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from flatten(v, f"{prefix}{k}.")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from flatten(v, f"{prefix}{i}.")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield prefix[:-1], x


def start(chapter_id: str, namespace: dict) -> Session:
    """Open a chapter session from the notebook's parameters (its globals())."""
    from companion import plotting
    plotting.apply()
    session = Session(chapter_id, namespace)
    session.note()
    return session
