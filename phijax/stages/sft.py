"""Supervised fine-tuning: next-token loss on chat data, trained on assistant tokens only.

Phi-4 (PHI4.md § Post-training): about 8B tokens of chat in its chatml variant, learning rate 1e-6.
SFT reuses the next-token loop unchanged; what makes it SFT is the data. Each conversation is
formatted by `Tokenizer.format_chat` (`<|im_start|>{role}<|im_sep|>{content}<|im_end|>`), whose mask
marks assistant content and its closing `<|im_end|>`; the pipeline turns it into the batch's
`loss_mask`, so system and user tokens, chat markup and padding carry no loss. Packing keeps the mask
with every token, and `data.packing: pad` starts a conversation that does not fit in a new row, so a
turn is not cut from its prompt.
"""

from __future__ import annotations

import logging

from phijax.config import Config, SourceSpec
from phijax.errors import ConfigError
from phijax.stages import pretrain

log = logging.getLogger(__name__)


def validate(cfg: Config) -> None:
    """An SFT config needs chat data; it should start from a checkpoint and pack without cutting."""
    pretrain.validate(cfg)
    for spec in cfg.data.sources:
        _check_chat_source(spec)
    if not cfg.checkpoint.init_from:
        log.warning("SFT from a random initialisation: set checkpoint.init_from=RUN_DIR to fine-tune a trained model")
    if cfg.data.packing != "pad":
        log.warning("SFT with data.packing=%s cuts conversations at row ends; data.packing=pad keeps them whole",
                    cfg.data.packing)


def _check_chat_source(spec: SourceSpec) -> None:
    """Sources whose options show they yield plain text are refused (SFT trains on assistant turns)."""
    if spec.source == "curriculum" and spec.options.get("format", "text") != "chat":
        raise ConfigError(
            f"data.sources entry `{spec.name}` is the curriculum in text format; SFT needs chat: add `format: chat`"
        )
    if spec.source in ("jsonl", "parquet") and spec.options.get("text_field", "text") == "text":
        log.warning("data.sources entry `%s` reads field `text`; SFT trains only on chat records "
                    "(a `messages` list): set text_field: messages if that is where they are", spec.name)
