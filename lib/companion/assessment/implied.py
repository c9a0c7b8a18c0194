"""What the paper's two headline numbers imply on their own (no per-question data needed).

The abstract gives GPT-4's mean correctness over 8 strategies, pbar = 65.8%, and the share of
questions answered correctly by at least one strategy, 85.1%. Two models of the strategies:

* independence: the strategies succeed independently with probability pbar, so
  any_S = 1 - (1 - pbar)^S;
* exchangeable Beta-Binomial: a question has a success probability p_q ~ Beta(a, b) and its
  S strategies are i.i.d. Bernoulli(p_q) given q. Then mean = a / (a + b), the intra-question
  correlation of two strategies is rho = 1 / (a + b + 1), and

      any_S = 1 - B(a, b + S) / B(a, b),   P(all S) = B(a + S, b) / B(a, b),
      P(k of S) = C(S, k) B(a + k, b + S - k) / B(a, b)   (scipy.stats.betabinom).

`fit` solves for a + b so that mean and any_S equal the two numbers (a root in log a + b:
any_S falls from 1 - (1 - pbar)^S at independence to pbar at perfect correlation). The fit is
an illustration: exchangeability ignores that strategies differ.

A course of n questions passes under a threshold tau iff the score is at least tau: with
i.i.d. questions of success probability pi, P(pass) = P(Bin(n, pi) >= ceil(tau n)); with a
course-level pi_k ~ Beta(pi kappa, (1 - pi) kappa), the Beta-Binomial tail instead.
"""
import math

import numpy as np
from scipy import optimize, special, stats


def any_independent(p: float, S: int) -> float:
    """1 - (1 - p)^S: at least one of S independent successes."""
    return 1 - (1 - p) ** S


def majority_independent(p: float, S: int) -> float:
    """P(more than S/2 of S independent Bernoulli(p) succeed)."""
    return float(stats.binom.sf(S // 2, S, p))


def any_beta(a: float, b: float, S: int) -> float:
    """1 - B(a, b + S) / B(a, b)."""
    return float(-math.expm1(special.betaln(a, b + S) - special.betaln(a, b)))


def all_beta(a: float, b: float, S: int) -> float:
    """B(a + S, b) / B(a, b)."""
    return float(math.exp(special.betaln(a + S, b) - special.betaln(a, b)))


def majority_beta(a: float, b: float, S: int) -> float:
    """P(K > S/2) for K ~ BetaBinomial(S, a, b)."""
    return float(stats.betabinom.sf(S // 2, S, a, b))


def at_least_beta(a: float, b: float, S: int, k: int) -> float:
    """P(K >= k) for K ~ BetaBinomial(S, a, b)."""
    return float(stats.betabinom.sf(k - 1, S, a, b))


def fit(mean: float, any_s: float, S: int) -> dict:
    """Beta(a, b) with a / (a + b) = mean and any_S = any_s; rho = 1 / (a + b + 1)."""
    if not (0 < mean < any_s < any_independent(mean, S)):
        raise ValueError(f"no exchangeable fit: need mean < any < 1 - (1 - mean)^S, got {mean}, {any_s}, S={S}")

    def gap(log_s):
        s = math.exp(log_s)
        return any_beta(mean * s, (1 - mean) * s, S) - any_s
    log_s = optimize.brentq(gap, -20.0, 20.0, xtol=1e-14, rtol=1e-15, maxiter=500)
    s = math.exp(log_s)
    a, b = mean * s, (1 - mean) * s
    return {"a": a, "b": b, "S": S, "rho": 1 / (s + 1), "mean": a / (a + b), "any": any_beta(a, b, S),
            "all": all_beta(a, b, S), "majority": majority_beta(a, b, S)}


def fit_majority(majority: float, any_s: float, S: int) -> dict:
    """The fit under another reading of the headline mean: Beta(a, b) whose strict majority of S
    equals `majority` and whose any_S equals `any_s` (a root in the mean, each step an exact fit)."""
    lo = 1 - (1 - any_s) ** (1 / S)  # below this mean, even independence cannot reach any_s

    def gap(m):
        return fit(m, any_s, S)["majority"] - majority
    m = optimize.brentq(gap, lo + 1e-3, any_s - 1e-3, xtol=1e-14, rtol=1e-15, maxiter=500)
    return fit(m, any_s, S)


def monte_carlo(a: float, b: float, S: int, draws: int, seed: int, chunk: int = 1_000_000) -> dict:
    """Mean, any-of-S and their standard errors from `draws` simulated questions (p_q ~ Beta(a, b),
    S Bernoulli(p_q) each): a check of the closed forms, not a dataset."""
    rng = np.random.default_rng(seed)
    total = n_any = sq_mean = 0.0
    done = 0
    while done < draws:
        n = min(chunk, draws - done)
        p = rng.beta(a, b, n)
        k = rng.binomial(S, p)
        m = k / S
        total += m.sum()
        sq_mean += (m ** 2).sum()
        n_any += (k > 0).sum()
        done += n
    mean, any_ = total / draws, n_any / draws
    return {"draws": draws, "mean": float(mean), "any": float(any_),
            "se_mean": float(math.sqrt(max(sq_mean / draws - mean ** 2, 0) / draws)),
            "se_any": float(math.sqrt(any_ * (1 - any_) / draws))}


def need(tau: float, n: int) -> int:
    """ceil(tau n), robust to round-off (0.6 * 50 is 30, not 30.000000000000004)."""
    return math.ceil(tau * n - 1e-9)


def pass_probability(pi: float, n: int, tau: float, kappa: float = math.inf) -> float:
    """P(score >= tau) for a course of n questions; i.i.d. questions (kappa = inf) or a
    course-level pi_k ~ Beta(pi kappa, (1 - pi) kappa)."""
    k = need(tau, n)
    if math.isinf(kappa):
        return float(stats.binom.sf(k - 1, n, pi))
    return float(stats.betabinom.sf(k - 1, n, pi * kappa, (1 - pi) * kappa))


def tau_star(pi: float, n: int, kappa: float = math.inf, level: float = 0.5) -> float:
    """The largest tau on the grid k / n at which P(pass) still exceeds `level`."""
    best = 0.0
    for k in range(n + 1):
        tau = k / n
        if pass_probability(pi, n, tau, kappa) > level:
            best = tau
    return best
