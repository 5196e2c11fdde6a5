"""Pivotal Token Search (PHI4.md § Post-training): find the tokens that swing p(success).

- `search`: the estimator-agnostic recursive subdivision and the single-token pair rule (pure).
- `pairs`: the loop from problems to DPO pairs over a policy, an estimator and a verifier.
- `driver`: `phijax pts --config FILE`: reads problems, runs the loop, writes pairs + a summary.
"""

from phijax.pts.search import (
    Prefix,
    SuccessProbability,
    InvalidEstimateError,
    Rollout,
    SuccessEstimate,
    PivotalToken,
    PTSResult,
    in_success_band,
    pivotal_token_search,
    TokenPair,
    alternative_token,
    token_pairs,
    pair_record,
    SUCCESS_BAND,
)

__all__ = [
    "SuccessProbability",
    "Prefix",
    "InvalidEstimateError",
    "Rollout",
    "SuccessEstimate",
    "PivotalToken",
    "PTSResult",
    "in_success_band",
    "pivotal_token_search",
    "TokenPair",
    "alternative_token",
    "token_pairs",
    "pair_record",
    "SUCCESS_BAND",
]
