"""An unlimited, verifiable synthetic curriculum: multi-digit arithmetic with worked solutions.

In the spirit of Phi-4's synthetic "textbook" data, each problem comes with a step-by-step solution
written as a textbook would (column addition with carries, subtraction with borrows, multiplication
by partial products, long division) and a final line `Answer: ...` that `check_answer` verifies
(read by `phijax.verify.answers.extract_answer`, the one final-answer reader).
Problem `index` under `seed` is always the same problem, so the curriculum is a random-access data
source of any size, and PTS and evaluation can regenerate the exact questions and their answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from phijax.verify.answers import extract_answer

KINDS = ("addition", "subtraction", "multiplication", "division")
_PLACES = ("ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands", "millions", "ten-millions")


@dataclass(frozen=True)
class Problem:
    """One exercise: `question` (the prompt), `solution` (worked steps ending in the answer line)."""

    kind: str
    a: int
    b: int
    question: str
    solution: str
    answer: str

    @property
    def text(self) -> str:
        """The problem as a textbook passage: exercise then worked solution."""
        return f"Exercise. {self.question}\n\nSolution. {self.solution}\n"

    @property
    def messages(self) -> list[dict[str, str]]:
        """The problem as a chat: the user asks, the assistant works it out."""
        return [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.solution}]


def make_problem(seed: int, index: int, kinds: tuple[str, ...] = KINDS) -> Problem:
    """Problem number `index` of the curriculum under `seed` (pure: same inputs, same problem)."""
    rng = random.Random(f"phijax-curriculum:{seed}:{index}")
    kind = kinds[rng.randrange(len(kinds))]
    digits = 2 + rng.randrange(5)  # 2..6 digits: harder problems as often as easy ones
    if kind == "addition":
        return addition(_number(rng, digits), _number(rng, 1 + rng.randrange(digits)))
    if kind == "subtraction":
        a, b = _number(rng, digits), _number(rng, 1 + rng.randrange(digits))
        return subtraction(max(a, b), min(a, b))
    if kind == "multiplication":
        return multiplication(_number(rng, min(digits, 4)), _number(rng, 1 + rng.randrange(3)))
    if kind == "division":
        return division(_number(rng, digits + 1), _number(rng, 1 + rng.randrange(2)))
    raise ValueError(f"unknown curriculum kind {kind!r}: choose from {', '.join(KINDS)}")


def check_answer(problem: Problem, text: str) -> bool:
    """Whether `text` (a model's completion) ends in the problem's correct answer: its final answer
    (`phijax.verify.answers.extract_answer`, here the last `Answer: ...` line) is exactly the answer."""
    return extract_answer(text) == problem.answer


# -------------------------------------------------------------------------------- problem kinds
def addition(a: int, b: int) -> Problem:
    """Column addition from the ones place, carrying tens."""
    steps, carry = [], 0
    da, db = _digits(a), _digits(b)
    for place in range(max(len(da), len(db))):
        x, y = _at(da, place), _at(db, place)
        total = x + y + carry
        carried = f" + {carry} (carried)" if carry else ""
        write = f"Write {total % 10} and carry {total // 10}." if total >= 10 else f"Write {total}."
        steps.append(f"- {_place(place)} column: {x} + {y}{carried} = {total}. {write}")
        carry = total // 10
    if carry:
        steps.append(f"- The last carry, {carry}, becomes the leading digit.")
    answer = str(a + b)
    intro = (
        "Line the numbers up by place value and add column by column from the right, "
        "carrying whenever a column adds up to ten or more."
    )
    body = "\n".join(steps)
    text = f"{intro}\n{body}\nReading the written digits from left to right gives {answer}.\nAnswer: {answer}"
    return Problem("addition", a, b, f"Compute {a} + {b}.", text, answer)


def subtraction(a: int, b: int) -> Problem:
    """Column subtraction (a >= b) from the ones place, borrowing from the next column."""
    steps, borrow = [], 0
    da, db = _digits(a), _digits(b)
    for place in range(len(da)):
        x, y = _at(da, place) - borrow, _at(db, place)
        lent = f"{x + borrow} - 1 (lent) = {x}; " if borrow else ""
        if x < y:
            steps.append(
                f"- {_place(place)} column: {lent}{x} is less than {y}, so borrow ten: {x + 10} - {y} = {x + 10 - y}."
            )
            borrow = 1
        else:
            steps.append(f"- {_place(place)} column: {lent}{x} - {y} = {x - y}.")
            borrow = 0
    answer = str(a - b)
    intro = (
        "Line the numbers up by place value and subtract column by column from the right, "
        "borrowing ten from the next column when the top digit is too small."
    )
    body = "\n".join(steps)
    text = f"{intro}\n{body}\nReading the digits from left to right gives {answer}.\nAnswer: {answer}"
    return Problem("subtraction", a, b, f"Compute {a} - {b}.", text, answer)


def multiplication(a: int, b: int) -> Problem:
    """Long multiplication: one partial product per digit of b, shifted, then summed."""
    steps, partials = [], []
    for place, digit in enumerate(_digits(b)):
        partial = a * digit * 10**place
        shift = f", shifted {place} place{'s' if place > 1 else ''} left: {partial}" if place else ""
        steps.append(f"- {a} × {digit} (the {_place(place).lower()} digit) = {a * digit}{shift}.")
        partials.append(partial)
    answer = str(a * b)
    if len(partials) > 1:
        steps.append(f"- Add the partial products: {' + '.join(map(str, partials))} = {answer}.")
    intro = f"Multiply {a} by each digit of {b}, starting with the ones digit."
    text = f"{intro}\n" + "\n".join(steps) + f"\nSo {a} × {b} = {answer}.\nAnswer: {answer}"
    return Problem("multiplication", a, b, f"Compute {a} × {b}.", text, answer)


def division(a: int, b: int) -> Problem:
    """Long division of a by b, bringing down one digit at a time."""
    steps, quotient, rest = [], "", 0
    for digit in str(a):
        rest = rest * 10 + int(digit)
        q = rest // b
        steps.append(
            f"- Bring down {digit} to make {rest}. {rest} ÷ {b} = {q}, and {rest} - {q * b} = {rest - q * b} is left."
        )
        quotient += str(q)
        rest -= q * b
    answer = f"{a // b} remainder {a % b}"
    intro = f"Divide {a} by {b} digit by digit from the left."
    text = (
        f"{intro}\n" + "\n".join(steps) + f"\nThe quotient digits read {quotient}, so "
        f"{a} ÷ {b} = {a // b} with remainder {a % b}.\nAnswer: {answer}"
    )
    return Problem("division", a, b, f"Divide {a} by {b}; give the quotient and remainder.", text, answer)


# ------------------------------------------------------------------------------------- helpers
def _number(rng: random.Random, digits: int) -> int:
    return rng.randrange(10 ** (digits - 1), 10**digits)


def _digits(n: int) -> list[int]:
    """Digits of n, ones first."""
    return [int(c) for c in reversed(str(n))]


def _at(digits: list[int], place: int) -> int:
    return digits[place] if place < len(digits) else 0


def _place(place: int) -> str:
    return _PLACES[place].capitalize() if place < len(_PLACES) else f"10^{place}"
