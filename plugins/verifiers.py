"""Built-in verifiers: `math_answer` (final answer vs reference) and `python_tests` (unit tests run
in a sandbox). Each factory takes its config options and returns `verify(completion, problem) ->
bool` (`phijax.plugins.protocols.Verifier`); the logic lives in `phijax.verify`.
"""

from __future__ import annotations

from typing import Any

from phijax.errors import PhijaxError
from phijax.plugins import hookimpl
from phijax.verify import ProblemError
from phijax.verify.answers import answers_match, extract_answer, reference_answer
from phijax.verify.sandbox import SandboxLimits, extract_code, run_python_tests


def _field(problem: dict[str, Any], name: str, verifier: str) -> Any:
    if name not in problem:
        raise ProblemError(
            f"{verifier}: the problem record has no '{name}' field (it has "
            f"{sorted(problem)}); add it, or set the verifier option to the field to use"
        )
    return problem[name]


class MathAnswer:
    """Correct when the response's final answer (`phijax.verify.answers.extract_answer`: last
    `\\boxed{}`, `#### N`, `Answer: ...`, else last number) equals the reference `problem[answer_field]`
    after normalisation (3/4 == 0.75 == \\frac{3}{4}).

    A reference that is a worked solution is reduced to its final answer (`reference_answer`: after
    GSM8K's `####`, else its last `\\boxed{}`).
    """

    def __init__(self, answer_field: str = "answer") -> None:
        self.answer_field = answer_field

    def __call__(self, completion: str, problem: dict[str, Any]) -> bool:
        reference = str(_field(problem, self.answer_field, "math_answer"))
        return answers_match(extract_answer(completion), reference_answer(reference))


class PythonTests:
    """Correct when the response's program (last ```python block, else the whole text) passes
    `problem[tests_field]` (Python source with asserts, or a list of assert lines) in the sandbox.

    With `problem["entry_point"]` and tests defining `check(candidate)` (HumanEval style),
    `check(<entry_point>)` is called after the tests are defined.
    """

    def __init__(
        self,
        tests_field: str = "tests",
        timeout_s: float = 10.0,
        cpu_s: int = 5,
        memory_mb: int = 1024,
        max_processes: int = 16,
    ) -> None:
        if timeout_s <= 0 or cpu_s <= 0 or memory_mb < 64 or max_processes < 1:
            raise PhijaxError(
                "python_tests: timeout_s and cpu_s must be > 0, memory_mb >= 64 "
                "and max_processes >= 1; fix the verifier options in the config"
            )
        self.tests_field = tests_field
        self.limits = SandboxLimits(
            timeout_s=timeout_s, cpu_s=cpu_s, memory_bytes=memory_mb << 20, max_processes=max_processes
        )

    def __call__(self, completion: str, problem: dict[str, Any]) -> bool:
        tests = _field(problem, self.tests_field, "python_tests")
        if not isinstance(tests, str):
            tests = "\n".join(tests)
        entry_point = problem.get("entry_point")
        if entry_point and "def check(" in tests:
            tests += f"\n\ncheck({entry_point})\n"
        return run_python_tests(extract_code(completion), tests, self.limits).passed


@hookimpl
def phijax_register_verifiers(register) -> None:
    register("math_answer", MathAnswer)
    register("python_tests", PythonTests)
