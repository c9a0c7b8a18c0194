"""Synthetic users with known token provenance (the comigs chapter's data; the design is ours).

Every user's token stream is a sequence of segments of random length (seg_min..seg_max); a
segment follows, with probability alpha (the heterogeneity), the user's private order-1 Markov
chain U_i, otherwise one chain S shared by all users. The next token is drawn from the segment's
chain given the previous token, so a model must infer from the context which chain is speaking.
Chain rows are Dirichlet(concentration) draws: small concentrations make peaked, learnable rows.
Every token keeps its source (0: shared, 1: private), so a loss or a gate can be split by source.

A "pretraining" corpus uses other chains (generic), so that fine-tuning must learn S and U_i.
"""
from dataclasses import dataclass

import numpy as np
import torch

SHARED, PRIVATE = 0, 1


def chains(n: int, vocab: int, concentration: float, seed: int) -> torch.Tensor:
    """n transition matrices (n, V, V), rows ~ Dirichlet(concentration)."""
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.dirichlet(np.full(vocab, concentration), size=(n, vocab)), dtype=torch.float64)


def sample(P: torch.Tensor, which: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Token streams (S, L): stream s's token t ~ P[which[s, t]][token t-1] (the first uniform)."""
    S, L = which.shape
    cum = P.cumsum(-1)
    cum[..., -1] = 1.0
    u = torch.rand(S, L, generator=gen, dtype=torch.float64)
    out = torch.empty(S, L, dtype=torch.long)
    out[:, 0] = (u[:, 0] * P.shape[-1]).long().clamp_max(P.shape[-1] - 1)
    for t in range(1, L):
        out[:, t] = (cum[which[:, t], out[:, t - 1]] < u[:, t, None]).sum(-1).clamp_max(P.shape[-1] - 1)
    return out


def segments(S: int, L: int, p: torch.Tensor, seg: tuple, gen: torch.Generator) -> torch.Tensor:
    """(S, L) 0/1 source labels: segments of length U{seg[0]..seg[1]}, each 1 with probability p[s]."""
    out = torch.empty(S, L, dtype=torch.long)
    for s in range(S):
        t = 0
        while t < L:
            n = int(torch.randint(seg[0], seg[1] + 1, (1,), generator=gen))
            out[s, t:t + n] = int(torch.rand(1, generator=gen) < p[s])
            t += n
    return out


@dataclass
class Split:
    tokens: torch.Tensor  # (U, L) padded
    source: torch.Tensor  # (U, L) SHARED / PRIVATE
    lengths: torch.Tensor  # (U,)

    def batch(self, n: int, T: int, gen: torch.Generator):
        """(x, y, source of y), each (U, n, T): windows at uniform random starts of every user's stream."""
        U = self.tokens.shape[0]
        starts = (torch.rand(U, n, generator=gen) * (self.lengths[:, None] - T).double()).long()
        idx = starts[..., None] + torch.arange(T + 1)
        w = torch.gather(self.tokens[:, None, :].expand(-1, n, -1), 2, idx)
        s = torch.gather(self.source[:, None, :].expand(-1, n, -1), 2, idx)
        return w[..., :-1], w[..., 1:], s[..., 1:]

    def windows(self, T: int):
        """Every user's stream cut into consecutive windows: (x, y, source of x, source of y), each
        (U, W, T), W from the shortest stream (deterministic; every target counted once)."""
        W = int((self.lengths.min() - 1) // T)
        cut = lambda a, o: a[:, o:W * T + o].reshape(-1, W, T)  # noqa: E731
        return cut(self.tokens, 0), cut(self.tokens, 1), cut(self.source, 0), cut(self.source, 1)


@dataclass
class Users:
    """U users' train / val / test streams, and the chains that made them."""
    train: Split
    val: Split
    test: Split
    shared: torch.Tensor    # (V, V)
    private: torch.Tensor   # (U, V, V)
    alpha: tuple

    @property
    def n_users(self) -> int:
        return len(self.alpha)


def users(alpha, tokens: dict, vocab: int = 32, concentration: float = 0.1, seg=(8, 32), seed: int = 0,
          control: bool = False) -> Users:
    """len(alpha) users; user i's segments are private with probability alpha[i]. tokens: split ->
    one length for all users or one per user. The chains depend on (seed, vocab, concentration,
    number of users) only, so a sweep over alpha keeps them. With `control`, every private chain
    is the shared one: the labels remain, the distributions no longer differ."""
    U = len(alpha)
    P = chains(U + 1, vocab, concentration, seed)  # P[0] = S, P[1 + i] = U_i
    if control:
        P[1:] = P[0]
    out = {}
    for k, split in enumerate(("train", "val", "test")):
        gen = torch.Generator().manual_seed(seed + 1 + 7919 * k)  # one stream per split: a split's length
        n = tokens[split]                                          # leaves the others unchanged
        lengths = torch.tensor([n] * U if isinstance(n, int) else list(n))
        L = int(lengths.max())
        src = segments(U, L, torch.tensor(alpha, dtype=torch.float64), seg, gen)
        which = torch.where(src == PRIVATE, 1 + torch.arange(U)[:, None], 0)
        out[split] = Split(sample(P, which, gen), src, lengths)
    return Users(out["train"], out["val"], out["test"], P[0], P[1:], tuple(alpha))


def generic(n_chains: int, length: int, vocab: int = 32, concentration: float = 0.1, seg=(8, 32),
            seed: int = 10**6) -> torch.Tensor:
    """A pretraining stream (length,) mixing n_chains other chains segment by segment."""
    P = chains(n_chains, vocab, concentration, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    which = torch.zeros(1, length, dtype=torch.long)
    t = 0
    while t < length:
        n = int(torch.randint(seg[0], seg[1] + 1, (1,), generator=gen))
        which[0, t:t + n] = int(torch.randint(n_chains, (1,), generator=gen))
        t += n
    return sample(P, which, gen)[0]
