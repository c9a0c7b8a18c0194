"""Hägele et al. (2024): constant LR + cooldown vs cosine, on a char-level Llama-style GPT.

Protocol for each model size (brief, section 5): a cosine run (to 10% of the peak) from
scratch for every target length T; one constant-LR trunk to max(T) with snapshots of
model and optimizer state at every branching point; for each T a cooldown branched from
the trunk at (1 - f) T and run to T (WSD, Eq. 1).

The main size is run for `n_seeds` seeds (each seed its own initialisation and data order,
shared by every run of that seed: comparisons are paired), with the ablations the claims
need: (1-sqrt) and linear cooldowns at every length, a sweep of cooldown lengths at max(T),
windowed SWA on the trunk, two controls at max(T) (a cosine to zero, and the paper's
setting of a constant LR at half the cosine peak with its cooldown), and, for the first
seed, a fresh WSD run that must equal its branched twin bit-for-bit. The scaling sweep
(cosines and branched cooldowns for every size) uses the first seed.

`run` is pure compute; every sub-run is cached by its configuration, so an interrupted
run resumes from its last finished sub-run. Metrics, claims and figures are in
`companion.reports.scaling_cooldown`.
"""
import copy
import dataclasses
from dataclasses import asdict, dataclass


from companion.data import CharCorpus
from companion.metrics.flops import training_flops_per_step
from companion.models.gpt import GPT, GPTConfig
from companion.optim import schedules
from companion.optim.averaging import WindowedSWA
from companion.params import ParamError, param
from companion.results import cached, config_key
from companion.train import CharLM, adamw, evaluate

CHAPTER = "scaling-cooldown"


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "first seed (initialisation and data order); the scaling sweep uses it",
                      range=(0, 2**31 - 1))
    n_seeds: int = param(3, "seeds of the main-size runs (seed, seed + 1, ...)", range=(1, 100))
    d_model: int = param(48, "width of the main model", range=(16, 8192))
    n_layer: int = param(2, "depth of the main model", range=(1, 96))
    head_dim: int = param(16, "attention head size; heads = width / head_dim", range=(4, 256))
    seq_len: int = param(64, "context length in characters", range=(8, 8192))
    batch_size: int = param(16, "sequences per optimizer step", range=(1, 4096))
    lr: float = param(6e-3, "peak LR of cosine and of the constant trunk", range=(1e-6, 1.0))
    lr_grid: tuple[float, ...] = param((3e-3, 6e-3, 1.2e-2, 2.4e-2), "peak LRs of the LR sweep (cosine and "
                                       "cooldown at the middle length, first seed)", range=(1e-6, 1.0))
    half_lr_control: bool = param(True, "also run a constant trunk at lr / 2 with its cooldown at max(T) "
                                  "(the paper's setting)")
    warmup: int = param(60, "linear warmup steps (all schedules)", range=(0, 10**6))
    weight_decay: float = param(0.1, "AdamW decoupled weight decay on Linear weights", range=(0.0, 1.0))
    beta2: float = param(0.95, "AdamW beta2 (beta1 = 0.9)", range=(0.5, 0.99999))
    clip: float = param(1.0, "gradient-norm clipping (0 = off)", range=(0.0, 1e6))
    targets: tuple[int, ...] = param((400, 800, 1200), "training lengths T (steps)", range=(10, 10**7))
    cooldown_frac: float = param(0.2, "cooldown length as a fraction of T", range=(0.01, 0.9))
    sweep_fracs: tuple[float, ...] = param((0.05, 0.1, 0.4), "other cooldown fractions tried at max(T)",
                                           range=(0.01, 0.9))
    swa_horizon: int = param(120, "SWA window length in steps (snapshot every step)", range=(2, 10**6))
    widths: tuple[int, ...] = param((32, 32, 48, 64), "model widths of the scaling sweep", range=(16, 8192))
    depths: tuple[int, ...] = param((1, 2, 2, 2), "model depths of the scaling sweep (one per width)",
                                    range=(1, 96))
    eval_every: int = param(100, "steps between validation evaluations", range=(1, 10**6))
    eval_batches: int = param(16, "fixed validation batches", range=(1, 10**4))

    def validate(self):
        t = self.targets
        if self.lr not in self.lr_grid:
            raise ParamError(f"parameter 'lr' ({self.lr:g}) must be one of 'lr_grid' "
                             f"({', '.join(f'{x:g}' for x in self.lr_grid)}): the LR sweep's run at the chosen "
                             "LR is the main run")
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
        if len(set(zip(self.widths, self.depths))) < 2:
            raise ParamError("parameters 'widths' and 'depths' must give at least two distinct model sizes")
        for d in (self.d_model, *self.widths):
            if d % self.head_dim:
                raise ParamError(f"every width must be a multiple of head_dim={self.head_dim}; got {d}")
        if self.swa_horizon > t[-1]:
            raise ParamError(f"parameter 'swa_horizon' ({self.swa_horizon}) must be at most max(targets)")

    @property
    def seeds(self) -> list:
        return [self.seed + i for i in range(self.n_seeds)]

    @property
    def sweep_T(self) -> int:
        """The length of the LR sweep: the middle training length."""
        return self.targets[len(self.targets) // 2]


SCALES = {
    "smoke": Config(n_seeds=2, d_model=32, n_layer=1, targets=(60, 120), warmup=8, sweep_fracs=(0.05, 0.4),
                    swa_horizon=20, widths=(16, 32), depths=(1, 1), eval_every=20, eval_batches=2, batch_size=8,
                    seq_len=32, lr_grid=(6e-3, 1.2e-2)),
    # Lengths up to 900 steps of 1,024 characters: one pass over the training split, single-epoch
    # as in the paper. The peak LR is the cosine's best on the sweep's grid at the middle length,
    # chosen after two runs (3e-3 left the cosine under-tuned, 1.2e-2 overshot it); the LR sweep in
    # every run shows where it lies. The ladder spans 13x in parameters (4.4k to 59k) and keeps the budget: 3 seeds of the
    # main size plus the ladder's and the LR sweep's first seed, about 13 min on 2 cores.
    "cpu": Config(targets=(300, 600, 900), warmup=40, swa_horizon=90, widths=(16, 32, 32, 48), depths=(1, 1, 2, 2)),
    # Proposal for one H100/H200 (brief, section 6, gpu), unmeasured: larger models, 16k tokens per step.
    "gpu": Config(d_model=192, n_layer=6, head_dim=64, seq_len=256, batch_size=64, lr=2e-3, warmup=100,
                  lr_grid=(5e-4, 1e-3, 2e-3, 4e-3), targets=(500, 1000, 1500), widths=(64, 128, 192, 256),
                  depths=(4, 4, 6, 6), swa_horizon=150, eval_batches=32),
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
    """Builds identically initialised models of one size and seed and trains them on one data
    stream. Every sub-run is cached under its own key and checkpointed while it runs."""

    # Config fields no sub-run of a runner reads: other runs' lengths and sizes, the seed list
    # (each runner has its own seed), the switch for the control (its own key says lr_scale).
    NOT_READ = ("targets", "sweep_fracs", "widths", "depths", "d_model", "n_layer", "swa_horizon", "n_seeds",
                "seed", "half_lr_control", "lr_grid")

    def __init__(self, cfg: Config, corpus: CharCorpus, dev, d: int, L: int, seed: int, progress: bool):
        self.cfg, self.dev = cfg, dev
        self.gcfg = gpt_config(cfg, d, L, corpus.vocab_size)
        self.lm = CharLM(corpus, self.gcfg, batch_size=cfg.batch_size, eval_batches=cfg.eval_batches, seed=seed,
                         dev=dev, progress=progress, checkpoint_every=CHECKPOINT_EVERY)
        self.val = self.lm.val
        self.seed = seed
        self.name = size_key(d, L)
        self.key = {**config_key(cfg, drop=self.NOT_READ), "seed": seed, "model": asdict(self.gcfg)}

    def fresh(self, lr):
        model = self.lm.model()
        return model, adamw(model, lr, (0.9, self.cfg.beta2), self.cfg.weight_decay)

    def train(self, schedule, start, end, ckpt, snap=None, desc="", eval_every=None, lr_scale=1.0, **kw):
        c = self.cfg
        model, opt = self.fresh(c.lr * lr_scale)
        return self.lm.fit(model, opt, schedule, start, end, lr=c.lr * lr_scale, snap=snap,
                           eval_every=eval_every or c.eval_every, clip=c.clip,
                           desc=f"{self.name} s{self.seed} {desc}", checkpoint=ckpt, **kw)

    def cached(self, name, extra, fn):
        return cached(CHAPTER, f"{self.name}-s{self.seed}-{name}", {**self.key, **extra}, fn)

    def initial_val(self):
        return self.cached("init", {}, lambda ckpt: self.lm.evaluate(self.lm.model()))

    def cosine(self, T, final=0.1):
        sched = schedules.make("cosine", total=T, warmup=self.cfg.warmup, final=final)
        return self.cached(f"cosine-T{T}-to{final:g}", {"T": T, "final": final},
                           lambda ckpt: self.train(sched, 0, T, ckpt, desc=f"cosine T={T} to {final:g}")[0])

    def trunk(self, T_max, branch_points, swa_horizon=None, lr_scale=1.0):
        """The constant-LR run to T_max with snapshots at the branch points, and (optionally)
        windowed SWA evaluated each time a window completes."""
        def compute(ckpt):
            probe = _SWAProbe(swa_horizon, self.gcfg, self.val, self.dev) if swa_horizon else None
            sched = schedules.make("constant", warmup=self.cfg.warmup)
            hist, snaps = self.train(sched, 0, T_max, ckpt, snapshot_at=branch_points, lr_scale=lr_scale,
                                     on_step=[probe] if probe else [], desc=f"constant trunk x{lr_scale:g}")
            swa = {**probe.curve, "horizon_val": probe.horizon_sweep()} if probe else None
            return {"history": hist, "snapshots": snaps, "swa": swa}
        return self.cached(f"trunk-x{lr_scale:g}", {"T_max": T_max, "branch_points": sorted(branch_points),
                                                   "swa": swa_horizon, "lr_scale": lr_scale}, compute)

    def cooldown(self, trunk, T, frac, shape, lr_scale=1.0):
        """Branch at N_h = T - int(frac T) from the trunk and cool down to 0 over the rest
        (evaluated 4x as often as the other runs: the loss moves fast here)."""
        sched = schedules.make("wsd", total=T, warmup=self.cfg.warmup, cooldown_frac=frac, shape=shape)
        start = branch_point(T, frac)
        return self.cached(f"cooldown-{shape}-T{T}-f{frac}-x{lr_scale:g}",
                           {"T": T, "frac": frac, "shape": shape, "lr_scale": lr_scale},
                           lambda ckpt: self.train(sched, start, T, ckpt, snap=trunk["snapshots"][start],
                                                   eval_every=max(1, self.cfg.eval_every // 4), lr_scale=lr_scale,
                                                   desc=f"{shape} cooldown T={T}")[0])

    def wsd_from_scratch(self, T, frac, shape):
        sched = schedules.make("wsd", total=T, warmup=self.cfg.warmup, cooldown_frac=frac, shape=shape)
        return self.cached(f"wsd-fresh-{shape}-T{T}-f{frac}", {"T": T, "frac": frac, "shape": shape},
                           lambda ckpt: self.train(sched, 0, T, ckpt, desc=f"fresh WSD T={T}")[0])


def branch_point(T: int, frac: float) -> int:
    return T - int(frac * T)


def _size_runs(r: _Runner, cfg: Config) -> dict:
    """The scaling protocol of one size and seed: cosine per length, trunk, (1-sqrt) cooldowns."""
    f = cfg.cooldown_frac
    trunk = r.trunk(cfg.targets[-1], {branch_point(T, f) for T in cfg.targets})
    return {"d": r.gcfg.d_model, "L": r.gcfg.n_layer, "params": GPT(r.gcfg).num_params(),
            "flops_per_step": training_flops_per_step(r.gcfg, cfg.batch_size), "initial_val": r.initial_val(),
            "cosine": {T: r.cosine(T) for T in cfg.targets}, "trunk": trunk["history"],
            "cooldown": {T: r.cooldown(trunk, T, f, "1-sqrt") for T in cfg.targets}}


def _main_runs(r: _Runner, cfg: Config, first: bool) -> dict:
    """Every run of the main size for one seed (see the module docstring)."""
    T0, T_max, f = cfg.targets[0], cfg.targets[-1], cfg.cooldown_frac
    points = {branch_point(T, f) for T in cfg.targets} | {branch_point(T_max, g) for g in cfg.sweep_fracs}
    trunk = r.trunk(T_max, points, cfg.swa_horizon)
    s = {"d": r.gcfg.d_model, "L": r.gcfg.n_layer, "params": GPT(r.gcfg).num_params(),
         "flops_per_step": training_flops_per_step(r.gcfg, cfg.batch_size), "initial_val": r.initial_val(),
         "cosine": {T: r.cosine(T) for T in cfg.targets}, "cosine_to_zero": r.cosine(T_max, final=0.0),
         "trunk": trunk["history"], "swa": trunk["swa"],
         "cooldown": {T: r.cooldown(trunk, T, f, "1-sqrt") for T in cfg.targets},
         "linear": {T: r.cooldown(trunk, T, f, "linear") for T in cfg.targets},
         "sweep": {g: r.cooldown(trunk, T_max, g, "1-sqrt") for g in sorted({*cfg.sweep_fracs, f})}}
    if cfg.half_lr_control:
        half = r.trunk(T_max, {branch_point(T_max, f)}, lr_scale=0.5)
        s["half_lr"] = {"trunk": half["history"], "cooldown": r.cooldown(half, T_max, f, "1-sqrt", lr_scale=0.5)}
    if first:
        s["fresh_wsd"] = r.wsd_from_scratch(T0, f, "1-sqrt")
    return s


def _lr_sweep(cfg: Config, corpus, dev, main: dict, progress: bool) -> dict:
    """Paper Fig. 3 (right): the final loss of a cosine and of a 20% (1-sqrt) cooldown of the
    middle length at every peak LR of the grid, main size, first seed (the chosen LR's runs are
    the main runs). {lr: {"cosine", "cooldown"}}."""
    T, f = cfg.sweep_T, cfg.cooldown_frac
    out = {cfg.lr: {"cosine": main["cosine"][T], "cooldown": main["cooldown"][T]}}
    for lr in (x for x in cfg.lr_grid if x != cfg.lr):
        c = dataclasses.replace(cfg, lr=lr)
        r = _Runner(c, corpus, dev, cfg.d_model, cfg.n_layer, cfg.seed, progress)
        trunk = r.trunk(branch_point(T, f), {branch_point(T, f)})
        out[lr] = {"cosine": r.cosine(T), "cooldown": r.cooldown(trunk, T, f, "1-sqrt")}
    return dict(sorted(out.items()))


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """All training runs of the chapter: {"main", "seeds", "per_seed": {seed: main-size runs},
    "sizes": {size: scaling runs of the first seed}, "lr_sweep": {lr: runs}}."""
    corpus = CharCorpus.load("tinyshakespeare")
    main = size_key(cfg.d_model, cfg.n_layer)
    out = {"main": main, "seeds": cfg.seeds, "per_seed": {}, "sizes": {}}
    for seed in cfg.seeds:
        r = _Runner(cfg, corpus, dev, cfg.d_model, cfg.n_layer, seed, progress)
        out["per_seed"][seed] = _main_runs(r, cfg, first=seed == cfg.seed)
    for d, L in dict.fromkeys(zip(cfg.widths, cfg.depths)):
        name = size_key(d, L)
        if name == main:  # the main size's first seed already ran the scaling protocol (and more)
            out["sizes"][name] = out["per_seed"][cfg.seed]
        else:
            out["sizes"][name] = _size_runs(_Runner(cfg, corpus, dev, d, L, cfg.seed, progress), cfg)
    out["lr_sweep"] = _lr_sweep(cfg, corpus, dev, out["per_seed"][cfg.seed], progress)
    return out
