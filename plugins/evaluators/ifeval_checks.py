"""IFEval's verifiable instructions, written for phijax: `CHECKS[instruction_id](response, **kwargs) -> bool`.

Each checker follows the public IFEval definition of its instruction (Zhou et al. 2023, "Instruction-
Following Evaluation for Large Language Models"), using plain regular expressions instead of nltk.
`relation` arguments are `"less than"` (count < N) or `"at least"` (count >= N). Not covered:
`language:response_language` (it needs a language detector); the evaluator refuses or skips it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable

Check = Callable[..., bool]
CHECKS: dict[str, Check] = {}
RELATIONS = ("less than", "at least")


def check(instruction_id: str) -> Callable[[Check], Check]:
    """Register the decorated function as the checker of `instruction_id`."""

    def register(fn: Check) -> Check:
        CHECKS[instruction_id] = fn
        return fn

    return register


def compare(count: int, relation: str, n: int) -> bool:
    """`count < n` for "less than", `count >= n` for "at least"; anything else is a ValueError."""
    if relation == "less than":
        return count < n
    if relation == "at least":
        return count >= n
    raise ValueError(f"relation {relation!r} must be one of {RELATIONS}")


def words(text: str) -> list[str]:
    """Word tokens: maximal runs of letters, digits and underscores (nltk's `\\w+` tokenizer)."""
    return re.findall(r"\w+", text)


def sentences(text: str) -> list[str]:
    """Sentences: text split after `.`, `!` or `?` followed by whitespace, skipping common abbreviations
    (Mr., Dr., e.g., i.e., etc.) and decimal points."""
    marked = re.sub(r"\b(Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|e\.g|i\.e)\.", r"\1<dot>", text, flags=re.IGNORECASE)
    parts = re.split(r"(?<=[.!?])[\"')\]]*\s+", marked.strip())
    return [p for p in parts if p.strip()]


# ------------------------------------------------------------------------------------- keywords
@check("keywords:existence")
def keywords_existence(response: str, *, keywords: list[str]) -> bool:
    """Every keyword appears (case-insensitive)."""
    return all(re.search(re.escape(k), response, re.IGNORECASE) for k in keywords)


@check("keywords:frequency")
def keywords_frequency(response: str, *, keyword: str, frequency: int, relation: str) -> bool:
    """The keyword's count (case-insensitive) is less than / at least `frequency`."""
    return compare(len(re.findall(re.escape(keyword), response, re.IGNORECASE)), relation, frequency)


@check("keywords:forbidden_words")
def keywords_forbidden_words(response: str, *, forbidden_words: list[str]) -> bool:
    """None of the words appears as a whole word (case-insensitive)."""
    return not any(re.search(rf"\b{re.escape(w)}\b", response, re.IGNORECASE) for w in forbidden_words)


@check("keywords:letter_frequency")
def keywords_letter_frequency(response: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    """The letter's count (case-insensitive) is less than / at least `let_frequency`."""
    return compare(Counter(response.lower())[letter.lower()], let_relation, let_frequency)


# ------------------------------------------------------------------------------------- length
@check("length_constraints:number_words")
def number_words(response: str, *, num_words: int, relation: str) -> bool:
    """The word count is less than / at least `num_words`."""
    return compare(len(words(response)), relation, num_words)


@check("length_constraints:number_sentences")
def number_sentences(response: str, *, num_sentences: int, relation: str) -> bool:
    """The sentence count is less than / at least `num_sentences`."""
    return compare(len(sentences(response)), relation, num_sentences)


@check("length_constraints:number_paragraphs")
def number_paragraphs(response: str, *, num_paragraphs: int) -> bool:
    """Exactly `num_paragraphs` paragraphs separated by the markdown divider `***`; an empty paragraph
    is allowed only before the first divider or after the last."""
    parts = re.split(r"\s?\*\*\*\s?", response)
    count = len(parts)
    for index, part in enumerate(parts):
        if not part.strip():
            if index not in (0, len(parts) - 1):
                return False
            count -= 1
    return count == num_paragraphs


@check("length_constraints:nth_paragraph_first_word")
def nth_paragraph_first_word(response: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    """Exactly `num_paragraphs` non-empty paragraphs (split by a blank line) and paragraph
    `nth_paragraph` (from 1) starts with `first_word` (case and surrounding punctuation ignored)."""
    parts = response.split("\n\n")
    count = sum(1 for p in parts if p.strip())
    if not 1 <= nth_paragraph <= min(count, len(parts)):
        return False
    head = re.match(r"[\W_]*(\w+)", parts[nth_paragraph - 1].strip())
    return count == num_paragraphs and head is not None and head.group(1).lower() == first_word.lower()


# ------------------------------------------------------------------------------------- content
@check("detectable_content:number_placeholders")
def number_placeholders(response: str, *, num_placeholders: int) -> bool:
    """At least `num_placeholders` square-bracket placeholders like `[address]`."""
    return len(re.findall(r"\[.*?\]", response)) >= num_placeholders


@check("detectable_content:postscript")
def postscript(response: str, *, postscript_marker: str) -> bool:
    """A line starts (after spaces) with the marker, e.g. `P.S.` (also written `p. s.`) or `P.P.S`."""
    marker = postscript_marker.strip().lower()
    if marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    elif marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return bool(re.findall(pattern, response.lower(), flags=re.MULTILINE))


# ------------------------------------------------------------------------------------- format
@check("detectable_format:number_bullet_lists")
def number_bullet_lists(response: str, *, num_bullets: int) -> bool:
    """Exactly `num_bullets` markdown bullet lines (`* item` or `- item`)."""
    stars = re.findall(r"^\s*\*[^\*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


@check("detectable_format:constrained_response")
def constrained_response(response: str) -> bool:
    """Contains one of IFEval's fixed answers: `My answer is yes.`, `... no.` or `... maybe.`."""
    return any(
        option in response.strip() for option in ("My answer is yes.", "My answer is no.", "My answer is maybe.")
    )


@check("detectable_format:number_highlighted_sections")
def number_highlighted_sections(response: str, *, num_highlights: int) -> bool:
    """At least `num_highlights` non-empty markdown highlights `*like this*` (or `**this**`)."""
    singles = [h for h in re.findall(r"\*[^\n\*]*\*", response) if h.strip("*").strip()]
    doubles = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", response) if h.removeprefix("**").removesuffix("**").strip()]
    return len(singles) + len(doubles) >= num_highlights


@check("detectable_format:multiple_sections")
def multiple_sections(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least `num_sections` sections, each opened by the splitter word and a number (`Section 1`)."""
    parts = re.split(r"\s?" + re.escape(section_spliter) + r"\s?\d+\s?", response)
    return len(parts) - 1 >= num_sections


@check("detectable_format:json_format")
def json_format(response: str) -> bool:
    """The whole response is JSON (a ```json fence around it is allowed)."""
    text = response.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(prefix)
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@check("detectable_format:title")
def title(response: str) -> bool:
    """A title in double angular brackets, `<<like this>>`, with something inside."""
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))


# ------------------------------------------------------------------------------------- combinations
@check("combination:two_responses")
def two_responses(response: str) -> bool:
    """Two different responses separated by six asterisks `******`."""
    parts = response.split("******")
    kept = []
    for index, part in enumerate(parts):
        if not part.strip():
            if index not in (0, len(parts) - 1):
                return False
        else:
            kept.append(part.strip())
    return len(kept) == 2 and kept[0] != kept[1]


@check("combination:repeat_prompt")
def repeat_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    """The response starts by repeating the request word for word (case-insensitive)."""
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


# ------------------------------------------------------------------------------------- start/end, case, punctuation
@check("startend:end_checker")
def end_checker(response: str, *, end_phrase: str) -> bool:
    """The response ends with the exact phrase (case-insensitive; surrounding quotes ignored)."""
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


@check("startend:quotation")
def quotation(response: str) -> bool:
    """The whole response is wrapped in double quotation marks."""
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


@check("change_case:capital_word_frequency")
def capital_word_frequency(response: str, *, capital_frequency: int, capital_relation: str) -> bool:
    """The number of all-capital words is less than / at least `capital_frequency`."""
    return compare(sum(w.isupper() for w in words(response)), capital_relation, capital_frequency)


@check("change_case:english_capital")
def english_capital(response: str) -> bool:
    """The whole response is in capital letters (no lower-case letter, at least one letter)."""
    return response.isupper()


@check("change_case:english_lowercase")
def english_lowercase(response: str) -> bool:
    """The whole response is in lower-case letters (no capital letter, at least one letter)."""
    return response.islower()


@check("punctuation:no_comma")
def no_comma(response: str) -> bool:
    """No comma anywhere."""
    return "," not in response
