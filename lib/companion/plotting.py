"""The book's one style for figures and tables, and figure bytes for the run's artifacts."""
import io

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PALETTE = "colorblind"
WIDTH = 6.4  # inches; figures are rendered at 80% of the text width


def apply():
    """Seaborn 'whitegrid' theme in 'notebook' context, colour-blind palette, fixed DPI;
    tables show whole cells (claims are sentences)."""
    pd.set_option("display.max_colwidth", None)
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
