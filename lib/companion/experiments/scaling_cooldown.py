"""Hägele et al. (2024): constant LR + cooldown vs cosine, on a char-level Llama-style GPT.

Protocol for each model size (brief, section 5): a cosine run (to 10% of the peak) from
scratch for every target length T; one constant-LR trunk to max(T) with snapshots of
model and optimizer state at every branching point; for each T a cooldown branched from
the trunk at (1 - f) T and run to T (WSD, Eq. 1). For the main size, also a linear
cooldown, a sweep of cooldown lengths, windowed SWA on the trunk, and a fresh WSD run
that must equal its branched twin bit-for-bit.

`run` is pure compute; every sub-run is cached by its configuration, so an interrupted
run resumes from its last finished sub-run. Metrics, claims and figures are in
`companion.reports.scaling_cooldown`.
"""
import copy
import math
from dataclasses import asdict, dataclass, field

import torch

from companion.data import CharCorpus
from companion.metrics.flops import training_flops_per_step
from companion.models.gpt import GPT, GPTConfig
from companion.optim import schedules
from companion.optim.averaging import WindowedSWA
from companion.params import ParamError
from companion.results import cached
from companion.train import adamw, evaluate, train

CHAPTER = "scaling-cooldown"


def _p(default, help, **kw):
    return field(default=default, metadata=dict(help=help, **kw))


@dataclass(frozen=True)
class Config:
    seed: int = _p(0, "seed of initialisation and data order", range=(0, 2**31 - 1))
    d_model: int = _p(64, "width of the main model", range=(16, 8192))
    n_layer: int = _p(2, "depth of the main model", range=(1, 96))
    head_dim: int = _p(16, "attention head size; heads = width / head_dim", range=(4, 256))
    seq_len: int = _p(64, "context length in characters", range=(8, 8192))
    batch_size: int = _p(16, "sequences per optimizer step", range=(1, 4096))
    lr: float = _p(3e-3, "peak LR, the same for cosine and constant", range=(1e-6, 1.0))
    warmup: int = _p(75, "linear warmup steps (all schedules)", range=(0, 10**6))
    weight_decay: float = _p(0.1, "AdamW decoupled weight decay on Linear weights", range=(0.0, 1.0))
    beta2: float = _p(0.95, "AdamW beta2 (beta1 = 0.9)", range=(0.5, 0.99999))
    clip: float = _p(1.0, "gradient-norm clipping (0 = off)", range=(0.0, 1e6))
    targets: tuple[int, ...] = _p((500, 1000, 1500), "training lengths T (steps)", range=(10, 10**7))
    cooldown_frac: float = _p(0.2, "cooldown length as a fraction of T", range=(0.01, 0.9))
    sweep_fracs: tuple[float, ...] = _p((0.05, 0.1, 0.4), "other cooldown fractions tried at max(T)",
                                        range=(0.01, 0.9))
    swa_horizon: int = _p(150, "SWA window length in steps (snapshot every step)", range=(2, 10**6))
    widths: tuple[int, ...] = _p((32, 64, 96), "model widths of the scaling sweep", range=(16, 8192))
    depths: tuple[int, ...] = _p((2, 2, 3), "model depths of the scaling sweep (one per width)", range=(1, 96))
    eval_every: int = _p(100, "steps between validation evaluations", range=(1, 10**6))
    eval_batches: int = _p(16, "fixed validation batches", range=(1, 10**4))

    def validate(self):
        t = self.targets
        if len(t) < 2:
            raise ParamError(f"parameter 'targets' needs at least two lengths; got {','.join(map(str, t))}")
        if list(t) != sorted(set(t)):
            raise ParamError(f"parameter 'targets' must be strictly increasing; got {','.join(map(str, t))}")
        if any(x % self.eval_every for x in t):
            raise ParamError(f"parameter 'eval_every' ({self.eval_every}) must divide every target {t}")
        first = min([branch_point(x, self.cooldown_frac) for x in t] +
                    [branch_point(t[-1], g) for g in self.sweep_fracs])
        if self.warmup >= first:
            raise ParamError(f"parameter 'warmup' ({self.warmup}) must end before the first cooldown starts "
                             f"(step {first})")
        if len(self.widths) != len(self.depths):
            raise ParamError(f"parameters 'widths' and 'depths' must have the same length; "
                             f"got {len(self.widths)} and {len(self.depths)}")
        for d in (self.d_model, *self.widths):
            if d % self.head_dim:
                raise ParamError(f"every width must be a multiple of head_dim={self.head_dim}; got {d}")
        if self.swa_horizon > t[-1]:
            raise ParamError(f"parameter 'swa_horizon' ({self.swa_horizon}) must be at most max(targets)")


SCALES = {
    "smoke": Config(targets=(120, 240), warmup=12, sweep_fracs=(0.05, 0.4), swa_horizon=24,
                    widths=(32, 64), depths=(2, 2), eval_every=24, eval_batches=4, batch_size=8),
    "cpu": Config(),
    # Proposal for one H100 (brief, section 6, gpu): larger models, 16k tokens per step.
    "gpu": Config(d_model=256, n_layer=6, head_dim=64, seq_len=256, batch_size=64, lr=2e-3,
                  warmup=100, widths=(128, 192, 256), depths=(4, 6, 6), swa_horizon=150,
                  sweep_fracs=(0.05, 0.1, 0.4), eval_batches=32),
}


def size_key(d: int, L: int) -> str:
    return f"d{d}-L{L}"


def gpt_config(cfg: Config, d: int, L: int, vocab: int) -> GPTConfig:
    return GPTConfig(vocab_size=vocab, seq_len=cfg.seq_len, n_layer=L, n_head=d // cfg.head_dim, d_model=d)


CHECKPOINT_EVERY = 250  # steps between mid-run checkpoints (resume inside a sub-run)


class _SWAProbe:
    """Windowed SWA (interval 1) on a training run, evaluated each time a window completes;
    a stateful hook, so it is checkpointed with the run."""

    def __init__(self, horizon, gcfg, val, dev):
        self.swa, self.scratch = WindowedSWA(horizon, 1), GPT(gcfg).to(dev)
        self.val, self.dev = val, dev
        self.curve = {"steps": [], "val": []}

    def __call__(self, model):
        self.swa.update(model)
        if self.swa.count % self.swa.h == 0:
            self.curve["steps"].append(self.swa.count)
            self.curve["val"].append(self.evaluate(self.swa.average()))

    def evaluate(self, state):
        self.scratch.load_state_dict(state)
        return evaluate(self.scratch, self.val, self.dev)

    def horizon_sweep(self, n_max=5):
        """The paper's horizon sweep: mean of the last n windows, n <= 5."""
        return {n * self.swa.h: self.evaluate(self.swa.average(n))
                for n in range(1, min(n_max, len(self.swa.windows)) + 1)}

    def state_dict(self):
        return {"swa": self.swa.state_dict(), "curve": copy.deepcopy(self.curve)}

    def load_state_dict(self, state):
        self.swa.load_state_dict(state["swa"])
        self.curve = state["curve"]


class _Runner:
    """Builds identically initialised models of one size and trains them on one data stream.
    Every sub-run is cached under its own key and checkpointed while it runs."""

    def __init__(self, cfg: Config, corpus: CharCorpus, val, dev, d: int, L: int, progress: bool):
        self.cfg, self.corpus, self.val, self.dev, self.progress = cfg, corpus, val, dev, progress
        self.gcfg = gpt_config(cfg, d, L, corpus.vocab_size)
        self.name = size_key(d, L)
        # every sub-run's cache key: all that changes its numbers
        self.key = {k: v for k, v in asdict(cfg).items() if k not in ("targets", "sweep_fracs", "widths", "depths",
                                                                      "d_model", "n_layer", "swa_horizon")}
        self.key["model"] = asdict(self.gcfg)

    def fresh(self):
        torch.manual_seed(self.cfg.seed)
        model = GPT(self.gcfg).to(self.dev)
        return model, adamw(model, self.cfg.lr, (0.9, self.cfg.beta2), self.cfg.weight_decay)

    def train(self, schedule, start, end, ckpt, snap=None, desc="", eval_every=None, **kw):
        model, opt = self.fresh()
        if snap is not None:
            model.load_state_dict(snap["model"])
            opt.load_state_dict(copy.deepcopy(snap["optimizer"]))
        c = self.cfg
        batch = lambda t: self.corpus.train_batch(t, c.batch_size, c.seq_len, c.seed)  # noqa: E731
        return train(model, opt, schedule, batch, start, end, lr=c.lr, val_batches=self.val,
                     eval_every=eval_every or c.eval_every, clip=c.clip, dev=self.dev,
                     desc=f"{self.name} {desc}", progress=self.progress,
                     checkpoint=ckpt, checkpoint_every=CHECKPOINT_EVERY, **kw)

    def cached(self, name, extra, fn):
        return cached(CHAPTER, f"{self.name}-{name}", {**self.key, **extra}, fn)

    def initial_val(self):
        return self.cached("init", {}, lambda ckpt: evaluate(self.fresh()[0], self.val, self.dev))

    def cosine(self, T):
        sched = schedules.make("cosine", total=T, warmup=self.cfg.warmup, final=0.1)
        return self.cached(f"cosine-T{T}", {"T": T},
                           lambda ckpt: self.train(sched, 0, T, ckpt, desc=f"cosine T={T}")[0])

    def trunk(self, T_max, branch_points, swa_horizon=None):
        """The constant-LR run to T_max with snapshots at the branch points, and (optionally)
        windowed SWA evaluated each time a window completes."""
        def compute(ckpt):
            probe = _SWAProbe(swa_horizon, self.gcfg, self.val, self.dev) if swa_horizon else None
            sched = schedules.make("constant", warmup=self.cfg.warmup)
            hist, snaps = self.train(sched, 0, T_max, ckpt, snapshot_at=branch_points,
                                     on_step=[probe] if probe else [], desc="constant trunk")
            swa = {**probe.curve, "horizon_val": probe.horizon_sweep()} if probe else None
            return {"history": hist, "snapshots": snaps, "swa": swa}
        return self.cached("trunk", {"T_max": T_max, "branch_points": sorted(branch_points), "swa": swa_horizon},
                           compute)

    def cooldown(self, trunk, T, frac, shape):
        """Branch at N_h = T - int(frac T) from the trunk and cool down to 0 over the rest
        (evaluated 4x as often as the other runs: the loss moves fast here)."""
        sched = schedules.make("wsd", total=T, warmup=self.cfg.warmup, cooldown_frac=frac, shape=shape)
        start = branch_point(T, frac)
        return self.cached(f"cooldown-{shape}-T{T}-f{frac}", {"T": T, "frac": frac, "shape": shape},
                           lambda ckpt: self.train(sched, start, T, ckpt, snap=trunk["snapshots"][start],
                                                   eval_every=max(1, self.cfg.eval_every // 4),
                                                   desc=f"{shape} cooldown T={T}")[0])

    def wsd_from_scratch(self, T, frac, shape):
        sched = schedules.make("wsd", total=T, warmup=self.cfg.warmup, cooldown_frac=frac, shape=shape)
        return self.cached(f"wsd-fresh-{shape}-T{T}-f{frac}", {"T": T, "frac": frac, "shape": shape},
                           lambda ckpt: self.train(sched, 0, T, ckpt, desc=f"fresh WSD T={T}")[0])


def branch_point(T: int, frac: float) -> int:
    return T - int(frac * T)


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """All training runs of the chapter; returns histories and per-size facts."""
    corpus = CharCorpus.load("tinyshakespeare")
    val = corpus.val_batches(cfg.eval_batches, cfg.batch_size, cfg.seq_len)
    T_max, f = cfg.targets[-1], cfg.cooldown_frac
    main = size_key(cfg.d_model, cfg.n_layer)
    sizes = dict.fromkeys([(cfg.d_model, cfg.n_layer), *zip(cfg.widths, cfg.depths)])
    out = {"main": main, "sizes": {}}
    for d, L in sizes:
        r = _Runner(cfg, corpus, val, dev, d, L, progress)
        is_main = r.name == main
        points = {branch_point(T, f) for T in cfg.targets}
        if is_main:
            points |= {branch_point(T_max, g) for g in cfg.sweep_fracs}
        trunk = r.trunk(T_max, points, cfg.swa_horizon if is_main else None)
        s = {"d": d, "L": L, "params": GPT(r.gcfg).num_params(),
             "flops_per_step": training_flops_per_step(r.gcfg, cfg.batch_size),
             "initial_val": r.initial_val(),
             "cosine": {T: r.cosine(T) for T in cfg.targets},
             "trunk": trunk["history"], "swa": trunk["swa"],
             "cooldown": {T: r.cooldown(trunk, T, f, "1-sqrt") for T in cfg.targets}}
        if is_main:
            s["linear"] = r.cooldown(trunk, T_max, f, "linear")
            s["sweep"] = {g: r.cooldown(trunk, T_max, g, "1-sqrt") for g in sorted({*cfg.sweep_fracs, f})}
            s["fresh_wsd"] = r.wsd_from_scratch(cfg.targets[0], f, "1-sqrt")
        out["sizes"][r.name] = s
    return out
