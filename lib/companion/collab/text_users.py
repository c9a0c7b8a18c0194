"""Users made of real text with known provenance: slices of Tiny Shakespeare (the comigs chapter's
gpu preset; the design is ours).

The corpus (character ids) is cut into n_users + 2 contiguous regions: region 0 pretrains the base
model, region 1 is the text all users share, region 2 + i is user i's own. Each region is split
into train / val / test parts (the first 55%, the next 15%, the last 30%), so no text is both
trained on and scored. A user's stream is a run of segments, as for the Markov users
(`companion.collab.markov`): a segment is a random contiguous slice of the user's private part
with probability alpha, of the shared part otherwise, and every token keeps its source.
"""
import torch

from companion.collab.markov import PRIVATE, SHARED, Split, Users

PARTS = {"train": (0.0, 0.55), "val": (0.55, 0.70), "test": (0.70, 1.0)}


def regions(ids: torch.Tensor, n_users: int) -> list:
    """The n_users + 2 contiguous regions of the corpus: [pretraining, shared, user 0, ...]."""
    R = len(ids) // (n_users + 2)
    return [ids[r * R:(r + 1) * R] for r in range(n_users + 2)]


def part(region: torch.Tensor, split: str) -> torch.Tensor:
    lo, hi = PARTS[split]
    return region[int(lo * len(region)):int(hi * len(region))]


def users(ids: torch.Tensor, alpha, tokens: dict, seg=(64, 256), seed: int = 0, control: bool = False) -> Users:
    """len(alpha) users from the corpus `ids`; tokens: split -> one length for all users or one per
    user. With `control`, private segments are drawn from the shared text (the labels remain)."""
    U = len(alpha)
    reg = regions(ids, U)
    out = {}
    for k, split in enumerate(("train", "val", "test")):
        gen = torch.Generator().manual_seed(seed + 1 + 7919 * k)
        n = tokens[split]
        lengths = torch.tensor([n] * U if isinstance(n, int) else list(n))
        L = int(lengths.max())
        tok = torch.zeros(U, L, dtype=torch.long)
        src = torch.zeros(U, L, dtype=torch.long)
        shared = part(reg[1], split)
        for u in range(U):
            own = shared if control else part(reg[2 + u], split)
            t = 0
            while t < L:
                m = min(int(torch.randint(seg[0], seg[1] + 1, (1,), generator=gen)), L - t)
                private = bool(torch.rand(1, generator=gen) < alpha[u])
                pool = own if private else shared
                s = int(torch.randint(len(pool) - m, (1,), generator=gen))
                tok[u, t:t + m] = pool[s:s + m]
                src[u, t:t + m] = PRIVATE if private else SHARED
                t += m
        out[split] = Split(tok, src, lengths)
    return Users(out["train"], out["val"], out["test"], None, None, tuple(alpha))


def pretraining(ids: torch.Tensor, n_users: int) -> torch.Tensor:
    """The base model's text: region 0 (no user's text)."""
    return regions(ids, n_users)[0].long()
