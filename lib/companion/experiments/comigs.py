"""Fan, Messmer, Doikov & Jaggi (ICML 2025), CoMiGS: users fine-tune a shared language model on
their devices with a mixture of LoRA experts, generalists averaged across users and specialists
kept local, mixed per token by a router each user learns on its own validation data.

Every training run fine-tunes the same frozen "pretrained" GPT for all users at once
(`companion.collab.moe_lora`, `companion.collab.federation`), on synthetic users with known token
provenance (`companion.collab.markov`: a shared Markov chain and one private chain per user,
heterogeneity alpha = share of private segments). Groups of runs, each run cached by its key:

* main: every method of `methods` at alpha, n_seeds seeds (a seed draws the chains, the streams,
  the adapters' initialisation and the batches) -- Table 1, the source split, the routing and
  Table 4 analogues;
* sweep: `sweep_methods` at every alpha of `alphas`, n_seeds seeds (runs at alpha are main's);
* plentiful: `plentiful_methods` with `plentiful_tokens` training tokens per user, first seed;
* ablation: 1G1S with the released code's gradient leakage (Schedule.quirk), and with its router
  trained on training batches, first seed;
* control: 1G1S on users whose private chain is the shared chain (the source labels remain, the
  distributions do not differ), first seed: the router has nothing to tell apart;
* hetero (system heterogeneity, the paper's Table 2 and its overfitting argument; off at cpu scale,
  for time): users holding different numbers of experts and of training tokens, CoMiGS-1G1S against
  Local-MoE (no communication, router trained jointly), first seed.
The base GPT is pretrained once on other chains (`markov.generic`). Metrics, claims and figures
are in `companion.reports.comigs`.
"""
import sys
from dataclasses import dataclass

import torch

from companion import train as T
from companion.collab import federation as F
from companion.collab import markov, text_users
from companion.collab.moe_lora import MoEGPT
from companion.models.gpt import GPT, GPTConfig
from companion.params import ParamError, param
from companion.results import cached, config_key

CHAPTER = "comigs"
SHAKESPEARE_CHARS = 1_115_394  # length of tinyshakespeare.txt (its SHA-256 is checked by companion.data)
METHOD_NAMES = tuple(F.METHODS)


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "first seed (chains, streams, adapters, batches)", range=(0, 2**31 - 1))
    n_seeds: int = param(3, "seeds of the main and sweep runs", range=(1, 100))
    # users
    data: str = param("markov", "users' text: markov (synthetic chains) or shakespeare (slices of Tiny Shakespeare: "
                      "one shared slice, one private slice per user, a third for pretraining)",
                      choices=("markov", "shakespeare"))
    users: int = param(8, "users", range=(1, 256))
    vocab: int = param(32, "vocabulary of the Markov chains (data=shakespeare: the corpus's characters)",
                       range=(2, 4096))
    concentration: float = param(0.1, "Dirichlet concentration of every chain's rows (small: peaked rows)",
                                 range=(1e-3, 100.0))
    seg_min: int = param(8, "shortest segment (tokens from one chain)", range=(1, 10**6))
    seg_max: int = param(32, "longest segment", range=(1, 10**6))
    alpha: float = param(0.5, "heterogeneity: probability that a segment comes from the user's private chain",
                         range=(0.0, 1.0))
    train_tokens: int = param(1500, "training tokens per user (scarce: the paper's ordering needs it)",
                              range=(66, 10**8))
    val_tokens: int = param(1000, "validation tokens per user (the router's data)", range=(66, 10**8))
    test_tokens: int = param(20000, "test tokens per user", range=(66, 10**8))
    # the pretrained base
    n_layer: int = param(2, "layers of the base GPT", range=(1, 48))
    d_model: int = param(64, "width of the base GPT", range=(8, 4096))
    n_head: int = param(4, "attention heads", range=(1, 64))
    seq_len: int = param(64, "context length T", range=(2, 4096))
    pretrain_steps: int = param(800, "pretraining steps of the base on generic chains", range=(0, 10**6))
    pretrain_chains: int = param(8, "generic chains of the pretraining corpus (not the users')", range=(1, 1000))
    pretrain_tokens: int = param(200_000, "length of the pretraining stream", range=(1000, 10**9))
    pretrain_lr: float = param(3e-3, "pretraining learning rate (AdamW, constant)", range=(1e-6, 1.0))
    pretrain_batch: int = param(32, "pretraining batch (sequences)", range=(1, 10**5))
    # adapters and router
    rank: int = param(8, "LoRA rank r of every expert and attention adapter", range=(1, 1024))
    lora_alpha: float = param(16.0, "LoRA alpha (scale alpha / sqrt(r), the released code's)", range=(1e-3, 1e4))
    attn_lora: tuple[str, ...] = param(("proj",), "attention Linear layers with a (global) LoRA adapter",
                                       choices=("qkv", "proj"))
    experts: int = param(2, "experts per user (expert 0 the generalist)", range=(1, 16))
    top_k: int = param(2, "experts per token (2 of 2: dense softmax gating, the released setting)", range=(1, 16))
    lb_weight: float = param(0.01, "load-balancing weight lambda (inert at top_k = experts)", range=(0.0, 10.0))
    # the schedule (the released scripts': 20 rounds x 10 steps, router every 30 steps x 10)
    rounds: int = param(20, "communication rounds", range=(1, 10**5))
    local_steps: int = param(10, "expert steps per round", range=(1, 10**5))
    batch: int = param(16, "sequences per user and step", range=(1, 10**5))
    lr: float = param(2e-3, "AdamW learning rate of experts (cosine to lr/10) and router (constant)",
                      range=(1e-6, 1.0))
    weight_decay: float = param(0.01, "AdamW weight decay", range=(0.0, 10.0))
    router_every: int = param(30, "expert steps between two router phases (K_R)", range=(1, 10**6))
    router_iters: int = param(10, "router steps per phase (r)", range=(1, 10**6))
    eval_every: int = param(20, "expert steps between two held-out evaluations (the training curves)",
                            range=(1, 10**6))
    curve_tokens: int = param(2000, "test tokens per user scored along training (the curves)", range=(66, 10**8))
    # groups
    methods: tuple[str, ...] = param(("Local", "FedAvg", "2G", "2S", "1G1S", "1G1S-joint"),
                                     "methods of the main comparison", choices=METHOD_NAMES)
    alphas: tuple[float, ...] = param((0.2, 0.5, 0.8), "heterogeneities of the sweep", range=(0.0, 1.0))
    sweep_methods: tuple[str, ...] = param(("Local", "FedAvg"), "methods of the sweep",
                                           choices=METHOD_NAMES)
    plentiful_tokens: int = param(12000, "training tokens per user of the plentiful-data runs", range=(66, 10**8))
    plentiful_methods: tuple[str, ...] = param(("Local", "FedAvg", "1G1S"),
                                               "methods of the plentiful-data runs", choices=METHOD_NAMES)
    ablation: bool = param(True, "run the ablations (leakage, router on train) and the routing control")
    hetero: bool = param(False, "run the system-heterogeneity group (users holding different numbers of experts "
                         "and data; CoMiGS-1G1S against Local-MoE, first seed)")
    hetero_experts: tuple[int, ...] = param((2, 3, 4, 2), "experts per user of the heterogeneity group (1 generalist "
                                            "+ the rest specialists)", range=(2, 16))
    hetero_tokens: tuple[int, ...] = param((6000, 3000, 750, 1500), "training tokens per user of the heterogeneity "
                                           "group", range=(66, 10**8))

    def validate(self):
        need = {"Local", "FedAvg", "1G1S", "1G1S-joint"}
        for name in ("methods", "sweep_methods", "plentiful_methods"):
            have = set(getattr(self, name))
            want = need if name == "methods" else {"Local", "FedAvg"}
            if not want <= have:
                raise ParamError(f"parameter {name!r} must include {', '.join(sorted(want))} (the claims compare "
                                 f"them); got {','.join(getattr(self, name))}")
        if self.seg_min > self.seg_max:
            raise ParamError(f"seg_min ({self.seg_min}) must not exceed seg_max ({self.seg_max})")
        if self.d_model % self.n_head:
            raise ParamError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.top_k > self.experts:
            raise ParamError(f"top_k ({self.top_k}) must not exceed experts ({self.experts})")
        if self.experts < 2:
            raise ParamError("experts must be at least 2 (one generalist and one specialist)")
        if len(self.hetero_experts) != len(self.hetero_tokens):
            raise ParamError(f"hetero_experts ({len(self.hetero_experts)} users) and hetero_tokens "
                             f"({len(self.hetero_tokens)} users) must have one entry per user each")
        if self.alpha not in self.alphas:
            raise ParamError(f"alphas must include alpha ({self.alpha}); got {self.alphas}")
        if self.data == "shakespeare":
            shortest = 0.15 * SHAKESPEARE_CHARS // (max(self.users, len(self.hetero_experts)) + 2)  # a val part
            if self.seg_max >= shortest:
                raise ParamError(f"seg_max ({self.seg_max}) must be below {int(shortest)}, the shortest text part "
                                 f"of {self.users} users' slices of Tiny Shakespeare")
        for name in ("train_tokens", "val_tokens", "test_tokens", "plentiful_tokens", "hetero_tokens"):
            v = getattr(self, name)
            if min(v if isinstance(v, tuple) else (v,)) < self.seq_len + 2:
                raise ParamError(f"{name} ({getattr(self, name)}) must exceed seq_len + 1 ({self.seq_len + 1})")

    def datasets(self) -> tuple:
        return ("tinyshakespeare",) if self.data == "shakespeare" else ()

    def schedule(self, quirk: bool = False) -> F.Schedule:
        return F.Schedule(rounds=self.rounds, local_steps=self.local_steps, batch=self.batch, lr=self.lr,
                          weight_decay=self.weight_decay, router_every=self.router_every,
                          router_iters=self.router_iters, quirk=quirk, eval_every=self.eval_every)


SCALES = {
    # plumbing: 2 users, 1 layer, a few rounds
    "smoke": Config(n_seeds=1, users=2, d_model=32, n_layer=1, n_head=2, seq_len=32, pretrain_steps=100,
                    pretrain_tokens=20_000, train_tokens=800, val_tokens=400, test_tokens=2000, rounds=3,
                    local_steps=5, router_every=5, router_iters=2, batch=8, eval_every=5,
                    methods=("Local", "FedAvg", "1G1S", "1G1S-joint"), alphas=(0.5,), sweep_methods=("Local", "FedAvg"),
                    plentiful_tokens=1600, plentiful_methods=("Local", "FedAvg"), hetero=True,
                    hetero_experts=(2, 3), hetero_tokens=(1200, 400)),
    "cpu": Config(),
    # proposal for one H200 (unmeasured): a wider base, the paper's batch of 64 sequences
    "gpu": Config(data="shakespeare", seg_min=64, seg_max=256, n_layer=4, d_model=128, seq_len=128, pretrain_steps=2000, pretrain_batch=64, batch=64,
                  train_tokens=4000, val_tokens=2000, test_tokens=40000, plentiful_tokens=40000,
                  sweep_methods=("Local", "FedAvg", "1G1S"), plentiful_methods=("Local", "FedAvg", "1G1S", "1G1S-joint"),
                  hetero=True, hetero_tokens=(20000, 8000, 2000, 4000)),
}

BASE = ("data", "vocab", "concentration", "seg_min", "seg_max", "n_layer", "d_model", "n_head", "seq_len", "pretrain_steps",
        "pretrain_chains", "pretrain_tokens", "pretrain_lr", "pretrain_batch")
RUN = BASE + ("users", "val_tokens", "test_tokens", "rank", "lora_alpha", "attn_lora", "experts", "top_k",
              "lb_weight", "rounds", "local_steps", "batch", "lr", "weight_decay", "router_every", "router_iters",
              "eval_every", "curve_tokens")


def _corpus():
    """Tiny Shakespeare as character ids, and its characters."""
    from companion.data import CharCorpus
    c = CharCorpus.load("tinyshakespeare", val_frac=0.0)
    return c.train, "".join(c.vocab)


def _vocab(cfg: Config) -> int:
    return cfg.vocab if cfg.data == "markov" else len(_corpus()[1])


def _gpt(cfg: Config) -> GPT:
    return GPT(GPTConfig(vocab_size=_vocab(cfg), seq_len=cfg.seq_len, n_layer=cfg.n_layer, n_head=cfg.n_head,
                         d_model=cfg.d_model, style="gpt2"))


def _users(cfg: Config, alpha: float, n_users: int, tokens: dict, seed: int, control: bool = False):
    if cfg.data == "markov":
        return markov.users((alpha,) * n_users, tokens, cfg.vocab, cfg.concentration, (cfg.seg_min, cfg.seg_max),
                            seed, control)
    return text_users.users(_corpus()[0], (alpha,) * n_users, tokens, (cfg.seg_min, cfg.seg_max), seed, control)


def pretrain(cfg: Config, dev=None) -> dict:
    """The base GPT's weights, pretrained on text that is no user's: generic chains (markov) or the
    corpus's first region (shakespeare)."""
    if cfg.data == "markov":
        stream = markov.generic(cfg.pretrain_chains, cfg.pretrain_tokens, cfg.vocab, cfg.concentration,
                                (cfg.seg_min, cfg.seg_max))
    else:
        stream = text_users.pretraining(_corpus()[0], cfg.users)
    torch.manual_seed(0)
    model = _gpt(cfg).to(dev or "cpu")
    gen = torch.Generator().manual_seed(0)

    def batch(t):
        idx = torch.randint(len(stream) - cfg.seq_len - 1, (cfg.pretrain_batch,), generator=gen)[:, None]
        w = stream[idx + torch.arange(cfg.seq_len + 1)]
        return w[:, :-1], w[:, 1:]
    hist, _ = T.train(model, T.adamw(model, cfg.pretrain_lr), lambda t: 1.0, batch, 0, cfg.pretrain_steps,
                      lr=cfg.pretrain_lr, dev=dev, progress=False)
    return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "loss": hist.train_loss}


def _base(cfg: Config, state: dict, dev) -> GPT:
    model = _gpt(cfg)
    model.load_state_dict(state)
    return model.to(dev or "cpu")


def fine_tune(cfg: Config, base: GPT, method: str, alpha: float, train_tokens, seed: int, quirk: bool = False,
              control: bool = False, n_experts=None, dev=None) -> dict:
    """One federated fine-tuning run: every user's test metrics after training, its held-out curve,
    the uploads per round, the wall time. train_tokens: one count or one per user; n_experts: one
    per user (default: cfg.experts for cfg.users users)."""
    import time
    dev = dev or torch.device("cpu")
    n_experts = tuple(n_experts or (cfg.experts,) * cfg.users)
    us = _users(cfg, alpha, len(n_experts), dict(train=train_tokens, val=cfg.val_tokens, test=cfg.test_tokens), seed,
                control)
    m = F.METHODS[method]
    model = MoEGPT(base, n_experts, cfg.rank, cfg.lora_alpha, cfg.attn_lora, m.gating, cfg.top_k,
                   lb_weight=cfg.lb_weight, seed=30_000 + seed).to(dev)
    # the streams' own generators are seeded from seed (markov.users): the batches and the adapters use others
    gens = {("train", "expert"): torch.Generator().manual_seed(10_000 + seed),
            ("val", "router"): torch.Generator().manual_seed(20_000 + seed),
            ("train", "router"): torch.Generator().manual_seed(40_000 + seed)}

    def batch(split, n, phase):
        x, y, _ = getattr(us, split).batch(n, cfg.seq_len, gens[split, phase])
        return x.to(dev), y.to(dev)
    x, y, sx, sy = (t.to(dev) for t in us.test.windows(cfg.seq_len))
    n = max(1, min(x.shape[1], cfg.curve_tokens // cfg.seq_len))  # the curves' windows: the first of the test set

    def curve(model):
        return F.evaluate(model, x[:, :n], y[:, :n], sx[:, :n], sy[:, :n])["ce"]
    start = curve(model)
    t0 = time.time()
    out = F.train(model, m, batch, cfg.schedule(quirk), evaluate=curve)
    seconds = time.time() - t0
    ev = F.evaluate(model, x, y, sx, sy)
    res = {"method": method, "alpha": alpha, "train_tokens": train_tokens, "seed": seed, "quirk": quirk,
           "control": control, "n_experts": n_experts, "uploads": out["uploads"], "seconds": seconds, **ev,
           "curve_steps": [0] + [k for k, _ in out["evals"]], "curve_ce": torch.stack([start] + [v for _, v in out["evals"]]),
           "private_share_test": float((sy == markov.PRIVATE).float().mean())}
    if "gates_first_window" in ev:
        res["first_window"] = {"x": x[:, 0].cpu().clone(), "sx": sx[:, 0].cpu().clone()}
    return res


def plan(cfg: Config) -> dict:
    """group -> list of (method, alpha, train_tokens, seed, quirk, control)."""
    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    p = {"main": [(m, cfg.alpha, cfg.train_tokens, s, False, False) for s in seeds for m in cfg.methods],
         "sweep": [(m, a, cfg.train_tokens, s, False, False) for s in seeds for a in cfg.alphas
                   for m in cfg.sweep_methods],
         "plentiful": [(m, cfg.alpha, cfg.plentiful_tokens, cfg.seed, False, False) for m in cfg.plentiful_methods]}
    if cfg.ablation:
        p["ablation"] = [("1G1S", cfg.alpha, cfg.train_tokens, cfg.seed, True, False),
                         ("1G1S-train", cfg.alpha, cfg.train_tokens, cfg.seed, False, False)]
        p["control"] = [("1G1S", cfg.alpha, cfg.train_tokens, cfg.seed, False, True)]
    if cfg.hetero:
        p["hetero"] = [(m, cfg.alpha, tuple(cfg.hetero_tokens), cfg.seed, False, False) for m in ("1G1S", "Local-MoE")]
    return p


def run(cfg: Config, dev=None, progress: bool = True) -> dict:
    """Every group of runs (module docstring); the base model and every run cached."""
    torch.set_flush_denormal(True)  # decaying AdamW buffers otherwise slow the runs many times
    base_key = config_key(cfg, drop=tuple(f for f in cfg.__dataclass_fields__ if f not in BASE))
    pre = cached(CHAPTER, "base", base_key, lambda _ckpt: pretrain(cfg, dev))
    base = _base(cfg, pre["state"], dev)
    run_key = config_key(cfg, drop=tuple(f for f in cfg.__dataclass_fields__ if f not in RUN))
    out = {"base_loss": pre["loss"], "alphabet": None if cfg.data == "markov" else _corpus()[1]}
    for group, specs in plan(cfg).items():
        out[group] = []
        for method, alpha, tokens, seed, quirk, control in specs:
            key = run_key | dict(method=method, alpha=alpha, train_tokens=tokens, seed=seed, quirk=quirk,
                                 control=control)
            experts = tuple(cfg.hetero_experts) if group == "hetero" else None
            if experts:
                key |= {"n_experts": experts}
            n = "-".join(map(str, tokens)) if isinstance(tokens, tuple) else tokens
            name = (f"{method}-a{alpha:g}-n{n}-s{seed}" + ("-quirk" if quirk else "") + ("-control" if control else "")
                    + ("-e" + "-".join(map(str, experts)) if experts else ""))
            out[group].append(cached(CHAPTER, name, key, lambda _ckpt, a=(method, alpha, tokens, seed, quirk, control):
                                     fine_tune(cfg, base, *a, n_experts=experts, dev=dev)))
        if progress:
            print(f"{CHAPTER}: {group} done", file=sys.stderr, flush=True)  # not a result: off the page
    out["base_eval"] = _base_eval(cfg, base, dev)
    return out


def _base_eval(cfg: Config, base: GPT, dev) -> list:
    """The base model's test CE per user and seed at alpha (the start every method improves on)."""
    out = []
    for s in range(cfg.seed, cfg.seed + cfg.n_seeds):
        us = _users(cfg, cfg.alpha, cfg.users, dict(train=cfg.train_tokens, val=cfg.val_tokens, test=cfg.test_tokens), s)
        x, y, sx, sy = (t.to(dev or "cpu") for t in us.test.windows(cfg.seq_len))
        with torch.no_grad():
            model = MoEGPT(base, (1,) * cfg.users, 1, 1.0, (), "uniform").to(dev or "cpu")  # B = 0: the base itself
            out.append(F.evaluate(model, x, y, sx, sy)["ce"])
    return out
