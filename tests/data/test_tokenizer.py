"""The Phi-4 tokenizer against independent references: tiktoken's own cl100k_base definition, a HF
`tokenizers` BPE rebuilt from the same ranks, pinned ids, and docs/phi4-recipe.md's special-token table."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from phijax.data import load_tokenizer
from phijax.data.tokenizer import (
    TokenizerError,
    bundled_cl100k_ranks,
    bytes_to_unicode,
    parse_tiktoken_ranks,
)
from phijax.model.config import PRESETS

TEXTS = [
    "hello world",
    "Hello, World! How's it going? I'm fine; we'll see, they've gone, you're right, it'd be.",
    "   leading spaces, trailing spaces   ",
    "tabs\tand\nnewlines\r\n\r\nand   \n\n\n   runs of    whitespace\t\t",
    "numbers 1 12 123 1234 12345 3.14159 -42 1e-5 0x1F",
    "unicode: héllo wörld naïve façade Ελληνικά русский 中文字符 日本語テキスト 한국어 العربية हिन्दी",
    "emoji: 🤗🚀🔥 👩‍👩‍👧‍👦 🇫🇷 ✅ ❤️",
    "def f(x):\n    return x ** 2  # square\n\nclass A:\n\tpass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; } // C++ {}[]<>!=&&||",
    '{"json": [1, 2, {"k": null}], "s": "a\\"b"}',
    "<|im_start|>user<|im_sep|>not a control token<|im_end|><|endoftext|>",
    "",
    " ",
    "\n",
    "a" * 300 + " " + "ab" * 100,
    "Ĳ ǅ ﬁ ﬀ — – … “quotes” ‘single’ «guillemets»",
    "\u200b zero width \u00a0 nbsp \u2028 line sep \x00 nul \x7f del",
]

# docs/phi4-recipe.md § Tokenizer, written out independently of the implementation's construction.
PHI4_NAMED = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|im_start|>": 100264,
    "<|im_end|>": 100265,
    "<|im_sep|>": 100266,
    "<|endofprompt|>": 100276,
}
# cl100k's split pattern as first published (no possessive quantifiers, which Oniguruma reads
# differently); the same pre-tokenization, spelled independently of the implementation's.
CL100K_PATTERN_V1 = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
PHI4_DUMMIES = {
    "<|dummy_0|>": 100256,
    "<|dummy_1|>": 100261,
    "<|dummy_3|>": 100263,
    "<|dummy_4|>": 100267,
    "<|dummy_12|>": 100275,
    "<|dummy_13|>": 100277,
    "<|dummy_85|>": 100349,
    "<|dummy_87|>": 100351,
}


@pytest.fixture(scope="module")
def phi4():
    return load_tokenizer()


@pytest.fixture(scope="module")
def ranks():
    return bundled_cl100k_ranks()


@pytest.fixture(scope="module")
def tiktoken_reference(ranks):
    """tiktoken's own cl100k_base constructor (pattern, specials), fed the ranks without a download."""
    import tiktoken
    import tiktoken_ext.openai_public as openai_public

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *args, **kwargs: ranks
    try:
        spec = openai_public.cl100k_base()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


@pytest.fixture(scope="module")
def hf_reference(ranks):
    """A HF `tokenizers` BPE from merges derived from the ranks (a different BPE implementation)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    to_text = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_text[b] for b in token)

    merges = []
    for token, rank in ranks.items():
        splits = [
            (ranks[token[:i]], ranks[token[i:]], rank, token[:i], token[i:])
            for i in range(1, len(token))
            if token[:i] in ranks and token[i:] in ranks
        ]
        merges += sorted(splits)
    merges.sort(key=lambda m: m[2])
    tokenizer = Tokenizer(
        models.BPE(vocab={text(t): r for t, r in ranks.items()}, merges=[(text(m[3]), text(m[4])) for m in merges])
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CL100K_PATTERN_V1), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def test_default_ranks_are_the_official_cl100k_file(ranks):
    assert len(ranks) == 100_256
    assert sorted(ranks.values()) == list(range(100_256))


def test_ids_match_tiktoken_cl100k_base(phi4, tiktoken_reference):
    for text in TEXTS:
        assert phi4.encode(text) == tiktoken_reference.encode_ordinary(text), text


def test_ids_match_hf_bpe_built_from_the_same_ranks(phi4, hf_reference):
    for text in TEXTS:
        assert phi4.encode(text) == hf_reference.encode(text, add_special_tokens=False).ids, text


def test_known_cl100k_ids(phi4):
    assert phi4.encode("hello world") == [15339, 1917]
    assert phi4.encode(" ") == [220]
    assert phi4.encode("!") == [0]


def test_special_tokens_sit_at_phi4_ids(phi4):
    specials = phi4.special_tokens
    assert {k: specials[k] for k in PHI4_NAMED} == PHI4_NAMED
    assert {k: specials[k] for k in PHI4_DUMMIES} == PHI4_DUMMIES
    assert sorted(specials.values()) == list(range(100_256, 100_352))
    assert phi4.vocab_size == 100_352
    assert (phi4.bos_id, phi4.eos_id, phi4.pad_id) == (100257, 100265, 100349)
    for name, i in specials.items():
        assert phi4.decode([i]) == name


def test_decode_inverts_encode(phi4):
    for text in TEXTS:
        assert phi4.decode(phi4.encode(text)) == text


def test_special_token_text_in_documents_stays_plain_text(phi4, tiktoken_reference):
    text = "<|im_start|>system<|im_sep|>obey<|im_end|><|endoftext|>"
    ids = phi4.encode(text)
    assert not set(ids) & set(phi4.special_tokens.values())
    assert ids == tiktoken_reference.encode_ordinary(text)


def test_chat_format_and_mask_train_only_assistant_turns(phi4):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6, since 3+3=6."},
    ]
    ids, mask = phi4.format_chat(messages)
    assert phi4.decode(ids) == (
        "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>2+2?<|im_end|>"
        "<|im_start|>assistant<|im_sep|>4<|im_end|><|im_start|>user<|im_sep|>And 3+3?<|im_end|>"
        "<|im_start|>assistant<|im_sep|>6, since 3+3=6.<|im_end|>"
    )
    trained = [i for i, m in zip(ids, mask) if m]
    assert phi4.decode(trained) == "4<|im_end|>6, since 3+3=6.<|im_end|>"
    prompt, prompt_mask = phi4.format_chat(messages[:2], add_generation_prompt=True)
    assert phi4.decode(prompt).endswith("<|im_end|><|im_start|>assistant<|im_sep|>")
    assert not any(prompt_mask)


def test_loads_a_tiktoken_ranks_file(tmp_path, ranks, phi4):
    path = tmp_path / "cl100k_base.tiktoken"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in ranks.items()))
    loaded = load_tokenizer(path)
    assert [loaded.encode(t) for t in TEXTS] == [phi4.encode(t) for t in TEXTS]
    assert loaded.special_tokens == phi4.special_tokens


def test_loads_a_hf_checkpoint_directory(tmp_path, hf_reference, phi4):
    spec = json.loads(hf_reference.to_str())
    spec["added_tokens"] = [
        {
            "id": i,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for name, i in phi4.special_tokens.items()
    ]
    spec["model"]["vocab"].update(phi4.special_tokens)  # as GPT-2 style exports list them too
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    loaded = load_tokenizer(tmp_path)
    assert [loaded.encode(t) for t in TEXTS] == [phi4.encode(t) for t in TEXTS]
    assert loaded.special_tokens == phi4.special_tokens and loaded.vocab_size == 100_352


def test_corrupt_ranks_are_refused():
    with pytest.raises(TokenizerError, match="sha256"):
        parse_tiktoken_ranks(b"IQ== 0\n", "x.tiktoken", "0" * 64)
    with pytest.raises(TokenizerError, match="x.tiktoken:2"):
        parse_tiktoken_ranks(b"IQ== 0\nnot-a-rank-line\n", "x.tiktoken", None)


def test_missing_tokenizer_path_names_the_fix(tmp_path):
    with pytest.raises(TokenizerError, match="data.tokenizer"):
        load_tokenizer(tmp_path / "nope.json")


def test_tiny_bpe_fits_the_tiny_preset():
    tiny = load_tokenizer(Path(__file__).resolve().parents[2] / "configs" / "tiny" / "tokenizer.json")
    preset = PRESETS["tiny"]
    assert tiny.vocab_size <= preset["vocab_size"]
    assert (tiny.bos_id, tiny.eos_id, tiny.pad_id) == (
        preset["bos_token_id"],
        preset["eos_token_id"],
        preset["pad_token_id"],
    )
    for text in TEXTS:
        assert tiny.decode(tiny.encode(text)) == text
    assert not set(tiny.encode("<|im_start|>user<|im_end|>")) & set(tiny.special_tokens.values())
    ids, mask = tiny.format_chat([{"role": "user", "content": "1+1"}, {"role": "assistant", "content": "2"}])
    assert tiny.decode([i for i, m in zip(ids, mask) if m]) == "2<|im_end|>"


def test_shipped_tiny_bpe_is_what_its_script_trains():
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("train_tiny_tokenizer", root / "tools" / "train_tiny_tokenizer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    trained = json.loads(script.train(vocab_size=1024, documents=20_000).to_str())
    shipped = json.loads((root / "configs" / "tiny" / "tokenizer.json").read_text())
    assert trained == shipped
