"""Kosson, Messmer & Jaggi (2024): why GPT training needs learning-rate warmup.

A GPT-2-style char model on Tiny Shakespeare, trained with trapezoidal schedules (linear
warmup of W% of the steps, constant, linear cooldown over the last half):

* an AdamW grid over peak LR x warmup length (the paper's Fig. 1);
* LionA (l2 norm of each update fixed) and LionAR (each neuron turns by a fixed angle)
  without and with warmup: how much of warmup's benefit does controlling the update take over?
* LionAR with high momentum, Nesterov and inverse bias correction (the paper's no-warmup
  recipe), and LionAR scaled online by the SNR-based factor kappa (an automatic warmup).

Every run carries the update probe (l2, relative and angular update per layer and neuron)
and the representation-change probe; the high-LR AdamW runs also measure the gradient SNR.
All runs share the initialisation and the data order. `run` is pure compute, each run cached
by its configuration; metrics, claims and figures are in `companion.reports.warmup`.
"""
from dataclasses import asdict, dataclass

import torch

from companion.data import CharCorpus
from companion.metrics.noise import SNRProbe
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


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "seed of initialisation and data order", range=(0, 2**31 - 1))
    d_model: int = param(64, "model width", range=(16, 8192))
    n_layer: int = param(2, "number of transformer blocks", range=(1, 96))
    n_head: int = param(4, "attention heads", range=(1, 128))
    seq_len: int = param(64, "context length in characters", range=(8, 8192))
    batch_size: int = param(16, "sequences per optimizer step", range=(2, 4096))
    steps: int = param(1000, "optimizer steps N of every run", range=(20, 10**7))
    cooldown_frac: float = param(0.5, "linear cooldown length as a fraction of N (the paper: half)", range=(0.0, 0.9))
    warmups: tuple[float, ...] = param((0.0, 0.02, 0.05, 0.1, 0.2), "warmup lengths of the AdamW grid, fractions of N",
                                    range=(0.0, 0.5))
    ref_warmup: float = param(0.05, "the warmup compared with none in every paired comparison", range=(0.001, 0.5))
    adamw_lrs: tuple[float, ...] = param((1e-3, 3e-3, 1e-2), "peak LRs of the AdamW grid; the largest is the "
                                      "'high LR' of the claims", range=(1e-6, 1.0))
    weight_decay: float = param(0.1, "decoupled weight decay lambda (AdamW and Lion variants)", range=(0.0, 1.0))
    decay_embeddings: bool = param(True, "decay every tensor with >= 2 dims, embeddings included (nanoGPT); "
                                "false: Linear weights only")
    beta2: float = param(0.95, "AdamW beta2 (beta1 = 0.9)", range=(0.5, 0.99999))
    clip: float = param(1.0, "gradient-norm clipping (0 = off)", range=(0.0, 1e6))
    liona_lrs: tuple[float, ...] = param((1e-2, 3e-2), "LionA peak LRs (update RMS fixed to AdamW's equilibrium "
                                      "RMS); the first is its reference LR", range=(1e-6, 1.0))
    lionar_lrs: tuple[float, ...] = param((3e-2, 1e-1), "LionAR peak LRs (the angle per step grows as their square "
                                       "root); the first is the LR of the recipe and kappa runs", range=(1e-6, 1.0))
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
            if len(set(v)) != len(v) or (name in ("warmups", "adamw_lrs") and list(v) != sorted(v)):
                raise ParamError(f"parameter {name!r} must hold distinct values"
                                 + (" in increasing order" if name in ("warmups", "adamw_lrs") else "")
                                 + f"; got {','.join(map(str, v))}")
        if self.d_model % self.n_head:
            raise ParamError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")
        if self.batch_size % self.snr_micro:
            raise ParamError(f"batch_size ({self.batch_size}) must be a multiple of snr_micro ({self.snr_micro})")
        if self.probe_dense < 10:
            raise ParamError(f"parameter 'probe_dense' ({self.probe_dense}) must be at least 10: the claims "
                             "read the first 10 steps")


SCALES = {
    "smoke": Config(steps=200, warmups=(0.0, 0.1), ref_warmup=0.1, adamw_lrs=(1e-2,), liona_lrs=(1e-2,),
                    lionar_lrs=(3e-2,), eval_every=50, eval_batches=4, probe_every=5),
    "cpu": Config(),
    # Proposal for one H100 (brief, section 6, gpu): a ~3M-parameter GPT-2, 16k tokens per step.
    "gpu": Config(d_model=256, n_layer=4, n_head=4, seq_len=256, batch_size=64, steps=1000,
                  adamw_lrs=(1e-3, 3e-3, 1e-2), eval_batches=32),
}


def warmup_steps(cfg: Config, frac: float) -> int:
    return int(round(frac * cfg.steps))


# The optimizers of the chapter, by name: factory(param_groups, cfg, lr).
def _adamw(groups, cfg, lr):
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, cfg.beta2), eps=1e-8)


def _liona(groups, cfg, lr):
    return LionA(groups, lr=lr, betas=(0.9, 0.99))


def _lionar(groups, cfg, lr):
    return LionAR(groups, lr=lr, betas=(0.9, 0.99), rho=cfg.lionar_rho)


def _lionar_hm(groups, cfg, lr):
    b = cfg.high_momentum
    return LionAR(groups, lr=lr, betas=(b, b), rho=cfg.lionar_rho, nesterov=True, inverse_bias_correction=True)


OPTIMIZERS = {"adamw": _adamw, "liona": _liona, "lionar": _lionar, "lionar-hm": _lionar_hm,
              "lionar-kappa": _lionar}


class _Runner:
    def __init__(self, cfg: Config, corpus: CharCorpus, dev, progress: bool):
        self.cfg, self.dev = cfg, dev
        self.gcfg = GPTConfig(vocab_size=corpus.vocab_size, seq_len=cfg.seq_len, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, d_model=cfg.d_model, style="gpt2")
        self.lm = CharLM(corpus, self.gcfg, batch_size=cfg.batch_size, eval_batches=cfg.eval_batches, seed=cfg.seed,
                         dev=dev, progress=progress, checkpoint_every=CHECKPOINT_EVERY)
        self.probe_x = self.lm.val[0][0][:4]  # a fixed probe batch for the representation change
        self.key = {k: v for k, v in asdict(cfg).items() if k not in ("warmups", "adamw_lrs", "ref_warmup",
                                                                      "liona_lrs", "lionar_lrs")}
        self.key["model"] = asdict(self.gcfg)

    def initial_val(self):
        return cached(CHAPTER, "init", self.key, lambda ckpt: self.lm.evaluate(self.lm.model()))

    def run(self, opt: str, lr: float, warmup: float, snr: bool = False):
        """One training run: history plus the probes' records."""
        c = self.cfg
        W = warmup_steps(c, warmup)

        def compute(ckpt):
            model = self.lm.model()
            optimizer = OPTIMIZERS[opt](model.param_groups(c.weight_decay, c.decay_embeddings), c, lr)
            probes = [UpdateProbe(model, c.probe_every, c.probe_dense),
                      RRCProbe(model, self.probe_x, c.probe_every, c.probe_dense)]
            if snr or opt == "lionar-kappa":
                probes.append(SNRProbe(model, c.snr_micro, c.probe_every, c.probe_dense,
                                       correct=opt == "lionar-kappa"))
            sched = schedules.make("trapezoid", total=c.steps, warmup=W, cooldown_frac=c.cooldown_frac)
            hist, _ = self.lm.fit(model, optimizer, sched, 0, c.steps, lr=lr, eval_every=c.eval_every, clip=c.clip,
                                  probes=probes, desc=f"{opt} lr={lr:g} W={warmup:.0%}", checkpoint=ckpt)
            out = {"history": hist, "updates": probes[0].records, "rrc": probes[1].records}
            if len(probes) > 2:
                out["snr"] = probes[2].records
            return out
        return cached(CHAPTER, f"{opt}-lr{lr:g}-w{warmup:g}", {**self.key, "opt": opt, "lr": lr, "W": W,
                                                               "snr": snr}, compute)


def run_key(opt: str, lr: float, warmup: float) -> str:
    """How results["runs"] names a run: "adamw/0.01/0.05"."""
    return f"{opt}/{lr:g}/{warmup:g}"


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """All training runs of the chapter, in the order of the notebook's sections."""
    corpus = CharCorpus.load("tinyshakespeare")
    r = _Runner(cfg, corpus, dev, progress)
    hi, W = max(cfg.adamw_lrs), cfg.ref_warmup
    plan = [("adamw", lr, w, lr == hi and w in (0.0, W)) for lr in cfg.adamw_lrs for w in cfg.warmups]
    lion = [("liona", lr) for lr in cfg.liona_lrs] + [("lionar", lr) for lr in cfg.lionar_lrs]
    plan += [(opt, lr, w, False) for opt, lr in lion + [("lionar-hm", cfg.lionar_lrs[0])] for w in (0.0, W)]
    plan += [("lionar-kappa", cfg.lionar_lrs[0], 0.0, True)]
    runs = {run_key(o, lr, w): r.run(o, lr, w, snr) for o, lr, w, snr in plan}
    return {"initial_val": r.initial_val(), "params": GPT(r.gcfg).num_params(), "runs": runs}
