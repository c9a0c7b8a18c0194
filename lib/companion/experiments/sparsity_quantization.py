"""Harma et al. (2025): does the order of sparsity and quantization matter, and do their
errors add?

Two levels, as in the paper:

* tensors: the errors eps_S, eps_Q, eps_{S->Q}, eps_{Q->S} (L1 and relative L2) and the mask
  mismatch of Q->S, for every sparsity x format, on heavy-tailed random tensors (Student-t) and
  on the trained model's weights, with round-to-nearest and with seeded stochastic rounding;
* a model: a small char-level GPT-2 on Tiny Shakespeare (LayerNorm, GELU, learned positions,
  like OPT), pretrained dense, then every Linear except the (tied) LM head compressed:
  - one shot, from the dense weights, in both orders (and each transformation alone);
  - the paper's S->Q pipeline: sparse fine-tuning (mask recomputed every step, STE), then
    one-shot quantization;
  - quantization-aware fine-tuning in either order (weights and inputs quantized in the
    forward pass): Q->S as in the paper, and S->Q with the same budget, the control a
    reviewer asked for;
  - per-block relative output error through the network (paper Fig. 1) and the error of every
    Linear's product with its real inputs (the dot-product level of Thm 3.9).

Every run is cached by its configuration; metrics, claims and figures are in
`companion.reports.sparsity_quantization`.
"""
from dataclasses import asdict, dataclass

import torch

from companion.compress import formats, sparsity
from companion.compress.formats import FORMATS
from companion.compress.layers import Spec, compress_model
from companion.data import CharCorpus
from companion.models.gpt import GPT, GPTConfig
from companion.optim import schedules
from companion.params import ParamError, param
from companion.results import cached, config_key
from companion.train import CharLM, adamw

CHAPTER = "sparsity-quantization"
CHECKPOINT_EVERY = 500
SPARSITIES = ("50%", "75%", "2:4", "1:4", "2:8", "4:8")


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "seed of initialisation, data order and random tensors", range=(0, 2**31 - 1))
    d_model: int = param(64, "model width", range=(16, 8192))
    n_layer: int = param(4, "number of transformer blocks", range=(1, 96))
    n_head: int = param(4, "attention heads", range=(1, 128))
    seq_len: int = param(64, "context length in characters", range=(8, 8192))
    batch_size: int = param(16, "sequences per optimizer step", range=(2, 4096))
    steps: int = param(2500, "pretraining steps of the dense model", range=(10, 10**7))
    lr: float = param(3e-3, "pretraining peak LR (AdamW, cosine to 10% after 5% warmup)", range=(1e-6, 1.0))
    weight_decay: float = param(0.1, "AdamW weight decay on Linear weights", range=(0.0, 1.0))
    eval_batches: int = param(16, "fixed validation batches (the metric: val cross-entropy, nats/char)",
                           range=(1, 10**4))
    sparsities: tuple[str, ...] = param(("50%", "2:4"), "model-level sparsities: P% unstructured per tensor or N:M "
                                     "along the input dimension", choices=SPARSITIES)
    formats: tuple[str, ...] = param(FORMATS, "model-level number formats (one-shot grid)",
                                  choices=FORMATS)
    ft_formats: tuple[str, ...] = param(("hbfp6", "mxfp6", "int4", "hbfp4", "mxfp4"),
                                     "formats fine-tuned quantization-aware in both orders (subset of formats)",
                                     choices=FORMATS)
    finetune_steps: int = param(200, "fine-tuning steps (sparse and quantization-aware)", range=(0, 10**6))
    finetune_lr: float = param(3e-4, "fine-tuning LR (AdamW, linear decay to 0, the paper's schedule)",
                            range=(1e-7, 1.0))
    act_quant: bool = param(True, "quantize every compressed Linear's input too (the paper: yes)")
    error_batches: int = param(2, "validation batches of the per-layer error measurements", range=(1, 1000))
    tensor_shape: tuple[int, ...] = param((256, 1024), "rows,cols of the random tensors", range=(8, 1 << 16))
    tensor_df: float = param(4.0, "degrees of freedom of the Student-t random tensors (heavy tails)",
                          range=(1.0, 1000.0))
    n_tensors: int = param(4, "random tensors per (sparsity, format)", range=(1, 1000))
    tensor_sparsities: tuple[str, ...] = param(("50%", "2:4", "1:4", "2:8"), "tensor-level sparsities",
                                            choices=SPARSITIES)
    stochastic_seeds: int = param(4, "stochastic-rounding seeds per tensor, sparsity and format", range=(0, 1000))

    def validate(self):
        if self.d_model % self.n_head:
            raise ParamError(f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})")
        if not set(self.ft_formats) <= set(self.formats):
            raise ParamError(f"parameter 'ft_formats' must be a subset of formats ({','.join(self.formats)}); "
                             f"got {','.join(self.ft_formats)}")
        if len(self.tensor_shape) != 2:
            raise ParamError(f"parameter 'tensor_shape' expects rows,cols; got {self.tensor_shape}")
        for name in ("sparsities", "formats", "ft_formats", "tensor_sparsities"):
            v = getattr(self, name)
            if len(set(v)) != len(v):
                raise ParamError(f"parameter {name!r} must hold distinct values; got {','.join(v)}")
        for name, width in (("sparsities", self.d_model), ("tensor_sparsities", self.tensor_shape[1])):
            for s in getattr(self, name):
                if ":" in s and width % int(s.split(":")[1]):
                    raise ParamError(f"sparsity {s} of {name!r} needs a last dimension divisible by "
                                     f"{s.split(':')[1]}; got {width}")


SCALES = {
    "smoke": Config(d_model=32, n_layer=2, n_head=2, seq_len=32, batch_size=8, steps=150, eval_batches=4,
                    formats=("int8", "hbfp6", "mxfp6", "int4", "hbfp4", "mxfp4"), ft_formats=("int4", "mxfp4"),
                    finetune_steps=20, error_batches=1, tensor_shape=(64, 256), n_tensors=2, stochastic_seeds=2),
    "cpu": Config(),
    # Proposal for one H100 (brief, section 6, gpu; unmeasured): a ~10M-parameter GPT-2, the full grid.
    "gpu": Config(d_model=384, n_layer=6, n_head=6, seq_len=256, batch_size=64, steps=3000, lr=1e-3,
                  eval_batches=32, ft_formats=FORMATS, finetune_steps=300, n_tensors=8,
                  stochastic_seeds=8),
}


# ---------------------------------------------------------------- tensor level

def relative_l2(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def l1(a, b) -> float:
    return (a - b).abs().sum().item()


def tensor_errors(x, sp: str, fmt: str, rounding: str = "nearest", seed: int = 0) -> dict:
    """eps_S, eps_Q, eps_{S->Q} = |Q(S(x)) - x|, eps_{Q->S} = |S(Q(x)) - x| in L1 and relative L2,
    and the mask mismatch: the fraction of the elements S keeps that Q->S prunes. Stochastic
    rounding draws the same noise for every transformation (one generator seed)."""
    def q(z):
        g = torch.Generator().manual_seed(seed) if rounding == "stochastic" else None
        return formats.quantizer(fmt)(z, rounding=rounding, generator=g)

    keep = sparsity.mask(x, sp)
    qx = q(x)
    keep_qs = sparsity.mask(qx, sp)
    out = {"S": x * keep, "Q": qx, "SQ": q(x * keep), "QS": qx * keep_qs}
    row = {f"l1_{k}": l1(v, x) for k, v in out.items()}
    row.update({f"l2_{k}": relative_l2(v, x) for k, v in out.items()})
    row["mismatch"] = ((keep & ~keep_qs).sum() / keep.sum()).item()
    return row


def tensor_study(cfg: Config, weights: dict) -> list:
    """One row per (source, tensor, sparsity, format, rounding, seed)."""
    tensors = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        student = torch.distributions.StudentT(torch.tensor(cfg.tensor_df))
        for i in range(cfg.n_tensors):
            tensors[("student-t", f"t{i}")] = 0.02 * student.sample(cfg.tensor_shape)
    tensors.update({("trained", name): w for name, w in weights.items()})
    rows = []
    for (source, name), x in tensors.items():
        for sp in cfg.tensor_sparsities:
            if ":" in sp and x.shape[-1] % int(sp.split(":")[1]):
                continue
            for fmt in FORMATS:
                runs = [("nearest", 0)] + [("stochastic", s) for s in range(cfg.stochastic_seeds)]
                for rounding, seed in runs:
                    rows.append(dict(source=source, tensor=name, sparsity=sp, format=fmt, rounding=rounding,
                                     seed=seed, **tensor_errors(x, sp, fmt, rounding, seed)))
    return rows


# ---------------------------------------------------------------- model level

STAGES = ("one-shot", "sparse-ft", "qat")  # from the dense weights; after sparse FT; after quantization-aware FT
ORDERS = {"sq": "S→Q", "qs": "Q→S"}


def _compressed(model, spec: Spec):
    return compress_model(model, spec) if spec.sparsity or spec.fmt else model


@torch.no_grad()
def block_outputs(model, batches, dev) -> list:
    """The residual stream after every block, then the logits, on fixed batches: a list of
    tensors (one per depth), batches concatenated."""
    outs, hooks = [], []
    for block in model.blocks:
        hooks.append(block.register_forward_hook(lambda m, i, o: outs.append(o.detach())))
    per_batch = []
    for x, _ in batches:
        outs.clear()
        logits, _ = model(x.to(dev))
        per_batch.append([*outs, logits])
    for h in hooks:
        h.remove()
    return [torch.cat(z) for z in zip(*per_batch)]


@torch.no_grad()
def linear_inputs(model, batches, dev) -> dict:
    """name -> (weight, every input row it saw) for each Linear but the LM head."""
    seen, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head"):
            hooks.append(m.register_forward_hook(
                lambda m, i, o, name=name: seen.setdefault(name, []).append(i[0].reshape(-1, i[0].shape[-1]))))
    for x, _ in batches:
        model(x.to(dev))
    for h in hooks:
        h.remove()
    weights = dict(model.named_modules())
    return {name: (weights[name].weight.detach(), torch.cat(xs)) for name, xs in seen.items()}


TENSOR_FIELDS = ("tensor_shape", "tensor_df", "n_tensors", "tensor_sparsities", "stochastic_seeds")


class _Runner:
    def __init__(self, cfg: Config, corpus: CharCorpus, dev, progress: bool):
        self.cfg, self.dev = cfg, dev
        self.gcfg = GPTConfig(vocab_size=corpus.vocab_size, seq_len=cfg.seq_len, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, d_model=cfg.d_model, style="gpt2")
        self.lm = CharLM(corpus, self.gcfg, batch_size=cfg.batch_size, eval_batches=cfg.eval_batches, seed=cfg.seed,
                         dev=dev, progress=progress, checkpoint_every=CHECKPOINT_EVERY)
        self.val = self.lm.val
        # keys by exclusion (results.config_key): the fields of the grids, of the tensor study
        # and of the fine-tuning are not read by the dense pre-training
        grids = ("sparsities", "formats", "ft_formats", "error_batches") + TENSOR_FIELDS
        self.key = config_key(cfg, drop=grids + ("finetune_steps", "finetune_lr")) | {"model": asdict(self.gcfg)}
        self.ft_key = config_key(cfg, drop=grids) | {"model": asdict(self.gcfg)}

    def model(self, state=None, spec: Spec = Spec()):
        return _compressed(self.lm.model(state), self._act(spec))

    def _act(self, spec: Spec) -> Spec:
        return Spec(spec.sparsity, spec.fmt, spec.order, self.cfg.act_quant)

    def _train(self, model, steps, lr, schedule, desc, ckpt, stream, n_evals):
        optimizer = adamw(model, lr, weight_decay=self.cfg.weight_decay)
        hist, _ = self.lm.fit(model, optimizer, schedule, 0, steps, lr=lr, eval_every=max(1, steps // n_evals),
                              desc=desc, stream=stream, checkpoint=ckpt)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return {"state": state, "history": hist}

    def dense(self) -> dict:
        """The pretrained dense model: state dict and training history."""
        c = self.cfg
        sched = schedules.make("cosine", total=c.steps, warmup=max(1, c.steps // 20))
        return cached(CHAPTER, "dense", self.key,
                      lambda ckpt: self._train(self.model(), c.steps, c.lr, sched, "dense", ckpt, 0, 10))

    def finetune(self, spec: Spec) -> dict:
        """Fine-tune the dense model with `spec` in the forward pass (STE, masks recomputed every
        step), AdamW with a linear decay to 0 over finetune_steps, on fresh batches."""
        c = self.cfg
        sched = schedules.make("trapezoid", total=c.finetune_steps, warmup=0, cooldown_frac=1.0)
        name = f"ft-{spec.sparsity.replace('%', 'pct').replace(':', 'of')}-{spec.fmt or 'fp32'}-{spec.order}"

        def compute(ckpt):
            model = self.model(self.dense()["state"], spec)
            return self._train(model, c.finetune_steps, c.finetune_lr, sched, name, ckpt, 1, 5)
        return cached(CHAPTER, name, self.ft_key | {"spec": asdict(self._act(spec))}, compute)

    def ce(self, state, spec: Spec) -> float:
        return self.lm.evaluate(self.model(state, spec))

    def grid(self) -> list:
        """Validation cross-entropy of every (stage, order, sparsity, format) of the chapter."""
        c = self.cfg
        dense = self.dense()["state"]
        rows = [("one-shot", "dense", "", "", dense, Spec())]
        rows += [("one-shot", "Q", "", f, dense, Spec("", f)) for f in c.formats]
        for sp in c.sparsities:
            rows.append(("one-shot", "S", sp, "", dense, Spec(sp)))
            rows += [("one-shot", o, sp, f, dense, Spec(sp, f, o)) for f in c.formats for o in ORDERS]
            sparse = self.finetune(Spec(sp))["state"]
            rows.append(("sparse-ft", "S", sp, "", sparse, Spec(sp)))
            rows += [("sparse-ft", o, sp, f, sparse, Spec(sp, f, o)) for f in c.formats for o in ORDERS]
            rows += [("qat", o, sp, f, self.finetune(Spec(sp, f, o))["state"], Spec(sp, f, o))
                     for f in c.ft_formats for o in ORDERS]
        return [dict(stage=st, order=o, sparsity=sp, format=f, ce=self.ce(state, spec))
                for st, o, sp, f, state, spec in rows]

    def layer_errors(self) -> list:
        """Relative output error ||y_l - y_l^dense|| / ||y_l^dense|| of every block (and the
        logits, layer n_layer) for one-shot compression from the dense weights."""
        c = self.cfg
        dense = self.dense()["state"]
        batches = self.val[:c.error_batches]
        ref = block_outputs(self.model(dense), batches, self.dev)
        specs = [("Q", Spec("", f)) for f in c.formats]
        for sp in c.sparsities:
            specs += [("S", Spec(sp))] + [(o, Spec(sp, f, o)) for f in c.formats for o in ORDERS]
        rows = []
        for order, spec in specs:
            outs = block_outputs(self.model(dense, spec), batches, self.dev)
            rows += [dict(order=order, sparsity=spec.sparsity, format=spec.fmt, layer=i,
                          rel_err=relative_l2(y, y0)) for i, (y, y0) in enumerate(zip(outs, ref))]
        return rows

    def product_errors(self) -> list:
        """Each Linear's output X W^T with its real inputs X: relative error when only W is
        sparsified (S), W and X quantized (Q), and both in either order (SQ, QS)."""
        c = self.cfg
        model = self.model(self.dense()["state"])
        rows = []
        for name, (w, x) in linear_inputs(model, self.val[:c.error_batches], self.dev).items():
            y = x @ w.T
            for sp in c.sparsities:
                for f in c.formats:
                    spec = {k: self._act(Spec(*v)) for k, v in
                            {"S": (sp, "", "sq"), "Q": ("", f), "SQ": (sp, f, "sq"), "QS": (sp, f, "qs")}.items()}
                    err = {k: relative_l2(s.inputs(x) @ s.weight(w).T, y) for k, s in spec.items()}
                    rows.append(dict(layer=name, sparsity=sp, format=f, **err))
        return rows


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """Everything the chapter shows, in the order of its sections."""
    corpus = CharCorpus.load("tinyshakespeare")
    r = _Runner(cfg, corpus, dev, progress)
    dense = r.dense()
    weights = {name: m.weight.detach().cpu() for name, m in r.model(dense["state"]).named_modules()
               if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")}
    key = config_key(cfg, drop=TENSOR_FIELDS) | {"model": r.key["model"]}
    tkey = r.key | {k: getattr(cfg, k) for k in TENSOR_FIELDS}
    return {
        "params": GPT(r.gcfg).num_params(),
        "dense_history": dense["history"],
        "tensors": cached(CHAPTER, "tensors", tkey, lambda ckpt: tensor_study(cfg, weights)),
        "grid": cached(CHAPTER, "grid", key, lambda ckpt: r.grid()),
        "layers": cached(CHAPTER, "layers", key, lambda ckpt: r.layer_errors()),
        "products": cached(CHAPTER, "products", key, lambda ckpt: r.product_errors()),
        "finetune_histories": {f"{sp}/{f or 'fp32'}/{o}": r.finetune(Spec(sp, f, o))["history"]
                               for sp in cfg.sparsities for f, o in [("", "sq")] + [
                                   (f, o) for f in cfg.ft_formats for o in ORDERS]},
    }
