"""Train the small BPE of the tiny CPU configs on the embedded curriculum; writes configs/tiny/tokenizer.json.

    python tools/train_tiny_tokenizer.py [--vocab-size 1024] [--documents 20000] [--out PATH]

A byte-level BPE (any text encodes, nothing is unknown) with single-digit tokens, so arithmetic is
learned digit by digit. Special tokens take the first ids, matching the `tiny` model preset:
0 `<|endoftext|>` (bos, document separator), 1 `<|im_end|>` (eos), 2 `<|pad|>`, then the chat markers.
The curriculum is deterministic, so rerunning this reproduces the shipped file.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from phijax.data.curriculum import make_problem

SPECIALS = ["<|endoftext|>", "<|im_end|>", "<|pad|>", "<|im_start|>", "<|im_sep|>", "<|endofprompt|>"]
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "tokenizer.json"


def corpus(documents: int, seed: int = 0) -> Iterator[str]:
    """Curriculum passages plus the chat roles, the text the tiny configs train on."""
    for index in range(documents):
        yield make_problem(seed, index).text
    yield "system user assistant"


def train(vocab_size: int, documents: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus(documents), trainer=trainer)
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    tokenizer = train(args.vocab_size, args.documents)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(args.out))
    print(f"wrote {args.out}: {tokenizer.get_vocab_size()} tokens")


if __name__ == "__main__":
    main()
