"""Kosson, Messmer & Jaggi (2024): why GPT training needs learning-rate warmup.

A GPT-2-style char model on Tiny Shakespeare, trained with trapezoidal schedules (linear
warmup of W% of the steps, constant, linear cooldown over the last half).

**The grid** (seed `seed`): every optimizer (AdamW, LionA with the l2 norm of each update
fixed, LionAR with each neuron turning by a fixed angle) over a grid of peak LRs that
brackets its optimum, without warmup and with the reference warmup; AdamW's other warmup
lengths at its best warmed LR; at LionAR's best warmed LR the paper's no-warmup recipe
(high momentum, Nesterov, inverse bias correction) with and without its inverse bias
correction, two LionAR ablations (relative instead of REQ's plain Lion steps on the LayerNorm
gains; embeddings not rotated either), and LionAR scaled online by the SNR-based factor kappa
(an automatic warmup).

**The held-out seeds** (seed + 1 ... seed + n_seeds) rerun only the arms the claims read, at
the LRs the grid selected: each optimizer's best warmed LR, and AdamW's best no-warmup LR.
So the selection never sees the seeds that test it.

Every run carries the update probe (l2, relative and angular update per layer and neuron)
and the representation-change probe; AdamW runs also measure the gradient SNR. Runs of one
seed share initialisation and data order. `run` is pure compute, each run cached by its
configuration; metrics, claims and figures are in `companion.reports.warmup`.
"""
from dataclasses import asdict, dataclass, replace

import torch

from companion.data import CharCorpus
from companion.metrics.noise import BatchScanProbe, SNRProbe
from companion.metrics.representation import RRCProbe
from companion.metrics.updates import UpdateProbe
from companion.models.gpt import GPT, GPTConfig
from companion.optim import schedules
from companion.optim.lion import LionA, LionAR
from companion.params import ParamError, param
from companion.results import cached
from companion.train import CharLM

CHAPTER = "warmup"
CHECKPOINT_EVERY = 250
GRIDS = ("adamw", "liona", "lionar")  # the optimizers swept over LR

@dataclass(frozen=True)
class Config:
    seed: int = param(0, "seed of the LR grid (initialisation and data order); the held-out seeds follow it",
                      range=(0, 2**31 - 1))
    n_seeds: int = param(3, "held-out seeds (seed + 1, ...) that rerun the claimed arms at the selected LRs",
                         range=(1, 20))
    d_model: int = param(64, "model width", range=(16, 8192))
    n_layer: int = param(2, "number of transformer blocks", range=(1, 96))
    n_head: int = param(4, "attention heads", range=(1, 128))
    seq_len: int = param(64, "context length in characters", range=(8, 8192))
    batch_size: int = param(16, "sequences per optimizer step", range=(2, 4096))
    steps: int = param(800, "optimizer steps N of every run", range=(20, 10**7))
    cooldown_frac: float = param(0.5, "linear cooldown length as a fraction of N (the paper: half)", range=(0.0, 0.9))
    warmups: tuple[float, ...] = param((0.0, 0.02, 0.05, 0.1, 0.2), "warmup lengths (fractions of N); the "
                                    "others than 0 and ref_warmup run at AdamW's best warmed LR", range=(0.0, 0.5))
    ref_warmup: float = param(0.05, "the warmup compared with none in every paired comparison", range=(0.001, 0.5))
    adamw_lrs: tuple[float, ...] = param((1e-3, 3e-3, 1e-2, 3e-2), "AdamW peak LRs of the grid", range=(1e-6, 1.0))
    weight_decay: float = param(0.1, "decoupled weight decay lambda (AdamW and Lion variants)", range=(0.0, 1.0))
    decay_embeddings: bool = param(True, "decay every tensor with >= 2 dims, embeddings included (nanoGPT); "
                                "false: Linear weights only")
    beta2: float = param(0.95, "AdamW beta2 (beta1 = 0.9)", range=(0.5, 0.99999))
    clip: float = param(1.0, "gradient-norm clipping (0 = off)", range=(0.0, 1e6))
    liona_lrs: tuple[float, ...] = param((3e-3, 1e-2, 3e-2), "LionA peak LRs (update RMS fixed to AdamW's "
                                      "equilibrium RMS)", range=(1e-6, 1.0))
    lionar_lrs: tuple[float, ...] = param((1e-2, 3e-2, 1e-1, 3e-1), "LionAR peak LRs (the angle per step grows "
                                       "as their square root)", range=(1e-6, 1.0))
    lionar_rho: float = param(0.0, "LionAR moving average of the update norm (0 = exact per-step normalisation)",
                           range=(0.0, 0.9999))
    high_momentum: float = param(0.98, "beta1 = beta2 of the no-warmup LionAR recipe (with Nesterov and inverse "
                              "bias correction)", range=(0.5, 0.9999))
    snr_micro: int = param(4, "micro-batches for the gradient SNR estimate", range=(2, 4096))
    probe_every: int = param(10, "steps between update-probe samples (after the first probe_dense steps)",
                          range=(1, 10**6))
    probe_dense: int = param(20, "first steps sampled by the probes at every step", range=(1, 10**6))
    eval_every: int = param(100, "steps between validation evaluations", range=(1, 10**6))
    eval_batches: int = param(16, "fixed validation batches", range=(1, 10**4))

    def validate(self):
        n_cool = int(self.cooldown_frac * self.steps)
        for w in (*self.warmups, self.ref_warmup):
            if warmup_steps(self, w) > self.steps - n_cool:
                raise ParamError(f"a warmup of {w:.0%} ({warmup_steps(self, w)} steps) must end before the "
                                 f"cooldown starts at step {self.steps - n_cool}")
        if 0.0 not in self.warmups or self.ref_warmup not in self.warmups:
            raise ParamError(f"parameter 'warmups' must contain 0 and ref_warmup={self.ref_warmup}; "
                             f"got {','.join(map(str, self.warmups))}")
        for name in ("warmups", "adamw_lrs", "liona_lrs", "lionar_lrs"):
            v = getattr(self, name)
            if len(set(v)) != len(v) or list(v) != sorted(v):
                raise ParamError(f"parameter {name!r} must hold distinct values in increasing order; "
                                 f"got {','.join(map(str, v))}")
        if len(self.adamw_lrs) < 2:
            raise ParamError("parameter 'adamw_lrs' needs at least 2 LRs: the claims compare the warmup gap "
                             f"at two of them; got {','.join(map(str, self.adamw_lrs))}")
        if self.d_model % self.n_head:
            raise ParamError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")
        if self.batch_size % self.snr_micro:
            raise ParamError(f"batch_size ({self.batch_size}) must be a multiple of snr_micro ({self.snr_micro})")
        p0, p1 = plateau(self)
        if p1 - p0 < 10:
            raise ParamError(f"the plateau window [max(N/3, longest warmup), N - cooldown) = [{p0}, {p1}) must span "
                             "at least 10 steps: the angles are scored against it; shorten the warmups or the "
                             "cooldown (cooldown_frac), or run more steps")
        if self.probe_dense < 10:
            raise ParamError(f"parameter 'probe_dense' ({self.probe_dense}) must be at least 10: the claims "
                             "read the first 10 steps")

    def lrs(self, opt: str) -> tuple:
        return {"adamw": self.adamw_lrs, "liona": self.liona_lrs, "lionar": self.lionar_lrs}[opt]

    @property
    def held_out(self) -> list:
        return [self.seed + 1 + i for i in range(self.n_seeds)]


SCALES = {
    "smoke": Config(n_seeds=2, steps=150, warmups=(0.0, 0.1), ref_warmup=0.1, adamw_lrs=(3e-3, 1e-2),
                    liona_lrs=(1e-2,), lionar_lrs=(3e-2, 1e-1), eval_every=50, eval_batches=2, probe_every=10,
                    probe_dense=10, batch_size=8, snr_micro=2, d_model=32, n_layer=1, n_head=2),
    "cpu": Config(),
    # Proposal for one H100 (brief, section 6, gpu): a ~3M-parameter GPT-2, 16k tokens per step.
    "gpu": Config(d_model=256, n_layer=4, n_head=4, seq_len=256, batch_size=64, steps=1000,
                  adamw_lrs=(3e-4, 1e-3, 3e-3, 1e-2), liona_lrs=(3e-4, 1e-3, 3e-3, 1e-2),
                  lionar_lrs=(3e-3, 1e-2, 3e-2, 1e-1), eval_batches=32),
}


def warmup_steps(cfg: Config, frac: float) -> int:
    return int(round(frac * cfg.steps))


def plateau(cfg: Config) -> tuple:
    """Steps [max(N/3, longest warmup), start of the cooldown): every run is at peak LR there,
    after its warmup; a run's own angle scale is measured on this window."""
    longest = max(warmup_steps(cfg, w) for w in (*cfg.warmups, cfg.ref_warmup))
    return max(cfg.steps // 3, longest), cfg.steps - int(cfg.cooldown_frac * cfg.steps)


def scan_steps(cfg: Config) -> list:
    """The steps at which AdamW runs measure the gradient at every batch size (per-sample
    gradients): dense at the start, then a few up to the end of the plateau."""
    late = [int(f * cfg.steps) for f in (0.1, 0.2, 1 / 3, 0.45)]
    return sorted({t for t in (0, 2, 5, 10, 20, 40, *late) if t < cfg.steps})


# The optimizers of the chapter, by name: factory(param_groups, cfg, lr).
def _adamw(groups, cfg, lr):
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, cfg.beta2), eps=1e-8)


def _liona(groups, cfg, lr):
    return LionA(groups, lr=lr, betas=(0.9, 0.99))


def _lionar(groups, cfg, lr, nonrot="sign"):
    return LionAR(groups, lr=lr, betas=(0.9, 0.99), rho=cfg.lionar_rho, nonrot=nonrot)


def _recipe(groups, cfg, lr, ibc=True):
    b = cfg.high_momentum
    return LionAR(groups, lr=lr, betas=(b, b), rho=cfg.lionar_rho, nesterov=True, inverse_bias_correction=ibc)


# LionAR moves the tensors it does not rotate (the LayerNorm gains) by REQ's plain Lion step of
# size eta. The two ablations: relative steps on them instead ("lionar-rel1d"), and embeddings
# not rotated either, moved by relative steps too ("lionar-rel")
OPTIMIZERS = {"adamw": _adamw, "liona": _liona, "lionar": _lionar,
              "lionar-hm": _recipe, "lionar-hm-noibc": lambda g, c, lr: _recipe(g, c, lr, ibc=False),
              "lionar-rel1d": lambda g, c, lr: _lionar(g, c, lr, nonrot="relative"),
              "lionar-rel": lambda g, c, lr: _lionar(g, c, lr, nonrot="relative"), "lionar-kappa": _lionar}
NOT_ROTATED_EMBEDDINGS = ("lionar-rel",)


class _Runner:
    """The runs of one seed: model, data order and probe batch fixed by `cfg.seed`."""

    def __init__(self, cfg: Config, corpus: CharCorpus, dev, progress: bool):
        self.cfg, self.dev = cfg, dev
        self.gcfg = GPTConfig(vocab_size=corpus.vocab_size, seq_len=cfg.seq_len, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, d_model=cfg.d_model, style="gpt2")
        self.lm = CharLM(corpus, self.gcfg, batch_size=cfg.batch_size, eval_batches=cfg.eval_batches, seed=cfg.seed,
                         dev=dev, progress=progress, checkpoint_every=CHECKPOINT_EVERY)
        self.probe_x = self.lm.val[0][0][:4]  # a fixed probe batch for the representation change
        # the grid and the seed count choose which runs exist, not what one run computes
        self.key = {k: v for k, v in asdict(cfg).items() if k not in ("warmups", "adamw_lrs", "ref_warmup",
                                                                      "liona_lrs", "lionar_lrs", "n_seeds")}
        self.key["model"] = asdict(self.gcfg)

    def initial_val(self):
        return cached(CHAPTER, "init", self.key, lambda ckpt: self.lm.evaluate(self.lm.model()))

    def run(self, opt: str, lr: float, warmup: float):
        """One training run: history plus the probes' records (AdamW and kappa runs: the SNR too;
        AdamW runs: the gradient at every batch size at `scan_steps`)."""
        c = self.cfg
        W = warmup_steps(c, warmup)
        snr = opt in ("adamw", "lionar-kappa")

        def compute(ckpt):
            model = self.lm.model()
            decay_emb = c.decay_embeddings and opt not in NOT_ROTATED_EMBEDDINGS
            optimizer = OPTIMIZERS[opt](model.param_groups(c.weight_decay, decay_emb), c, lr)
            probes = [UpdateProbe(model, c.probe_every, c.probe_dense),
                      RRCProbe(model, self.probe_x, c.probe_every, c.probe_dense)]
            if snr:
                probes.append(SNRProbe(model, c.snr_micro, c.probe_every, c.probe_dense,
                                       correct=opt == "lionar-kappa"))
            if opt == "adamw":
                probes.append(BatchScanProbe(model, scan_steps(c)))
            sched = schedules.make("trapezoid", total=c.steps, warmup=W, cooldown_frac=c.cooldown_frac)
            hist, _ = self.lm.fit(model, optimizer, sched, 0, c.steps, lr=lr, eval_every=c.eval_every, clip=c.clip,
                                  probes=probes, desc=f"seed {c.seed} {opt} lr={lr:g} W={warmup:.0%}",
                                  checkpoint=ckpt)
            out = {"history": hist, "updates": probes[0].records, "rrc": probes[1].records}
            if snr:
                out["snr"] = probes[2].records
            if opt == "adamw":
                out["batch_scan"] = probes[3].records
            return out
        return cached(CHAPTER, f"s{c.seed}-{opt}-lr{lr:g}-w{warmup:g}",
                      {**self.key, "opt": opt, "lr": lr, "W": W, "snr": snr}, compute)


def run_key(opt: str, lr: float, warmup: float) -> str:
    """How results name a run: "adamw/0.01/0.05"."""
    return f"{opt}/{lr:g}/{warmup:g}"


def final(runs: dict, opt: str, lr: float, w: float) -> float:
    return runs[run_key(opt, lr, w)]["history"].final_val


def select(runs: dict, cfg: Config) -> dict:
    """The LRs the claims use, chosen on the grid seed by a rule fixed before any run: each
    optimizer's best LR with the reference warmup ("warm"), AdamW's best LR without warmup
    ("adamw_cold"), and AdamW's pair of LRs (the best cold and the best warm one; when they
    coincide, the best warm one and its lower neighbour in the grid, else the upper)."""
    W = cfg.ref_warmup
    ranked = {opt: sorted(cfg.lrs(opt), key=lambda lr: final(runs, opt, lr, W)) for opt in GRIDS}
    best = {opt: r[0] for opt, r in ranked.items()}
    cold = min(cfg.adamw_lrs, key=lambda lr: final(runs, "adamw", lr, 0.0))
    pair = {cold, best["adamw"]}
    if len(pair) == 1:
        i = cfg.adamw_lrs.index(cold)
        pair.add(cfg.adamw_lrs[i - 1] if i > 0 else cfg.adamw_lrs[i + 1])
    # LionAR's runner-up warmed LR, rerun on the held-out seeds as a check of the selection
    runner_up = ranked["lionar"][1] if len(ranked["lionar"]) > 1 else ranked["lionar"][0]
    return {"warm": best, "adamw_cold": cold, "adamw_pair": sorted(pair), "lionar_runner_up": runner_up}


def claimed_arms(sel: dict, cfg: Config) -> list:
    """(opt, lr, warmup) of the runs the claims read on every seed."""
    W, lr_ar = cfg.ref_warmup, sel["warm"]["lionar"]
    arms = [("adamw", lr, w) for lr in sel["adamw_pair"] for w in (0.0, W)]
    arms += [(opt, sel["warm"][opt], w) for opt in ("liona", "lionar") for w in (0.0, W)]
    arms += [("lionar-hm", lr_ar, 0.0), ("lionar-hm", lr_ar, W), ("lionar-hm-noibc", lr_ar, 0.0)]
    # not claims: the gains ablation and LionAR's runner-up LR, over the same seeds
    arms += [("lionar-rel1d", lr_ar, w) for w in (0.0, W)]
    if sel["lionar_runner_up"] != lr_ar:
        arms += [("lionar", sel["lionar_runner_up"], w) for w in (0.0, W)]
    return arms


def bigram_loss(corpus: CharCorpus) -> float:
    """Validation loss (nats/char) of a bigram model fitted on the training split (add-one
    counts): a run still above it has learnt nothing beyond pairs of characters."""
    V, tr, va = corpus.vocab_size, corpus.train.long(), corpus.val.long()
    counts = torch.ones(V, V, dtype=torch.float64)
    counts.index_put_((tr[:-1], tr[1:]), torch.ones(len(tr) - 1, dtype=torch.float64), accumulate=True)
    p = counts / counts.sum(1, keepdim=True)
    return float(-p[va[:-1], va[1:]].log().mean())


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """All training runs: {"initial_val", "params", "grid": {run_key: run}, "selected",
    "seeds", "per_seed": {seed: {run_key: run}}}."""
    corpus = CharCorpus.load("tinyshakespeare")
    r = _Runner(cfg, corpus, dev, progress)
    W = cfg.ref_warmup
    grid = {run_key(o, lr, w): r.run(o, lr, w) for o in GRIDS for lr in cfg.lrs(o) for w in (0.0, W)}
    sel = select(grid, cfg)
    lr_a, lr_ar = sel["warm"]["adamw"], sel["warm"]["lionar"]
    extra = [("adamw", lr_a, w) for w in cfg.warmups if w not in (0.0, W)]
    extra += [(o, lr_ar, w) for o in ("lionar-hm", "lionar-hm-noibc", "lionar-rel1d", "lionar-rel")
              for w in (0.0, W)]
    extra += [("lionar-kappa", lr_ar, 0.0)]
    grid.update({run_key(*a): r.run(*a) for a in extra})
    per_seed = {}
    for seed in cfg.held_out:
        rs = _Runner(replace(cfg, seed=seed), corpus, dev, progress)
        per_seed[seed] = {run_key(*a): rs.run(*a) for a in claimed_arms(sel, cfg)}
    return {"initial_val": r.initial_val(), "params": GPT(r.gcfg).num_params(), "grid": grid, "selected": sel,
            "seeds": cfg.held_out, "per_seed": per_seed, "bigram_val": bigram_loss(corpus)}
