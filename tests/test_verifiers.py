"""Verifiers: math final-answer extraction and matching; the Python sandbox against hostile code."""

from __future__ import annotations

import os
import sys
import time
import tomllib
import uuid
from pathlib import Path

import phijax_plugins.verifiers as builtin_verifiers
import pytest

from phijax.plugins.testing import make_registry
from phijax.verify import ProblemError
from phijax.verify.answers import answers_match, extract_answer, normalize_answer
from phijax.verify.sandbox import (
    SandboxLimits,
    extract_code,
    namespace_prefix,
    run_python_tests,
    sandbox_interpreter,
)

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ math answers
@pytest.mark.parametrize("text,answer", [
    (r"so the result is \boxed{42}.", "42"),
    (r"\boxed{\frac{3}{4}}", r"\frac{3}{4}"),
    (r"first \boxed{1} then finally \boxed{x^{2} + \sqrt{\frac{1}{2}}}", r"x^{2} + \sqrt{\frac{1}{2}}"),
    (r"\fbox{7}", "7"),
    (r"\boxed 9 is it", "9"),
    ("She has 3 apples, buys 4, so 7 in total.", "7"),
    ("The total is 1,234,567 dollars", "1,234,567"),
    ("a ratio of 3/4", "3/4"),
    ("it drops to -2.5 degrees", "-2.5"),
    ("no numbers here", None),
    (r"unclosed \boxed{12 and then 13", "13"),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("candidate,reference", [
    ("0.75", "3/4"), (r"\frac{3}{4}", "0.75"), (r"\dfrac34", "3/4"), ("5.0", "5"), ("5.00", "5"),
    ("1,000", "1000"), (r"\$12.50", "12.5"), ("$12.50$", "12.5"), (r"5\text{ cm}", "5"),
    ("12 dollars", "12"), (r"50\%", "50"), (r"90^\circ", "90"), (r"-\frac{1}{2}", "-0.5"),
    (r"\left(1, 2\right)", "(1,2)"), (r"\text{Paris}", "paris"), ("x + 1", "x+1"), ("7.", "7"),
    ("x = 5", "5"), (r"\text{(B)}", "B"), ("(c)", "C"), ("5cm", "5"), ("9 m^2", "9"),
    ("3 red apples", "3"), ("3x", "3x"),
])
def test_equivalent_answers_match(candidate, reference):
    assert answers_match(candidate, reference)


@pytest.mark.parametrize("candidate,reference", [
    ("0.76", "3/4"), ("5", "50"), ("3x", "3"), ("2 x", "2"), ("4y^2", "4"), ("1,000", "100"), ("-2", "2"), (None, "3"), ("", ""), ("(1,2)", "(2,1)"),
])
def test_different_answers_do_not_match(candidate, reference):
    assert not answers_match(candidate, reference)


def test_normalize_answer_canonical_forms():
    assert normalize_answer(r"\frac{10}{4}") == "10/4"
    assert normalize_answer("2,500.0") == "2500"
    assert normalize_answer(r"\text{(B)}") == "b"
    assert normalize_answer("y = 2x + 1") == "2x+1"


# -------------------------------------------------------------------------------------- code
def test_extract_code_prefers_the_last_python_block():
    response = "try:\n```\nprint(0)\n```\nbetter:\n```python\ndef f(): return 1\n```\nor\n```py\ndef f(): return 2\n```\n"
    assert extract_code(response) == "def f(): return 2\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("def g():\n    return 3\n") == "def g():\n    return 3\n"


# -------------------------------------------------------------------------------------- sandbox
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
FAST = SandboxLimits(timeout_s=5.0, cpu_s=3)


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (uid, command line) of every process visible in /proc."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
                found[int(entry.name)] = (entry.stat().st_uid, cmdline.decode(errors="replace"))
            except OSError:
                continue
    return found


_BEFORE: dict[int, tuple[int, str]] = {}


@pytest.fixture(autouse=True)
def _processes_before():
    """What ran before each test, so a daemon of the sandbox uid on the machine is not a leak."""
    _BEFORE.clear()
    _BEFORE.update(processes())


def leftovers(result) -> list[str]:
    """Processes the run left behind: ones naming its sandbox dir, or new ones of the sandbox uid."""
    top = str(Path(result.work_dir).parent)
    _, uid = sandbox_interpreter()
    return [f"{pid}: {cmdline}" for pid, (owner, cmdline) in processes().items()
            if top in cmdline or (uid is not None and owner == uid and pid not in _BEFORE)]


def assert_contained(result) -> None:
    assert not result.passed
    assert not Path(result.work_dir).parent.exists(), "the sandbox dir was not removed"
    assert leftovers(result) == []


def test_correct_solution_passes_and_leaves_nothing():
    result = run_python_tests(ADD, ADD_TESTS, FAST)
    assert result.passed, result.stderr
    assert result.returncode == 0 and not result.timed_out
    assert not Path(result.work_dir).parent.exists() and leftovers(result) == []


def test_wrong_solution_and_crashes_fail():
    assert_contained(run_python_tests(ADD.replace("a + b", "a - b"), ADD_TESTS, FAST))
    assert_contained(run_python_tests("def add(a, b) return", ADD_TESTS, FAST))
    assert_contained(run_python_tests(ADD + "raise RuntimeError('boom')", ADD_TESTS, FAST))


@pytest.mark.parametrize("exit_call", ["import os; os._exit(0)", "import sys; sys.exit(0)", "exit()"])
def test_exiting_early_with_status_zero_fails(exit_call):
    result = run_python_tests(ADD + exit_call, "assert False", FAST)
    assert_contained(result)


def test_candidate_may_use_its_own_dir_and_the_stdlib():
    code = ADD + ("import collections, fractions, json\n"
                  "open('scratch.txt', 'w').write(json.dumps([1, 2]))\n"
                  "assert json.load(open('scratch.txt')) == [1, 2]\n")
    result = run_python_tests(code, ADD_TESTS, FAST)
    assert result.passed, result.stderr
    assert not Path(result.work_dir).parent.exists()


def test_infinite_loop_is_killed_at_the_wall_clock_timeout():
    started = time.monotonic()
    result = run_python_tests("while True:\n    pass\n", "pass", SandboxLimits(timeout_s=1.0, cpu_s=30))
    assert result.timed_out and time.monotonic() - started < 4.0
    assert_contained(result)


def test_cpu_limit_kills_a_busy_loop_before_the_timeout():
    result = run_python_tests("while True:\n    pass\n", "pass", SandboxLimits(timeout_s=20.0, cpu_s=1))
    assert not result.timed_out and result.returncode != 0 and result.seconds < 10
    assert_contained(result)


def test_sleeping_candidate_is_killed_at_the_timeout():
    result = run_python_tests("import time\ntime.sleep(60)\n", "pass", SandboxLimits(timeout_s=1.0))
    assert result.timed_out
    assert_contained(result)


FORK_BOMB = ("import os\n"
             "while True:\n"
             "    try:\n"
             "        if os.fork() == 0:\n"
             "            os.setsid()  # try to escape the process group\n"
             "    except OSError:\n"
             "        pass\n")


def test_fork_bomb_is_refused():
    result = run_python_tests("import os\nwhile True:\n    os.fork()\n", "pass", FAST)
    assert "os.fork" in result.stderr
    assert_contained(result)


def test_fork_bomb_is_contained_by_the_os_walls_alone():
    if not namespace_prefix() or sandbox_interpreter()[1] is None:
        pytest.skip("needs PID namespaces and a sandbox uid (root with unshare)")
    result = run_python_tests(FORK_BOMB, "pass",
                              SandboxLimits(timeout_s=1.5, cpu_s=5, max_processes=16, audit_hook=False))
    assert result.timed_out
    assert_contained(result)  # children that called setsid() died with the PID namespace


@pytest.mark.parametrize("audit_hook", [True, False])
def test_memory_blow_up_fails(audit_hook):
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n"
    limits = SandboxLimits(timeout_s=10.0, memory_bytes=512 << 20, audit_hook=audit_hook)
    result = run_python_tests(code, "pass", limits)
    assert "MemoryError" in result.stderr and not result.timed_out
    assert_contained(result)


def test_writes_outside_the_temp_dir_are_refused(tmp_path):
    targets = [tmp_path / "escaped.txt", Path("/tmp") / f"phijax-escape-{uuid.uuid4().hex}",
               ROOT / f"escape-{uuid.uuid4().hex}.txt"]
    for target in targets:
        for code in (f"open({str(target)!r}, 'w').write('pwned')",
                     f"import os\nos.chdir('..')\nopen({target.name!r}, 'w').write('pwned')",
                     f"import pathlib\npathlib.Path({str(target)!r}).touch()"):
            result = run_python_tests(code, "pass", FAST)
            assert "PermissionError" in result.stderr
            assert_contained(result)
        assert not target.exists()
    assert_contained(run_python_tests(f"import os\nos.remove({str(ROOT / 'pyproject.toml')!r})", "pass", FAST))
    assert (ROOT / "pyproject.toml").exists()


@pytest.mark.parametrize("code", [
    "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)",
    "import socket\nsocket.getaddrinfo('example.com', 443)",
    "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)",
])
def test_network_access_fails(code):
    assert_contained(run_python_tests(code, "pass", FAST))


def test_network_is_unreachable_without_the_audit_hook():
    if not namespace_prefix():
        pytest.skip("needs network namespaces (unshare)")
    code = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)"
    result = run_python_tests(code, "pass", SandboxLimits(timeout_s=5.0, audit_hook=False))
    assert "unreachable" in result.stderr.lower()
    assert_contained(result)


def test_subprocesses_and_ctypes_are_refused():
    for code in ("import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')",
                 "import ctypes", "import multiprocessing"):
        result = run_python_tests(code, "pass", FAST)
        assert "PermissionError" in result.stderr, code
        assert_contained(result)


def test_output_flood_is_capped():
    result = run_python_tests("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", "pass",
                              SandboxLimits(timeout_s=5.0, file_size_bytes=1 << 20))
    assert not result.timed_out and len(result.stdout) <= 1 << 16
    assert_contained(result)


def test_a_chatty_correct_solution_still_passes():
    result = run_python_tests(ADD + "for i in range(20000):\n    print('progress', i)\n", ADD_TESTS, FAST)
    assert result.passed, result.stderr
    assert result.stdout.startswith("progress 0\n") and len(result.stdout) <= 1 << 16


def test_tests_are_not_readable_from_the_work_dir():
    code = "import os\nassert os.listdir('.') == [], os.listdir('.')\nassert not os.path.exists('../payload.json')"
    assert run_python_tests(code, "pass", FAST).passed


# ------------------------------------------------------------------------------- verifier plugins
@pytest.fixture
def registry():
    return make_registry(builtin_verifiers, builtins=False)


def test_verifiers_are_registered_and_declared_as_entry_point(registry):
    assert {"math_answer", "python_tests"} <= set(registry.names("verifiers"))
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["phijax"]
    assert entry_points["builtin_verifiers"] == "phijax_plugins.verifiers"


def test_math_answer_verifier(registry):
    verify = registry.create("verifiers", "math_answer")
    assert verify(r"... so $x = \boxed{\frac{3}{4}}$", {"answer": "0.75"})
    assert verify("Adding them gives 1,200.", {"answer": r"The sum is \boxed{1200}."})
    assert not verify(r"\boxed{4}", {"answer": "5"})
    with pytest.raises(ProblemError, match="no 'answer' field"):
        verify("5", {"solution": "5"})
    assert registry.create("verifiers", "math_answer", answer_field="solution")("5", {"solution": "5"})


def test_python_tests_verifier(registry):
    verify = registry.create("verifiers", "python_tests", timeout_s=5.0)
    problem = {"tests": ["assert add(2, 3) == 5", "assert add(0, 0) == 0"]}
    assert verify(f"Here it is:\n```python\n{ADD}```\n", problem)
    assert not verify("```python\ndef add(a, b):\n    return 5\n```", problem)
    humaneval = {"tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "entry_point": "add"}
    assert verify(ADD, humaneval)
    assert not verify(ADD.replace("+", "*"), humaneval)


# Where unshare is missing (no namespaces) or phijax is not root (no uid drop), the audit hook and
# the process-group kill must still contain everything; simulate both on this machine.
WEAKER_HOSTS = {
    "no-namespaces": {"namespace_prefix": lambda: ()},
    "no-uid-drop": {"sandbox_interpreter": lambda: (sys.executable, None)},
    "neither": {"namespace_prefix": lambda: (), "sandbox_interpreter": lambda: (sys.executable, None)},
}
HOSTILE = {
    "loop": "while True:\n    pass\n",
    "fork": FORK_BOMB.replace("pass\n", "break\n") + "import time\ntime.sleep(60)\n",
    "network": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)",
    "write": "open('/tmp/phijax-escape-weaker-host', 'w').write('pwned')",
}


@pytest.mark.parametrize("host", sorted(WEAKER_HOSTS))
def test_hostile_candidates_are_contained_on_weaker_hosts(host, monkeypatch):
    from phijax.verify import sandbox

    for name, replacement in WEAKER_HOSTS[host].items():
        monkeypatch.setattr(sandbox, name, replacement)
    assert run_python_tests(ADD, ADD_TESTS, FAST).passed
    for kind, code in HOSTILE.items():
        result = run_python_tests(code, "pass", SandboxLimits(timeout_s=0.7, cpu_s=5))
        assert_contained(result)
        assert ("netns" in result.isolation) == ("namespace_prefix" not in WEAKER_HOSTS[host]), kind
    assert not Path("/tmp/phijax-escape-weaker-host").exists()


def test_python_tests_verifier_is_safe_from_several_threads(registry):
    from concurrent.futures import ThreadPoolExecutor

    verify = registry.create("verifiers", "python_tests", timeout_s=10.0)
    problem = {"tests": "assert add(2, 3) == 5"}
    codes = [ADD, ADD.replace("+", "-")] * 4
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(lambda code: verify(code, problem), codes))
    assert verdicts == [True, False] * 4


def test_a_sandbox_that_cannot_start_is_an_error_not_a_verdict(monkeypatch):
    from phijax.verify import sandbox

    monkeypatch.setattr(sandbox, "sandbox_interpreter", lambda: ("/nonexistent/python", None))
    monkeypatch.setattr(sandbox, "namespace_prefix", lambda: ())
    with pytest.raises(sandbox.SandboxError, match="could not start the sandbox"):
        run_python_tests(ADD, ADD_TESTS, FAST)
