"""How long a configuration will take, roughly, before it starts: the catalog's expected
minutes for its scale, scaled by how much it enlarges what the work grows with.

The estimate is deliberately crude (a product of power laws in the cost drivers, each
relative to the scale's preset) and errs high: it exists to refuse configurations that would
run for days (`-p quad_clients 1000 -p quad_dim 100000`) and to warn about long ones, not
to plan a run. Nothing here changes a result.
"""
import dataclasses

# chapter -> {field: exponent} or {field: (reduce, exponent)} for list fields (reduce: len, sum, max)
DRIVERS = {
    "scaling-cooldown": {"n_seeds": 1, "d_model": 2, "n_layer": 1, "seq_len": 1, "batch_size": 1,
                         "targets": ("sum", 1), "widths": ("max", 2), "depths": ("max", 1), "lr_grid": ("len", 1),
                         "eval_batches": 0.5},
    "warmup": {"d_model": 2, "n_layer": 1, "seq_len": 1, "batch_size": 1, "steps": 1, "snr_micro": 0.5,
               "n_seeds": 0.5, "warmups": ("len", 0.3), "adamw_lrs": ("len", 0.5), "liona_lrs": ("len", 0.5),
               "lionar_lrs": ("len", 0.5), "eval_batches": 0.5},
    "deep-grokking": {"width": 2, "n_test": 0.5, "depths": ("sum", 1), "steps": ("max", 1), "seeds": ("len", 1),
                      "deep_seeds": 0.5, "regime_steps": 1, "regime_decays": ("len", 1), "n_evals": 0.5},
    "sparsity-quantization": {"d_model": 2, "n_layer": 1, "seq_len": 1, "batch_size": 1, "steps": 1,
                              "finetune_steps": 1, "eval_batches": 0.5, "sparsities": ("len", 1),
                              "formats": ("len", 1), "ft_formats": ("len", 1), "n_tensors": 0.5,
                              "tensor_shape": ("max", 2)},
    "hyperinf": {"d_model": 2, "n_layer": 1, "seq_len": 1, "pretrain_steps": 1, "n_train": 1, "n_seeds": 1,
                 "ft_steps": 1, "ranks": ("max", 2), "conv_dims": ("max", 3), "conv_ns": ("max", 1),
                 "kappa_dim": 3, "timing_dims": ("max", 3), "schulz_iters": 1, "lissa_iters": 1, "gfim_dim": 2},
    "cobo": {"n_seeds": 1, "quad_clients": 2, "quad_dim": 1, "quad_steps": 1, "clusters": 2,
             "clients_per_cluster": 2, "per_client": 1, "steps": 1, "hidden": ("max", 1), "methods": ("len", 1),
             "sweep_steps": 1, "sweep_per_client": ("max", 1), "sweep_clusters": ("max", 2),
             "sweep_clients": ("max", 2), "device_sizes": ("sum", 2), "device_steps": 1, "rho_values": ("len", 1)},
}
REFUSE_MINUTES = 7 * 24 * 60  # beyond a week on this machine class: refused unless forced
WARN_MINUTES = 60


def _size(value, how):
    if isinstance(value, (tuple, list)):
        return {"len": len, "sum": sum, "max": max}[how](value) if value else 0
    return value


def estimate_minutes(ch, scale: str, cfg) -> float:
    """Expected wall minutes of `cfg` at `scale`: the catalog's minutes for the scale's preset
    times prod (driver / preset's driver) ** exponent."""
    preset = ch.experiment().SCALES[scale]
    factor = 1.0
    for name, spec in DRIVERS.get(ch.id, {}).items():
        how, exp = spec if isinstance(spec, tuple) else (None, spec)
        a, b = _size(getattr(cfg, name), how), _size(getattr(preset, name), how)
        if a and b:
            factor *= (a / b) ** exp
    return ch.minutes[scale] * factor


def describe(minutes: float) -> str:
    if minutes < 90:
        return f"~{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"~{minutes / 60:.0f} h"
    return f"~{minutes / 1440:.0f} days"


def check(ch, scale: str, cfg, force: bool = False):
    """(refusal message or None, warning or None) for this configuration."""
    m = estimate_minutes(ch, scale, cfg)
    if m > REFUSE_MINUTES and not force:
        return (f"this configuration would run for {describe(m)} (estimated from the {scale} preset's "
                f"~{ch.minutes[scale]:g} min and the sizes it enlarges): make it smaller, or add --force"), None
    if m > max(WARN_MINUTES, 2 * ch.minutes[scale]):
        return None, f"note: this configuration is expected to run for {describe(m)} at scale {scale}"
    return None, None


def unknown_drivers(ch) -> list:
    """The driver names that are not fields of the chapter's Config (a test keeps this empty)."""
    names = {f.name for f in dataclasses.fields(ch.experiment().Config)}
    return [k for k in DRIVERS.get(ch.id, {}) if k not in names]
