"""`python -m companion.bench`: speed of the GPT trainer for the chapters' standard configs.

Prints, per config: ms per optimizer step, tokens/s, achieved FLOP/s (the chapter's
Chinchilla-style count) and peak memory (process RSS on CPU, allocated on CUDA).
"""
import argparse
import resource
import time

import torch

from companion import device as devices
from companion.experiments import scaling_cooldown as sc
from companion.metrics.flops import training_flops_per_step
from companion.models.gpt import GPT
from companion.train import adamw, train


def bench(cfg, d, L, dev, steps=60, warm=10):
    gcfg = sc.gpt_config(cfg, d, L, vocab=65)
    torch.manual_seed(0)
    model = GPT(gcfg).to(dev)
    opt = adamw(model, cfg.lr)
    x = torch.randint(65, (cfg.batch_size, cfg.seq_len))
    batch = lambda t: (x, x)  # noqa: E731  (timing only)
    train(model, opt, lambda t: 1.0, batch, 0, warm, lr=cfg.lr, dev=dev, progress=False)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    train(model, opt, lambda t: 1.0, batch, 0, steps, lr=cfg.lr, dev=dev, progress=False)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    mem = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"params": model.num_params(), "ms_per_step": 1e3 * dt,
            "tokens_per_s": cfg.batch_size * cfg.seq_len / dt,
            "flop_per_s": training_flops_per_step(gcfg, cfg.batch_size) / dt, "peak_mem_mib": mem / 2**20}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--scales", default="smoke,cpu" if not torch.cuda.is_available() else "cpu,gpu")
    args = p.parse_args(argv)
    dev = devices.setup(0, args.threads, args.device)
    print(f"device: {devices.describe(dev)}")
    print(f"{'config':28s} {'params':>9s} {'ms/step':>8s} {'tokens/s':>10s} {'GFLOP/s':>8s} {'peak MiB':>9s}")
    for scale in args.scales.split(","):
        cfg = sc.SCALES[scale]
        for d, L in dict.fromkeys([(cfg.d_model, cfg.n_layer), *zip(cfg.widths, cfg.depths)]):
            r = bench(cfg, d, L, dev)
            name = f"scaling-cooldown/{scale} d{d}-L{L}"
            print(f"{name:28s} {r['params']:9d} {r['ms_per_step']:8.1f} {r['tokens_per_s']:10.0f} "
                  f"{r['flop_per_s'] / 1e9:8.2f} {r['peak_mem_mib']:9.0f}")


if __name__ == "__main__":
    main()
