"""Chapter parameters: one schema, checked the same way by the CLI (before any kernel
starts) and by the notebook (when papermill is called directly).

A chapter's parameters are the fields of its experiment's `Config` dataclass plus the
run options below. Each field declares its type by annotation and its allowed values in
`field(metadata=...)`: `range=(lo, hi)` (inclusive) or `choices=(...)`, and `help`.
"""
import dataclasses
import typing

SCALES = ("smoke", "cpu", "gpu")

# Run options: they change where and how fast a run goes, never its numbers' meaning,
# so they are not part of any cache key.
RUN_OPTIONS = {
    "scale": dict(type=str, default="auto", choices=SCALES + ("auto",),
                  help="preset of experiment parameters; auto = gpu if CUDA is available, else cpu"),
    "threads": dict(type=int, default=0, range=(0, 256), help="torch CPU threads (0 = measured default)"),
    "device": dict(type=str, default="auto", choices=("auto", "cpu", "cuda"), help="torch device"),
    "out_dir": dict(type=str, default="", help="artifact folder; '' = _build/runs/<chapter>/<scale>"),
}


class ParamError(ValueError):
    """A bad parameter name or value; the message is one line naming what is allowed."""


def fields(config_cls) -> dict:
    """name -> dict(type, range/choices, help) for every Config field."""
    hints = typing.get_type_hints(config_cls)
    out = {}
    for f in dataclasses.fields(config_cls):
        out[f.name] = dict(type=hints[f.name], default=f.default, **f.metadata)
    return out


def _type_name(t) -> str:
    if typing.get_origin(t) is tuple:
        return f"comma-separated list of {typing.get_args(t)[0].__name__}"
    return t.__name__


def _scalar(name, t, v):
    if t is bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
            return v.lower() in ("true", "1")
        raise ParamError(f"parameter {name!r} expects a bool (true/false), got {v!r}")
    if t is int:
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise ParamError(f"parameter {name!r} expects an int, got {v!r}")
        try:
            return int(v)
        except (TypeError, ValueError):
            raise ParamError(f"parameter {name!r} expects an int, got {v!r}") from None
    if t is float:
        try:
            out = float(v)
        except (TypeError, ValueError):
            raise ParamError(f"parameter {name!r} expects a float, got {v!r}") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise ParamError(f"parameter {name!r} expects a finite float, got {v!r}")
        return out
    if t is str:
        if not isinstance(v, str):
            raise ParamError(f"parameter {name!r} expects a string, got {v!r}")
        return v
    raise TypeError(f"unsupported parameter type {t}")


def _check_allowed(name, spec, v):
    if "choices" in spec and v not in spec["choices"]:
        raise ParamError(f"parameter {name!r} must be one of {', '.join(map(str, spec['choices']))}; got {v!r}")
    if "range" in spec:
        lo, hi = spec["range"]
        if not lo <= v <= hi:
            raise ParamError(f"parameter {name!r} must be in [{lo}, {hi}]; got {v!r}")


def coerce(name: str, spec: dict, value):
    """Convert a CLI string or a Python value to the declared type and check its range."""
    t = spec["type"]
    if typing.get_origin(t) is tuple:
        item = typing.get_args(t)[0]
        items = value.split(",") if isinstance(value, str) else value
        try:
            items = list(items)
        except TypeError:
            raise ParamError(f"parameter {name!r} expects a {_type_name(t)}, got {value!r}") from None
        if not items or (isinstance(value, str) and not value.strip()):
            raise ParamError(f"parameter {name!r} expects a non-empty {_type_name(t)}")
        out = tuple(_scalar(name, item, x.strip() if isinstance(x, str) else x) for x in items)
        for x in out:
            _check_allowed(name, spec, x)
        return out
    out = _scalar(name, t, value)
    _check_allowed(name, spec, out)
    return out


def check_names(given, allowed):
    for name in given:
        if name not in allowed:
            raise ParamError(f"unknown parameter {name!r}; allowed: {', '.join(allowed)}")


def describe(spec: dict) -> str:
    allowed = ""
    if "choices" in spec:
        allowed = " {" + "|".join(map(str, spec["choices"])) + "}"
    elif "range" in spec:
        allowed = f" in [{spec['range'][0]}, {spec['range'][1]}]"
    return f"{_type_name(spec['type'])}{allowed}: {spec.get('help', '')}"


def param(default, help: str, **allowed):
    """A Config field with its help text and allowed values (`range=(lo, hi)` or `choices=...`)."""
    return dataclasses.field(default=default, metadata=dict(help=help, **allowed))
