"""The book's one style for figures and tables, and figure bytes for the run's artifacts.

Figure functions follow one convention: a chapter's live in `companion.reports.<chapter>_figures`,
each is named `<subject>_figure`, takes the run's results (or metrics, for derived numbers)
first and the Config when it needs one, and returns a matplotlib Figure sized for the book's
column (WIDTH) without showing or saving it; the notebook shows it, saves it and captions it
in the cell's metadata (`Session.figure`)."""
import io

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PALETTE = "colorblind"
WIDTH = 6.4  # inches; figures are rendered at 80% of the text width


def apply():
    """Seaborn 'whitegrid' theme in 'notebook' context, colour-blind palette, fixed DPI;
    tables show whole cells (claims are sentences), and every DataFrame a chapter shows is
    rendered in the book's table style with missing values as '—' (never "NaN")."""
    pd.set_option("display.max_colwidth", None)
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, frame_html)
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.85)
    plt.rcParams.update({
        "figure.figsize": (WIDTH, 3.6), "figure.dpi": 100, "savefig.dpi": 130,
        "savefig.bbox": "tight", "axes.titlesize": "medium", "legend.fontsize": "small",
        "legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False,
    })


def colors(n: int):
    return sns.color_palette(PALETTE, n)


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def frame_html(df: pd.DataFrame, index: bool = True) -> str:
    """The book's HTML for a table: its CSS class, missing values as '—'."""
    return df.to_html(index=index, na_rep="—", classes="companion-table", border=0)


def html_table(df: pd.DataFrame):
    """A DataFrame as the book's HTML table without its index column (its text form, which
    nbval compares, stays short and stable)."""
    from IPython.display import HTML
    return HTML(frame_html(df, index=False))


def config_table(cfg, scale: str):
    """The run's configuration as a two-column table (lists comma-separated)."""
    import dataclasses
    rows = [(k, ", ".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v))
            for k, v in dataclasses.asdict(cfg).items()]
    return html_table(pd.DataFrame(rows, columns=["parameter", f"value (scale: {scale})"]))


def panels(n: int, ncols: int = 2, row_height: float = 2.9, **kw):
    """(fig, axes): n panels in rows of at most `ncols`, the book column wide (axes as a flat
    list; unused cells of the last row are hidden). Wide rows of small panels become unreadable
    once the page scales them to the column; this keeps tick labels at the text's size."""
    ncols = min(ncols, n)
    rows = -(-n // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(WIDTH, row_height * rows), squeeze=False, **kw)
    flat = list(axes.flat)
    for a in flat[n:]:
        a.set_visible(False)
    return fig, flat[:n]
