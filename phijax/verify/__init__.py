"""Judging completed answers: math final-answer matching (`answers`), sandboxed Python tests
(`sandbox`). The `math_answer` and `python_tests` verifier plugins are thin wrappers over these."""

from phijax.errors import PhijaxError


class ProblemError(PhijaxError):
    """A problem record lacks what its verifier needs (e.g. no `answer` or `tests` field)."""
