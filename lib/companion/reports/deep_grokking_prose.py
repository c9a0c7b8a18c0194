"""Words of the deep-grokking chapter whose direction or presence comes from the run: the prose
glues them beside the numbers (contract v2), so that a rerun never contradicts its text."""
from companion import claims as C


VERDICT_WORD = {"holds": "holds", "mixed": "is mixed", "fails": "fails"}  # as warmup_prose words them


def _step(t) -> str:
    return "never" if t is None else f"step {t:,.0f}"


def _onsets(m: dict, group: str = "main") -> str:
    """Each seed's rank onset in a group of runs and its distance to that run's t_gen."""
    parts = []
    for s in m["per_seed"]:
        g = s[group]
        if not g:
            continue
        gap = g["rank_onset_minus_gen_decades"]
        parts.append(f"seed {s['seed']}: {_step(g['rank_onset'])}"
                     + (f" ({gap:+.2f} decades from its t_gen)" if gap is not None else " within the run"))
    return "; ".join(parts) or "no such runs"


def _tunnels(m: dict) -> str:
    """Tunnel lengths at t_fit, shallow vs deep net, at every threshold (deep seeds)."""
    rows = []
    deep = m["per_deep_seed"]
    if not deep or any(s["main"]["tunnel_at_fit"] is None or s["deep"]["tunnel_at_fit"] is None for s in deep):
        return "not measurable in this run (a net of the sweep does not fit)"
    for f in deep[0]["main"]["tunnel_at_fit"]:
        a = "/".join(str(s["main"]["tunnel_at_fit"][f]) for s in deep)
        b = "/".join(str(s["deep"]["tunnel_at_fit"][f]) for s in deep)
        rows.append(f"{f} × width" + (" (the headline threshold)" if float(f) == m["tunnel_frac"] else "")
                    + f": {a} vs {b}")
    return "; ".join(rows)


def _double_descents(m: dict) -> str:
    """Where the larger-N run's rank turns after the transient (trough, then peak), per seed."""
    out = []
    for s in m["per_seed"]:
        rf = s["data"].get("rank_rise_fall") if s["data"] else None
        out.append(f"seed {s['seed']}: " + (f"trough at step {rf[0]:,}, peak at step {rf[1]:,}" if rf else "none"))
    return "; ".join(out)


def _count(m: dict, key: str, group: str) -> int:
    return sum(bool(s[group].get(key)) for s in m["per_seed"] if s[group])


def words(m: dict, rows: list) -> dict:
    """Words of the prose whose direction comes from the run (verdicts from the claims table)."""
    mean = m["mean"]
    n_two_stage = _count(m, "two_stage", "data")
    verdict = {r["id"]: C.verdict_of(r) for r in rows}
    decay_gain = (mean.get("decay") or {}).get("gain_after_fit")
    deep = (m.get("deep_stats") or {}).get("mean", {}).get("deep", {})
    rf = {g: (mean.get(g) or {}).get("rank_rise_fall_depth") for g in ("data", "alpha", "decay")}
    rise_fall_ahead = rf["data"] is not None and all(rf[g] is None or rf["data"] > rf[g] + 0.05
                                                      for g in ("alpha", "decay"))
    return {
        **{f"says.{r['id']}": VERDICT_WORD[C.verdict_of(r)] for r in rows},
        "deep_fit_text": (f"only at step {deep['t_fit']:,.0f}" if deep.get("t_fit") is not None else
                          "not within its run on every seed"),
        "deep_test_at_fit_text": (f"{deep['test_at_fit']:.2f}" if deep.get("test_at_fit") is not None else "—"),
        "tunnel_reading": {"holds": "The deeper net has the longer tunnel at every threshold, on every seed",
                           "mixed": "The deeper net has the longer tunnel on some seeds or thresholds, not on all",
                           "fails": "On no seed is the deeper net's tunnel longer at every threshold"}[
                               verdict["tunnel-grows-with-depth"]],
        "decay_reading": ("so it is not a clean non-generalizing run: it groks too, more slowly"
                          if decay_gain is not None and decay_gain >= 0.1 else "it barely generalizes after fitting"),
        "dd_reading": ("the paper's rank shape appears with more data, but not its link to a second stage of "
                       "generalization" if verdict["rank-double-descent"] == "holds" and
                       verdict["two-stage-generalization"] != "holds" else
                       "both the rank shape and the two stages appear" if verdict["rank-double-descent"] == "holds"
                       else "the rank double descent is not reproduced beyond the initialisation transient; what "
                       "remains is its second half, a rise and a fall, " + (
                           "larger than in the controls" if rise_fall_ahead else "no larger than in the controls")),
        "deep_rank_after_fit_text": (f"{deep['pen_erank_change_after_fit']:+.0%}"
                                     if deep.get("pen_erank_change_after_fit") is not None else "—"),
        "decay_onset_text": _onsets(m, "decay"),
        "onset_text": _onsets(m),
        "tunnel_text": _tunnels(m),
        "dd_text": _double_descents(m),
        "two_stage_text": (f"{n_two_stage} of {len(m['per_seed'])} seeds show" if n_two_stage else "no seed shows"),
        "norm_vs_rank": ("the norm tells the runs apart less than the rank does, measured this way"
                         if (mean.get("norm_sep_ratio") or 0) < (mean.get("rank_sep_ratio") or 0) else
                         "the norm tells the runs apart at least as well as the rank does, measured this way: its "
                         "difference is small in absolute terms, not uninformative"),
    }
