"""A phijax tokenizer written as the files `transformers` loads: tokenizer.json, tokenizer_config.json
(with Phi-4's chat template) and generation_config.json.

`phijax convert to-hf` writes them beside the weights so `AutoTokenizer.from_pretrained(DIR)` and a
`pipeline("text-generation", DIR)` work on the result. A tiktoken tokenizer (Phi-4's cl100k_base) has
no merge list, only ranks: the merges are recovered by running BPE on each token's bytes with the
ranks below its own until two parts remain (those two parts are the merge that makes it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from phijax.data.tokenizer import EOD, HFTokenizer, TiktokenTokenizer, Tokenizer, bytes_to_unicode

# cl100k_base's split pattern in the regex dialect of HF `tokenizers` (no possessive quantifiers).
CL100K_PATTERN_HF = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}<|im_sep|>{{ message['content'] }}"
    "<|im_end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant<|im_sep|>{% endif %}"
)


def write_hf_tokenizer(tok: Tokenizer, out: Path, *, bos_id: int, eos_id: int, pad_id: int, max_len: int) -> list[Path]:
    """Write the three files into `out`; ids are the model's (they may differ from the tokenizer's names)."""
    names = {i: text for text, i in tok.special_tokens.items()}
    eod = tok.special_tokens.get(EOD)
    files = {
        "tokenizer.json": hf_tokenizer_json(tok),
        "tokenizer_config.json": json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": names.get(bos_id),
                "eos_token": names.get(eos_id),
                "pad_token": names.get(pad_id),
                "chat_template": CHAT_TEMPLATE,
                "model_max_length": max_len,
                "clean_up_tokenization_spaces": False,
            },
            indent=2,
        ),
        "generation_config.json": json.dumps(
            {
                "bos_token_id": bos_id,
                "eos_token_id": sorted({eos_id, *([eod] if eod is not None else [])}),
                "pad_token_id": pad_id,
            },
            indent=2,
        ),
    }
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text)
        path.chmod(0o644)
        written.append(path)
    return written


def hf_tokenizer_json(tok: Tokenizer) -> str:
    """The tokenizer as HF `tokenizers` JSON: an HF tokenizer as it is, a tiktoken one rebuilt as a BPE."""
    if isinstance(tok, HFTokenizer):
        return tok.to_json()
    if isinstance(tok, TiktokenTokenizer):
        return _bpe_from_ranks(tok.ranks, tok.special_tokens)
    raise TypeError(f"cannot export a {type(tok).__name__} as tokenizer.json")


def recover_merges(ranks: Mapping[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge list, in rank order, that makes BPE over `ranks` reproduce each multi-byte token."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            candidates = [(ranks.get(parts[i] + parts[i + 1], rank), i) for i in range(len(parts) - 1)]
            best_rank, i = min(candidates)
            if best_rank >= rank:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


def _bpe_from_ranks(ranks: Mapping[bytes, int], specials: Mapping[str, int]) -> str:
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizerImpl

    to_text = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_text[b] for b in token)

    bpe = models.BPE(
        vocab={text(t): r for t, r in ranks.items()}, merges=[(text(a), text(b)) for a, b in recover_merges(ranks)]
    )
    tokenizer = HFTokenizerImpl(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CL100K_PATTERN_HF), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    for content, _ in sorted(specials.items(), key=lambda item: item[1]):
        tokenizer.add_special_tokens([AddedToken(content, special=True, normalized=False)])
    _check_special_ids(tokenizer, specials)
    return tokenizer.to_str()


def _check_special_ids(tokenizer, specials: Mapping[str, int]) -> None:
    """Added tokens take the next free id: true for Phi-4's, whose ids fill 100256..100351 in order."""
    wrong = {s: (i, tokenizer.token_to_id(s)) for s, i in specials.items() if tokenizer.token_to_id(s) != i}
    if wrong:
        raise ValueError(f"special tokens landed at other ids than the tokenizer's: {wrong}")
