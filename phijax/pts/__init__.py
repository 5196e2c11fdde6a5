"""Pivotal Token Search (docs/phi4-recipe.md § Post-training): find the tokens that swing p(success).

- `search`: the estimator-agnostic recursive subdivision and the single-token pair rule (pure).
- `pairs`: the loop from problems to DPO pairs over a policy, an estimator and a verifier.
- `driver`: `phijax pts --config FILE`: reads problems, runs the loop, writes pairs + a summary.
"""

from phijax.pts.search import (
    SUCCESS_BAND,
    InvalidEstimateError,
    PivotalToken,
    Prefix,
    PTSResult,
    Rollout,
    SuccessEstimate,
    SuccessProbability,
    TokenPair,
    alternative_token,
    in_success_band,
    pair_record,
    pivotal_token_search,
    token_pairs,
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
