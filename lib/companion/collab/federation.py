"""Federated fine-tuning of MoE-LoRA users (CoMiGS, Fan et al. 2025): strategies, server
averaging, and the alternating bilevel schedule.

A `Method` says which tensors are trained and which are shared (a predicate over parameter
names), how the experts are mixed (a learnt router or the uniform mean), and where the router
learns: "val" (the paper's bilevel problem: experts on training data, router on validation
data, alternating), "train" (the same schedule with training batches, Table 4's ablation) or
"joint" (one optimiser for experts and router on training data, as the adapted pFedMoE).

Schedule, as the released `collab_utils/clients.py` runs it: every round, every user takes
`local_steps` AdamW steps on its adapters (cosine from lr to lr/10 over all steps); after every
`router_every`-th expert step (a counter kept across rounds) it takes `router_iters` AdamW steps
on its router (constant lr) with the experts fixed; then the server replaces every shared tensor
by its mean over the users who hold it (uniform weights, not data-size weighted). As in the
released `collab_run.py`, the last round's average is uploaded but not sent back: a user's final
model is its state after its last local steps (`Schedule.final_average` applies it).

The released code fills the router's gradient during expert steps and zeroes only the expert
optimiser's, so a router phase starts from ~`router_every` accumulated training gradients, and the
router phase leaves validation gradients in the experts' `.grad`. We compute each phase's
gradient for that phase's tensors only; `quirk=True` reproduces the released code instead.
"""
from dataclasses import dataclass
from typing import Callable

import torch

from companion.collab.moe_lora import MoEGPT, expert_index, is_router

ROUTERS = ("val", "train", "joint", None)


def _nothing(name: str) -> bool:
    return False


def _all_lora(name: str) -> bool:
    return not is_router(name)


def _generalist(name: str) -> bool:
    """Expert 0 and the attention adapters (the released `expert_0` strategy)."""
    return not is_router(name) and expert_index(name) in (None, 0)


@dataclass(frozen=True)
class Method:
    name: str
    shared: Callable[[str], bool]  # which trainable tensors the server averages
    gating: str = "router"         # "router" | "uniform"
    router: str = "val"            # where the router learns (ROUTERS; None without a router)

    def __post_init__(self):
        if self.router not in ROUTERS or (self.gating == "uniform") != (self.router is None):
            raise ValueError(f"method {self.name}: a router needs router in {ROUTERS[:3]}, uniform gating None")


# the chapter's methods (the released scripts' names in the comments)
METHODS = {
    "Local": Method("Local", _nothing, "uniform", None),              # baseline_local.sh: 2 experts, uniform
    "FedAvg": Method("FedAvg", _all_lora, "uniform", None),           # baseline_fedavg.sh
    "2G": Method("2G", _all_lora),                                    # comigs_2g.sh (strategy 'experts')
    "2S": Method("2S", _nothing),                                     # comigs_2s.sh, as no communication
    "1G1S": Method("1G1S", _generalist),                              # comigs_1g1s.sh (strategy 'expert_0')
    "1G1S-joint": Method("1G1S-joint", _generalist, router="joint"),  # pFedMoE.sh (adapted)
    "1G1S-train": Method("1G1S-train", _generalist, router="train"),  # table4/baseline_comigs_train.sh
    "Local-MoE": Method("Local-MoE", _nothing, router="joint"),       # table4/baseline_local_moe_train.sh
}


@dataclass(frozen=True)
class Schedule:
    rounds: int = 20
    local_steps: int = 10
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    router_every: int = 30   # K_R: expert steps between two router phases
    router_iters: int = 10   # r: router steps per phase
    quirk: bool = False      # reproduce the released code's gradient leakage
    eval_every: int = 0      # expert steps between two validation evaluations (0: none)
    final_average: bool = False  # apply the last round's average to the users (the released code does not)


def average(model: MoEGPT, shared: Callable[[str], bool], payload=None, apply: bool = True) -> dict:
    """Replace every shared tensor by its mean over the users holding it (unless not `apply`);
    `payload(sent)` sees exactly what is uploaded: name -> (mask of senders (U,), tensor (U, ...)).
    Returns the number of parameters each user uploaded (U,)."""
    sent = {n: (model.holders(n), p.detach()) for n, p in model.trainable().items() if shared(n)}
    if payload is not None:
        payload(sent)
    counts = torch.zeros(model.n_users, dtype=torch.long)  # on the CPU
    with torch.no_grad():
        for n, (who, t) in sent.items():
            counts += who.cpu().long() * t[0].numel()
            if not apply:
                continue
            mean = t[who].mean(0)
            p = dict(model.named_parameters())[n]
            p[who] = mean.expand_as(p[who])
    return counts


def _adamw(params, lr, wd):
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=wd) if params else None


class Trace:
    """What a run consumed: one (phase, split) per batch, phase "expert" or "router"."""

    def __init__(self):
        self.batches = []

    def __call__(self, phase: str, split: str):
        self.batches.append((phase, split))


def train(model: MoEGPT, method: Method, batch: Callable, sch: Schedule, *, payload=None, trace=None,
          evaluate=None, on_router_step=None) -> dict:
    """Train the users' models in place. batch(split, n, phase) -> (x, y), each (U, n, T), from the
    users' "train" or "val" streams (phase "expert" or "router": a router on training data draws
    from its own stream, so that the expert steps see the same batches as with a router on validation). `evaluate(model)` -> value is called every sch.eval_every
    expert steps; `on_router_step(model, x, y)` runs just before every router update, with the
    gradients in `.grad` (tests). Returns the upload counts per round and the evaluations."""
    params = model.trainable()
    experts = [p for n, p in params.items() if not is_router(n)]
    routers = [p for n, p in params.items() if is_router(n)] if method.gating == "router" else []
    if method.gating == "uniform":
        for p in (p for n, p in params.items() if is_router(n)):
            p.requires_grad_(False)
    joint = method.router == "joint"
    opt = _adamw(experts + (routers if joint else []), sch.lr, sch.weight_decay)
    ropt = None if joint else _adamw(routers, sch.lr, sch.weight_decay)
    total = sch.rounds * sch.local_steps
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=sch.lr / 10)
    phase_params = experts + (routers if joint else [])
    trace = trace or (lambda phase, split: None)
    uploads, evals, k = [], [], 0

    def step(optimizer, tensors, split, phase):
        x, y = batch(split, sch.batch, phase)
        trace(phase, split)
        loss = model.loss(x, y).sum()  # user u's gradient is that of its own loss
        if sch.quirk:  # the released code: backward fills every .grad, each optimiser zeroes its own after stepping
            loss.backward()
        else:
            for p, g in zip(tensors, torch.autograd.grad(loss, tensors)):
                p.grad = g
        if phase == "router" and on_router_step is not None:
            on_router_step(model, x, y)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    for rnd in range(sch.rounds):
        for _ in range(sch.local_steps):
            step(opt, phase_params, "train", "expert")
            cos.step()
            k += 1
            if ropt is not None and k % sch.router_every == 0:
                for _ in range(sch.router_iters):
                    step(ropt, routers, "val" if method.router == "val" else "train", "router")
            if evaluate is not None and sch.eval_every and k % sch.eval_every == 0:
                evals.append((k, evaluate(model)))
        # the released code never sends the last average back: every user ends with its own last local state
        uploads.append(average(model, method.shared, payload, apply=rnd < sch.rounds - 1 or sch.final_average))
    return {"uploads": torch.stack(uploads), "evals": evals}


@torch.no_grad()
def evaluate(model: MoEGPT, x, y, sx, sy, chunk: int = 32) -> dict:
    """Every user's model on its windows x, y (U, W, T) with the sources of x and y (markov.SHARED
    or PRIVATE): mean CE (U,); CE on shared- and on private-source targets (U, 2); and, with a
    router, per layer the mean specialist weight 1 - g_0 on shared- and on private-source input
    tokens (L, U, 2), g_0 the generalist's gate (the paper's routing figure, as numbers)."""
    layers = model.moe_layers()
    for m in layers:
        m.record = True
    losses, gates = [], [[] for _ in layers]
    for i in range(0, x.shape[1], chunk):
        losses.append(model.token_losses(x[:, i:i + chunk], y[:, i:i + chunk]))
        for l, m in enumerate(layers):
            gates[l].append(1 - m.gates[..., 0].view(x.shape[0], -1, x.shape[2]))
    for m in layers:
        m.record, m.gates = False, None
    tl = torch.cat(losses, 1)
    by = lambda v, s: torch.stack([(v * (s == k)).sum((1, 2)) / (s == k).sum((1, 2)).clamp_min(1)  # noqa: E731
                                   for k in (0, 1)], -1)
    out = {"ce": tl.mean((1, 2)).cpu(), "ce_by_source": by(tl, sy).cpu()}
    if layers[0].gating == "router":
        out["specialist_weight"] = torch.stack([by(torch.cat(g, 1), sx) for g in gates]).cpu()
        out["gates_first_window"] = torch.stack([g[0][:, 0] for g in gates]).cpu().clone()  # (L, U, T)
    return out
