"""Training FLOPs of the GPT, Chinchilla style, as in epfml/schedules-and-scaling's
`flops.ipynb` (brief, section 5): forward = embedding + layers * (attention + dense) + logits,
training = 3 x forward."""
from companion.models.gpt import GPTConfig


def forward_flops_per_sequence(cfg: GPTConfig) -> float:
    """FLOPs of one forward pass over a sequence of cfg.seq_len tokens.

    With L = seq_len, d = d_model, k h = d (key size times heads), V = vocab, f = d_ff:
    attention = 2*3*L*d*(kh) + 2*L^2*(kh) + 3*h*L^2 + 2*L^2*(kh) + 2*L*(kh)*d,
    dense = 2*L*(3*d*f) for SwiGLU (2*L*(2*d*f) for GELU), embedding = logits = 2*L*V*d.
    """
    L, d, h, V, f = cfg.seq_len, cfg.d_model, cfg.n_head, cfg.vocab_size, cfg.d_ff
    kh = d
    attention = 2 * 3 * L * d * kh + 2 * L * L * kh + 3 * h * L * L + 2 * L * L * kh + 2 * L * kh * d
    dense = 2 * L * ((3 if cfg.style == "llama" else 2) * d * f)
    return 2 * L * V * d + cfg.n_layer * (attention + dense) + 2 * L * d * V


def training_flops_per_step(cfg: GPTConfig, batch_size: int) -> float:
    return 3.0 * forward_flops_per_sequence(cfg) * batch_size


def non_embedding_params(cfg: GPTConfig) -> int:
    """n_layer * (4 d^2 + 3 d f) for SwiGLU: the flops notebook's count without the embedding."""
    d = cfg.d_model
    return cfg.n_layer * (4 * d * d + (3 if cfg.style == "llama" else 2) * d * cfg.d_ff)
