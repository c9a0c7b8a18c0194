"""Device choice, seeding, determinism and the CPU thread policy."""
import contextlib
import hashlib
import os
import platform
from pathlib import Path

import torch

# Measured on an idle 2-core build machine (python -m companion.bench): 2 threads beat 1
# for the book's GPTs (d64-L2: 16.4 vs 20.7 ms/step; d96-L3: 30.5 vs 48.9 ms/step). More
# threads than 2 do not help models this small; on a busy machine pass threads=1.
# COMPANION_THREADS overrides the default (e.g. 1 per job when two jobs share the two cores).
DEFAULT_CPU_THREADS = int(os.environ.get("COMPANION_THREADS") or min(2, os.cpu_count() or 1))


def resolve(device: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu. Never hard-codes an index beyond cuda:0."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available; use 'cpu' or 'auto'")
    return torch.device(device)


def setup(seed: int = 0, threads: int = 0, device: str = "auto") -> torch.device:
    """Seed every RNG, pin torch's CPU thread count (0 = the measured default), make CPU runs
    deterministic and flush denormals (decaying momentum buffers otherwise slow CPU runs
    20-80x). Returns the torch device."""
    dev = resolve(device)
    torch.set_num_threads(threads or DEFAULT_CPU_THREADS)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev


def autocast(dev: torch.device):
    """bf16 autocast on GPU (as the paper's code), full float32 on CPU."""
    if dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"


def machine_fingerprint() -> str:
    """What decides the rounding of a CPU run, hashed: the CPU (vendor, family, model, the
    instruction sets it reports), the kernels torch picks for it, the thread count and the
    numerical libraries' versions. Two machines with the same fingerprint give the same bits for
    the same seed; across fingerprints a training run's numbers differ from the third digit on
    (float32 sums in another order)."""
    import numpy
    cpu = platform.processor() or ""
    info = Path("/proc/cpuinfo")
    if info.exists():
        fields = {}
        for line in info.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "model name", "flags") and key not in fields:
                fields[key] = " ".join(sorted(value.split())) if key == "flags" else value.strip()
        cpu = repr(sorted(fields.items()))
    parts = [platform.machine(), cpu, torch.backends.cpu.get_cpu_capability(), str(DEFAULT_CPU_THREADS),
             torch.__version__, numpy.__version__]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
