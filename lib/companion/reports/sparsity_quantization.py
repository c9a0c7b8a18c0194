"""The sparsity-quantization chapter's report: tensor- and model-level indicators, the paper's
claims checked on them, and tables (figures: `sparsity_quantization_figures`). Nothing here
trains.

The model metric is the validation cross-entropy (nats/char, lower is better); perplexity is
its exponential. The orthogonality bound (the paper's Eq. 12, additive, our reading) is
m_orth = m_dense + (m_S - m_dense) + (m_Q - m_dense), with m_S the sparse fine-tuned model and
m_Q the dense model quantized one-shot; S->Q is "not orthogonal" when m_{S->Q} > m_orth.
"""
import math

import numpy as np
import pandas as pd

from companion import claims as C
from companion.compress.formats import bits_per_element
from companion.experiments.sparsity_quantization import ORDERS, Config

TOL = 1e-6  # relative slack of float32 error sums in the tensor-level comparisons


def low_bit(fmt: str) -> bool:
    return bits_per_element(fmt) < 7


def four_bit(fmt: str) -> bool:
    return bits_per_element(fmt) < 5


def by_bits(formats) -> list:
    """Formats from the most to the fewest bits, families in a fixed order."""
    family = {"int": 0, "hbf": 1, "mxf": 2}
    return sorted(formats, key=lambda f: (-round(bits_per_element(f)), family[f[:3]]))


# ---- tensor level ----------------------------------------------------------------------

def tensor_frame(res) -> pd.DataFrame:
    t = pd.DataFrame(res["tensors"])
    for n in ("l1", "l2"):
        t[f"{n}_flip"] = t[f"{n}_SQ"] > t[f"{n}_QS"] * (1 + TOL)  # S->Q worse than Q->S
        t[f"{n}_over_sum"] = t[f"{n}_SQ"] > (t[f"{n}_S"] + t[f"{n}_Q"]) * (1 + TOL)  # Thm 3.5 broken
    t["aligned"] = t.sparsity.str.contains(":")  # N:M groups lie inside one quantization block
    t["flip"] = t.l1_flip | t.l2_flip
    return t


def tensor_table(res, sparsities=None) -> pd.DataFrame:
    """Mean errors (relative L2) and Q->S mask mismatch per source, sparsity and format,
    round-to-nearest (`sparsities`: only those)."""
    t = tensor_frame(res)
    t = t[(t.rounding == "nearest") & (t.sparsity.isin(sparsities) if sparsities else True)]
    cols = {"l2_S": "ε_S", "l2_Q": "ε_Q", "l2_SQ": "ε_S→Q", "l2_QS": "ε_Q→S", "mismatch": "mask mismatch"}
    out = t.groupby(["source", "sparsity", "format"], sort=False)[list(cols)].mean().rename(columns=cols)
    out["ε_S + ε_Q"] = out["ε_S"] + out["ε_Q"]
    return out[["ε_S", "ε_Q", "ε_S + ε_Q", "ε_S→Q", "ε_Q→S", "mask mismatch"]]


def flip_table(res) -> pd.DataFrame:
    """Cases where S->Q has the larger error (L1 or L2), by source, sparsity type and rounding."""
    t = tensor_frame(res)
    t["sparsity type"] = np.where(t.aligned, "N:M (block-aligned)", "unstructured")
    g = t.groupby(["source", "sparsity type", "rounding"])
    return pd.DataFrame({"cases": g.size(), "S→Q worse (L2)": g.l2_flip.sum(), "S→Q worse (L1)": g.l1_flip.sum(),
                         "Thm 3.5 broken": (g.l1_over_sum.sum() + g.l2_over_sum.sum())})


def mismatch_violations(t) -> list:
    """(source, sparsity, family, formats) where the mean Q->S mask mismatch (round-to-nearest)
    does not strictly grow as the bits fall, or is 0 at the most bits."""
    t = t[t.rounding == "nearest"]
    mean = t.groupby(["source", "sparsity", "format"]).mismatch.mean()
    bad = []
    for (source, sp), s in mean.groupby(level=[0, 1]):
        s = s.droplevel([0, 1])
        for fam in ("int", "hbfp", "mxfp"):
            fmts = by_bits([f for f in s.index if f.startswith(fam)])
            if fmts and s[fmts[0]] <= 0:
                bad.append(f"{source} {sp} {fmts[0]}: no mismatch")
            bad += [f"{source} {sp}: {a} {s[a]:.2%} ≥ {b} {s[b]:.2%}" for a, b in zip(fmts, fmts[1:]) if s[a] >= s[b]]
    return bad


# ---- model level -----------------------------------------------------------------------

def grid_frame(res) -> pd.DataFrame:
    g = pd.DataFrame(res["grid"])
    g["ppl"] = np.exp(g.ce)
    return g


def cell_ce(g, stage, order, sp="", fmt=""):
    row = g[(g.stage == stage) & (g.order == order) & (g.sparsity == sp) & (g.format == fmt)]
    return float(row.ce.iloc[0]) if len(row) else math.nan


def order_cells(g) -> pd.DataFrame:
    """Paired S->Q / Q->S cells: same stage, sparsity and format; gap = Q->S - S->Q (CE)."""
    rows = []
    for (stage, sp, fmt), cell in g[g.order.isin(list(ORDERS))].groupby(["stage", "sparsity", "format"], sort=False):
        sq, qs = cell_ce(g, stage, "sq", sp, fmt), cell_ce(g, stage, "qs", sp, fmt)
        rows.append(dict(stage=stage, sparsity=sp, format=fmt, sq=sq, qs=qs, gap=qs - sq))
    return pd.DataFrame(rows)


def orthogonality(g, cfg: Config) -> pd.DataFrame:
    """Per (sparsity, format): the individual degradations, the bound and the measured S->Q
    (the paper's pipeline: sparse fine-tuning, then one-shot quantization)."""
    dense = cell_ce(g, "one-shot", "dense")
    rows = []
    for sp in cfg.sparsities:
        d_s = cell_ce(g, "sparse-ft", "S", sp) - dense
        for fmt in cfg.formats:
            d_q = cell_ce(g, "one-shot", "Q", "", fmt) - dense
            sq = cell_ce(g, "sparse-ft", "sq", sp, fmt)
            p_orth = math.exp(dense + d_s) + math.exp(dense + d_q) - math.exp(dense)
            rows.append(dict(sparsity=sp, format=fmt, dS=d_s, dQ=d_q, bound=dense + d_s + d_q, measured=sq,
                             excess=sq - (dense + d_s + d_q), ppl_bound=p_orth, ppl_measured=math.exp(sq),
                             ppl_excess=math.exp(sq) - p_orth))
    return pd.DataFrame(rows)


def table2(res, cfg: Config) -> pd.DataFrame:
    """The Table-2 analogue: validation perplexity by sparsity, pipeline and format."""
    g = grid_frame(res)
    rows = {("dense", "FP32"): {"FP32": math.exp(cell_ce(g, "one-shot", "dense"))} |
            {f: math.exp(cell_ce(g, "one-shot", "Q", "", f)) for f in cfg.formats}}
    for sp in cfg.sparsities:
        rows[(sp, "S only, sparse FT")] = {"FP32": math.exp(cell_ce(g, "sparse-ft", "S", sp))}
        for label, stage, order in (("S→Q one-shot", "one-shot", "sq"), ("Q→S one-shot", "one-shot", "qs"),
                                    ("S→Q: sparse FT, then Q (paper)", "sparse-ft", "sq"),
                                    ("Q→S: sparse FT, then Q", "sparse-ft", "qs"),
                                    ("S→Q, quantization-aware FT", "qat", "sq"),
                                    ("Q→S, quantization-aware FT (paper)", "qat", "qs")):
            rows[(sp, label)] = {f: math.exp(cell_ce(g, stage, order, sp, f)) for f in cfg.formats}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = ["sparsity", "pipeline"]
    return out[["FP32", *by_bits(cfg.formats)]]


def costs(m) -> pd.DataFrame:
    """What each transformation alone costs the dense model (val CE over dense, nats/char)."""
    rows = {"dense model (val CE, nats/char)": m["dense_ce"]}
    rows |= {f"prune {sp}, one-shot": v for sp, v in m["one_shot_cost"]["S"].items()}
    rows |= {f"prune {sp}, after sparse fine-tuning": v for sp, v in m["sparse_ft_cost"].items()}
    rows |= {f"quantize {f.upper()}, one-shot": v for f, v in m["one_shot_cost"]["Q"].items()}
    return pd.Series(rows, name="CE increase over dense").to_frame()


def product_table(res) -> pd.DataFrame:
    """Relative output error of the Linear layers (mean over layers) per sparsity and format,
    and the layers where S->Q exceeds the sum of the errors, or their root sum of squares."""
    p = pd.DataFrame(res["products"])
    p["S→Q > S + Q"] = p.SQ > p.S + p.Q
    p["S→Q > √(S² + Q²)"] = p.SQ > np.sqrt(p.S ** 2 + p.Q ** 2)
    g = p.groupby(["sparsity", "format"], sort=False)
    out = g[["S", "Q", "SQ", "QS"]].mean().rename(columns={"S": "ε_S", "Q": "ε_Q", "SQ": "ε_S→Q", "QS": "ε_Q→S"})
    return out.join(g[["S→Q > S + Q", "S→Q > √(S² + Q²)"]].sum().astype(int).map(lambda n: f"{n}/{g.size().iloc[0]}"))


def layer_frame(res) -> pd.DataFrame:
    return pd.DataFrame(res["layers"])


def metrics(res: dict, cfg: Config) -> dict:
    """The numbers the claims and figures use."""
    t = tensor_frame(res)
    g = grid_frame(res)
    cells = order_cells(g)
    orth = orthogonality(g, cfg)
    lay = layer_frame(res)
    prod = pd.DataFrame(res["products"])
    dense = cell_ce(g, "one-shot", "dense")
    near, stoch = t.rounding == "nearest", t.rounding == "stochastic"

    def frac_sq_better(stage, fmt_ok=lambda f: True):
        c = cells[(cells.stage == stage) & cells.format.map(fmt_ok)]
        return (float((c.gap >= 0).mean()) if len(c) else math.nan), int(len(c))

    L = cfg.n_layer - 1  # last block (layer n_layer is the logits)
    blocks = lay[lay.layer <= L]
    first, last = (blocks[blocks.layer == i].set_index(["order", "sparsity", "format"]).rel_err for i in (0, L))
    low = [(sp, f) for sp in cfg.sparsities for f in cfg.formats if low_bit(f)]
    qs_worse = [float(last[("qs", sp, f)] > last[("sq", sp, f)]) for sp, f in low]
    o4 = orth[orth.format.map(four_bit)]
    o8 = orth[~orth.format.map(low_bit)]
    s_ft = {sp: cell_ce(g, "sparse-ft", "S", sp) for sp in cfg.sparsities}
    two_four = "2:4" if "2:4" in cfg.sparsities else cfg.sparsities[0]
    o24 = o4[o4.sparsity == two_four]
    out = {
        "params": res["params"], "dense_ce": dense, "dense_ppl": math.exp(dense),
        "tensor": {
            "cases": int(len(t)),
            "thm35_violations": int((t.l1_over_sum | t.l2_over_sum).sum()),
            "aligned_nearest_cases": int((t.aligned & near).sum()),
            "aligned_nearest_flips": int((t.flip & t.aligned & near).sum()),
            "unstructured_nearest_cases": int((~t.aligned & near).sum()),
            "unstructured_nearest_flips": int((t.flip & ~t.aligned & near).sum()),
            "stochastic_cases": int(stoch.sum()),
            "stochastic_flips": int((t.flip & stoch).sum()),
            "mismatch_violations_aligned": mismatch_violations(t[t.aligned]),
            "mismatch_violations_unstructured": mismatch_violations(t[~t.aligned]),
            "mismatch_24": {f: float(t[near & (t.source == "student-t") & (t.sparsity == "2:4")
                                       & (t.format == f)].mismatch.mean()) for f in by_bits(set(t.format))},
        },
        "one_shot_cost": {"S": {sp: cell_ce(g, "one-shot", "S", sp) - dense for sp in cfg.sparsities},
                          "Q": {f: cell_ce(g, "one-shot", "Q", "", f) - dense for f in cfg.formats}},
        "sparse_ft_cost": {sp: s_ft[sp] - dense for sp in cfg.sparsities},
        "order": {stage: dict(zip(("sq_not_worse", "cells"), frac_sq_better(stage, ok)))
                  for stage, ok in (("one-shot", lambda f: True), ("sparse-ft", lambda f: True),
                                    ("qat", low_bit))},
        "qat_gap_mean": float(cells[cells.stage == "qat"].gap.mean()) if (cells.stage == "qat").any() else math.nan,
        # the paper's S->Q pipeline (sparse FT, quantize after) against its Q->S (quantization-aware FT)
        "pipeline_gap": {f"{r.sparsity}/{r.format}": cell_ce(g, "qat", "qs", r.sparsity, r.format)
                         - cell_ce(g, "sparse-ft", "sq", r.sparsity, r.format)
                         for r in cells[cells.stage == "qat"].itertuples()},
        "orth_4bit_exceeds": float((o4.excess > 0).mean()) if len(o4) else math.nan,
        "orth_4bit_cells": int(len(o4)),
        "orth_excess": {f"{r.sparsity}/{r.format}": r.excess for r in orth.itertuples()},
        "quant_dominance_24": float((o24.dQ - o24.dS).min()) if len(o24) else math.nan,
        "eight_bit_ppl_increase": float(max(math.exp(r.measured - s_ft[r.sparsity]) - 1 for r in o8.itertuples()))
        if len(o8) else math.nan,
        "layer_growth_min": float((last / first).min()),
        "qs_worse_last_block": float(np.mean(qs_worse)) if qs_worse else math.nan,
        "product_cases": int(len(prod)),
        "product_over_sum": int((prod.SQ > prod.S + prod.Q).sum()),
        "product_over_quadrature": int((prod.SQ > np.sqrt(prod.S ** 2 + prod.Q ** 2)).sum()),
    }
    return C.finite(out)


CLAIMS = [
    C.Claim("sq-within-sum",
            "Sparsity then quantization adds no error beyond the sum of the two errors",
            "ε_{S→Q} ≤ ε_S + ε_Q (Thm 3.5)",
            lambda m: m["tensor"]["thm35_violations"], lambda v: v == 0,
            "no tensor (random or trained; every sparsity, format, rounding; L1 and relative L2) where "
            "ε_S→Q > ε_S + ε_Q", "{:.0f} violations"),
    C.Claim("sq-optimal-order",
            "Sparsity then quantization is the optimal order",
            "ε_{Q→S} ≥ ε_{S→Q} (Thms 3.6–3.7; our reconstruction: block-aligned N:M, round-to-nearest)",
            lambda m: m["tensor"]["aligned_nearest_flips"], lambda v: v == 0,
            "no block-aligned N:M case with round-to-nearest where S→Q has the larger error (L1 or L2)",
            "{:.0f} flips"),
    C.Claim("mismatch-grows",
            "Quantizing first changes the mask, more so at fewer bits",
            "Q→S prunes elements S would keep (Sec. 3)",
            lambda m: len(m["tensor"]["mismatch_violations_aligned"]), lambda v: v == 0,
            "N:M: mask mismatch > 0 and strictly growing as the bits fall, in every format family, N:M and "
            "source (unstructured: see the text)",
            "{:.0f} violations"),
    C.Claim("model-order-oneshot",
            "Order matters in a model: S→Q beats Q→S (one-shot, same weights)",
            "S→Q lower perplexity than Q→S (Table 2)",
            lambda m: C.num(m["order"]["one-shot"]["sq_not_worse"]), lambda v: v >= 0.8,
            "S→Q val CE ≤ Q→S in ≥ 80% of the (sparsity, format) cells", "{:.0%}"),
    C.Claim("model-order-finetuned",
            "…and after the same quantization-aware fine-tuning",
            "S→Q lower perplexity than Q→S (Table 2)",
            lambda m: C.num(m["order"]["qat"]["sq_not_worse"]), lambda v: v >= 0.8,
            "S→Q val CE ≤ Q→S after equal fine-tuning in ≥ 80% of the ≤ 6-bit cells", "{:.0%}"),
    C.Claim("not-orthogonal",
            "Sparsity and quantization are not orthogonal: the combination is worse than the bound",
            "S→Q perplexity above the orthogonality bound (Eq. 12, Table 2)",
            lambda m: C.num(m["orth_4bit_exceeds"]), lambda v: v >= 1.0,
            "S→Q (sparse FT, then Q) val CE > dense + ΔS + ΔQ in every 4-bit cell", "{:.0%} of cells"),
    C.Claim("quantization-dominates",
            "At low bit widths the quantization error dominates",
            "quantization error plays a dominant role (abstract)",
            lambda m: C.num(m["quant_dominance_24"]), lambda v: v > 0,
            "ΔQ − ΔS > 0 for every 4-bit format (2:4, ΔS after sparse fine-tuning; ours: the smallest)",
            "{:+.3f} nats"),
    C.Claim("eight-bit-nearly-orthogonal",
            "8-bit formats on a sparse model cost little",
            "8-bit formats within a few % of the sparse FP32 model",
            lambda m: C.num(m["eight_bit_ppl_increase"]), lambda v: v <= 0.03,
            "every 8-bit S→Q perplexity ≤ 3% above the sparse FP32 model (ours: the largest)", "{:+.1%}"),
    C.Claim("error-grows-with-depth",
            "Compression errors accumulate through the layers",
            "per-layer output error grows with depth (Fig. 1)",
            lambda m: C.num(m["layer_growth_min"]), lambda v: v > 1.0,
            "relative error of the last block's output > the first block's in every compressed cell "
            "(ours: the smallest ratio)", "{:.2f}×"),
    C.Claim("qs-error-larger",
            "…and Q→S ends with the larger error",
            "error grows faster for Q→S (Fig. 1)",
            lambda m: C.num(m["qs_worse_last_block"]), lambda v: v >= 0.8,
            "last block's relative error larger for Q→S than S→Q in ≥ 80% of the ≤ 6-bit cells", "{:.0%}"),
    C.Claim("dot-product-not-orthogonal",
            "Even S→Q is not orthogonal at the dot-product level",
            "|⟨Q(S(w)), Q(x)⟩ − ⟨w, x⟩| can exceed the sum of the individual errors (Def. 3.8, Thm 3.9)",
            lambda m: m["product_over_sum"], lambda v: v >= 1,
            "some Linear layer (real inputs, every sparsity and format) where ε_S→Q > ε_S + ε_Q of its "
            "output", "{:.0f} cases"),
]



PIPELINES = [("one-shot", "sq", "S→Q one-shot", "-", "o"), ("one-shot", "qs", "Q→S one-shot", "--", "o"),
             ("sparse-ft", "sq", "S→Q: sparse FT, then Q (paper)", "-", "s"),
             ("qat", "sq", "S→Q quantization-aware FT", "-", "^"), ("qat", "qs", "Q→S quantization-aware FT (paper)",
                                                                    "--", "^")]
