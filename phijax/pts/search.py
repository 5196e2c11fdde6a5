"""Pivotal Token Search (Phi-4 report, § Post-training): find the tokens of a sampled completion that
move p(success) by at least `p_gap`, and turn each into a single-token DPO pair.

Pure and estimator-agnostic: the caller passes `success_probability(prefix) -> p(success | query,
prefix)`, however it is estimated (Monte-Carlo rollouts scored by a verifier, a value model, a test
oracle). An estimate is expensive (tens of rollouts), so every prefix is estimated at most once and
the search spends about k·log2(n) estimates for k pivotal tokens in n tokens instead of n.

The estimator may return a bare float, or a `SuccessEstimate` carrying the rollouts it used (the
first token each rollout sampled after the prefix, and whether it succeeded): `token_pairs` builds
the chosen/rejected alternatives from those rollouts, with no extra sampling. See docs/pts.md.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Prefix = tuple[int, ...]

SUCCESS_BAND = (0.2, 0.8)  # the report keeps queries whose p(success) lies in this band


class InvalidEstimateError(ValueError):
    """An estimator returned something that is not a probability in [0, 1]."""


@dataclass(frozen=True)
class Rollout:
    """One continuation sampled after a prefix: its first token and whether its answer was right.

    A negative `first_token` marks a continuation without tokens (it ended at once); such rollouts
    count towards p but are never offered as a pair's alternative token.
    """

    first_token: int
    success: bool


@dataclass(frozen=True)
class SuccessEstimate:
    """p(success | query, prefix), with the rollouts behind it when it is a Monte-Carlo estimate."""

    probability: float
    rollouts: tuple[Rollout, ...] = ()

    @classmethod
    def from_rollouts(cls, rollouts: Sequence[Rollout]) -> SuccessEstimate:
        """The Monte-Carlo estimate: the fraction of `rollouts` that succeeded."""
        if not rollouts:
            raise InvalidEstimateError("no rollouts to estimate from: sample at least one")
        wins = sum(r.success for r in rollouts)
        return cls(wins / len(rollouts), tuple(rollouts))


SuccessProbability = Callable[[Prefix], float | SuccessEstimate]


@dataclass(frozen=True)
class PivotalToken:
    """Token `tokens[index]` moves p(success) from `p_before` (prefix tokens[:index]) to `p_after`."""

    index: int
    token: int
    p_before: float
    p_after: float

    @property
    def delta(self) -> float:
        """p_after - p_before: positive for a token that helps, negative for one that hurts."""
        return self.p_after - self.p_before


@dataclass(frozen=True)
class PTSResult:
    """The pivotal tokens in order of position, and the estimates spent finding them.

    `estimates` maps every prefix that was estimated (a tuple of token ids) to its estimate, so the
    rollouts behind p_before of each pivotal token are at hand for building pairs.
    """

    pivotal_tokens: tuple[PivotalToken, ...]
    num_estimates: int
    estimates: Mapping[Prefix, SuccessEstimate] = field(repr=False)


def in_success_band(p: float, low: float = SUCCESS_BAND[0], high: float = SUCCESS_BAND[1]) -> bool:
    """Whether a query with p(success) = p is worth searching: low <= p <= high.

    Queries the model always or never solves have no token that moves p by a large gap.
    """
    return low <= p <= high


class _MemoisedEstimates:
    """Calls the estimator once per distinct prefix and validates what it returns."""

    def __init__(self, tokens: Sequence[int], success_probability: SuccessProbability):
        self._tokens = tuple(int(t) for t in tokens)
        self._estimate = success_probability
        self.by_prefix: dict[Prefix, SuccessEstimate] = {}

    def __call__(self, length: int) -> float:
        """p(success | tokens[:length])."""
        prefix = self._tokens[:length]
        if prefix not in self.by_prefix:
            self.by_prefix[prefix] = _as_estimate(self._estimate(prefix), prefix)
        return self.by_prefix[prefix].probability


def _as_estimate(value: float | SuccessEstimate, prefix: Prefix) -> SuccessEstimate:
    estimate = value if isinstance(value, SuccessEstimate) else SuccessEstimate(value)
    try:
        p = float(estimate.probability)  # also numpy and jax scalars
    except (TypeError, ValueError):
        p = math.nan
    if not 0.0 <= p <= 1.0:
        raise InvalidEstimateError(
            f"success_probability returned {p!r} for a prefix of {len(prefix)} tokens; "
            "it must return a probability in [0, 1] (or a SuccessEstimate holding one)"
        )
    return SuccessEstimate(p, tuple(estimate.rollouts))


def _split_points(tokens: Sequence[int], logprobs: Sequence[float] | None) -> Callable[[int, int], int]:
    """A function (start, end) -> mid with start < mid < end, for segments of 2 or more tokens.

    With log-probabilities, mid is where the segment's cumulative log-probability is halved: the
    surprising (low-probability) tokens, where pivotal tokens tend to sit, are isolated in fewer
    splits. Without them, or for a segment of certain tokens, mid halves the token count.
    """
    if logprobs is None:
        return lambda start, end: (start + end) // 2
    surprisal = _cumulative_surprisal(tokens, logprobs)

    def split(start: int, end: int) -> int:
        total = surprisal[end] - surprisal[start]
        if total <= 0.0:
            return (start + end) // 2
        half = surprisal[start] + total / 2
        mid = bisect.bisect_left(surprisal, half, start + 1, end)  # first i with surprisal[i] >= half
        return min(mid, end - 1)

    return split


def _cumulative_surprisal(tokens: Sequence[int], logprobs: Sequence[float]) -> list[float]:
    """[n + 1] running sum of -log p(token) from the start of the completion."""
    if len(logprobs) != len(tokens):
        raise ValueError(
            f"logprobs has {len(logprobs)} entries for {len(tokens)} tokens; "
            "pass one log-probability per completion token (or None)"
        )
    sums = [0.0]
    for lp in logprobs:
        lp = float(lp)
        if not (math.isfinite(lp) and lp <= 1e-6):
            raise ValueError(
                f"logprob {lp!r} is not a finite log-probability <= 0; "
                "pass log p(token | prefix), e.g. log_softmax(logits)[token]"
            )
        sums.append(sums[-1] - min(lp, 0.0))
    return sums


def _subdivide(
    n: int, p: Callable[[int], float], split: Callable[[int, int], int], p_gap: float
) -> list[tuple[int, int]]:
    """The report's Subdivide over token positions: segments [start, end) covering [0, n) in order.

    A segment is kept whole when it is one token or p barely changes across it; else it is split
    and both halves are searched. An explicit stack keeps deep log-prob splits off the call stack.
    """
    segments: list[tuple[int, int]] = []
    stack = [(0, n)]
    while stack:
        start, end = stack.pop()
        if end - start <= 1 or abs(p(start) - p(end)) < p_gap:
            segments.append((start, end))
            continue
        mid = split(start, end)
        stack.append((mid, end))  # pushed first so the left half is searched first
        stack.append((start, mid))
    return segments


def pivotal_token_search(
    tokens: Sequence[int],
    success_probability: SuccessProbability,
    p_gap: float = 0.2,
    logprobs: Sequence[float] | None = None,
) -> PTSResult:
    """Find the tokens t_i of a completion with |p(t_1..t_i) - p(t_1..t_{i-1})| >= p_gap.

    tokens: [n] token ids of one sampled completion (the query is bound into the estimator).
    success_probability: prefix (tuple of ids, possibly empty) -> p(success | query, prefix), a
        float or a `SuccessEstimate`; called once per distinct prefix.
    p_gap: the smallest change of p that makes a token pivotal.
    logprobs: [n] optional log p(t_i | query, t_1..t_{i-1}); segments are then split where their
        cumulative log-probability is halved instead of at their middle token.
    Finds only true pivotal tokens, and all of them when p is monotone along the completion; a rise
    and fall inside one segment cancels out and is missed (docs/pts.md).
    """
    if not 0.0 < p_gap <= 1.0:
        raise ValueError(f"p_gap={p_gap!r} must be in (0, 1]; the report's default is 0.2")
    tokens = tuple(int(t) for t in tokens)
    p = _MemoisedEstimates(tokens, success_probability)
    pivotal = []
    for start, end in _subdivide(len(tokens), p, _split_points(tokens, logprobs), p_gap):
        if end - start == 1 and abs(p(start) - p(end)) >= p_gap:
            pivotal.append(PivotalToken(start, tokens[start], p(start), p(end)))
    return PTSResult(tuple(pivotal), len(p.by_prefix), dict(p.by_prefix))


@dataclass(frozen=True)
class TokenPair:
    """One single-token DPO pair: after `prefix`, prefer token `chosen` over token `rejected`.

    p_chosen / p_rejected are the estimated p(success) after each token; `pivotal_index` is the
    position of the pivotal token in the completion (len(prefix)).
    """

    prefix: Prefix
    chosen: int
    rejected: int
    p_before: float
    p_chosen: float
    p_rejected: float

    @property
    def pivotal_index(self) -> int:
        return len(self.prefix)


def alternative_token(
    pivot: PivotalToken, rollouts: Sequence[Rollout], prior_strength: float = 1.0
) -> tuple[int, float] | None:
    """The first token, other than the pivot's, that moves p the opposite way; with its p estimate.

    For a pivot that raises p the alternative must lower it (its rollouts succeed less often than
    p_before), and vice versa. Among such tokens the one with the most extreme success rate wins,
    the rate shrunk towards p_before by `prior_strength` pseudo-rollouts so that a token seen once
    does not beat one seen ten times (ties: more rollouts, then smaller id). None when no rollout
    from this prefix went the other way.
    """
    counts: Counter[int] = Counter()
    wins: Counter[int] = Counter()
    for r in rollouts:
        if r.first_token != pivot.token and r.first_token >= 0:  # < 0: the rollout ended at once
            counts[r.first_token] += 1
            wins[r.first_token] += int(r.success)
    sign = 1.0 if pivot.delta > 0 else -1.0  # the alternative should move p by -sign

    def shrunk_rate(token: int) -> float:
        return (wins[token] + prior_strength * pivot.p_before) / (counts[token] + prior_strength)

    candidates = [t for t in counts if sign * (wins[t] / counts[t] - pivot.p_before) < 0]
    if not candidates:
        return None
    best = min(candidates, key=lambda t: (sign * shrunk_rate(t), -counts[t], t))
    return best, wins[best] / counts[best]


def token_pairs(tokens: Sequence[int], result: PTSResult, prior_strength: float = 1.0) -> list[TokenPair]:
    """One DPO pair per pivotal token with an alternative among the rollouts of its prefix.

    The pivotal token is chosen when it raises p and rejected when it lowers it; the other side is
    `alternative_token` over the rollouts the estimator returned for tokens[:index]. Pivots whose
    prefix has no rollouts (float estimators) or no rollout going the other way give no pair.
    """
    tokens = tuple(int(t) for t in tokens)
    pairs = []
    for pivot in result.pivotal_tokens:
        prefix = tokens[: pivot.index]
        estimate = result.estimates.get(prefix)
        found = alternative_token(pivot, estimate.rollouts, prior_strength) if estimate else None
        if found is None:
            continue
        other, p_other = found
        if pivot.delta > 0:
            pairs.append(TokenPair(prefix, pivot.token, other, pivot.p_before, pivot.p_after, p_other))
        else:
            pairs.append(TokenPair(prefix, other, pivot.token, pivot.p_before, p_other, pivot.p_after))
    return pairs


def pair_record(pair: TokenPair, query_ids: Sequence[int], decode: Callable[[Sequence[int]], str]) -> dict[str, object]:
    """One JSON-serialisable line of PTS DPO data for `pair` found in a completion of `query_ids`.

    prompt = query + prefix, as ids and text; chosen / rejected are single tokens, as ids and text
    (ids are authoritative: one token alone may decode to part of a character).
    """
    prompt_ids = [int(t) for t in query_ids] + list(pair.prefix)
    return {
        "prompt_ids": prompt_ids,
        "prompt": decode(prompt_ids),
        "chosen_id": pair.chosen,
        "chosen": decode([pair.chosen]),
        "rejected_id": pair.rejected,
        "rejected": decode([pair.rejected]),
        "pivotal_index": pair.pivotal_index,
        "p_before": pair.p_before,
        "p_chosen": pair.p_chosen,
        "p_rejected": pair.p_rejected,
    }
