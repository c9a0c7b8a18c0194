"""The warmup chapter's words: the parts of its prose whose direction comes from the run
(numbers: `companion.reports.warmup.metrics`)."""
from companion import claims as C
from companion.experiments.warmup import GRIDS
from companion.reports.warmup import LABELS, MATTERS


def _spread(m: dict, arm: str, w: str) -> float:
    r = m["seed_range"][arm][w]
    return r["max"] - r["min"]


def _max_gap_where(g: dict) -> str:
    """Where each optimizer's largest warmup gap over its grid lies against its best warmed LR."""
    above = [LABELS[o] for o in GRIDS if g["max_gap_lr"][o] > g["best_lr"][o]["warmup"]]
    if not above:
        return "none lies above its optimizer's best warmed learning rate"
    return ("for " + ", ".join(above) + ", the largest gap lies at a learning rate above the best warmed one, "
            "where the run without warmup overshoots")


def _lion_vs_paper(v: dict) -> str:
    lionar, liona = v["lionar-still-benefits"], v["liona-still-benefits"]
    if lionar == "holds" and liona == "holds":
        return "As in the paper, LionA and LionAR both still benefit from warmup."
    return ("The paper finds that LionA and LionAR both still benefit from warmup; here *liona-still-"
            f"benefits* {VERDICT_WORD[liona]} and *lionar-still-benefits* {VERDICT_WORD[lionar]}, at each optimizer's best "
            "learning rate.")


def _stall_reading(m: dict) -> str:
    """Which warmed arms stalled on the held-out seeds (no better than a bigram model at mid-run)."""
    n, k = m["n_seeds"], m["n_stalled"]
    names = {"lionar_warmup": "LionAR", "recipe_warmup": "the recipe", "liona_warmup": "LionA",
             "adamw_warmup": "AdamW", "rel1d_warmup": "LionAR with relative steps on the gains"}
    hit = [f"{names[a]} ({k[a]} of {n})" for a in names if k.get(a)]
    if not hit:
        return "No warmed run stalled"
    return "Warmed runs that stalled: " + ", ".join(hit)


def _spread_note(m: dict) -> str:
    k, mean = m["n_stalled"], m["mean"]
    if not k.get("lionar_warmup") and not k.get("recipe_warmup"):
        return ""
    out = (f"LionAR's warmed runs stall on some seeds ({k.get('lionar_warmup', 0)} of {m['n_seeds']}; the recipe's on "
           f"{k.get('recipe_warmup', 0)}), and with relative steps on the LayerNorm gains warmup ")
    if "rel1d" not in mean:
        return out + "was not rerun."
    if mean["rel1d"]["gap"] > 0:
        return out + ("helps on average (held-out seeds): the stalls point at REQ's ±η steps on the gains, "
                      "not at angular control.")
    return out + "still hurts on average (held-out seeds), so the gains' steps are not the whole story."


def side(x, neg, pos):
    return neg if x <= 0 else pos


VERDICT_WORD = {"holds": "holds", "mixed": "is mixed", "fails": "fails"}


def words(m: dict, rows: list) -> dict:
    """Words of the prose whose direction comes from the run (verdicts from the claims table)."""
    mean, g, sel = m["mean"], m["grid"], m["selected"]
    v = {r["id"]: C.verdict_of(r) for r in rows}
    edge = [f"{LABELS[o]} {'without' if k == 'no_warmup' else 'with'} warmup"
            for o, b in g["bracketed"].items() for k, v in b.items() if not v]
    def matters(d):
        return "matters" if max(abs(d["no_warmup"]), abs(d["warmup"])) > MATTERS else "does not matter"

    def sides(prefix, d):
        return {f"{prefix}_no_warmup_side": side(d["no_warmup"], "below", "above"),
                f"{prefix}_warmup_side": side(d["warmup"], "below", "above")}
    return {
        "edge_optima": ("every optimum lies inside its grid" if not edge else
                        "the optimum lies at the edge of the grid for " + ", ".join(edge)),
        "cold_vs_warm_lr": ("lower than" if sel["adamw_cold"] < sel["warm"]["adamw"] else
                            "the same as" if sel["warm"]["adamw"] == sel["adamw_cold"] else "higher than"),
        "adamw_gap_side": side(mean["gap"]["adamw"], "below", "above"),
        "cold_lr_side": side(mean["gap_at_cold_lr"], "worse", "better"),  # what warmup does to the run
        "permanent_side": side(mean["permanent_gap"], "below", "above"),
        "liona_side": side(mean["gap"]["liona"], "better", "worse"),
        "lionar_side": side(mean["gap"]["lionar"], "better", "worse"),
        "recipe_side": side(mean["gap"]["recipe"], "better", "worse"),
        "recipe_vs_best_side": side(mean["recipe_minus_best_warm"], "below", "above"),
        "recipe_vs_adamw_side": side(mean["recipe_minus_adamw_warm"], "below", "above"),
        "recipe_vs_cold_side": side(mean["recipe_minus_best_cold"], "below", "above"),
        "noibc_vs_best_side": side(mean["noibc_minus_best_warm"], "below", "above"),
        "noibc_vs_recipe_side": side(mean["noibc_minus_recipe"], "below", "above"),
        "gains_matter": matters(g["ablation"]["gains"]), "emb_matter": matters(g["ablation"]["embeddings"]),
        **sides("gains", g["ablation"]["gains"]), **sides("emb", g["ablation"]["embeddings"]),
        "rel1d_gap_sign": side(g["lionar_rel1d"]["gap"], "hurts", "helps"),
        "lionar_gap_grid_sign": side(g["lionar"]["gap"], "hurts", "helps"),
        "kappa_side": side(g["kappa"]["minus_lionar"], "below", "above"),
        "kappa_flatter": ("flatter than" if g["kappa"]["rrc_early_over_plateau"] <
                          g["kappa"]["lionar_rrc_early_over_plateau"] else "not flatter than"),
        "kappa_trend": "rises" if g["kappa"]["late"] > g["kappa"]["early"] else "falls",
        "equilibrium_time": ("longer than the run" if g["equilibrium"]["steps_over_run"] > 1 else
                             "a sizeable part of the run" if g["equilibrium"]["steps_over_run"] > 0.2 else
                             "short against the run"),
        "high_lr_usable": ("warmup is what makes the higher learning rate usable" if sel["warm"]["adamw"] >
                           sel["adamw_cold"] else "warmup does not make a higher learning rate the best one"),
        "panel3": ("agrees with the paper: at the best no-warmup LR the warmed run overtakes and ends lower"
                   if v["falls-behind"] == "holds" else
                   "differs from the paper: at the best no-warmup LR the warmed run does not end lower"),
        "panel3_reading": ("so even a learning rate that does not overshoot is better with warmup"
                           if mean["gap_at_cold_lr"] > 0 else "at a learning rate that needs no warmup, warmup only spends steps"),
        "max_gap_where": _max_gap_where(g),
        "warm_angle_rises": ("rises above" if mean["angle"]["warmup"]["max_warmup_over_plateau"] > 1 else "stays below"),
        "warm_angle_reading": ("warmup removes the huge first updates, but not the early excess altogether"
                               if v["warmup-angle-bounded"] != "holds" else "warmup keeps the early angles near their later level"),
        "norm_stays": ("stays above" if g["weight_norm_plateau"]["no_warmup"] > g["weight_norm_plateau"]["warmup"]
                       else "falls below"),
        "lionar_warm_spread": ("wider than" if _spread(m, "lionar", "warmup") > _spread(m, "lionar", "no_warmup")
                               else "no wider than"),
        "warmup_effect_lionar": side(mean["gap"]["lionar"], "hurts", "helps"),
        "liona_reading": ("LionA's gap exceeds LionAR's on every seed" if v["liona-needs-warmup"] == "holds"
                          else "LionA's gap does not clearly exceed LionAR's"),
        "lionar_spread_note": _spread_note(m),
        "batch_vs_critical": "above" if mean["b_noise_early"] < m["batch_size"] else "below",
        "b_noise_trend": "grows" if mean["b_noise_late"] > mean["b_noise_early"] else "shrinks",
        "permanent_sentence": ("So the gap is *permanent* in the paper's sense" if mean["permanent_gap"] > 0 else
                               "So tuning the LR closes the gap, unlike in the paper"),
        "rel1d_seeds_side": side(mean["rel1d"]["gap"], "hurts", "helps") if "rel1d" in mean else "—",
        "runner_up_side": (side(mean["lionar_runner_up"]["gap"], "hurts", "helps")
                           if "lionar_runner_up" in mean else "—"),
        "stall_reading": _stall_reading(m),
        "ibc_reading": ("the implicit warmup it hides does not help it here" if mean["noibc_minus_recipe"] <= 0 else
                        "the implicit warmup it hides accounts for part of what it gains"),
        "lion_vs_paper": _lion_vs_paper(v),
        **{f"says.{r['id']}": VERDICT_WORD[C.verdict_of(r)] for r in rows},
    }
