"""Fan, Pascanu & Jaggi (2024): do deeper MLPs grok more readily, and does the feature rank
mark the transition?

MLPs of several depths on (a subset of) MNIST with the official code's recipe: PyTorch's
default initialisation scaled by alpha (biases too), AdamW with decoupled weight decay on
every parameter, MSE between the 10 outputs and one-hot labels, batch 200 drawn from
reshuffled epochs. At log-spaced steps every run records train and test accuracy and loss,
the numerical and effective rank of every Linear layer's output on the test points, and the
weight norms; at a few of them, the linear-probe accuracy of every layer.

Three groups of runs, each run cached by its configuration:
* the depth sweep (paper Figs. 2-5): `depths` at (n_train, weight_decay);
* the two-stage run (Fig. 1c): one deep net at (stage_n_train, stage_weight_decay);
* the weight-decay regimes (Figs. 6-7): `regime_decays` at (regime_depth, regime_n_train).
Metrics, claims and figures are in `companion.reports.deep_grokking`.
"""
import io
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from companion import mnist
from companion.metrics.features import effective_rank, linear_probe_accuracy, numerical_rank
from companion.models.mlp import MLP
from companion.params import ParamError, param
from companion.results import atomic_write_bytes, cached, load_checkpoint

CHAPTER = "deep-grokking"
CHECKPOINT_EVERY = 5000
N_CLASSES = 10


@dataclass(frozen=True)
class Config:
    seed: int = param(0, "seed of the data split, initialisation and batch order", range=(0, 2**31 - 1))
    data: str = param("mnist-test-split", "images: mnist-test-split (offline: train and test drawn with the seed from "
                   "the 10,000 MNIST test images), mnist (the paper's: first n_train training images; needs the "
                   "60,000-image file), digits (scikit-learn 8x8, smoke)", choices=mnist.SOURCES)
    n_test: int = param(2000, "test images (accuracy and feature ranks are measured on them)", range=(100, 10000))
    depths: tuple[int, ...] = param((4, 12), "depths of the sweep (number of Linear layers)", range=(2, 64))
    steps: tuple[int, ...] = param((30000, 20000), "optimizer steps per depth (one value: every depth)",
                                range=(10, 10**7))
    n_train: int = param(1000, "training images of the depth sweep", range=(50, 60000))
    weight_decay: float = param(0.01, "AdamW's decoupled weight decay gamma of the depth sweep", range=(0.0, 1.0))
    width: int = param(128, "hidden width (the paper: 400)", range=(8, 8192))
    alpha: float = param(8.0, "initialisation scale: every parameter is alpha x PyTorch's default", range=(0.01, 100.0))
    lr: float = param(3e-3, "AdamW learning rate (the paper: 1e-3)", range=(1e-6, 1.0))
    batch_size: int = param(200, "batch size", range=(1, 60000))
    dtype: str = param("float32", "training and rank dtype (the official code: float64); ranks of different dtypes "
                    "are not comparable", choices=("float32", "float64"))
    rank_rtol: float = param(0.0, "relative tolerance of the numerical rank; 0 = the official rule, width x eps of "
                          "the dtype", range=(0.0, 1.0))
    tunnel_frac: float = param(0.75, "a layer is in the tunnel if its rank is below tunnel_frac x width "
                            "(the paper: 300 of 400)", range=(0.01, 1.0))
    n_evals: int = param(40, "log-spaced evaluations per run", range=(5, 1000))
    probe_evals: int = param(4, "evaluations with a linear probe on every layer (log-spaced; 0 = none)",
                          range=(0, 100))
    stage_depth: int = param(0, "depth of the two-stage run (0 = none)", range=(0, 64))
    stage_n_train: int = param(1000, "training images of the two-stage run", range=(50, 60000))
    stage_weight_decay: float = param(0.01, "weight decay of the two-stage run", range=(0.0, 1.0))
    stage_steps: int = param(20000, "steps of the two-stage run", range=(10, 10**7))
    regime_depth: int = param(0, "depth of the weight-decay regime runs (0 = none)", range=(0, 64))
    regime_n_train: int = param(2000, "training images of the regime runs", range=(50, 60000))
    regime_decays: tuple[float, ...] = param((0.005, 0.01, 0.05), "weight decays of the regime runs",
                                          range=(0.0, 1.0))
    regime_steps: int = param(100000, "steps of the regime runs", range=(10, 10**7))

    def validate(self):
        if len(self.steps) not in (1, len(self.depths)):
            raise ParamError(f"parameter 'steps' needs one value or one per depth ({len(self.depths)}); "
                             f"got {len(self.steps)}")
        if list(self.depths) != sorted(set(self.depths)):
            raise ParamError(f"parameter 'depths' must hold distinct values in increasing order; got "
                             f"{','.join(map(str, self.depths))}")
        available = {"mnist-test-split": 10000, "mnist": 60000 + self.n_test, "digits": 1797}[self.data]
        for n in self.n_trains():
            if n + self.n_test > available:
                raise ParamError(f"n_train ({n}) + n_test ({self.n_test}) exceed the {available} images of "
                                 f"data={self.data}")

    def datasets(self) -> tuple:
        """The data files this configuration reads (checked by the CLI before a run starts)."""
        return {"mnist-test-split": ("mnist-test-images", "mnist-test-labels"), "digits": (),
                "mnist": ("mnist-train-images", "mnist-train-labels", "mnist-test-images",
                          "mnist-test-labels")}[self.data]

    def n_trains(self):
        return [self.n_train] + ([self.stage_n_train] if self.stage_depth else []) \
            + ([self.regime_n_train] if self.regime_depth else [])

    def steps_of(self, depth: int) -> int:
        return self.steps[0] if len(self.steps) == 1 else self.steps[self.depths.index(depth)]


SCALES = {
    # plumbing only, every group of runs (brief, smoke): alpha 8 does not fit the digits in 3k steps
    "smoke": Config(data="digits", n_train=500, n_test=1000, depths=(4, 6), steps=(2000,), width=64, alpha=4.0,
                    batch_size=100, n_evals=10, probe_evals=1, stage_depth=6, stage_n_train=700,
                    stage_steps=1000, regime_depth=4, regime_n_train=500, regime_steps=500),
    # brief, cpu (lr 3x the paper's so that the alpha-scaled weights shrink within the budget), 40k steps per
    # depth; the two-stage candidate of the configuration search (in the chapter) at N = 4000, decay 0.02
    "cpu": Config(depths=(4, 8, 12), steps=(40000,), stage_depth=8, stage_n_train=4000, stage_weight_decay=0.02,
                  stage_steps=40000),
    # the paper's configuration (proposal, unmeasured on a GPU): width 400, lr 1e-3, float64, 1e5 steps
    "gpu": Config(n_train=5000, depths=(4, 8, 12), steps=(100000,), width=400, lr=1e-3, dtype="float64",
                  n_evals=60, probe_evals=5, stage_depth=12, stage_n_train=7000, stage_steps=100000,
                  regime_depth=12, regime_n_train=2000),
}


@dataclass(frozen=True)
class RunSpec:
    depth: int
    n_train: int
    weight_decay: float
    steps: int

    @property
    def name(self) -> str:
        return f"d{self.depth}-n{self.n_train}-wd{self.weight_decay:g}-t{self.steps}"


def plan(cfg: Config) -> dict:
    """The runs of the chapter by group: {"depth": [...], "stage": [...], "regime": [...]}."""
    out = {"depth": [RunSpec(d, cfg.n_train, cfg.weight_decay, cfg.steps_of(d)) for d in cfg.depths],
           "stage": [], "regime": []}
    if cfg.stage_depth:
        out["stage"] = [RunSpec(cfg.stage_depth, cfg.stage_n_train, cfg.stage_weight_decay, cfg.stage_steps)]
    if cfg.regime_depth:
        out["regime"] = [RunSpec(cfg.regime_depth, cfg.regime_n_train, wd, cfg.regime_steps)
                         for wd in cfg.regime_decays]
    return out


def eval_steps(steps: int, n: int) -> list:
    """Step 0 and about n log-spaced steps up to `steps` (dense at the start, where every
    step is distinct)."""
    return sorted({0, steps} | {int(round(10 ** (i * math.log10(steps) / (n - 1)))) for i in range(n)})


def probe_steps(evals: list, k: int) -> set:
    """k of the evaluation steps, log-spaced from 1% of the run to its end."""
    if k == 0:
        return set()
    last = evals[-1]
    targets = [10 ** (math.log10(last / 100) + i * 2 / max(k - 1, 1)) for i in range(k)]
    return {min(evals[1:], key=lambda s: abs(math.log(s / t))) for t in targets}


class _Runner:
    def __init__(self, cfg: Config, dev, progress: bool):
        self.cfg, self.dev, self.progress = cfg, dev, progress
        self.dtype = getattr(torch, cfg.dtype)
        self.key = {k: v for k, v in asdict(cfg).items()
                    if k in ("seed", "data", "n_test", "width", "alpha", "lr", "batch_size", "dtype", "rank_rtol",
                             "n_evals", "probe_evals")}

    def data(self, n_train: int):
        xtr, ytr, xte, yte = mnist.load(self.cfg.data, n_train, self.cfg.n_test, self.cfg.seed, self.dtype)
        return [t.to(self.dev) for t in (xtr, ytr, xte, yte)]

    @torch.no_grad()
    def evaluate(self, model, x, y, features: bool):
        out, feats = model(x, return_features=True)
        rec = {"acc": float((out.argmax(1) == y).double().mean()),
               "loss": float(F.mse_loss(out, F.one_hot(y, N_CLASSES).to(out.dtype)))}
        if features:
            rtol = self.cfg.rank_rtol or None
            rec["rank"] = [numerical_rank(h, rtol) for h in feats]
            rec["erank"] = [effective_rank(h) for h in feats]
        return rec, feats

    def run(self, spec: RunSpec) -> dict:
        c = self.cfg

        def compute(ckpt):
            xtr, ytr, xte, yte = self.data(spec.n_train)
            targets = F.one_hot(ytr, N_CLASSES).to(self.dtype)
            torch.manual_seed(c.seed)
            model = MLP(spec.depth, c.width, xtr.shape[1], N_CLASSES, c.alpha).to(self.dev, self.dtype)
            opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=spec.weight_decay)
            evals = eval_steps(spec.steps, c.n_evals)
            evals, probes = set(evals), probe_steps(evals, c.probe_evals)
            records, start = [], 0
            saved = load_checkpoint(ckpt, self.dev) if ckpt is not None else None
            if saved is not None:
                model.load_state_dict(saved["model"])
                opt.load_state_dict(saved["optimizer"])
                records, start = saved["records"], saved["step"]
            steps_per_epoch = max(1, spec.n_train // c.batch_size)  # the last partial batch is dropped
            order = None
            bar = tqdm(range(start, spec.steps + 1), desc=spec.name, leave=False, disable=not self.progress,
                       mininterval=2.0)
            for t in bar:
                if t in evals:
                    records.append(self.record(t, model, (xtr, ytr), (xte, yte), t in probes))
                if t == spec.steps:
                    break
                epoch, i = divmod(t, steps_per_epoch)
                if i == 0 or order is None:
                    g = torch.Generator().manual_seed(c.seed * 1_000_003 + epoch)
                    order = torch.randperm(spec.n_train, generator=g).to(self.dev)
                idx = order[i * c.batch_size:(i + 1) * c.batch_size]
                loss = F.mse_loss(model(xtr[idx]), targets[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ckpt is not None and (t + 1) % CHECKPOINT_EVERY == 0:
                    buf = io.BytesIO()
                    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "records": records, "step": t + 1}, buf)
                    atomic_write_bytes(ckpt, buf.getvalue())
            bar.close()
            if ckpt is not None:
                ckpt.unlink(missing_ok=True)
            return {"spec": asdict(spec), "records": records}
        return cached(CHAPTER, spec.name, {**self.key, **asdict(spec)}, compute)

    def record(self, t, model, train_set, test_set, probe: bool) -> dict:
        """Accuracy and loss on both sets, ranks of every layer on the test set, weight norms,
        and (if `probe`) every layer's linear-probe accuracy."""
        tr, feats_tr = self.evaluate(model, *train_set, features=False)
        te, feats_te = self.evaluate(model, *test_set, features=True)
        rec = {"step": t, "train_acc": tr["acc"], "train_loss": tr["loss"], "test_acc": te["acc"],
               "test_loss": te["loss"], "rank": te["rank"], "erank": te["erank"], "norm": model.weight_norm(),
               "last_norm": float(torch.cat([p.detach().double().flatten()
                                             for p in model.linears[-1].parameters()]).norm())}
        if probe:
            rec["probe_acc"] = [linear_probe_accuracy(a, train_set[1], b, test_set[1], N_CLASSES, seed=self.cfg.seed)
                                for a, b in zip(feats_tr, feats_te)]
        return rec


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """Every run of the chapter, by group and name (depth sweep first, as the notebook reads)."""
    r = _Runner(cfg, dev, progress)
    return {group: {spec.name: r.run(spec) for spec in specs} for group, specs in plan(cfg).items()}
