"""A small GPT in plain PyTorch, in the spirit of nanoGPT's model.py.

Two styles share one module through `GPTConfig.style`:

* ``"llama"``: RMSNorm, SwiGLU MLP, rotary position embeddings (RoPE), no biases,
  tied input/output embeddings: the model of epfml/schedules-and-scaling
  (``src/models/llama.py``), used by the scaling-cooldown chapter.
* ``"gpt2"``: LayerNorm, GELU MLP, learned absolute positions, tied embeddings:
  nanoGPT's GPT-2, used by the warmup chapter.

Initialisation follows both codebases: N(0, 0.02) for every weight, and
N(0, 0.02 / sqrt(2 n_layer)) for the projections that write into the residual stream.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 65
    seq_len: int = 64  # context length T
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    style: str = "llama"  # "llama" | "gpt2"

    def __post_init__(self):
        if self.style not in ("llama", "gpt2"):
            raise ValueError(f"style must be 'llama' or 'gpt2', got {self.style!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")

    @property
    def d_ff(self) -> int:
        """MLP hidden width: 4d for GELU; round_up(8d/3, 256) for SwiGLU in the official
        code, which we round to a multiple of 8 instead so that tiny models stay tiny."""
        if self.style == "gpt2":
            return 4 * self.d_model
        return 8 * ((int(8 * self.d_model / 3) + 7) // 8)


class RMSNorm(nn.Module):
    """x / rms(x) * g (Zhang & Sennrich 2019), eps 1e-5 as in the official code."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_cache(seq_len, head_dim, base=10000.0):
    """cos/sin tables of rotary embeddings (Su et al. 2021, Eq. 34), shape (T, head_dim/2)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(seq_len).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """Rotate consecutive pairs (x_2i, x_2i+1) of each head by angle t * theta_i."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.proj.residual = True

    def forward(self, x, rope=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """SwiGLU, W2 (silu(W1 x) * W3 x) (Shazeer 2020), or GELU, W2 gelu(W1 x)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.gated = cfg.style == "llama"
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=False) if self.gated else None
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.proj.residual = True

    def forward(self, x):
        h = F.silu(self.fc(x)) * self.gate(x) if self.gated else F.gelu(self.fc(x))
        return self.proj(h)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        Norm = RMSNorm if cfg.style == "llama" else nn.LayerNorm
        self.norm1, self.attn = Norm(cfg.d_model), CausalSelfAttention(cfg)
        self.norm2, self.mlp = Norm(cfg.d_model), MLP(cfg)

    def forward(self, x, rope=None):
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model) if cfg.style == "gpt2" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.d_model) if cfg.style == "llama" else nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied embeddings
        if cfg.style == "llama":
            cos, sin = rope_cache(cfg.seq_len, cfg.d_model // cfg.n_head)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            std = 0.02 / math.sqrt(2 * self.cfg.n_layer) if getattr(m, "residual", False) else 0.02
            nn.init.normal_(m.weight, 0.0, std)

    def forward(self, idx, targets=None):
        """Logits (B, T, V); with targets, also the mean next-token cross-entropy in nats."""
        T = idx.shape[1]
        x = self.wte(idx)
        rope = None
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        else:
            rope = (self.rope_cos[:T], self.rope_sin[:T])
        for block in self.blocks:
            x = block(x, rope)
        logits = self.lm_head(self.norm_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights are counted once

    def param_groups(self, weight_decay, decay_embeddings: bool = False):
        """Weight decay on nn.Linear weights only: not on norms, not on the tied embedding,
        as in the official schedules-and-scaling code; with `decay_embeddings`, on every
        tensor with >= 2 dims, embeddings included, as nanoGPT's `configure_optimizers`."""
        if decay_embeddings:
            decay = [p for p in self.parameters() if p.dim() >= 2]
        else:
            tied = self.wte.weight
            decay = [m.weight for m in self.modules() if isinstance(m, nn.Linear) and m.weight is not tied]
        ids = {id(p) for p in decay}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
