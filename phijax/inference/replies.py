"""Replies of a policy to the prompts of a `GenerateJob` (`phijax generate`): chat-formatted or raw,
from a token-level policy (one prefill per prompt, top_k allowed) or a text-level one (`generate`)."""

from __future__ import annotations

from typing import Any

from phijax.errors import PhijaxError
from phijax.inference.config import GenerateJob
from phijax.inference.policy import cut_at_stop
from phijax.plugins.protocols import TOKENS


def sample_replies(policy: Any, job: GenerateJob) -> list[list[str]]:
    """`job.num_samples` replies to each prompt of `job` (a `GenerateJob`): result[i][j], sample j of prompt i.

    A token-level policy samples each prompt's replies from one prefill (top_k included); a text-level one
    (an OpenAI-compatible server) gets the prompts through `generate`, which has no top_k.
    """
    if TOKENS in policy.capabilities:
        return [
            [cut_at_stop(policy.decode(row), job.stop) for row in _complete(policy, p, job)] for p in job.all_prompts
        ]
    if job.top_k:
        raise PhijaxError(
            f"top_k needs token-level access, which policy.backend {job.policy.backend} lacks: set top_k=0"
        )
    return policy.generate(
        list(job.all_prompts),
        max_new_tokens=job.max_new_tokens,
        temperature=job.temperature,
        top_p=job.top_p,
        num_samples=job.num_samples,
        stop=job.stop,
        seed=job.seed,
        chat=not job.raw,
    )


def _complete(policy: Any, prompt: str, job: GenerateJob) -> list[list[int]]:
    """The token ids of `job.num_samples` continuations of one prompt, chat-formatted unless `job.raw`."""
    if job.raw:  # a pretrained model: the text as is, ended by <|endoftext|> as well as <|im_end|>
        prompt_ids = [policy.eot_token_id, *policy.encode(prompt)]
        stop = {"stop_tokens": tuple(sorted({*policy.stop_tokens, policy.eot_token_id}))}
    else:
        prompt_ids, stop = policy.chat_prompt([{"role": "user", "content": prompt}]), {}
    return policy.complete(
        prompt_ids,
        num_samples=job.num_samples,
        max_new_tokens=job.max_new_tokens,
        temperature=job.temperature,
        top_p=job.top_p,
        seed=job.seed,
        **stop,
        **({"top_k": job.top_k} if job.top_k else {}),
    )
