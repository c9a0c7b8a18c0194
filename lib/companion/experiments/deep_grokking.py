"""Fan, Pascanu & Jaggi (2024): do deeper MLPs grok more readily, and does the feature rank
mark the transition?

MLPs of several depths on (a subset of) MNIST with the official code's recipe: PyTorch's
default initialisation scaled by alpha (biases too), AdamW with decoupled weight decay on
every parameter, MSE between the 10 outputs and one-hot labels, batch 200 drawn from
reshuffled epochs. At log-spaced steps every run records train and test accuracy and loss,
the numerical and effective rank of every Linear layer's output on the test points, and the
weight norms; at a few of them, the linear-probe accuracy of every layer.

Groups of runs (`plan`), each run cached by its configuration:
* the depth sweep (paper Figs. 2-4): `depths` at (n_train, weight_decay), over seeds;
* two controls of the first depth where grokking should be absent: a small initialisation
  (`control_alpha`) and a weight decay too small to generalize (`control_weight_decay`);
* the first depth on a larger training set (`compare_n_train`; Figs. 1c and 5);
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
    seeds: tuple[int, ...] = param((0, 1, 2), "seeds (data split, initialisation, batch order) of every group of runs",
                                range=(0, 2**31 - 1))
    data: str = param("mnist-test-split", "images: mnist-test-split (offline: train and test drawn with the seed from "
                   "the 10,000 MNIST test images), mnist (the paper's: first n_train training images; needs the "
                   "60,000-image file), digits (scikit-learn 8x8, smoke)", choices=mnist.SOURCES)
    n_test: int = param(2000, "test images (accuracy and feature ranks are measured on them)", range=(100, 10000))
    depths: tuple[int, ...] = param((4, 8), "depths of the sweep (number of Linear layers); the first is the "
                                 "grokking network that the controls copy", range=(2, 64))
    steps: tuple[int, ...] = param((30000, 25000), "optimizer steps per depth (one value: every depth)",
                                range=(10, 10**7))
    deep_seeds: int = param(2, "how many of the seeds the deeper nets of the sweep use", range=(1, 1000))
    n_train: int = param(1000, "training images of the sweep and of the controls", range=(50, 60000))
    weight_decay: float = param(0.01, "AdamW's decoupled weight decay gamma", range=(0.0, 1.0))
    width: int = param(128, "hidden width (the paper: 400)", range=(8, 8192))
    alpha: float = param(8.0, "initialisation scale: every parameter is alpha x PyTorch's default", range=(0.01, 100.0))
    lr: float = param(3e-3, "AdamW learning rate (the paper: 1e-3)", range=(1e-6, 1.0))
    batch_size: int = param(200, "batch size", range=(1, 60000))
    dtype: str = param("float32", "training and rank dtype (the official code: float64); ranks of different dtypes "
                    "are not comparable", choices=("float32", "float64"))
    rank_rtol: float = param(0.0, "relative tolerance of the numerical rank; 0 = the official rule, width x eps of "
                          "the dtype", range=(0.0, 1.0))
    tunnel_frac: float = param(0.75, "the headline tunnel threshold (x width; the paper: 300 of 400), marked in "
                            "the tunnel figure and quoted in the text", range=(0.01, 1.0))
    tunnel_fracs: tuple[float, ...] = param((0.6, 0.7, 0.75, 0.8, 0.9), "thresholds (x width) over which the "
                                         "tunnel length is compared", range=(0.01, 1.0))
    control_alpha: float = param(1.0, "initialisation scale of the first control, which should not grok (0 = no "
                              "such control)", range=(0.0, 100.0))
    control_alpha_steps: int = param(10000, "steps of the alpha control", range=(10, 10**7))
    control_decay: bool = param(True, "run the second control: the grokking network with control_weight_decay")
    control_weight_decay: float = param(0.001, "weight decay of the second control, too small to generalize",
                                     range=(0.0, 1.0))
    compare_n_train: int = param(4000, "a larger training set for the first depth, every seed (the paper's "
                                 "Figs. 1c and 5 compare training-set sizes; 0 = none)", range=(0, 60000))
    dense_from: int = param(1000, "the initial transient ends here: evaluations are log-spaced before and evenly "
                            "spaced after it, and rank descents are searched from it", range=(1, 10**7))
    n_log_evals: int = param(12, "log-spaced evaluations before dense_from", range=(2, 1000))
    n_evals: int = param(48, "evenly spaced evaluations from dense_from to the end of a run", range=(2, 10000))
    probe_evals: int = param(4, "evaluations with a linear probe on every layer, in the sweep's first-seed runs "
                          "(0 = none)", range=(0, 100))
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
        if len(set(self.seeds)) != len(self.seeds):
            raise ParamError(f"parameter 'seeds' must hold distinct values; got {','.join(map(str, self.seeds))}")
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
        return [self.n_train] + ([self.compare_n_train] if self.compare_n_train else []) \
            + ([self.regime_n_train] if self.regime_depth else [])

    def steps_of(self, depth: int) -> int:
        return self.steps[0] if len(self.steps) == 1 else self.steps[self.depths.index(depth)]


SCALES = {
    # plumbing only, every group of runs (brief, smoke): alpha 8 does not fit the digits in 3k steps
    "smoke": Config(seeds=(0, 1), data="digits", n_train=500, n_test=1000, depths=(4, 6), steps=(1500,),
                    deep_seeds=1, width=64, alpha=4.0, batch_size=100, control_alpha_steps=600, compare_n_train=700,
                    dense_from=200, n_log_evals=5, n_evals=8, probe_evals=1, regime_depth=4, regime_n_train=500,
                    regime_steps=400),
    # brief, cpu (lr 3x the paper's so that the alpha-scaled weights shrink within the budget): three seeds
    # of the grokking net (depth 4, N = 1000) and of its controls and larger-N twin, two of depth 8
    "cpu": Config(),
    # the paper's configuration (proposal, unmeasured on a GPU): width 400, lr 1e-3, float64, 1e5 steps
    "gpu": Config(seeds=(0,), n_train=5000, depths=(4, 8, 12), steps=(100000,), deep_seeds=1, width=400, lr=1e-3,
                  dtype="float64", control_alpha_steps=20000, compare_n_train=7000, dense_from=2000, n_evals=60,
                  probe_evals=5, regime_depth=12, regime_n_train=2000),
}


@dataclass(frozen=True)
class RunSpec:
    depth: int
    n_train: int
    weight_decay: float
    alpha: float
    steps: int
    seed: int
    probes: int = 0

    @property
    def name(self) -> str:
        return (f"d{self.depth}-n{self.n_train}-wd{self.weight_decay:g}-a{self.alpha:g}-t{self.steps}"
                f"-s{self.seed}")


GROUPS = ("sweep", "alpha", "decay", "data", "regime")


def plan(cfg: Config) -> dict:
    """The runs of the chapter by group (in the order they run): "sweep" (every depth; the first
    with every seed, the others with the first `deep_seeds`), the two controls of the first
    depth, "alpha" (small initialisation) and "decay" (too little weight decay), "data" (the
    first depth on a larger training set) and "regime" (weight decays at one depth)."""
    d0, first = cfg.depths[0], cfg.seeds[0]
    sweep = [RunSpec(d, cfg.n_train, cfg.weight_decay, cfg.alpha, cfg.steps_of(d), s,
                     cfg.probe_evals if s == first else 0)
             for i, d in enumerate(cfg.depths) for s in (cfg.seeds if i == 0 else cfg.seeds[:cfg.deep_seeds])]
    per_seed = lambda **kw: [RunSpec(**{"depth": d0, "n_train": cfg.n_train, "weight_decay": cfg.weight_decay,  # noqa: E731
                                        "alpha": cfg.alpha, "steps": cfg.steps_of(d0), "seed": s, **kw})
                             for s in cfg.seeds]
    out = {"sweep": sweep,
           "alpha": per_seed(alpha=cfg.control_alpha, steps=cfg.control_alpha_steps) if cfg.control_alpha else [],
           "decay": per_seed(weight_decay=cfg.control_weight_decay) if cfg.control_decay else [],
           "data": per_seed(n_train=cfg.compare_n_train) if cfg.compare_n_train else [],
           "regime": [RunSpec(cfg.regime_depth, cfg.regime_n_train, wd, cfg.alpha, cfg.regime_steps, first)
                      for wd in cfg.regime_decays] if cfg.regime_depth else []}
    return out


def eval_steps(steps: int, dense_from: int, n_log: int, n_lin: int) -> list:
    """Step 0, n_log log-spaced steps up to dense_from (the initial transient, where every step
    is distinct) and n_lin evenly spaced ones from dense_from to `steps` (where grokking
    happens)."""
    edge = min(dense_from, steps)
    log = {int(round(10 ** (i * math.log10(edge) / (n_log - 1)))) for i in range(n_log)}
    lin = {int(round(dense_from + i * (steps - dense_from) / (n_lin - 1))) for i in range(n_lin)} \
        if steps > dense_from else set()
    return sorted({0, steps} | log | lin)


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
                    if k in ("data", "n_test", "width", "lr", "batch_size", "dtype", "rank_rtol", "dense_from",
                             "n_log_evals", "n_evals")}

    def data(self, n_train: int, seed: int):
        xtr, ytr, xte, yte = mnist.load(self.cfg.data, n_train, self.cfg.n_test, seed, self.dtype)
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
            xtr, ytr, xte, yte = self.data(spec.n_train, spec.seed)
            targets = F.one_hot(ytr, N_CLASSES).to(self.dtype)
            torch.manual_seed(spec.seed)
            model = MLP(spec.depth, c.width, xtr.shape[1], N_CLASSES, spec.alpha).to(self.dev, self.dtype)
            # fused: the same AdamW update in one kernel per step (1.5x faster on two CPU cores here)
            opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=spec.weight_decay, fused=True)
            evals = eval_steps(spec.steps, c.dense_from, c.n_log_evals, c.n_evals)
            evals, probes = set(evals), probe_steps(evals, spec.probes)
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
                    records.append(self.record(t, model, (xtr, ytr), (xte, yte), t in probes, spec.seed))
                if t == spec.steps:
                    break
                epoch, i = divmod(t, steps_per_epoch)
                if i == 0 or order is None:
                    g = torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch)
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

    def record(self, t, model, train_set, test_set, probe: bool, seed: int) -> dict:
        """Accuracy and loss on both sets, ranks of every layer on the test set, weight norms,
        and (if `probe`) every layer's linear-probe accuracy."""
        tr, feats_tr = self.evaluate(model, *train_set, features=False)
        te, feats_te = self.evaluate(model, *test_set, features=True)
        rec = {"step": t, "train_acc": tr["acc"], "train_loss": tr["loss"], "test_acc": te["acc"],
               "test_loss": te["loss"], "rank": te["rank"], "erank": te["erank"], "norm": model.weight_norm(),
               "last_norm": float(torch.cat([p.detach().double().flatten()
                                             for p in model.linears[-1].parameters()]).norm())}
        if probe:
            rec["probe_acc"] = [linear_probe_accuracy(a, train_set[1], b, test_set[1], N_CLASSES, seed=seed)
                                for a, b in zip(feats_tr, feats_te)]
        return rec


def run(cfg: Config, dev, progress: bool = True) -> dict:
    """Every run of the chapter, by group and name (depth sweep first, as the notebook reads)."""
    r = _Runner(cfg, dev, progress)
    return {group: {spec.name: r.run(spec) for spec in specs} for group, specs in plan(cfg).items()}
