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
    t, g, lay, prod = tensor_frame(res), grid_frame(res), layer_frame(res), pd.DataFrame(res["products"])
    cells, orth = order_cells(g), orthogonality(g, cfg)
    dense = cell_ce(g, "one-shot", "dense")
    near, stoch = t.rounding == "nearest", t.rounding == "stochastic"

    def frac_sq_better(stage, fmt_ok=lambda f: True):
        c = cells[(cells.stage == stage) & cells.format.map(fmt_ok)]
        return (float((c.gap >= 0).mean()) if len(c) else math.nan), int((c.gap >= 0).sum()), int(len(c))

    L = cfg.n_layer - 1  # last block (layer n_layer is the logits)
    first, last = (lay[lay.layer == i].set_index(["order", "sparsity", "format"]).rel_err for i in (0, L))
    low = [(sp, f) for sp in cfg.sparsities for f in cfg.formats if low_bit(f)]
    qs_worse = [float(last[("qs", sp, f)] > last[("sq", sp, f)]) for sp, f in low]
    o4, o8 = orth[orth.format.map(four_bit)], orth[~orth.format.map(low_bit)]
    s_ft = {sp: cell_ce(g, "sparse-ft", "S", sp) for sp in cfg.sparsities}
    two_four = "2:4" if "2:4" in cfg.sparsities else cfg.sparsities[0]
    o24 = o4[o4.sparsity == two_four]
    out = {
        "params": res["params"], "dense_ce": dense, "dense_ppl": math.exp(dense),
        "tensor": {
            "cases": int(len(t)), "thm35_violations": int((t.l1_over_sum | t.l2_over_sum).sum()),
            "aligned_nearest_cases": int((t.aligned & near).sum()),
            "aligned_nearest_flips": int((t.flip & t.aligned & near).sum()),
            "unstructured_nearest_cases": int((~t.aligned & near).sum()),
            "unstructured_nearest_flips": int((t.flip & ~t.aligned & near).sum()),
            "stochastic_cases": int(stoch.sum()), "stochastic_flips": int((t.flip & stoch).sum()),
            "mismatch_violations_aligned": mismatch_violations(t[t.aligned]),
            "mismatch_violations_unstructured": mismatch_violations(t[~t.aligned]),
            "mismatch_24": {f: float(t[near & (t.source == "student-t") & (t.sparsity == "2:4")
                                       & (t.format == f)].mismatch.mean()) for f in by_bits(set(t.format))},
        },
        "one_shot_cost": {"S": {sp: cell_ce(g, "one-shot", "S", sp) - dense for sp in cfg.sparsities},
                          "Q": {f: cell_ce(g, "one-shot", "Q", "", f) - dense for f in cfg.formats}},
        "sparse_ft_cost": {sp: s_ft[sp] - dense for sp in cfg.sparsities},
        "order": {stage: dict(zip(("sq_not_worse", "sq_not_worse_n", "cells"), frac_sq_better(stage, ok)))
                  for stage, ok in (("one-shot", lambda f: True), ("sparse-ft", lambda f: True), ("qat", low_bit))},
        "qat_gap_mean": float(cells[cells.stage == "qat"].gap.mean()) if (cells.stage == "qat").any() else math.nan,
        # the paper's S->Q pipeline (sparse FT, quantize after) against its Q->S (quantization-aware FT)
        "pipeline_gap": {f"{r.sparsity}/{r.format}": cell_ce(g, "qat", "qs", r.sparsity, r.format)
                         - cell_ce(g, "sparse-ft", "sq", r.sparsity, r.format)
                         for r in cells[cells.stage == "qat"].itertuples()},
        "orth_4bit_exceeds": float((o4.excess > 0).mean()) if len(o4) else math.nan, "orth_4bit_cells": int(len(o4)),
        "orth_excess": {f"{r.sparsity}/{r.format}": r.excess for r in orth.itertuples()},
        "quant_dominance_24": float((o24.dQ - o24.dS).min()) if len(o24) else math.nan,
        "eight_bit_ppl_increase": float(max(math.exp(r.measured - s_ft[r.sparsity]) - 1 for r in o8.itertuples()))
        if len(o8) else math.nan,
        "layer_growth_min": float((last / first).min()),
        "qs_worse_last_block": float(np.mean(qs_worse)) if qs_worse else math.nan,
        "qs_worse_last_block_n": int(sum(qs_worse)), "low_bit_cells": len(low),
        "product_cases": int(len(prod)), "product_over_sum": int((prod.SQ > prod.S + prod.Q).sum()),
        "product_over_quadrature": int((prod.SQ > np.sqrt(prod.S ** 2 + prod.Q ** 2)).sum()),
    }
    out.update(prose_numbers(res, cfg, t, g, cells, orth, (first, last, lay[lay.layer == cfg.n_layer]), out))
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


# ---- the numbers and words of the prose (glued by the notebook) -------------------------

def prose_numbers(res, cfg: Config, t, g, cells, orth, layers, m) -> dict:
    """The numbers the text quotes beyond the claims', named alike at every scale, no ':' (by_sparsity.2of4)."""
    mean = tensor_table(res)  # round-to-nearest, mean relative L2 per (source, sparsity, format)
    r24 = mean.xs(("student-t", "2:4"), level=[0, 1]) if ("student-t", "2:4") in mean.index.droplevel(2) else mean[:0]
    count = lambda x: {"cases": len(x), "l1": int(x.l1_flip.sum()), "l2": int(x.l2_flip.sum())}  # noqa: E731
    flips = {kind: {rnd: {src: count(t[(t.aligned == al) & (t.rounding == rnd) & ((t.source == src) | (src == "all"))])
                          for src in ("all", *dict.fromkeys(t.source))} for rnd in ("nearest", "stochastic")}
             for kind, al in (("nm", True), ("unstructured", False))}
    S = list(cells[(cells.stage != "qat") | cells.format.map(low_bit)].groupby("stage", sort=False))  # as the claims
    qc, o4 = pd.Series(m["one_shot_cost"]["Q"]), orth[orth.format.map(four_bit)]
    pg = {k: v for k, v in m["pipeline_gap"].items() if low_bit(k.split("/")[1])}
    best = min(pg, key=pg.get) if pg else None
    first, last, logits = *layers[:2], layers[2].set_index(["order", "sparsity", "format"]).rel_err
    val, low = list(res["dense_history"].val_loss), [f for f in cfg.formats if low_bit(f)]

    def per_sparsity(sp):
        gap = [(last[("qs", sp, f)] - last[("sq", sp, f)], first[("qs", sp, f)] - first[("sq", sp, f)]) for f in low]
        return {"one_shot": m["one_shot_cost"]["S"][sp], "sparse_ft": m["sparse_ft_cost"][sp],
                "prune_first": float(first[("S", sp, "")]), "prune_last": float(last[("S", sp, "")]),
                "hbfp4_last": {o: float(last.get((o, sp, "hbfp4"), math.nan)) for o in ORDERS},
                "gap_widens": float(np.mean([a > b for a, b in gap])) if gap else math.nan}
    return {
        "params_m": res["params"] / 1e6, "dense_val_drop_last": float(val[-2] - val[-1]) if val[1:] else math.nan,
        "by_sparsity": {sp.replace(":", "of").replace("%", "pct"): per_sparsity(sp) for sp in cfg.sparsities},
        "q_cost": {f"{b}bit": {"min": float(s.min()), "max": float(s.max())}
                   for b, s in qc.groupby(qc.index.map(lambda f: round(bits_per_element(f))))},
        "tensor_prose": {"flips": flips, "sq_extra_over_q_max": float(((mean["ε_S→Q"] - mean.ε_S) / mean.ε_Q).max()),
                         "l2_24": {f: {"sq": float(r24["ε_S→Q"][f]), "qs": float(r24["ε_Q→S"][f])} for f in r24.index}},
        "order_gap": {st: {f"{r.sparsity}/{r.format}": float(r.gap) for r in c.itertuples()} for st, c in S},
        "order_max": {st: {k: float(c.loc[c.gap.idxmax(), k]) for k in ("gap", "sq", "qs")} for st, c in S},
        "order_abs_max": {st: float(c.gap.abs().max()) for st, c in S},
        "pipeline_cells": len(pg), "pipeline_qs_wins": int(sum(v < 0 for v in pg.values())),
        "pipeline_max": {"margin": -pg[best], "size": abs(pg[best]), "qs": cell_ce(g, "qat", "qs", *best.split("/")),
                         "sq": cell_ce(g, "sparse-ft", "sq", *best.split("/"))} if best else {},
        "orth_4bit_above": int((o4.excess > 0).sum()), "orth_4bit_below": int((o4.excess <= 0).sum()),
        "orth_excess_abs_max": float(orth.excess.abs().max()),
        "orth_4bit_excess": {"min": float(o4.excess.min()), "max": float(o4.excess.max())},
        "logits_below_last_block": float((logits.reindex(last.index) < last).mean()),
    }


def _holds(m: dict, claim_id: str) -> bool:
    return next(bool(c.rule(C.num(c.our_value(m)))) for c in CLAIMS if c.id == claim_id)


def _cell(key: str) -> str:  # "50%/hbfp4" -> "50% HBFP4"
    return key.split("/")[0] + " " + key.split("/")[1].upper() if key else ""


def _exceptions(gaps: dict, worse, by="by") -> str:
    """" (the exception: 2:4 MXFP8, by 0.003 nats)" for the cells where worse(gap); "" if none."""
    bad = {_cell(k): abs(v) for k, v in gaps.items() if worse(v)}
    s, x = "s" * (len(bad) > 1), max(bad.values(), default=0)
    size = f"{'≤ ' * len(s)}{x:.3f}" if x >= 5e-4 else "< 0.001"
    return f" (the exception{s}: {', '.join(bad)}, {by} {size} nats)" if bad else ""


CLAIM_WORDS = {  # word: (claim, if it holds, if not)
    "thm35": ("sq-within-sum", "holds everywhere: S→Q never exceeds", "does not hold everywhere: S→Q can exceed"),
    "thm36": ("sq-optimal-order", "as the reconstructed Theorems 3.6–3.7 say", "against Theorems 3.6–3.7"),
    "mismatch_grows": ("mismatch-grows", "grows", "does not always grow"),
    "quant_dominates": ("quantization-dominates", "Quantization dominates", "Quantization does not always dominate"),
    "orth_reproduced": ("not-orthogonal", "is reproduced on this model", "is, however, not reproduced on this model"),
    "eight_bit": ("eight-bit-nearly-orthogonal", "are nearly orthogonal to sparsity", "are not free on a sparse model"),
    "depth_grows": ("error-grows-with-depth", "grows", "does not grow"),
    "thm39": ("dot-product-not-orthogonal", "is borne out", "is not borne out"),
}


def words(m: dict) -> dict:
    """Words of the prose whose direction comes from the run (where a claim decides it, by its test)."""
    og, pg = {"qat": {}} | m["order_gap"], {k: v for k, v in m["pipeline_gap"].items() if low_bit(k.split("/")[1])}
    recov = max(m["sparse_ft_cost"][sp] / m["one_shot_cost"]["S"][sp] for sp in m["sparse_ft_cost"])
    viol, size = m["tensor"]["mismatch_violations_unstructured"], m["pipeline_max"].get("size", math.nan)
    oa, q, logits = m["order_abs_max"], m["order_abs_max"].get("qat", math.nan), m["logits_below_last_block"] or 0
    top, widens = {st: max(g, key=g.get, default="") for st, g in og.items()}, m["by_sparsity"].get("50pct", {})
    cost = [*m["one_shot_cost"]["S"].values(), *m["one_shot_cost"]["Q"].values()]
    return {w: (yes if _holds(m, c) else no) for w, (c, yes, no) in CLAIM_WORDS.items()} | {
        "dense_improving": "still improving" if (m["dense_val_drop_last"] or 0) > 0 else "no longer improving",
        "compression_hurts": "Compression hurts it, unlike the brief's MLP" if min(cost) > 0 else "Compression can help",
        "sparse_ft_recovers": "most of it" if recov < 0.5 else ("part of it" if recov < 1 else "none of it"),
        "unstructured_exception": f"Unstructured sparsity has {'exceptions' if viol[1:] else 'an exception'} ("
                                  + "; ".join(viol).replace("student-t", "random tensors") + "), so the claim below "
                                  "is tested on N:M." if viol else "Unstructured sparsity shows no exception; the "
                                  "claim below is tested on N:M, the setting of the theory.",
        "one_shot_exceptions": _exceptions(og["one-shot"], lambda v: v < 0), "one_shot_max_cell": _cell(top["one-shot"]),
        "sparse_ft_matters": "the order matters most" if oa["sparse-ft"] >= max(oa.values()) else "the order matters too",
        "sparse_ft_exceptions": _exceptions(og["sparse-ft"], lambda v: v < 0),
        "sparse_ft_max_cell": _cell(top["sparse-ft"]), "qat_exceptions": _exceptions(og["qat"], lambda v: v < 0),
        "pipeline_exceptions": _exceptions(pg, lambda v: v >= 0, "where S→Q is better by"),
        "pipeline_max_cell": _cell(min(pg, key=pg.get) if pg else ""),
        "pipeline_reading": "training with the quantizer matters more than the order" if m["pipeline_qs_wins"] >
                            m["pipeline_cells"] / 2 else "training with the quantizer does not beat the order",
        "order_paper": "the better choice, as the paper says" if _holds(m, "model-order-oneshot") and
                       _holds(m, "model-order-finetuned") else "not consistently the better choice, unlike in the paper",
        "order_vs_qat": ("much smaller than" if q < size / 4 else "smaller than") if q < size else "not smaller than",
        "orth_paper": "the combination is worse than the bound in every 4-bit cell here, as in the paper's "
                      "super-additive effect" if _holds(m, "not-orthogonal") else "the paper's super-additive effect, "
                      "measured on billion-parameter models and WikiText perplexity, does not show "
                      f"{'consistently ' * (m['orth_4bit_above'] > 0)}at this scale",
        "logits_drop": "drops" if logits == 1 else ("mostly drops" if logits > 0.5 else "does not drop"),
        "gap_widens_paper": "the paper's" if (widens.get("gap_widens") or 0) > 0.5 else "against the paper's",
    }
