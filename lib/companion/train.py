"""One small training loop for every GPT chapter.

`train` runs optimizer updates start..end-1 of a run. The learning rate of update t is
lr * schedule(t), set before the update. Batches are a pure function of the step, and
`snapshot`/`restore` capture model and optimizer state, so a run can stop at any step and
be continued, or branched into another schedule, reproducing the uninterrupted run
bit-for-bit on CPU. `CharLM` wires the pieces every GPT chapter shares: a seeded GPT, one
training stream per seed, fixed validation batches, AdamW, and `train`.
"""
import copy
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from companion import device as devices
from companion.models.gpt import GPT
from companion.results import atomic_write_bytes, load_checkpoint


@dataclass
class History:
    """What a run recorded: per-update learning rate and training loss, and the
    validation loss after `eval_steps[i]` updates."""
    steps: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)

    def val_at(self, step: int) -> float:
        return self.val_loss[self.eval_steps.index(step)]

    @property
    def final_val(self) -> float:
        return self.val_loss[-1]


def adamw(model, lr: float, betas=(0.9, 0.95), weight_decay: float = 0.1, eps: float = 1e-8):
    """AdamW over the model's own parameter groups (decay on Linear weights only)."""
    return torch.optim.AdamW(model.param_groups(weight_decay), lr=lr, betas=betas, eps=eps)


def snapshot(model, optimizer) -> dict:
    """A deep copy of model and optimizer state (the data position is the step itself)."""
    return {"model": copy.deepcopy(model.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict())}


def restore(model, optimizer, snap: dict):
    model.load_state_dict(snap["model"])
    optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))


@torch.no_grad()
def evaluate(model, batches, dev) -> float:
    """Mean cross-entropy (nats/token) over fixed batches."""
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        with devices.autocast(dev):
            total += model(x.to(dev), y.to(dev))[1].item()
    model.train(was_training)
    return total / len(batches)


def train(model, optimizer, schedule, batch_fn, start: int, end: int, *, lr: float, val_batches=(),
          eval_every: int = 100, clip: float = 1.0, on_step=(), snapshot_at=(), dev=None,
          desc: str = "train", progress: bool = True, checkpoint=None, checkpoint_every: int = 0,
          probes=()):
    """Run updates start..end-1; return (History, {step: snapshot}).

    schedule(t) -> LR multiplier; batch_fn(t) -> (x, y). Validation runs after every
    `eval_every`-th update and after the last; `snapshot_at` lists steps (numbers of updates
    done) at which to keep a copy of the state, the branching points of cooldowns.
    `on_step` hooks are called as hook(model) after each update (weight averaging). `probes`
    measure the update itself: probe.before_step(t, model, optimizer, batch) runs after the
    gradient is computed and clipped, probe.after_step(t, model, optimizer) after the update
    (companion.metrics). Hooks and probes with state_dict/load_state_dict are checkpointed
    with the run.

    With `checkpoint` (a path) and `checkpoint_every` > 0, the full state is saved atomically
    every `checkpoint_every` updates; a run started again with the same path resumes from it
    and gives the same numbers as an uninterrupted run. The file is removed when the run ends.
    """
    dev = dev or next(model.parameters()).device
    hist, snaps = History(), {}
    want = set(snapshot_at)
    stateful = [h for h in (*on_step, *probes) if hasattr(h, "state_dict")]
    ckpt = Path(checkpoint) if checkpoint else None
    saved = load_checkpoint(ckpt, dev) if ckpt is not None else None
    if saved is not None:
        restore(model, optimizer, saved)
        hist, snaps, start = saved["history"], saved["snapshots"], saved["step"]
        for h, state in zip(stateful, saved["hooks"]):
            h.load_state_dict(state)
    elif start in want:
        snaps[start] = snapshot(model, optimizer)
    model.train()
    bar = tqdm(range(start, end), desc=desc, leave=False, disable=not progress, mininterval=2.0)
    for t in bar:
        lr_t = lr * schedule(t)
        for g in optimizer.param_groups:
            g["lr"] = lr_t
        x, y = (z.to(dev, non_blocking=True) for z in batch_fn(t))
        with devices.autocast(dev):
            _, loss = model(x, y)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for probe in probes:
            probe.before_step(t, model, optimizer, (x, y))
        optimizer.step()
        for probe in probes:
            probe.after_step(t, model, optimizer)
        optimizer.zero_grad(set_to_none=True)
        for hook in on_step:
            hook(model)
        done = t + 1
        hist.steps.append(t)
        hist.lr.append(lr_t)
        hist.train_loss.append(loss.item())
        if val_batches and (done % eval_every == 0 or done == end):
            hist.eval_steps.append(done)
            hist.val_loss.append(evaluate(model, val_batches, dev))
        if done in want:
            snaps[done] = snapshot(model, optimizer)
        if ckpt is not None and checkpoint_every and done % checkpoint_every == 0 and done < end:
            buf = io.BytesIO()
            torch.save({**snapshot(model, optimizer), "step": done, "history": hist, "snapshots": snaps,
                        "hooks": [h.state_dict() for h in stateful]}, buf)
            atomic_write_bytes(ckpt, buf.getvalue())
    bar.close()
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    return hist, snaps


class CharLM:
    """One GPT configuration pre-trained on one character corpus: the shared wiring of the GPT
    chapters. Every model it builds starts from the same initialisation (`seed`), every
    training run reads the same batches (stream `seed + stream`: a fine-tuning phase takes
    another stream), and validation uses `eval_batches` fixed batches of the corpus's
    held-out part."""

    def __init__(self, corpus, gcfg, *, batch_size: int, eval_batches: int, seed: int, dev, progress: bool = True,
                 val_batch_size: int = None, checkpoint_every: int = 250):
        self.corpus, self.gcfg, self.batch_size, self.seed = corpus, gcfg, batch_size, seed
        self.dev, self.progress, self.checkpoint_every = dev, progress, checkpoint_every
        self.val = corpus.val_batches(eval_batches, val_batch_size or batch_size, gcfg.seq_len)

    def model(self, state=None) -> GPT:
        """A GPT at the shared initialisation, or loaded with `state`."""
        torch.manual_seed(self.seed)
        m = GPT(self.gcfg).to(self.dev)
        if state is not None:
            m.load_state_dict(state)
        return m

    def batch(self, t: int, stream: int = 0):
        return self.corpus.train_batch(t, self.batch_size, self.gcfg.seq_len, self.seed + stream)

    def evaluate(self, model) -> float:
        return evaluate(model, self.val, self.dev)

    def fit(self, model, optimizer, schedule, start: int, end: int, *, lr: float, desc: str = "train",
            stream: int = 0, snap: dict = None, checkpoint=None, **kw):
        """`train` on this corpus's stream and validation batches, optionally continuing from
        `snap` (a `snapshot` taken at step `start`); other keywords go to `train`."""
        if snap is not None:
            restore(model, optimizer, snap)
        return train(model, optimizer, schedule, lambda t: self.batch(t, stream), start, end, lr=lr,
                     val_batches=self.val, dev=self.dev, desc=desc, progress=self.progress,
                     checkpoint=checkpoint, checkpoint_every=self.checkpoint_every, **kw)
