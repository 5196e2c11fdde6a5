"""Batched log-likelihoods: packed rows equal one request per pass and a plain full forward pass with
log_softmax; is_greedy; lm-eval's left truncation; the packing itself; the sharded model."""

import jax
import numpy as np
import pytest

from phijax.inference.loglikelihood import GenerationError, layout, pack, score, scored_request, shared_hosts

from .conftest import logits_without_cache

REFERENCE_LEN = 64


def random_requests(count: int, seed: int) -> list[tuple[list[int], list[int]]]:
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(count):
        context, continuation = rng.randint(1, 40), rng.randint(1, 12)
        out.append((rng.randint(3, 1024, context).tolist(), rng.randint(3, 1024, continuation).tolist()))
    return out


def reference(model, context: list[int], continuation: list[int]) -> tuple[float, bool]:
    """One unpacked forward pass of context + continuation, log_softmax, summed over the continuation."""
    ids = context + continuation
    logits = logits_without_cache(model, ids, REFERENCE_LEN)
    logprobs = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    picked = [logprobs[t - 1, ids[t]] for t in range(len(context), len(ids))]
    greedy = all(int(np.argmax(logits[t - 1])) == ids[t] for t in range(len(context), len(ids)))
    return float(np.sum(picked)), greedy


def test_packed_scores_equal_one_request_per_pass_and_a_plain_forward_pass(model):
    requests = random_requests(40, seed=0)
    packed = score(model, requests, rows_per_pass=2)  # several rows per pass, several passes
    alone = score(model, requests, packed=False)
    want = [reference(model, c, x) for c, x in requests]
    np.testing.assert_allclose([s for s, _ in packed], [s for s, _ in want], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose([s for s, _ in alone], [s for s, _ in want], rtol=1e-5, atol=1e-4)
    assert [g for _, g in packed] == [g for _, g in alone] == [g for _, g in want]
    assert all(s < 0 for s, _ in packed)


def test_is_greedy_holds_exactly_when_every_continuation_token_is_the_argmax(model):
    context = [7, 300, 41, 95, 12]
    ids = list(context)
    for _ in range(4):
        ids.append(int(np.argmax(logits_without_cache(model, ids, REFERENCE_LEN)[-1])))
    greedy = ids[len(context) :]
    wrong = greedy[:2] + [(greedy[2] + 1) % 1024] + greedy[3:]
    (_, first), (_, second) = score(model, [(context, greedy), (context, wrong)])
    assert first and not second


def test_a_context_too_long_is_cut_from_the_left_as_lm_eval_does(model):
    max_len = model.cfg.max_seq_len
    rng = np.random.RandomState(1)
    context, continuation = rng.randint(3, 1024, max_len + 40).tolist(), rng.randint(3, 1024, 5).tolist()
    kept = (context + continuation)[-(max_len + 1) :]
    (got, _), (want, _) = score(model, [(context, continuation), (kept[:-5], continuation)], packed=False)
    assert got == pytest.approx(want, rel=1e-6)
    assert len(scored_request(context, continuation, max_len).inputs) == max_len


def test_packing_places_every_request_once_within_its_row():
    requests = [scored_request(c, x, 1024) for c, x in random_requests(30, seed=2)]
    rows = pack(requests, 64)
    assert sorted(i for row in rows for i in row) == list(range(30))
    assert all(sum(len(requests[i].inputs) for i in row) <= 64 for row in rows)
    arrays = layout(requests, rows, 64, pad_id=2)
    for r, row in enumerate(rows):  # segments 1..k in order, positions restarting at 0, padding segment 0
        segments = arrays.segment_ids[r][arrays.segment_ids[r] > 0]
        assert sorted(set(segments.tolist())) == list(range(1, len(row) + 1))
        assert (arrays.positions[r][arrays.segment_ids[r] == 1] == np.arange(len(requests[row[0]].inputs))).all()
        for i in row:  # each continuation token scored once, at the slots ending its segment
            slots = arrays.slot[arrays.owner == i]
            assert (arrays.row[arrays.owner == i] == r).all() and len(slots) == requests[i].scored
            assert (arrays.segment_ids[r, slots] == row.index(i) + 1).all()


def test_requests_whose_inputs_begin_another_share_its_segment_and_score_the_same(model):
    context = [7, 300, 41, 95, 12, 9]
    choices = [[5], [6], [5, 8, 9], [5, 8], [40, 41]]  # one-token choices share; [5, 8] rides on [5, 8, 9]
    requests = [(context, x) for x in choices] + [(context[:3], [95])]  # a prefix of the context too
    scored = [scored_request(c, x, 1024) for c, x in requests]
    hosts = shared_hosts(scored)
    assert hosts == [2, 2, 2, 2, 4, 2]
    shared, alone = score(model, requests), score(model, requests, packed=False)
    np.testing.assert_allclose([s for s, _ in shared], [s for s, _ in alone], rtol=1e-5, atol=1e-5)
    assert [g for _, g in shared] == [g for _, g in alone]


def test_sharded_model_scores_what_the_unsharded_model_does(model, sharded_model):
    requests = random_requests(12, seed=3)
    got, want = score(sharded_model, requests), score(model, requests)
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in want], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("context, continuation", [([], [5]), ([5], [])])
def test_empty_context_or_continuation_is_a_generation_error(model, context, continuation):
    with pytest.raises(GenerationError, match="non-empty context and continuation"):
        score(model, [(context, continuation)])
