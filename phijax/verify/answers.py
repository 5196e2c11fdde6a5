"""Final answers of math responses: extract them and decide whether two of them are the same.

The one place phijax reads final answers (verifiers, evaluators and the curriculum all call it).
Extraction, first that applies: the content of the last `\\boxed{...}` (nested braces allowed), the
last GSM8K `#### N` line, the last `Answer: ...` line (the curriculum's), else the last number in the
text. Comparison: both sides are normalised (LaTeX wrappers, `$`, units, thousands separators,
`\\frac`) and compared as exact rationals when both are numbers (3/4 == 0.75 == \\frac{3}{4},
5 == 5.0 == 5,000/1000), else as normalised strings.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|-?\.\d+")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_LINE = re.compile(r"\b[Aa]nswer:[ \t]*([^\n]*)")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\^\s*\{?\\circ\}?|\\circ|\\%|%|\\\$|\$")
# A number then words ("12 dollars", "3 red apples"), or then a unit symbol ("5cm", "9 m^2"); not
# "3x" or "2 x", which are expressions.
_UNIT_SYMBOLS = r"(?:mm|cm|m|km|in|ft|yd|mi|mg|g|kg|lb|lbs|oz|s|sec|min|h|hr|hrs|ml|l|L)"
_TRAILING_UNITS = re.compile(rf"^(-?[\d.,/]+)(?:\s+[a-zA-Z]{{2,}}[a-zA-Z .]*|\s*{_UNIT_SYMBOLS}(?:\^?[23²³])?)$")
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?|-?\.\d+")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` (balanced braces), or None.

    `\\boxed 5` (no braces) gives the following non-space run.
    """
    found = None
    for match in _BOXED.finditer(text):
        rest = text[match.end() :]
        if rest.startswith("{"):
            content = _balanced(rest)
            if content is not None:
                found = content
        elif rest and not rest[0].isspace():
            found = re.match(r"[^\s$]+", rest).group(0)
    return found


def _balanced(text: str) -> str | None:
    """The content of the brace group opening at text[0], or None when it never closes."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return text[1:i]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a response, or None: the first of these that the text has

    the last `\\boxed{}` content; the last `#### N` (GSM8K); the last `Answer: ...` line (the
    curriculum's); the last number. A marker line's trailing period and spaces are dropped, so
    `Answer: 12 remainder 3.` gives `12 remainder 3`; `answers_match` normalises the rest. A Unicode
    minus is read as `-`.
    """
    text = text.replace("\u2212", "-")
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for marker in (_GSM8K, _ANSWER_LINE):
        found = [m.strip().rstrip(".").strip() for m in marker.findall(text)]
        if found and found[-1]:
            return found[-1]
    numbers = _NUMBER.findall(text)
    return numbers[-1].strip() if numbers else None


def reference_answer(reference: str) -> str:
    """The final answer inside a benchmark's reference: after GSM8K's `####`, else the last
    `\\boxed{}` of a worked solution (MATH), else the reference itself (already a bare answer)."""
    gsm8k = _GSM8K.findall(reference)
    if gsm8k and gsm8k[-1].strip():
        return gsm8k[-1].strip()
    boxed = last_boxed(reference)
    return boxed.strip() if boxed is not None else reference.strip()


def normalize_answer(answer: str) -> str:
    """A canonical string for an answer: LaTeX noise, `$`, `%`, units and separators removed.

    `\\frac{a}{b}` becomes `a/b`; `\\text{...}` keeps its content only when nothing else is there
    (`5\\text{ cm}` -> `5`); a number followed by a unit word keeps the number (`12 dollars`);
    thousands separators go (`1,000` -> `1000`); a trailing `.0` goes (`5.0` -> `5`); a leading
    `x =` goes; `(B)` becomes `b`; a Unicode minus is `-`, LaTeX's `1{,}000` is `1,000` and `\\dfrac`
    / `\\tfrac` are `\\frac` (so nested fractions left as LaTeX still compare equal).
    """
    s = answer.strip().replace("\u2212", "-").replace("{,}", ",")
    s = re.sub(r"\\[dt]frac(?![a-zA-Z])", r"\\frac", s)
    text_only = _TEXT.fullmatch(s)
    s = text_only.group(1) if text_only else _TEXT.sub("", s)
    s = _FRAC.sub(r"(\1)/(\2)", s)
    s = _FRAC_SHORT.sub(r"\1/\2", s)
    s = _LATEX_NOISE.sub("", s).strip().rstrip(".").strip()
    units = _TRAILING_UNITS.match(s)
    if units:
        s = units.group(1)
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = re.sub(r"\((-?[\d.]+)\)", r"\1", s)  # (3)/(4) -> 3/4 once fraction parts are plain numbers
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"^[a-zA-Z]=(?=.)", "", s)  # x = 5 -> 5
    s = re.sub(r"^\(([a-zA-Z])\)$", r"\1", s)  # (B) -> B, for multiple choice
    s = re.sub(r"(?<=\d)\.0+$", "", s)
    return s.lower() if not _DECIMAL.fullmatch(s) else s


def as_number(answer: str) -> Fraction | None:
    """The exact value of a normalised numeric answer (`-3`, `0.75`, `3/4`, `1.5/2`), else None."""
    parts = answer.split("/")
    if len(parts) > 2 or not all(_DECIMAL.fullmatch(p) for p in parts):
        return None
    value = Fraction(parts[0])
    if len(parts) == 2:
        denominator = Fraction(parts[1])
        if denominator == 0:
            return None
        value /= denominator
    return value


def answers_match(candidate: str | None, reference: str) -> bool:
    """Whether a candidate final answer equals the reference after normalisation.

    Numbers compare as exact rationals (0.75 == 3/4); anything else compares as normalised strings.
    A missing candidate (None) never matches.
    """
    if candidate is None:
        return False
    a, b = normalize_answer(candidate), normalize_answer(reference)
    x, y = as_number(a), as_number(b)
    if x is not None and y is not None:
        return x == y
    return a == b and a != ""
