"""The code sandbox against hostile candidates (issue 14), as root and as an unprivileged user."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from phijax.verify import _sandbox_runner as runner
from phijax.verify import sandbox
from phijax.verify.sandbox import SandboxError, SandboxLimits, run_python_tests

ROOT = Path(__file__).resolve().parents[2]
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
FAST = SandboxLimits(timeout_s=5.0, cpu_s=3)
NOBODY = 65534
_ATTACKS_FILE = Path(__file__).with_name("sandbox_attacks.py")
_spec = importlib.util.spec_from_file_location("sandbox_attacks", _ATTACKS_FILE)
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)


# ------------------------------------------------------------------------------ honest candidates
def test_correct_solution_passes_and_keeps_its_stdout():
    result = run_python_tests(ADD + "print('defined add')\n", ADD_TESTS + "print('tests ran')\n", FAST)
    assert result.passed, result.stderr
    assert result.stdout == "defined add\ntests ran\n"
    assert {"userns", "mountns", "pidns", "netns", "readonly-root", "no-capabilities", "separate-judge"} <= set(
        result.isolation
    )


def test_wrong_solution_and_crashes_fail():
    for code in (ADD.replace("a + b", "a - b"), "def add(a, b) return", ADD + "raise RuntimeError('boom')"):
        result = run_python_tests(code, ADD_TESTS, FAST)
        assert not result.passed and result.detail, code
    assert "RuntimeError: boom" in result.stderr


@pytest.mark.parametrize("exit_call", ["import os; os._exit(0)", "import sys; sys.exit(0)", "exit()"])
def test_exiting_early_with_status_zero_fails(exit_call):
    assert not run_python_tests(ADD + exit_call, "assert add(1, 1) == 2", FAST).passed


def test_classes_generators_exceptions_and_humaneval_checks_work_across_the_judge():
    code = (
        "import math\nfrom collections import Counter\n"
        "class Stack:\n    def __init__(self):\n        self.items = []\n"
        "    def push(self, x):\n        self.items.append(x)\n        return self\n"
        "    def __len__(self):\n        return len(self.items)\n"
        "def evens(n):\n    yield from range(0, n, 2)\n"
        "def counts(s):\n    return Counter(s)\n"
        "def root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return math.sqrt(x)\n"
    )
    tests = (
        "s = Stack().push(1).push(2)\nassert len(s) == 2 and s.items == [1, 2]\n"
        "assert list(evens(5)) == [0, 2, 4] and 4 in evens(5)\nassert counts('aab') == {'a': 2, 'b': 1}\n"
        "assert math.isclose(root(2.0), 1.41421356, rel_tol=1e-6)\n"
        "try:\n    root(-1)\n    raise AssertionError('no error')\n"
        "except ValueError as e:\n    assert 'negative' in str(e)\n"
        "def check(candidate):\n    assert candidate(9) == 3.0\ncheck(root)\n"
    )
    result = run_python_tests(code, tests, FAST)
    assert result.passed, result.stderr


def test_candidate_may_use_its_work_dir_tmp_and_the_stdlib():
    code = ADD + (
        "import json, tempfile\nopen('scratch.txt', 'w').write(json.dumps([1, 2]))\n"
        "assert json.load(open('scratch.txt')) == [1, 2]\n"
        "with tempfile.NamedTemporaryFile('w') as f:\n    f.write('x')\n"
        "open('/tmp/also-here', 'w').write('x')\n"
    )
    result = run_python_tests(code, ADD_TESTS, FAST)
    assert result.passed, result.stderr


# ------------------------------------------------------------------------------ verdict forgery
@pytest.mark.parametrize(
    "hack",
    [
        "class Any:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Any()\n",
        "class Yes:\n    def __bool__(self):\n        return True\ndef add(a, b):\n    return Yes()\n",
        "def abs(x):\n    return 0\ndef add(a, b):\n    return 99\n",
        "import math\nmath.isclose = lambda *a, **k: True\ndef add(a, b):\n    return 99\n",
    ],
)
def test_objects_that_claim_to_be_right_do_not_pass(hack):
    tests = "assert add(2, 3) == 5\nassert add(2, 3)\nassert abs(add(2, 3) - 5) < 1e-9\n"
    tests_math = "import math\nassert math.isclose(add(2, 3), 5)\n"
    assert not run_python_tests(hack, tests, FAST).passed
    assert not run_python_tests(hack, tests_math, FAST).passed


def test_the_candidate_never_sees_the_tests():
    code = (
        "import gc\nneedle = ''.join(['SECRET', '-EXPECTED'])  # not a constant of this code\n"
        "SEEN = any(needle in str(o) for o in gc.get_objects() if o is not globals())\n"
        "def add(a, b):\n    return SEEN\n"
    )
    assert run_python_tests(code, "assert add(1, 1) is False  # SECRET-EXPECTED\n", FAST).passed


def test_malformed_values_from_the_candidate_are_refused():
    for tree in ({"x": 1}, {"i": "zz"}, [1], {"h": 0}, 5):
        with pytest.raises((ValueError, TypeError)):
            runner.decode(tree)
    value = {"a": [(1, 2.5, None), {b"x", frozenset({3})}], 7: complex(1, -1), "n": float("nan")}
    decoded = runner.decode(json.loads(json.dumps(runner.encode(value))))
    assert decoded["a"] == value["a"] and decoded[7] == value[7] and decoded["n"] != decoded["n"]
    assert runner.decode(runner.encode(1 << 20000)) == 1 << 20000  # past int's str-digits limit


# ------------------------------------------------------------------------------ resource limits
def test_infinite_loop_is_killed_at_the_wall_clock_timeout():
    started = time.monotonic()
    result = run_python_tests("while True:\n    pass\n", "pass", SandboxLimits(timeout_s=1.0, cpu_s=30))
    assert result.timed_out and not result.passed and time.monotonic() - started < 4.0


def test_cpu_limit_kills_a_busy_loop_before_the_timeout():
    result = run_python_tests("while True:\n    pass\n", "pass", SandboxLimits(timeout_s=20.0, cpu_s=1))
    assert not result.timed_out and not result.passed and result.seconds < 10


def test_fork_bomb_is_contained_by_the_kernel_alone():
    bomb = "import os\nwhile True:\n    try:\n        os.fork() or os.setsid()\n    except OSError:\n        pass\n"
    before = set(os.listdir("/proc"))
    result = run_python_tests(bomb, "pass", SandboxLimits(timeout_s=1.5, max_processes=16, audit_hook=False))
    assert not result.passed
    new = set(os.listdir("/proc")) - before
    assert not [p for p in new if p.isdigit() and b"_sandbox_runner" in _cmdline(p)]


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize("audit_hook", [True, False])
def test_memory_blow_up_fails(audit_hook):
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n"
    result = run_python_tests(
        code, "pass", SandboxLimits(timeout_s=10.0, memory_bytes=512 << 20, audit_hook=audit_hook)
    )
    assert "MemoryError" in result.stderr and not result.timed_out and not result.passed


def test_network_is_unreachable_without_the_audit_hook():
    code = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)"
    result = run_python_tests(code, "pass", SandboxLimits(timeout_s=5.0, audit_hook=False))
    assert "unreachable" in result.stderr.lower() and not result.passed


def test_output_flood_is_capped():
    result = run_python_tests(
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        "pass",
        SandboxLimits(timeout_s=5.0, file_size_bytes=1 << 20),
    )
    assert not result.timed_out and not result.passed and len(result.stdout) <= 1 << 16


# ------------------------------------------------------------------------------ the attacks of issue 14
@pytest.fixture
def places(tmp_path_factory):
    """Host places the attacks aim at, owned by `owner`: a home with a 0600 secret and .bashrc, a
    world-readable file, a listening unix socket (path and abstract)."""
    base = Path(f"/tmp/phijax-sandbox-test-{secrets.token_hex(4)}")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True)
    token = secrets.token_hex(16)
    (home / ".ssh" / "id_rsa").write_text(token)
    (home / ".bashrc").write_text("# bashrc\n")
    (base / "public.txt").write_text(token)
    base.chmod(0o755)
    (base / "public.txt").chmod(0o644)
    (home / ".ssh" / "id_rsa").chmod(0o600)
    listener, abstract = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    listener.bind(str(base / "sock"))
    os.chmod(base / "sock", 0o777)
    abstract.bind(f"\0phijax-{token}")
    for s in (listener, abstract):
        s.listen()
    yield {
        "home": str(home),
        "secret_file": str(home / ".ssh" / "id_rsa"),
        "public_file": str(base / "public.txt"),
        "secret": token,
        "marker": f"phijax-escape-{token[:8]}",
        "repo": str(ROOT),
        "socket_path": str(base / "sock"),
        "abstract_name": f"phijax-{token}",
    }
    listener.close()
    abstract.close()
    shutil.rmtree(base)


def _as_nobody(places: dict) -> list[dict]:
    """Run every attack from a process of uid 65534 whose home holds the secret (the test runs as root)."""
    for path in Path(places["home"]).rglob("*"):
        os.chown(path, NOBODY, NOBODY)
    os.chown(places["home"], NOBODY, NOBODY)
    python = shutil.which("python3", path="/usr/bin:/bin")
    env = {"PATH": "/usr/bin:/bin", "HOME": places["home"], "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [python, "-B", str(_ATTACKS_FILE), json.dumps(places)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=120,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("caller", ["caller's uid", "uid 65534"])
def test_every_attack_of_issue_14_is_contained(caller, places):
    if caller == "uid 65534" and os.geteuid() != 0:
        pytest.skip("the caller is not root, so the first case already ran as a non-root user")
    if caller == "uid 65534" and not os.access(ROOT, os.R_OK | os.X_OK, effective_ids=False):
        pytest.skip("the checkout is not readable by uid 65534")
    results = {
        r["attack"]: r
        for r in (
            _as_nobody(places)
            if caller == "uid 65534"
            else [attacks.run_attack(name, places) for name in attacks.ATTACKS]
        )
    }
    assert set(results) == set(attacks.ATTACKS)
    for name, r in results.items():
        output = r["stdout"] + r["stderr"]
        assert not r["passed"], name
        assert "hook-off" in r["stdout"], f"{name}: the audit hook was not switched off: {r['stderr'][-500:]}"
        assert "ESCAPED" not in output, f"{name}: {output[-1500:]}"
        assert places["secret"] not in output, name
        assert r["host_files"] == [] and r["bashrc"] == "# bashrc\n", name
        assert r["leftover_processes"] == [], name
        assert r["caller_reads_secret"] and r["caller_reads_public"]  # the walls, not file modes, held
    assert results["read-files"]["stdout"].count("contained") == 5
    assert results["subprocess"]["stdout"].count("contained") == 3
    assert results["ctypes"]["stdout"].count("contained") == 5
    assert results["unix-socket"]["stdout"].count("contained") == 2
    assert "phijax-sandbox-test" not in results["read-files"]["stdout"]  # the host's /tmp is not listed
    fill = results["fill-disk"]["stdout"]
    assert "stopped OSError 28" in fill and int(fill.split("written ")[1].split()[0]) <= 16 << 20


# ------------------------------------------------------------------------------ refusing to run unconfined
def test_a_host_without_namespaces_is_refused_with_one_line(monkeypatch):
    sandbox.require_namespaces.cache_clear()
    monkeypatch.setattr(sandbox, "_NAMESPACES", ("--user", "--map-root-user", "--bogus-namespace"))
    try:
        with pytest.raises(SandboxError, match="needs user, mount, PID and network namespaces") as error:
            run_python_tests(ADD, ADD_TESTS, FAST)
        assert "\n" not in str(error.value)
        monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
        monkeypatch.setattr(sandbox.os.path, "exists", lambda path: False)
        sandbox.require_namespaces.cache_clear()
        with pytest.raises(SandboxError, match="needs util-linux `unshare`"):
            run_python_tests(ADD, ADD_TESTS, FAST)
    finally:
        sandbox.require_namespaces.cache_clear()


def test_a_missing_interpreter_is_an_error_not_a_verdict(monkeypatch):
    monkeypatch.setattr(sandbox, "sandbox_interpreter", lambda: ("/nonexistent/python", None))
    with pytest.raises(SandboxError, match="namespaces|could not start"):
        run_python_tests(ADD, ADD_TESTS, FAST)
