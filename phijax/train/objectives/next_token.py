"""Next-token objectives: pretraining, long-context midtraining and supervised fine-tuning.

All three train the summed next-token cross-entropy over the batch's `loss_mask`, weighted by the
trained tokens, on packed rows from `phijax.data.pipeline`; they differ only in what their configs
must hold:

- pretrain: data sources and a sequence length the model can hold.
- midtrain (docs/phi4-recipe.md § Midtraining: 16K context, RoPE base 250,000, lr / 10): must start
  from a pretraining checkpoint (`checkpoint.init_from`).
- sft (§ Post-training: ~8B chat tokens at lr 1e-6): chat data, whose `loss_mask` marks assistant
  content and its closing `<|im_end|>` (`Tokenizer.format_chat`), so system and user tokens, chat
  markup and padding carry no loss; `data.packing: pad` keeps a conversation in one row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from phijax.data.config import SourceSpec
from phijax.errors import ConfigError
from phijax.model.phi4 import Phi4
from phijax.train.config import TrainJob
from phijax.train.losses import next_token_loss
from phijax.train.objectives import Batch, global_arrays
from phijax.train.state import StateLayout

log = logging.getLogger(__name__)

# input_ids, targets, positions, loss_mask and optionally segment_ids: [batch, seq]. Without
# segment_ids every row is one document and attention is causal only (no document mask), the form
# cuDNN's flash attention runs fastest.
MODEL_INPUTS = ("input_ids", "targets", "positions", "segment_ids", "loss_mask")


class NextToken:
    """Mean next-token cross-entropy over every trained token of the global batch."""

    weight_name = "trained_tokens"
    progress: dict[str, str] = {}

    def __init__(self, job: TrainJob | None = None, *, loss_chunk: int = 1024):
        self.loss_chunk = job.train.loss_chunk if job is not None else loss_chunk

    @classmethod
    def validate(cls, job: TrainJob) -> None:
        """Next-token training needs data sources."""
        if not job.data.sources:
            raise ConfigError(
                "data.sources is empty: name at least one source, e.g. data.sources=[{name: c, source: curriculum}]"
            )

    def batches(self, job: TrainJob, sharding: NamedSharding) -> Iterator[Batch]:
        """Packed rows of the data mixture (`phijax.data.pipeline`), this process's share."""
        from phijax.data.pipeline import build_batches  # late: the data stack is heavy

        return build_batches(job, jax.process_index(), jax.process_count())

    def prepare(self, layout: StateLayout, sharding: NamedSharding, initial: Callable[[], Any]) -> None:
        return None

    def extra_shardings(self, layout: StateLayout) -> None:
        return None

    def global_batch(self, local: Batch, sharding: NamedSharding) -> dict[str, jax.Array]:
        return global_arrays(local, sharding, MODEL_INPUTS)

    def examples(self, batch: Batch) -> int:
        return batch["input_ids"].shape[0]

    def loss(self, model: Phi4, micro: Batch, extra: None) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        """(summed -log p(target) over `loss_mask`, trained tokens, {}) of [rows, seq] micro-batch rows."""
        hidden = model.hidden_states(micro["input_ids"], micro["positions"], micro.get("segment_ids"))
        loss_sum, tokens = next_token_loss(
            hidden, model.lm_head[...], micro["targets"], micro["loss_mask"], self.loss_chunk
        )
        return loss_sum, tokens, {}

    def tokens(self, local: Batch) -> int:
        return int(np.size(local["input_ids"])) * jax.process_count()

    def meta(self) -> dict[str, Any]:
        return {}


class Pretrain(NextToken):
    """Pretraining: the packed data mixture, from a fresh initialisation or `init_from`."""


class Midtrain(NextToken):
    """Long-context midtraining: continues a pretraining checkpoint."""

    @classmethod
    def validate(cls, job: TrainJob) -> None:
        """Midtraining must name the pretraining checkpoint it continues."""
        super().validate(job)
        if not job.checkpoint.init_from:
            raise ConfigError(
                "midtraining starts from pretraining: set checkpoint.init_from=RUN_DIR (or a checkpoint step)"
            )
        if job.model.rope_theta < 250_000:
            log.warning("midtraining with rope_theta %s; phi-4 raised the RoPE base to 250,000", job.model.rope_theta)


class SFT(NextToken):
    """Supervised fine-tuning on chat data: the loss falls on assistant turns only."""

    @classmethod
    def validate(cls, job: TrainJob) -> None:
        """SFT needs chat data; it should start from a checkpoint and pack without cutting."""
        super().validate(job)
        for spec in job.data.sources:
            _check_chat_source(spec)
        if not job.checkpoint.init_from:
            log.warning(
                "SFT from a random initialisation: set checkpoint.init_from=RUN_DIR to fine-tune a trained model"
            )
        if job.data.packing != "pad":
            log.warning(
                "SFT with data.packing=%s cuts conversations at row ends; data.packing=pad keeps them whole",
                job.data.packing,
            )


def _check_chat_source(spec: SourceSpec) -> None:
    """Sources whose options show they yield plain text are refused (SFT trains on assistant turns)."""
    if spec.source == "curriculum" and spec.options.get("format", "text") != "chat":
        raise ConfigError(
            f"data.sources entry `{spec.name}` is the curriculum in text format; SFT needs chat: add `format: chat`"
        )
    if spec.source in ("jsonl", "parquet") and spec.options.get("text_field", "text") == "text":
        log.warning(
            "data.sources entry `%s` reads field `text`; SFT trains only on chat records "
            "(a `messages` list): set text_field: messages if that is where they are",
            spec.name,
        )
