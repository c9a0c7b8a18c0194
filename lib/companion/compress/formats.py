"""Number formats as pure tensor functions (Harma et al. 2025, section 5 of the chapter's brief).

Every quantizer maps a tensor to the nearest value of its format (same shape and dtype):
* `int_quant`: INT-b, symmetric, one scale per channel (GPTQ's quantizer, used by the paper):
  s = 2 max|x| / (2^b - 1), Q(x) = s (clip(round(x/s) + 2^(b-1), 0, 2^b - 1) - 2^(b-1)).
* `hbfp`: hybrid block floating point, blocks of B along the last dimension sharing the exponent
  e = ceil(log2(max|x| + 1e-8)); step 2^(e - m) for m mantissa bits, clipped to +-(2^e - step).
* `mx`: OCP microscaling v1.0, blocks of 32 sharing a power-of-two (E8M0) scale
  2^(floor(log2 max|x|) - emax) and elements in a small float format (ELEMENTS), saturating.
Rounding is to nearest (ties to even) by default; `rounding="stochastic"` rounds up with
probability equal to the fractional part, from a seeded generator.
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Element:
    """A small float format: exponent and mantissa bits, bias 2^(e-1) - 1, no inf/NaN codes used."""
    ebits: int
    mbits: int
    emax: int  # largest normal exponent
    max_normal: float

    @property
    def emin(self) -> int:
        return 1 - (2 ** (self.ebits - 1) - 1)

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.mbits)


# OCP Microscaling Formats (MX) v1.0, Table 2 (element data types)
ELEMENTS = {
    "fp8_e4m3": Element(4, 3, 8, 448.0),
    "fp6_e3m2": Element(3, 2, 4, 28.0),
    "fp6_e2m3": Element(2, 3, 2, 7.5),
    "fp4_e2m1": Element(2, 1, 2, 6.0),
}


def _round(t, rounding: str, generator):
    if rounding == "nearest":
        return torch.round(t)
    if rounding == "stochastic":
        return torch.floor(t + torch.rand(t.shape, generator=generator, dtype=t.dtype, device=t.device))
    raise ValueError(f"rounding must be 'nearest' or 'stochastic', got {rounding!r}")


def _blocks(x, block: int):
    """x (..., n) -> (..., ceil(n/block), block), zero-padded, and n."""
    n = x.shape[-1]
    pad = (-n) % block
    xp = torch.nn.functional.pad(x, (0, pad))
    return xp.reshape(*x.shape[:-1], -1, block), n


def _unblocks(xb, n):
    return xb.reshape(*xb.shape[:-2], -1)[..., :n]


def int_quant(x, bits: int = 8, dim: int = -1, rounding: str = "nearest", generator=None):
    """INT-b with one scale per slice along `dim` (weights: dim=-1, a scale per output row)."""
    maxq, z = 2 ** bits - 1, 2 ** (bits - 1)
    s = 2 * x.abs().amax(dim=dim, keepdim=True) / maxq
    s = torch.where(s > 0, s, torch.ones_like(s))
    return s * (torch.clamp(_round(x / s, rounding, generator) + z, 0, maxq) - z)


def floor_log2(x):
    """floor(log2 x) for x > 0, exactly: x = m 2^e with m in [0.5, 1) gives e - 1. (torch.log2
    rounds values just below a power of two up to it, in bf16 always and in fp32 sometimes,
    which doubles a block scale.)"""
    _, e = torch.frexp(x)
    return (e - 1).to(x.dtype)


def ceil_log2(x):
    """ceil(log2 x) for x > 0, exactly (a power of two is its own ceiling)."""
    m, e = torch.frexp(x)
    return torch.where(m == 0.5, e - 1, e).to(x.dtype)


def hbfp(x, mant_bits: int = 7, block: int = 64, rounding: str = "nearest", generator=None):
    """HBFP with `mant_bits` mantissa bits (7 = "HBFP8", 5 = "HBFP6") and blocks of `block`."""
    xb, n = _blocks(x, block)
    e = ceil_log2(xb.abs().amax(-1, keepdim=True) + 1e-8)
    step = torch.exp2(e - mant_bits)
    top = torch.exp2(e) - step
    q = torch.clamp(step * _round(xb / step, rounding, generator), -top, top)
    return _unblocks(q, n)


def _element(v, fmt: Element, rounding, generator):
    """v (already divided by the block scale) to the nearest value of the element format."""
    exp = floor_log2(v.abs().clamp_min(2.0 ** (fmt.emin - 1)))
    exp = torch.clamp(exp, min=fmt.emin)  # below the smallest normal: the subnormal grid
    step = torch.exp2(exp - fmt.mbits)
    return torch.clamp(step * _round(v / step, rounding, generator), -fmt.max_normal, fmt.max_normal)


def mx(x, element: str = "fp8_e4m3", block: int = 32, rounding: str = "nearest", generator=None):
    """OCP MX: per block a power-of-two scale 2^(floor(log2 max|x|) - emax), elements in `element`."""
    fmt = ELEMENTS[element]
    xb, n = _blocks(x, block)
    amax = xb.abs().amax(-1, keepdim=True)
    shared = floor_log2(torch.where(amax > 0, amax, torch.ones_like(amax))) - fmt.emax
    scale = torch.exp2(torch.clamp(shared, -127, 127))  # E8M0
    return _unblocks(scale * _element(xb / scale, fmt, rounding, generator), n)


FORMATS = ("int8", "hbfp8", "mxfp8", "hbfp6", "mxfp6", "int4", "hbfp4", "mxfp4")


def quantizer(name: str):
    """A format by its name in the paper's tables: int8, int4, hbfp8, hbfp6, hbfp4, mxfp8, mxfp6, mxfp4."""
    table = {"int8": lambda x, **k: int_quant(x, 8, **k), "int4": lambda x, **k: int_quant(x, 4, **k),
             "hbfp8": lambda x, **k: hbfp(x, 7, **k), "hbfp6": lambda x, **k: hbfp(x, 5, **k),
             "hbfp4": lambda x, **k: hbfp(x, 3, **k), "mxfp8": lambda x, **k: mx(x, "fp8_e4m3", **k),
             "mxfp6": lambda x, **k: mx(x, "fp6_e3m2", **k), "mxfp4": lambda x, **k: mx(x, "fp4_e2m1", **k)}
    if name not in table:
        raise ValueError(f"unknown format {name!r}; known: {', '.join(table)}")
    return table[name]


def bits_per_element(name: str) -> float:
    """Storage cost including the shared scale (HBFP: 8-bit exponent per 64, MX: 8 bits per 32)."""
    return {"int8": 8, "int4": 4, "hbfp8": 8 + 8 / 64, "hbfp6": 6 + 8 / 64, "hbfp4": 4 + 8 / 64,
            "mxfp8": 8 + 8 / 32, "mxfp6": 6 + 8 / 32, "mxfp4": 4 + 8 / 32}[name]


