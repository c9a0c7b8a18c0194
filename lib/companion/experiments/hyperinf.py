"""Zhou, Fan & Jaggi (2024), HyperINF: influence functions with Schulz's hyperpower iteration
on the generalized Fisher matrix (GFIM) of LoRA-tuned models.

Four groups of computations, each cached by its configuration:

* convergence (the official rebuttal figure): A = (1/N) sum_i g_i g_i^T + lambda I with
  g_i ~ N(0, I_d), v ~ N(0, I_d); the relative error of A^{-1} v per iteration for Schulz (the
  official and a safe initialisation), LiSSA (official and scaled), CG and DataInf, per (d, N);
* iterations to tolerance vs condition number kappa (A = Q diag(logspace) Q^T), against the
  bound of `solvers.schulz_iterations`;
* wall time vs d of the exact inverse, Schulz and CG (this machine; not part of the metrics);
* mislabeled-data detection: the book's char-GPT, pretrained on Tiny Shakespeare, gets a
  classifier head and LoRA adapters on its attention query and value projections and is
  fine-tuned to tell Shakespeare's text from corrupted text (by default: letters replaced
  at random, like OCR noise), with a fraction of the training labels flipped; every method
  scores every training point, and we measure how many flipped labels each finds first (per
  LoRA rank and seed);
* the GFIM and FIM of one adapted matrix, for the structure figure.
"""
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from companion.data import CharCorpus, path
from companion.influence import curvature as C
from companion.influence import scores as I
from companion.influence import solvers as S
from companion.models.gpt import GPT, GPTConfig
from companion.models.lora import add_lora
from companion.optim import schedules
from companion.params import ParamError, param
from companion.results import cached, config_key
from companion.train import CharLM, adamw

CHAPTER = "hyperinf"


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "seed of the synthetic matrices, the data split, the label flips and the fine-tuning",
                   range=(0, 2**31 - 1))
    conv_dims: tuple[int, ...] = param((64, 128, 256, 512), "dimensions d of the convergence study", range=(2, 16384))
    conv_ns: tuple[int, ...] = param((200, 800, 6400), "sample counts N of the convergence study", range=(2, 10**6))
    conv_lambda: float = param(0.01, "damping lambda of the convergence study", range=(1e-8, 10.0))
    conv_iters: int = param(40, "iterations of every iterative solver in the convergence study", range=(1, 10**4))
    kappa_dim: int = param(256, "dimension of the condition-number sweep", range=(2, 16384))
    kappas: tuple[float, ...] = param((1e1, 1e2, 1e3, 1e4, 1e5, 1e6), "condition numbers of the sweep",
                                   range=(1.0, 1e12))
    tol: float = param(1e-6, "relative-error tolerance of the iteration counts", range=(1e-14, 0.5))
    timing_dims: tuple[int, ...] = param((16, 64, 256, 1024), "dimensions of the timing benchmark", range=(2, 16384))
    timing_iters: int = param(20, "Schulz and CG iterations in the timing benchmark (the official notebook: 20)",
                           range=(1, 1000))
    d_model: int = param(64, "width of the pretrained char-GPT", range=(16, 8192))
    n_layer: int = param(2, "transformer blocks", range=(1, 96))
    n_head: int = param(4, "attention heads", range=(1, 128))
    seq_len: int = param(64, "characters per example (and pretraining context)", range=(8, 8192))
    pretrain_steps: int = param(1500, "char-LM pretraining steps (AdamW, batch 16)", range=(0, 10**7))
    pretrain_lr: float = param(3e-3, "pretraining peak LR (cosine, 5% warmup)", range=(1e-6, 1.0))
    task: str = param("garble", "detection task: is the chunk Shakespeare's text or corrupted, by letters replaced at "
                   "random (garble), swapped letters (typo) or shuffled words (shuffle); or which of `speakers` says "
                   "it (speaker)",
                   choices=("typo", "garble", "shuffle", "speaker"))
    corruption_rate: float = param(0.3, "corrupted examples: probability per letter (garble) or per word of five or more "
                                "letters (typo)", range=(0.0, 1.0))
    speakers: tuple[str, ...] = param(("GLOUCESTER", "DUKE VINCENTIO"), "task speaker: the classes, speakers whose "
                                   "speeches are cut into examples")
    n_train: int = param(600, "training examples (a fraction noise of them get a flipped label)", range=(20, 10**6))
    n_val: int = param(150, "clean validation examples (their mean gradient is v)", range=(5, 10**6))
    n_test: int = param(300, "clean test examples (accuracy only)", range=(10, 10**6))
    noise: float = param(0.2, "fraction of training labels flipped (binary: 1 - y; else a random other class)",
                      range=(0.01, 0.9))
    ranks: tuple[int, ...] = param((1, 2, 4, 8, 16), "LoRA ranks r", range=(1, 1024))
    n_seeds: int = param(2, "seeds (data split, flips, fine-tuning) per rank", range=(1, 100))
    ft_steps: int = param(300, "LoRA fine-tuning steps (AdamW, linear decay to 0)", range=(1, 10**6))
    ft_lr: float = param(3e-3, "LoRA fine-tuning LR", range=(1e-7, 1.0))
    ft_batch: int = param(32, "fine-tuning batch size", range=(1, 4096))
    schulz_iters: int = param(30, "HyperINF Schulz iterations (official: 30)", range=(1, 1000))
    schulz_init: str = param("official", "HyperINF initialisation: official (5e-5 I) or frobenius (I / ||A||_F)",
                          choices=("official", "frobenius"))
    extra_damping: float = param(1e-3, "HyperINF extra damping delta (official: 1e-3)", range=(0.0, 1.0))
    lambda_const: float = param(10.0, "damping lambda_l = mean squared gradient / lambda_const (official: 10)",
                             range=(1e-3, 1e6))
    lissa_iters: int = param(10, "LiSSA iterations (official: 10)", range=(1, 10**4))
    gfim_dim: int = param(16, "input dimension of the GFIM/FIM structure figure", range=(2, 256))
    gfim_rank: int = param(4, "rank of the GFIM/FIM structure figure", range=(1, 64))

    def validate(self):
        if len(self.speakers) < 2 or len(set(self.speakers)) != len(self.speakers):
            raise ParamError(f"parameter 'speakers' needs at least two distinct names; got {','.join(self.speakers)}")
        if self.d_model % self.n_head:
            raise ParamError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")
        for name in ("conv_dims", "conv_ns", "kappas", "timing_dims", "ranks"):
            v = getattr(self, name)
            if list(v) != sorted(set(v)):
                raise ParamError(f"parameter {name!r} must be strictly increasing; got {','.join(map(str, v))}")


SCALES = {
    "smoke": Config(conv_dims=(32, 64), conv_ns=(50, 400), kappa_dim=64, kappas=(1e1, 1e3, 1e5),
                    timing_dims=(16, 64), d_model=32, n_layer=1, n_head=2, seq_len=32, pretrain_steps=100,
                    n_train=120, n_val=40, ranks=(1, 4), n_seeds=1, ft_steps=60),
    "cpu": Config(n_seeds=3),
    # Proposal for one H100 (brief, section 6, gpu; unmeasured): the rebuttal's sizes, a wider backbone.
    "gpu": Config(conv_dims=(512, 1024, 2048, 4096), conv_ns=(200, 800, 6400, 12800), kappa_dim=1024,
                  timing_dims=(16, 64, 256, 1024, 4096), d_model=256, n_layer=4, n_head=4, seq_len=128,
                  pretrain_steps=3000, n_train=900, n_val=200, n_seeds=5, ft_steps=600),
}


# ---------------------------------------------------------------- matrices

def _gen(seed: int):
    return torch.Generator().manual_seed(seed)


def sample_covariance(d: int, n: int, lam: float, seed: int):
    """G (n x d) with N(0, 1) entries, A = G^T G / n + lam I, v ~ N(0, I_d) (float64)."""
    g = _gen(seed)
    G = torch.randn(n, d, generator=g, dtype=torch.float64)
    v = torch.randn(d, generator=g, dtype=torch.float64)
    return G, G.T @ G / n + lam * torch.eye(d, dtype=torch.float64), v


def spectrum_matrix(d: int, kappa: float, seed: int):
    """Q diag(logspace(0, -log10 kappa, d)) Q^T with a random orthogonal Q (float64), and v."""
    g = _gen(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lam = torch.logspace(0, -math.log10(kappa), d, dtype=torch.float64)
    return (Q * lam) @ Q.T, torch.randn(d, generator=g, dtype=torch.float64)


# Config fields by study, for the cache keys (built by exclusion: results.config_key)
CONVERGENCE = ("conv_dims", "conv_ns", "conv_lambda", "conv_iters")
KAPPA = ("kappa_dim", "kappas", "tol")
TIMING = ("timing_dims", "timing_iters")
GFIM = ("gfim_dim", "gfim_rank")
SYNTHETIC = CONVERGENCE + KAPPA + TIMING + GFIM
BACKBONE = ("d_model", "n_layer", "n_head", "seq_len", "pretrain_steps", "pretrain_lr")
DETECTION = ("task", "corruption_rate", "speakers", "n_train", "n_val", "n_test", "noise", "ranks", "n_seeds",
             "ft_steps", "ft_lr", "ft_batch", "schulz_iters", "schulz_init", "extra_damping", "lambda_const",
             "lissa_iters")


def convergence(cfg: Config) -> list:
    """Relative error per iteration of every solver, per (d, N)."""
    rows = []
    for d in cfg.conv_dims:
        for n in cfg.conv_ns:
            G, A, v = sample_covariance(d, n, cfg.conv_lambda, cfg.seed + 7919 * d + n)
            ref = torch.linalg.solve(A, v)
            K = cfg.conv_iters
            runs = {
                "schulz (I/‖A‖_F)": S.schulz(A, v, K, "frobenius", reference=ref),
                "schulz (official 5e-5·I)": S.schulz(A, v, K, "official", reference=ref),
                "lissa (scaled)": S.lissa_scaled(A, v, K, reference=ref),
                "lissa (official)": S.lissa_official(G.T @ G / n, v, cfg.conv_lambda, K, reference=ref),
                "cg": S.cg(A, v, K, reference=ref),
                "datainf": S.datainf(G, v, cfg.conv_lambda, reference=ref),
            }
            for method, out in runs.items():
                rows.append(dict(d=d, n=n, method=method, errors=[float(e) for e in out.errors]))
    return rows


def iterations_to_tol(errors, tol) -> float:
    """First iteration with relative error <= tol (inf if never)."""
    return next((k for k, e in enumerate(errors) if e <= tol), math.inf)


def kappa_sweep(cfg: Config) -> list:
    rows = []
    for kappa in cfg.kappas:
        A, v = spectrum_matrix(cfg.kappa_dim, kappa, cfg.seed + int(math.log10(kappa) * 1000))
        ref = torch.linalg.solve(A, v)
        iters = max(60, cfg.conv_iters)
        for init in ("frobenius", "official"):
            out = S.schulz(A, v, iters, init, reference=ref)
            rows.append(dict(kappa=kappa, init=init, measured=iterations_to_tol(out.errors, cfg.tol),
                             predicted=S.schulz_iterations(A, init, cfg.tol), errors=out.errors))
        out = S.cg(A, v, iters, reference=ref)
        rows.append(dict(kappa=kappa, init="cg", measured=iterations_to_tol(out.errors, cfg.tol),
                         predicted=math.nan, errors=out.errors))
    return rows


def timings(cfg: Config) -> list:
    """Seconds (best of 5, after a warm-up call) to invert A (d x d) by torch.linalg.inv, Schulz and CG (all columns),
    and the error of each against the inverse (relative Frobenius)."""
    rows = []
    for d in cfg.timing_dims:
        G, A, _ = sample_covariance(d, max(2 * d, 256), 0.1, cfg.seed + d)
        eye = torch.eye(d, dtype=torch.float64)
        fns = {"torch.linalg.inv": lambda: torch.linalg.inv(A),
               "schulz": lambda: S.schulz(A, eye, cfg.timing_iters).x,
               "cg": lambda: S.cg(A, eye, cfg.timing_iters).x}
        ref = torch.linalg.inv(A)
        for name, fn in fns.items():
            fn()  # warm-up: first calls pay for allocation and library initialisation
            best = math.inf
            for _ in range(5):
                t0 = time.perf_counter()
                X = fn()
                best = min(best, time.perf_counter() - t0)
            rows.append(dict(d=d, method=name, seconds=best,
                             error=(torch.linalg.matrix_norm(X - ref) / torch.linalg.matrix_norm(ref)).item()))
    return rows


def gfim_structure(cfg: Config) -> dict:
    """GFIM (d x d) and FIM (rd x rd) of random per-sample gradients of one r x d matrix."""
    g = torch.randn(500, cfg.gfim_rank, cfg.gfim_dim, generator=_gen(cfg.seed), dtype=torch.float64)
    g = g * torch.linspace(0.5, 1.5, cfg.gfim_dim, dtype=torch.float64)  # unequal input scales
    return {"gfim": C.gfim(g), "fim": C.fim(g), "rank": cfg.gfim_rank, "dim": cfg.gfim_dim}


# ---------------------------------------------------------------- detection

def corrupted_examples(text: str, window: int, n: int, seed: int, corruption: str = "garble", rate: float = 0.3):
    """(chunks, labels) for a CoLA-like acceptability task on the corpus: n windows of `window`
    characters starting after a space; label 1 is Shakespeare's text, label 0 (half of them,
    drawn with the seed) is corrupted, keeping its length: "garble" replaces each letter with
    probability `rate` by a random lowercase letter (OCR-like noise), "typo" swaps two adjacent
    interior letters in each word of five or more letters with probability `rate` (at least
    one word), "shuffle" shuffles the words."""
    g = _gen(seed)
    starts = [i + 1 for i in range(len(text) - window - 1) if text[i] == " "]
    chunks, labels = [], []
    for i in torch.randperm(len(starts), generator=g)[:n].tolist():
        chunk = text[starts[i]:starts[i] + window]
        words = chunk.split(" ")
        long = [j for j, w in enumerate(words[:-1]) if len(w) >= 5 and w.isalpha()
                and any(w[k] != w[k + 1] for k in range(1, len(w) - 2))]
        can = {"garble": any(ch.isalpha() for ch in chunk), "typo": bool(long), "shuffle": len(words) >= 3}[corruption]
        label = int(torch.rand(1, generator=g).item() < 0.5) if can else 1
        if label == 0 and corruption == "typo":
            hit = [j for j in long if torch.rand(1, generator=g).item() < rate] or long[:1]
            for j in hit:
                w = words[j]
                pairs = [k for k in range(1, len(w) - 2) if w[k] != w[k + 1]]  # never the first or last letter
                k = pairs[int(torch.randint(len(pairs), (1,), generator=g))]
                words[j] = w[:k] + w[k + 1] + w[k] + w[k + 2:]
            chunk = " ".join(words)
        elif label == 0 and corruption == "garble":
            letters = "abcdefghijklmnopqrstuvwxyz"
            chars = list(chunk)
            for k, ch in enumerate(chars):
                if ch.isalpha() and torch.rand(1, generator=g).item() < rate:
                    chars[k] = letters[int(torch.randint(26, (1,), generator=g))]
            chunk = "".join(chars)
        elif label == 0:
            perm = torch.randperm(len(words), generator=g).tolist()
            if perm == list(range(len(words))):
                perm = perm[1:] + perm[:1]
            chunk = " ".join(words[j] for j in perm)
        chunks.append(chunk)
        labels.append(label)
    return chunks, labels


def speaker_examples(text: str, speakers, window: int):
    """(chunks, labels): every speech of each speaker (the lines after "NAME:" up to a blank
    line, joined by newlines) cut into consecutive chunks of `window` characters."""
    chunks, labels = [], []
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) < 2 or not lines[0].endswith(":") or lines[0][:-1] not in speakers:
            continue
        speech = "\n".join(lines[1:])
        for i in range(0, len(speech) - window + 1, window):
            chunks.append(speech[i:i + window])
            labels.append(speakers.index(lines[0][:-1]))
    return chunks, labels


class Classifier(nn.Module):
    """The char-GPT's blocks and final norm, mean-pooled over positions, and a linear head."""

    def __init__(self, gpt: GPT, n_classes: int):
        super().__init__()
        self.gpt = gpt
        self.head = nn.Linear(gpt.cfg.d_model, n_classes)

    def forward(self, idx):
        x = self.gpt.wte(idx) + self.gpt.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.gpt.blocks:
            x = block(x)
        return self.head(self.gpt.norm_f(x).mean(1))


class _Runner:
    def __init__(self, cfg: Config, dev, progress: bool):
        self.cfg, self.dev, self.progress = cfg, dev, progress
        self.text = path("tinyshakespeare").read_text(encoding="utf-8")
        self.corpus = CharCorpus(self.text)
        self.gcfg = GPTConfig(vocab_size=self.corpus.vocab_size, seq_len=cfg.seq_len, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, d_model=cfg.d_model, style="gpt2")
        self.key = config_key(cfg, drop=SYNTHETIC + DETECTION) | {"model": asdict(self.gcfg)}
        self.n_classes = len(cfg.speakers) if cfg.task == "speaker" else 2

    def pretrained(self) -> dict:
        c = self.cfg

        def compute(ckpt):
            lm = CharLM(self.corpus, self.gcfg, batch_size=16, eval_batches=8, seed=c.seed, dev=self.dev,
                        progress=self.progress, checkpoint_every=500)
            model = lm.model()
            if c.pretrain_steps:
                opt = adamw(model, c.pretrain_lr)
                sched = schedules.make("cosine", total=c.pretrain_steps, warmup=max(1, c.pretrain_steps // 20))
                hist, _ = lm.fit(model, opt, sched, 0, c.pretrain_steps, lr=c.pretrain_lr,
                                 eval_every=max(1, c.pretrain_steps // 5), desc="pretrain", checkpoint=ckpt)
            else:
                hist = None
            return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "history": hist}
        return cached(CHAPTER, "pretrain", self.key, compute)

    def data(self, seed: int):
        """Tensors (x, y, y_noisy, noisy) for train, and (x, y) for val and test, split by seed."""
        c = self.cfg
        text = self.text
        if c.task in ("typo", "garble", "shuffle"):
            chunks, labels = corrupted_examples(text, c.seq_len, c.n_train + c.n_val + c.n_test, seed, c.task,
                                                c.corruption_rate)
        else:
            chunks, labels = speaker_examples(text, c.speakers, c.seq_len)
        n = len(chunks)
        if c.n_train + c.n_val + c.n_test > n:
            raise ParamError(f"n_train + n_val + n_test ({c.n_train} + {c.n_val} + {c.n_test}) exceed the {n} "
                             f"chunks of {c.seq_len} characters spoken by {', '.join(c.speakers)}")
        g = _gen(seed)
        order = torch.randperm(n, generator=g)
        x = torch.tensor([[self.corpus.stoi[ch] for ch in chunks[i]] for i in order.tolist()])
        y = torch.tensor([labels[i] for i in order.tolist()])
        tr, va = slice(0, c.n_train), slice(c.n_train, c.n_train + c.n_val)
        te = slice(c.n_train + c.n_val, c.n_train + c.n_val + c.n_test)
        noisy = torch.zeros(c.n_train, dtype=torch.bool)
        noisy[torch.randperm(c.n_train, generator=g)[:round(c.noise * c.n_train)]] = True
        k = self.n_classes
        shift = torch.randint(1, k, (c.n_train,), generator=g) if k > 2 else torch.ones(c.n_train, dtype=torch.long)
        y_noisy = torch.where(noisy, (y[tr] + shift) % k, y[tr])
        return dict(x=x[tr], y=y[tr], y_noisy=y_noisy, noisy=noisy, x_val=x[va], y_val=y[va], x_test=x[te],
                    y_test=y[te])

    def model(self, r: int):
        """Classifier on the pretrained GPT with LoRA (rank r) on every block's query and value
        rows of the fused qkv projection; the head is trained too (as the official code's)."""
        gpt = GPT(self.gcfg)
        gpt.load_state_dict(self.pretrained()["state"])
        model = Classifier(gpt, self.n_classes)
        d = self.cfg.d_model
        add_lora(model, {f"gpt.blocks.{i}.attn.qkv": ((0, d), (2 * d, 3 * d)) for i in range(self.cfg.n_layer)}, r)
        for p in model.head.parameters():
            p.requires_grad_(True)
        return model.to(self.dev)

    def detection(self, r: int, seed: int) -> dict:
        c = self.cfg
        key = config_key(c, drop=SYNTHETIC + ("ranks", "n_seeds")) | {"model": asdict(self.gcfg), "r": r,
                                                                     "data_seed": seed}

        def compute(ckpt):
            data = self.data(seed)
            torch.manual_seed(seed)
            model = self.model(r)
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=c.ft_lr, weight_decay=0.0)
            g = _gen(seed + 1)
            batches = [torch.randint(0, c.n_train, (c.ft_batch,), generator=g) for _ in range(c.ft_steps)]
            model.train()
            for t, idx in enumerate(batches):
                for group in opt.param_groups:
                    group["lr"] = c.ft_lr * (1 - t / c.ft_steps)
                loss = F.cross_entropy(model(data["x"][idx].to(self.dev)), data["y_noisy"][idx].to(self.dev))
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            model.eval()
            with torch.no_grad():
                acc = {s: (model(data[f"x{s}"].to(self.dev)).argmax(-1).cpu() == data[f"y{s}"]).float().mean().item()
                       for s in ("_val", "_test")}
                acc["train_noisy_labels"] = (model(data["x"].to(self.dev)).argmax(-1).cpu()
                                             == data["y_noisy"]).float().mean().item()
            grads = C.hyperinf_layout(C.per_sample_grads(model, data["x"].to(self.dev), data["y_noisy"].to(self.dev),
                                                         F.cross_entropy))
            vgrads = C.hyperinf_layout(C.per_sample_grads(model, data["x_val"].to(self.dev),
                                                          data["y_val"].to(self.dev), F.cross_entropy))
            grads = {n: g.double().cpu() for n, g in grads.items()}
            val = {n: g.double().mean(0).cpu() for n, g in vgrads.items()}
            out = {"accuracy": acc, "noisy": data["noisy"], "scores": {}, "seconds": {},
                   "shapes": {n: tuple(g.shape[1:]) for n, g in grads.items()},
                   "lissa_growth": max(I.lissa_growth(g, C.damping(g, c.lambda_const)) for g in grads.values())}
            for method in I.METHODS:
                t0 = time.perf_counter()
                out["scores"][method] = I.influence(
                    grads, val, method, c.lambda_const, schulz_iters=c.schulz_iters, schulz_init=c.schulz_init,
                    extra_damping=c.extra_damping, lissa_iters=c.lissa_iters)
                out["seconds"][method] = time.perf_counter() - t0
            return out
        return cached(CHAPTER, f"detect-r{r}-s{seed}", key, compute)


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """Everything the chapter shows, in the order of its sections."""
    r = _Runner(cfg, dev, progress)
    # the synthetic studies read none of the model's, the pre-training's or the detection's fields
    other = BACKBONE + DETECTION
    return {
        "convergence": cached(CHAPTER, "convergence", config_key(cfg, drop=other + KAPPA + TIMING + GFIM),
                              lambda ckpt: convergence(cfg)),
        "kappa": cached(CHAPTER, "kappa", config_key(cfg, drop=other + TIMING + GFIM + ("conv_dims", "conv_ns",
                                                                                        "conv_lambda")),
                        lambda ckpt: kappa_sweep(cfg)),
        "timing": cached(CHAPTER, "timing", config_key(cfg, drop=other + KAPPA + GFIM + CONVERGENCE),
                         lambda ckpt: timings(cfg)),
        "gfim": gfim_structure(cfg),
        "pretrain_history": r.pretrained()["history"],
        "detection": {(rank, s): r.detection(rank, cfg.seed + s) for rank in cfg.ranks for s in range(cfg.n_seeds)},
    }
