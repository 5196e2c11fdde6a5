"""Preference pairs for DPO: JSONL records → token ids → static-shape rows for the train step.

One JSON object per line. Each of prompt, chosen and rejected may be given as ids or as text; ids
win when both are present (one token alone may decode to part of a character):

- prompt: `prompt_ids` (token ids of the already templated prompt), or `prompt` as a string (a
  user turn, formatted with the chat template and the assistant generation prompt) or as a list of
  chat messages (formatted the same way).
- chosen / rejected: `chosen_id` (one token, as Pivotal Token Search writes, see
  `phijax.pts.pair_record`), `chosen_ids` (a list), or `chosen` as text (the assistant's answer; the
  closing `<|im_end|>` is appended, as in SFT).

A pair becomes rows of `seq_len` positions: inputs `(prompt + completion)[:-1]`, targets shifted by
one, and a mask that is 1 on completion targets only. Whole-response pairs take two rows per pair,
chosen then rejected (rows 2i, 2i+1). When every pair is single-token (PTS), chosen and rejected
share their inputs, so a pair takes one row and only the two target rows differ: half the compute.
Prompts too long for a row lose tokens from the left; completions then lose them from the right.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grain
import numpy as np

from phijax.data.records import DataError, LineIndex, expand_paths
from phijax.data.tokenizer import Tokenizer

PAIR_INPUTS = ("input_ids", "positions", "segment_ids")  # [rows, seq]: rows = pairs, or 2 x pairs
PAIR_TARGETS = ("targets", "loss_mask")  # [2 x pairs, seq], chosen and rejected interleaved


@dataclass(frozen=True)
class PreferencePair:
    """One pair as token ids: p(chosen | prompt) should rise over p(rejected | prompt)."""

    prompt: tuple[int, ...]
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]

    @property
    def single_token(self) -> bool:
        return len(self.chosen) == 1 and len(self.rejected) == 1


class PreferencePairs:
    """Random access to the pairs of JSONL files: `pairs[i]` → `PreferencePair`.

    Every line is parsed and checked when the files are opened, so a bad file fails at start-up
    with its `file:line`; afterwards lines are re-read (and text tokenized) only when used, holding
    16 bytes a pair in memory.
    """

    def __init__(self, paths: Sequence[str] | str, tokenizer: Tokenizer, vocab_size: int):
        self.tokenizer, self.vocab_size = tokenizer, vocab_size
        self._lines = LineIndex(pair_files(paths))
        if not len(self._lines):
            raise DataError(
                f"dpo.pairs {paths!r} hold no pairs: if `phijax pts` wrote them, its summary (<stem>.summary.json) "
                "says why it found none (no query in the success band, or no pivotal token); else write one JSON "
                "object per line"
            )
        self.single_token = all(self._check(i) for i in range(len(self._lines)))

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: int) -> PreferencePair:
        record, where = self._record(index)
        return PreferencePair(
            self._prompt(record, where),
            self._completion(record, "chosen", where),
            self._completion(record, "rejected", where),
        )

    def _record(self, index: int) -> tuple[dict[str, Any], str]:
        line, where = self._lines.line(index)
        try:
            record = json.loads(line)
        except ValueError as err:
            raise DataError(
                f"{where}: not valid JSON ({err.args[0].split(':')[0]}); write one object per line"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{where}: expected a JSON object with prompt, chosen and rejected, got {type(record).__name__}"
            )
        return record, where

    def _check(self, index: int) -> bool:
        """Validate line `index` without tokenizing text; True when both completions are one token id."""
        record, where = self._record(index)
        if not any(k in record for k in ("prompt_ids", "prompt")):
            raise DataError(f"{where}: pair has no `prompt` or `prompt_ids`; add the prompt")
        if "prompt_ids" in record:
            _ids(record["prompt_ids"], "prompt_ids", where, self.vocab_size)
        else:
            _prompt_text(record["prompt"], where)
        single = True
        for side in ("chosen", "rejected"):
            kind = _completion_kind(record, side, where)
            if kind == "id":
                _ids([record[f"{side}_id"]], f"{side}_id", where, self.vocab_size)
            elif kind == "ids":
                _ids(record[f"{side}_ids"], f"{side}_ids", where, self.vocab_size, allow_empty=False)
            single = single and kind == "id"
        return single

    def _prompt(self, record: dict[str, Any], where: str) -> tuple[int, ...]:
        if "prompt_ids" in record:
            return tuple(int(t) for t in record["prompt_ids"])
        messages = _prompt_text(record["prompt"], where)
        ids, _ = self.tokenizer.format_chat(messages, add_generation_prompt=True)
        return tuple(ids)

    def _completion(self, record: dict[str, Any], side: str, where: str) -> tuple[int, ...]:
        kind = _completion_kind(record, side, where)
        if kind == "id":
            return (int(record[f"{side}_id"]),)
        if kind == "ids":
            return tuple(int(t) for t in record[f"{side}_ids"])
        return (*self.tokenizer.encode(record[side]), self.tokenizer.eos_id)


def pair_files(patterns: Sequence[str] | str) -> list[Path]:
    """The files `dpo.pairs` names (globs, `**` allowed, sorted per pattern); `DataError` for a pattern
    that matches nothing, so a typo fails at start-up."""
    return expand_paths(patterns, "dpo.pairs", setting="dpo.pairs", hint=", or write the pairs first (`phijax pts`)")


def _completion_kind(record: dict[str, Any], side: str, where: str) -> str:
    """Which field gives a completion: `id`, `ids` or `text`; `DataError` when none does."""
    if f"{side}_id" in record:
        return "id"
    if f"{side}_ids" in record:
        return "ids"
    if isinstance(record.get(side), str) and record[side]:
        return "text"
    if side in record:
        raise DataError(f"{where}: `{side}` must be non-empty text (or give `{side}_ids` / `{side}_id`)")
    raise DataError(f"{where}: pair has no `{side}`, `{side}_ids` or `{side}_id`; add the {side} completion")


def _ids(value: Any, field: str, where: str, vocab_size: int, allow_empty: bool = True) -> None:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise DataError(f"{where}: `{field}` must be a list of token ids (integers)")
    if not value and not allow_empty:
        raise DataError(f"{where}: `{field}` is empty; a completion needs at least one token")
    bad = [t for t in value if not 0 <= t < vocab_size]
    if bad:
        raise DataError(
            f"{where}: `{field}` holds token id {bad[0]} outside [0, {vocab_size}); use the model's tokenizer"
        )


def _prompt_text(prompt: Any, where: str) -> list[dict[str, str]]:
    """A text prompt as chat messages: a string is one user turn."""
    if isinstance(prompt, str) and prompt:
        return [{"role": "user", "content": prompt}]
    if (
        isinstance(prompt, list)
        and prompt
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt
        )
    ):
        return prompt
    raise DataError(f"{where}: `prompt` must be non-empty text or a list of {{role, content}} messages")


# ------------------------------------------------------------------------------------------- rows
def fit(prompt: Sequence[int], completion: Sequence[int], seq_len: int) -> tuple[list[int], list[int], bool]:
    """(prompt, completion) cut so that their concatenation has at most seq_len + 1 tokens.

    The prompt loses tokens from the left (keeping at least one, the context the first completion
    token is predicted from); then the completion loses tokens from the right. Also returns
    whether anything was cut.
    """
    prompt, completion = list(prompt), list(completion)
    if len(prompt) + len(completion) <= seq_len + 1:
        return prompt, completion, False
    keep = max(1, seq_len + 1 - len(completion))
    prompt = prompt[-keep:]
    return prompt, completion[: seq_len + 1 - len(prompt)], True


def sequence_row(prompt: Sequence[int], completion: Sequence[int], seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """One row `{input_ids, positions, segment_ids, targets, loss_mask}`, each int32 [seq_len].

    `prompt + completion` must already fit (see `fit`); the mask is 1 on the completion's targets.
    """
    tokens = np.asarray([*prompt, *completion], np.int32)
    n = len(tokens) - 1
    row = {
        "input_ids": np.full(seq_len, pad_id, np.int32),
        "targets": np.full(seq_len, pad_id, np.int32),
        "positions": np.zeros(seq_len, np.int32),
        "segment_ids": np.zeros(seq_len, np.int32),
        "loss_mask": np.zeros(seq_len, np.int32),
    }
    row["input_ids"][:n], row["targets"][:n] = tokens[:-1], tokens[1:]
    row["positions"][:n], row["segment_ids"][:n] = np.arange(n), 1
    row["loss_mask"][len(prompt) - 1 : n] = 1
    return row


def pair_rows(
    pairs: Sequence[PreferencePair], seq_len: int, pad_id: int, shared: bool
) -> tuple[dict[str, np.ndarray], int]:
    """Stacked rows of `pairs` (see the module docstring) and how many pairs had to be cut.

    Returns `{input_ids, positions, segment_ids}` [rows, seq] (rows = pairs when `shared`, else
    2 x pairs) and `{targets, loss_mask}` [2 x pairs, seq], chosen at 2i and rejected at 2i + 1.
    """
    rows, cut = [], 0
    for pair in pairs:
        fitted = [fit(pair.prompt, completion, seq_len) for completion in (pair.chosen, pair.rejected)]
        rows += [sequence_row(prompt, completion, seq_len, pad_id) for prompt, completion, _ in fitted]
        cut += any(was_cut for _, _, was_cut in fitted)
    batch = {k: np.stack([r[k] for r in rows]) for k in PAIR_TARGETS}
    inputs = rows[::2] if shared else rows
    batch.update({k: np.stack([r[k] for r in inputs]) for k in PAIR_INPUTS})
    return batch, cut


# ---------------------------------------------------------------------------------------- batches
class PairBatches(grain.DatasetIterator):
    """This process's share of each global batch of pairs, forever (epoch after epoch).

    The global stream is epoch e's permutation of all pair indices (seeded by `seed` and e; the
    identity order without `shuffle`), epochs concatenated; global batch k is stream positions
    [k·B, (k+1)·B) and process p of P takes its contiguous B/P of them. Each batch is `pair_rows`
    plus `pair_index` [B/P] (which pairs, to look up their reference log-probs). The state is the
    number of stream positions consumed: restoring it continues with the batch that came next.
    """

    def __init__(
        self,
        pairs: PreferencePairs,
        global_batch: int,
        seq_len: int,
        pad_id: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
    ):
        super().__init__()
        if global_batch % process_count:
            raise DataError(f"train.global_batch ({global_batch}) must split evenly over {process_count} processes")
        self.pairs, self.global_batch, self.seq_len, self.pad_id = pairs, global_batch, seq_len, pad_id
        self.seed, self.shuffle = seed, shuffle
        self.local = global_batch // process_count
        self.first = process_index * self.local
        self.consumed = 0
        self.cut = 0  # pairs cut to fit a row so far (this process)
        self._order: tuple[int, np.ndarray] | None = None

    def __next__(self) -> dict[str, np.ndarray]:
        start = self.consumed + self.first
        indices = np.asarray([self._pair_at(g) for g in range(start, start + self.local)], np.int64)
        batch, cut = pair_rows(
            [self.pairs[int(i)] for i in indices], self.seq_len, self.pad_id, shared=self.pairs.single_token
        )
        self.consumed += self.global_batch
        self.cut += cut
        batch["pair_index"] = indices
        return batch

    def _pair_at(self, position: int) -> int:
        """Pair index at global stream position `position`."""
        epoch, offset = divmod(position, len(self.pairs))
        if self._order is None or self._order[0] != epoch:
            order = np.arange(len(self.pairs))
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pairs))
            self._order = (epoch, order)
        return int(self._order[1][offset])

    def get_state(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "global_batch": self.global_batch, "pairs": len(self.pairs)}

    def set_state(self, state: dict[str, Any]) -> None:
        if (state["global_batch"], state["pairs"]) != (self.global_batch, len(self.pairs)):
            raise DataError(
                f"the checkpoint's pair iterator read {state['pairs']} pairs in global batches of "
                f"{state['global_batch']}; resume with the same dpo.pairs and train.global_batch"
            )
        self.consumed = state["consumed"]
