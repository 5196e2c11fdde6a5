"""Log-likelihoods of continuations, many requests per forward pass.

    (context ids, continuation ids) ─► inputs ids[:-1], targets ids[1:] (left-truncated to max_seq_len)
        ─► a request whose inputs begin another's is scored in that one's segment (`shared_hosts`)
        ─► pack the segments into rows of `row_len` slots (first fit, longest first; segment ids
            1, 2, ... per segment, positions restart at 0 per segment) ─► passes of `rows_per_pass` rows
        ─► one forward pass each: hidden states of every slot, gathered at the scored entries (a slot
            and a target per continuation token) ─► LM head there: log p(target), is-argmax
        ─► sums per request (host)

Packing is exact: segment ids keep requests from attending to each other and positions restart per
request, so a request's scores do not depend on what shares its row (up to float rounding).

The LM head runs only at scored slots. A multiple-choice continuation is a few tokens of a row of 256
or more, and with a 100k vocabulary the head is most of a small model's FLOPs (phi4-100m: 100 of 141
MFLOP per token), so heading every slot made packed scoring slower than lm-eval's `hf` backend. The
gathered [rows, entries, embed] states go through the head in chunks so that at most
`HEAD_BUDGET` fp32 logits are live at once.

A request's inputs that begin another's are not laid out again: causal attention makes the longer
segment's hidden states at those slots the same, so the request only adds scored entries there.

One program is compiled per (rows, row_len, entries per row) shape, all powers of two (rows also a
multiple of the devices the `batch` rule shards over), so a run compiles a handful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from phijax.inference.cache import bucket_length
from phijax.inference.programs import constrain, divisible_sharding, model_mesh, padded_batch, rows_sharded
from phijax.inference.sampling import GenerationError
from phijax.model.phi4 import Phi4
from phijax.parallel.config import DEFAULT_RULES

PACK_LEN = 256  # shortest packed row: room for several multiple-choice requests
ROWS_PER_PASS = 16
HEAD_BUDGET = 1 << 25  # fp32 logits live at once in the LM head: rows * chunk * vocab (128 MiB)


@dataclass(frozen=True)
class Scored:
    """One request laid out for scoring: inputs [n] and targets [n]; the last `scored` targets are the
    continuation."""

    inputs: tuple[int, ...]
    targets: tuple[int, ...]
    scored: int


def scored_request(context: Sequence[int], continuation: Sequence[int], max_seq_len: int) -> Scored:
    """Inputs and targets of one request, the context cut from the left to fit `max_seq_len` (lm-eval)."""
    context, continuation = [int(t) for t in context], [int(t) for t in continuation]
    if not context or not continuation:
        raise GenerationError(
            "a log-likelihood request needs a non-empty context and continuation: condition an "
            "empty context on the end-of-text token"
        )
    if len(continuation) > max_seq_len:
        raise GenerationError(
            f"continuation of {len(continuation)} tokens exceeds the model's max_seq_len {max_seq_len}: shorten it"
        )
    ids = (context + continuation)[-(max_seq_len + 1) :]
    return Scored(tuple(ids[:-1]), tuple(ids[1:]), len(continuation))


def shared_hosts(requests: Sequence[Scored]) -> list[int]:
    """For each request, the request whose segment scores it: itself, or one whose inputs begin with all
    of its own inputs (causal attention: a slot's hidden state depends on the tokens up to it only).

    Multiple choice sends one context with several continuations; with one-token continuations their
    inputs are all the context, so a question costs one segment instead of one per choice (lm-eval's
    `hf` backend shares exactly that case). In lexicographic order, the sequences that start with A
    follow A directly, so one backward walk over the sorted inputs finds every host.
    """
    order = sorted(range(len(requests)), key=lambda i: requests[i].inputs)
    host = list(range(len(requests)))
    for here, after in zip(reversed(order[:-1]), reversed(order[1:])):
        inputs, longer = requests[here].inputs, requests[after].inputs
        if longer[: len(inputs)] == inputs:
            host[here] = host[after]
    return host


def pack(requests: Sequence[Scored], row_len: int, members: Sequence[int] | None = None) -> list[list[int]]:
    """Indices of `members` (default: all requests) per row: first fit, longest first; every request fits
    (len(inputs) <= row_len)."""
    rows: list[list[int]] = []
    room: list[int] = []
    members = range(len(requests)) if members is None else members
    for index in sorted(members, key=lambda i: -len(requests[i].inputs)):
        size = len(requests[index].inputs)
        row = next((r for r, free in enumerate(room) if free >= size), None)
        if row is None:
            rows.append([])
            room.append(row_len)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= size
    return rows


DTYPES = (np.int64, np.int32, np.int32, np.int64)  # row, slot, target, owner of scored entries


@dataclass
class PackedRows:
    """Rows of segments: tokens, positions, segment_ids [rows, row_len] (segment 0: padding); and the
    scored entries, one per continuation token, flat [entries]: `row`, `slot` (whose hidden state
    predicts it), `target` (the token id) and `owner` (the request). Requests sharing a segment have
    entries at the same slots with their own targets."""

    tokens: np.ndarray
    positions: np.ndarray
    segment_ids: np.ndarray
    row: np.ndarray
    slot: np.ndarray
    target: np.ndarray
    owner: np.ndarray

    def entries(self, begin: int, count: int, widths: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """Rows begin..begin+count as the program takes them: `at` [count, slots], the distinct scored
        slots of each row; `pick` [count, entries], which of them each entry reads; `target` and `owner`
        [count, entries]. Unused places: slot 0, pick 0, owner -1 (computed, then dropped)."""
        slots, width = widths
        at, pick = np.zeros((count, slots), np.int32), np.zeros((count, width), np.int32)
        target, owner = np.zeros((count, width), np.int32), np.full((count, width), -1, np.int64)
        for r in range(count):
            (mine,) = np.nonzero(self.row == begin + r)
            distinct, index = np.unique(self.slot[mine], return_inverse=True)
            at[r, : len(distinct)], pick[r, : len(mine)] = distinct, index
            target[r, : len(mine)], owner[r, : len(mine)] = self.target[mine], self.owner[mine]
        return at, pick, target, owner

    def widths(self) -> tuple[int, int]:
        """The most distinct scored slots and the most entries of any row, each rounded up to a power of
        two (>= 16: few program shapes)."""
        distinct = np.unique(np.stack([self.row, self.slot]), axis=1)[0]
        return bucket_length(int(np.bincount(distinct).max())), bucket_length(int(np.bincount(self.row).max()))


def layout(
    requests: Sequence[Scored],
    rows: Sequence[Sequence[int]],
    row_len: int,
    pad_id: int,
    hosts: Sequence[int] | None = None,
) -> PackedRows:
    """The arrays of `rows` (request indices per row, from `pack`), every request scored in the segment
    of `hosts[i]` (default: its own; from `shared_hosts`)."""
    shape = (len(rows), row_len)
    tokens, positions, segment_ids = (
        np.full(shape, pad_id, np.int32),
        np.zeros(shape, np.int32),
        np.zeros(shape, np.int32),
    )
    placed: dict[int, tuple[int, int]] = {}  # host -> (row, first slot)
    for r, members in enumerate(rows):
        start = 0
        for segment, index in enumerate(members, 1):
            end = start + len(requests[index].inputs)
            tokens[r, start:end] = requests[index].inputs
            positions[r, start:end] = np.arange(end - start)
            segment_ids[r, start:end] = segment
            placed[index] = (r, start)
            start = end
    entries: list[tuple[int, int, int, int]] = []
    for index, host in ((i, i) for i in placed) if hosts is None else enumerate(hosts):
        if host not in placed:
            continue
        request, (r, start) = requests[index], placed[host]
        end = start + len(request.inputs)
        for slot, target in zip(range(end - request.scored, end), request.targets[-request.scored :]):
            entries.append((r, slot, target, index))
    row, slot, target, owner = (np.asarray(column, dtype) for column, dtype in zip(zip(*entries), DTYPES))
    return PackedRows(tokens, positions, segment_ids, row, slot, target, owner)


def score(
    model: Phi4,
    requests: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    packed: bool = True,
    rows_per_pass: int = ROWS_PER_PASS,
    mesh: Mesh | None = None,
    rules: dict[str, Any] | None = None,
) -> list[tuple[float, bool]]:
    """(sum of log p(continuation | context) in nats, is_greedy) per `(context_ids, continuation_ids)`.

    packed: many requests per row and `rows_per_pass` rows per forward pass; False scores one request
    per pass (the reference the packed path must equal, and the baseline of tools/bench_loglikelihood.py).
    """
    scored = [scored_request(c, x, model.cfg.max_seq_len) for c, x in requests]
    if not scored:
        return []
    mesh, rules = mesh or model_mesh(model), rules or DEFAULT_RULES
    sums, greedy = np.zeros(len(scored)), np.ones(len(scored), bool)
    graphdef, state = nnx.split(model)
    for rows, row_len, per_pass, hosts in _passes(scored, packed, rows_per_pass, model.cfg.max_seq_len):
        packed_rows = layout(scored, rows, row_len, model.cfg.pad_token_id, hosts)
        widths, batch = packed_rows.widths(), padded_batch(per_pass, mesh, rules)
        sharding = None if mesh is None else divisible_sharding(mesh, rules, ("batch", "length"), (batch, row_len))
        for begin in range(0, len(rows), per_pass):
            count = min(per_pass, len(rows) - begin)
            arrays = (packed_rows.tokens, packed_rows.positions, packed_rows.segment_ids)
            *entries, owner = (_padded(a, batch) for a in packed_rows.entries(begin, count, widths))
            inputs = [_padded(a[begin : begin + count], batch) for a in arrays] + entries
            logprob, is_argmax = _score_program(graphdef, state, *map(jnp.asarray, inputs), sharding=sharding)
            _accumulate(owner, np.asarray(logprob), np.asarray(is_argmax), sums, greedy)
    return [(float(s), bool(g)) for s, g in zip(sums, greedy)]


def _passes(scored: Sequence[Scored], packed: bool, rows_per_pass: int, max_seq_len: int):
    """(rows, row_len, rows per pass, hosts) groups: all rows at once when packed (prefixes shared, rows
    as short as the requests allow: up to PACK_LEN, or the longest request), else one request each."""
    if not packed:
        for i, request in enumerate(scored):
            yield [[i]], bucket_length(len(request.inputs)), 1, None
        return
    hosts = shared_hosts(scored)
    segments = [i for i, host in enumerate(hosts) if host == i]
    longest, total = max(len(scored[i].inputs) for i in segments), sum(len(scored[i].inputs) for i in segments)
    row_len = max(bucket_length(longest), min(PACK_LEN, bucket_length(total), bucket_length(max_seq_len)))
    rows = pack(scored, row_len, segments)
    per_pass = min(rows_per_pass, 1 << (len(rows) - 1).bit_length())  # a power of two: few shapes
    yield rows, row_len, per_pass, hosts


def _padded(array: np.ndarray, batch: int) -> np.ndarray:
    """`array` [rows, ...] filled up to `batch` rows: padding (token 0, segment 0, slot 0) whose owner is
    -1 (int64 owners), so nothing computed from it is kept."""
    fill = -1 if array.dtype == np.int64 else 0
    return np.concatenate([array, np.full((batch - len(array), *array.shape[1:]), fill, array.dtype)])


def _accumulate(
    owner: np.ndarray, logprob: np.ndarray, is_argmax: np.ndarray, sums: np.ndarray, greedy: np.ndarray
) -> None:
    """Add each scored slot's log-probability to its request; a non-argmax slot clears is_greedy."""
    slots = owner >= 0
    np.add.at(sums, owner[slots], logprob[slots].astype(np.float64))
    np.logical_and.at(greedy, owner[slots], is_argmax[slots])


@partial(jax.jit, static_argnames=("graphdef", "sharding"))
def _score_program(
    graphdef, state, tokens, positions, segment_ids, at, pick, targets, *, sharding: NamedSharding | None
) -> tuple[jax.Array, jax.Array]:
    """log p(target) fp32 and whether it is the argmax, both [rows, entries], for rows of tokens, positions,
    segment_ids [rows, row_len]; entry e reads slot at[pick[e]] (at: [rows, slots], pick: [rows, entries]).

    The full head runs once per distinct slot (its logsumexp and argmax); a target's own logit is the
    dot product of the slot's hidden state with the target's LM-head column, so choices read at one
    slot cost one head, not one each.
    """
    model = nnx.merge(graphdef, state)
    tokens, positions, segment_ids = (constrain(x, sharding) for x in (tokens, positions, segment_ids))
    with rows_sharded(sharding):
        hidden = model.hidden_states(tokens, positions, segment_ids)  # [rows, row_len, embed]
    hidden = jnp.take_along_axis(hidden, at[..., None], axis=1)  # [rows, slots, embed]: only what is scored
    rows, slots, _ = hidden.shape
    chunk = _head_chunk(rows, slots, model.cfg.vocab_size)

    def head(h: jax.Array) -> tuple[jax.Array, jax.Array]:  # [rows, chunk, embed] -> 2 x [rows, chunk]
        logits = model.logits(h)
        return jax.nn.logsumexp(logits, axis=-1), jnp.argmax(logits, axis=-1)

    normaliser, argmax = jax.lax.map(head, jnp.moveaxis(hidden.reshape(rows, slots // chunk, chunk, -1), 1, 0))
    normaliser, argmax = (jnp.moveaxis(x, 0, 1).reshape(rows, slots) for x in (normaliser, argmax))
    read = jnp.take_along_axis(hidden, pick[..., None], axis=1)  # [rows, entries, embed]
    columns = jnp.moveaxis(model.lm_head[...].astype(read.dtype)[:, targets], 0, -1)  # [rows, entries, embed]
    picked = jnp.einsum("red,red->re", read, columns, preferred_element_type=jnp.float32)
    logprob = picked - jnp.take_along_axis(normaliser, pick, axis=1)
    return logprob, jnp.take_along_axis(argmax, pick, axis=1) == targets


def _head_chunk(rows: int, slots: int, vocab: int) -> int:
    """The longest power-of-two chunk of a row's slots (dividing `slots`) whose logits fit `HEAD_BUDGET`."""
    chunk = slots
    while chunk > 1 and rows * chunk * vocab > HEAD_BUDGET:
        chunk //= 2
    return chunk
