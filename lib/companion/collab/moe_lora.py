"""A GPT whose MLPs are mixtures of LoRA experts, for many users at once (CoMiGS, Fan et al. 2025).

Every trainable tensor has a leading user axis U: user u's model is slice u of every tensor, on
one frozen base GPT (`models/gpt.py`, style "gpt2") shared by all. The users' batches go through
the base as one batch of U*B sequences, and the adapters split it back into users. One backward
pass of the summed per-user losses gives every user the gradient of its own loss.

In layer l, user u's MLP output for a token h is (Sec. 3 of the paper, the released code's
`models/model.py` and `models/gating.py`)

    y = sum_e g_e(h) MLP_e(h),   MLP_e(h) = (W_proj + s B A)_e GELU((W_fc + s B A)_e h),

with LoRA factors (A, B) per expert on fc and on proj, s = alpha / sqrt(r), and gates g from the
user's router R_u (E x d) on z = R_u h (`gate`). Expert 0 is the generalist; which experts are
averaged across users is the federation strategy's business (`federation`), not the model's.
"""
import copy
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from companion.models.gpt import GPT

GATINGS = ("router", "uniform")


def _kaiming(shape, gen):
    """nn.Linear's default weight init, kaiming_uniform(a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(shape[-1])
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


class UserLoRA(nn.Module):
    """W x + s B_u A_u x for user u: A (U, r, in) Kaiming-uniform, B (U, out, r) = 0, the same
    start for every user (LoRA, Hu et al. 2022; s = alpha / sqrt(r) as the released code's
    `models/lora.py`). Input (U*B, ..., in) or (U, N, in)."""

    def __init__(self, base: nn.Linear, n_users: int, r: int, alpha: float, gen: torch.Generator):
        super().__init__()
        self.base = base
        self.scale = alpha / math.sqrt(r)
        self.A = nn.Parameter(_kaiming((r, base.in_features), gen).expand(n_users, -1, -1).clone())
        self.B = nn.Parameter(torch.zeros(n_users, base.out_features, r))

    def forward(self, x, base_out=None):
        """base(x) + s (x A_u^T) B_u^T per user; `base_out` = base(x) when the caller has it already."""
        xu = x.reshape(self.A.shape[0], -1, x.shape[-1])
        b = self.base(xu) if base_out is None else base_out.reshape(*xu.shape[:-1], -1)
        out = torch.baddbmm(b, xu @ self.A.transpose(1, 2), self.B.transpose(1, 2), alpha=self.scale)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class Expert(nn.Module):
    """The frozen GELU MLP with its own LoRA on fc and on proj."""

    def __init__(self, mlp: nn.Module, n_users: int, r: int, alpha: float, gen: torch.Generator):
        super().__init__()
        self.fc = UserLoRA(mlp.fc, n_users, r, alpha, gen)
        self.proj = UserLoRA(mlp.proj, n_users, r, alpha, gen)

    def forward(self, h, fc_base=None):
        """(U, N, d) -> (U, N, d); fc_base = W_fc h, shared by all experts of a layer."""
        return self.proj(F.gelu(self.fc(h, fc_base)))


def gate(z: torch.Tensor, present: torch.Tensor, top_k: int) -> torch.Tensor:
    """Gate weights g (U, N, E) from router logits z (U, N, E); `present` (U, E) marks the experts
    each user holds. top_k = 1: g = p_e* at e* = argmax p, p = softmax(z), not renormalised;
    top_k >= 2: softmax over the top-k logits, 0 elsewhere (dense softmax when top_k >= E)."""
    z = z.masked_fill(~present[:, None, :], -math.inf)
    if top_k == 1:
        p = torch.softmax(z, -1)
        return p * F.one_hot(p.argmax(-1), z.shape[-1]).to(p.dtype)
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, z.topk(min(top_k, z.shape[-1]), -1).indices, True)
    return torch.softmax(z.masked_fill(~keep, -math.inf), -1)


def load_balance(z: torch.Tensor, present: torch.Tensor, top_k: int, importance: float) -> torch.Tensor:
    """The released code's load-balancing term per user (U,), `models/gating.py`
    (get_load_balancing_loss): E^2 (1/E) sum_e f_e Pbar_e c_e with f_e the share of top-k slots
    taken by e (each token's k slots weigh 1/k); Pbar_e the mean over tokens of softmax(z~), z~
    keeping the top-k logits and setting the others to 0 (top_k >= 2), or of the gate p_e* at the
    chosen expert, 0 elsewhere (top_k = 1); c_0 = 1/(E iota), c_e = (E - 1) / ((1 - iota) E) for
    e >= 1 (iota = expert 0's importance). E is the user's own number of experts. Constant in z when
    top_k >= E and all c_e are equal."""
    E = present.sum(1).to(z.dtype)  # (U,)
    z = z.masked_fill(~present[:, None, :], -math.inf)
    k = min(top_k, z.shape[-1])
    top = z.topk(k, -1).indices
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, top, True) & present[:, None, :]
    f = keep.to(z.dtype).mean(1) / torch.minimum(torch.full_like(E, k), E)[:, None]
    if k == 1:
        P = gate(z, present, 1).mean(1)
    else:
        ztil = torch.where(keep, z, torch.where(present[:, None, :], torch.zeros_like(z), z))
        P = torch.softmax(ztil, -1).mean(1)
    c = torch.where(torch.arange(z.shape[-1], device=z.device) == 0, 1 / (E[:, None] * importance),
                    (E[:, None] - 1) / ((1 - importance) * E[:, None]))
    return E * (f * P * c * present).sum(1)


class MoELoRAMLP(nn.Module):
    """Mixture of max(n_experts) LoRA experts on one frozen MLP, with a per-token linear router
    per user (gating "router") or the uniform mean of the user's experts ("uniform", the
    released code's Local and FedAvg). User u holds experts 0..n_experts[u]-1."""

    def __init__(self, mlp: nn.Module, n_experts, r: int, alpha: float, gen: torch.Generator,
                 gating: str = "router", top_k: int = 2, importance: float = 0.5):
        super().__init__()
        U, E, d = len(n_experts), max(n_experts), mlp.fc.in_features
        self.experts = nn.ModuleList(Expert(mlp, U, r, alpha, gen) for _ in range(E))
        self.router = nn.Parameter(_kaiming((E, d), gen).expand(U, -1, -1).clone())
        self.register_buffer("present", torch.arange(E)[None, :] < torch.tensor(n_experts)[:, None])
        self.gating, self.top_k, self.importance = gating, top_k, importance
        self.record = False  # when True, forward keeps its gates in self.gates (U, N, E)
        self.gates, self.lb = None, None

    def forward(self, x):
        U, d = self.present.shape[0], x.shape[-1]
        h = x.reshape(U, -1, d)
        if self.gating == "uniform":
            g = (self.present / self.present.sum(1, keepdim=True)).to(h.dtype)[:, None, :].expand(-1, h.shape[1], -1)
            self.lb = None
        else:
            z = h @ self.router.transpose(1, 2)
            g = gate(z, self.present, self.top_k)
            self.lb = load_balance(z, self.present, self.top_k, self.importance)
        if self.record:
            self.gates = g.detach()
        fc_base = self.experts[0].fc.base(h)  # the frozen W_fc h, computed once for every expert
        y = sum(g[..., e:e + 1] * expert(h, fc_base) for e, expert in enumerate(self.experts))
        return y.reshape(x.shape)


class MoEGPT(nn.Module):
    """U users' copies of a frozen GPT with MoE-LoRA MLPs and LoRA on the attention Linear layers
    named in `attn` ("qkv", "proj"); the loss per user is CE + lb_weight * mean over layers of
    the load-balancing term (the released code's lambda = 0.01)."""

    def __init__(self, base: GPT, n_experts, r: int = 8, alpha: float = 16.0, attn=("qkv", "proj"),
                 gating: str = "router", top_k: int = 2, importance: float = 0.5, lb_weight: float = 0.01,
                 seed: int = 0):
        super().__init__()
        if base.cfg.style != "gpt2":
            raise ValueError("MoEGPT adapts the GELU MLP of a GPT of style 'gpt2'")
        if gating not in GATINGS:
            raise ValueError(f"gating must be one of {GATINGS}, got {gating!r}")
        gen = torch.Generator().manual_seed(seed)
        self.gpt = copy.deepcopy(base)
        for p in self.gpt.parameters():
            p.requires_grad_(False)
        U = len(n_experts)
        for block in self.gpt.blocks:
            block.mlp = MoELoRAMLP(block.mlp, n_experts, r, alpha, gen, gating, top_k, importance)
            for name in attn:
                setattr(block.attn, name, UserLoRA(getattr(block.attn, name), U, r, alpha, gen))
        self.n_experts, self.lb_weight = tuple(n_experts), lb_weight

    @property
    def n_users(self) -> int:
        return len(self.n_experts)

    def moe_layers(self):
        return [b.mlp for b in self.gpt.blocks]

    def forward(self, idx):
        """Logits (U, B, T, V) of every user's model on its batch idx (U, B, T)."""
        U, B, T = idx.shape
        logits, _ = self.gpt(idx.reshape(U * B, T))
        return logits.view(U, B, T, -1)

    def token_losses(self, idx, targets):
        """Cross-entropy (U, B, T) of every next-token prediction."""
        logits = self(idx)
        return F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none").view(targets.shape)

    def loss(self, idx, targets):
        """Per-user training loss (U,): mean CE + lb_weight * (1/L) sum_l LB_l."""
        ce = self.token_losses(idx, targets).mean((1, 2))
        lbs = [m.lb for m in self.moe_layers() if m.lb is not None]
        return ce + self.lb_weight * torch.stack(lbs).mean(0) if lbs else ce

    def trainable(self) -> dict:
        """name -> parameter of every adapter and router (the base is frozen)."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def holders(self, name: str) -> torch.Tensor:
        """(U,) bool: the users that hold the tensor `name` (an expert's only if they hold that expert)."""
        e = expert_index(name)
        dev = self.gpt.wte.weight.device
        return torch.tensor([e is None or e < k for k in self.n_experts], device=dev)


def expert_index(name: str):
    """The expert a parameter belongs to (from '...experts.<e>....'), None for attention and routers."""
    m = re.search(r"\.experts\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def is_router(name: str) -> bool:
    return name.endswith(".router")
