"""Run untrusted Python (a sampled solution) against unit tests, contained, and say if it passed.

The walls are the kernel's, raised before any candidate code exists (docs/sandbox.md says exactly
what holds): new user, mount, PID, network, IPC, UTS and cgroup namespaces (`unshare`); a new root
that shows only the interpreter's standard library and the shared-library dirs, read-only; one
writable place, a size-capped tmpfs (`/work`, also `/tmp`); no capabilities, no nested user
namespaces; rlimits; a wall-clock timeout after which the whole PID namespace dies. As root the run
starts as uid 65534 first, so root and non-root callers get the same sandbox.

The verdict comes from a judge process (`_sandbox_runner`) that runs the tests and questions the
candidate's process for plain-data answers; it reaches the host over a pipe the candidate never
holds. Where namespaces are unavailable the sandbox refuses to run (`SandboxError`), never runs
unconfined.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from phijax.errors import PhijaxError

SANDBOX_UID = 65534  # "nobody": the uid a root caller starts the sandbox as
_HERE = Path(__file__).parent
_NAMESPACES = (
    "--user",
    "--map-root-user",
    "--mount",
    "--net",
    "--pid",
    "--ipc",
    "--uts",
    "--cgroup",
    "--fork",
    "--kill-child",
)
_OUTPUT_LIMIT = 1 << 16


class SandboxError(PhijaxError):
    """The sandbox itself could not run (not the candidate failing, which is a verdict)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one run. Times in seconds, sizes in bytes."""

    timeout_s: float = 10.0  # wall clock, for the whole run
    cpu_s: int = 5  # CPU time per process (RLIMIT_CPU)
    memory_bytes: int = 1 << 30  # address space per process (RLIMIT_AS)
    file_size_bytes: int = 8 << 20  # largest file it may write, stdout included (RLIMIT_FSIZE)
    disk_bytes: int = 64 << 20  # all it may write together: the size of its tmpfs (RAM-backed)
    max_processes: int = 16  # processes/threads the candidate may add (RLIMIT_NPROC)
    audit_hook: bool = True  # defence in depth in the candidate's process; off to test the walls


@dataclass(frozen=True)
class SandboxResult:
    """What happened. `passed` is the verdict; the rest explains it."""

    passed: bool
    returncode: int | None
    timed_out: bool
    stdout: str  # the candidate's (and the tests') stdout, first 64 KiB
    stderr: str  # the same for stderr, with the failing test's traceback
    seconds: float
    isolation: tuple[str, ...]  # the walls that were up, e.g. ("userns", "mountns", ..., "audit-hook")
    detail: str = ""  # why it failed, one line ("AssertionError: ...", "timed out")


def run_python_tests(code: str, tests: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `code`, then `tests` (asserts) against the names it defined, inside the sandbox.

    Passes only when the code ran to the end and every test statement did: a crash, failed assert,
    timeout, resource limit or an early exit (even `os._exit(0)`) is a failure. Raises SandboxError
    when the sandbox cannot be set up here.
    """
    python, uid = sandbox_interpreter()
    prefix = require_namespaces(python, uid)
    spec = {
        "code": code,
        "disk_bytes": limits.disk_bytes,
        "audit_hook": limits.audit_hook,
        "limits": {
            "cpu_s": limits.cpu_s,
            "memory_bytes": limits.memory_bytes,
            "file_size_bytes": limits.file_size_bytes,
            "nproc": limits.max_processes + 3,
        },
    }
    stdin = _message(spec) + _message({"tests": tests})
    started = time.monotonic()
    out, err = os.memfd_create("sandbox-stdout"), os.memfd_create("sandbox-stderr")
    verdict_r, verdict_w = os.pipe()
    try:
        command = [*prefix, python, "-I", "-S", "-B", "-c", _bootstrap(), str(verdict_w)]
        returncode, timed_out = _run(command, uid, stdin, out, err, verdict_w, limits.timeout_s)
        verdict = _read_verdict(verdict_r)
        stdout, stderr = _read_back(out), _read_back(err)
    finally:
        for fd in (out, err, verdict_r):
            os.close(fd)
    if "setup_error" in verdict:
        raise SandboxError(
            f"sandbox set-up failed: {verdict['setup_error']}; the kernel refused a wall, so the candidate was not run"
        )
    passed = verdict.get("passed") is True and not timed_out
    detail = "timed out" if timed_out else str(verdict.get("detail", "the judge died without a verdict"))
    return SandboxResult(
        passed,
        returncode,
        timed_out,
        stdout,
        stderr,
        time.monotonic() - started,
        tuple(verdict.get("isolation", ())),
        "" if passed else detail,
    )


def _message(obj) -> bytes:
    body = json.dumps(obj).encode()
    return len(body).to_bytes(8, "big") + body


@functools.cache
def _bootstrap() -> str:
    """The `-c` program: the two sandbox modules shipped as source (the sandbox uid may not be able
    to read this checkout, and the candidate's root will not contain it)."""
    root = (_HERE / "_sandbox_root.py").read_text()
    runner = (_HERE / "_sandbox_runner.py").read_text()
    return (
        "import sys, types\n"
        "walls = types.ModuleType('_sandbox_root')\n"
        f"exec(compile({root!r}, '_sandbox_root.py', 'exec'), walls.__dict__)\n"
        "sys.modules['_sandbox_root'] = walls\n"
        f"exec(compile({runner!r}, '_sandbox_runner.py', 'exec'), {{'__name__': '__main__'}})\n"
    )


def _run(
    command: list[str], uid: int | None, stdin: bytes, out: int, err: int, verdict_w: int, timeout_s: float
) -> tuple[int | None, bool]:
    """Start the sandbox (as `uid` when given), feed it the job, wait; on timeout kill it all."""
    as_user = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    try:
        process = subprocess.Popen(
            command,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            pass_fds=(verdict_w,),
            start_new_session=True,
            **as_user,
        )
    except OSError as error:
        raise SandboxError(f"could not start the sandbox ({command[0]}): {error}; install util-linux") from error
    finally:
        os.close(verdict_w)  # only the sandbox holds the write end now: EOF when it is gone
    try:
        process.communicate(stdin, timeout=timeout_s)
        return process.returncode, False
    except subprocess.TimeoutExpired:
        return None, True
    finally:
        _kill_all(process)


def _kill_all(process: subprocess.Popen) -> None:
    """Kill everything the run started, and return once it is gone: SIGKILL the PID-namespace init
    (unshare's child; the kernel then kills every process in the namespace), then unshare's group."""
    for pid in _children_of(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _children_of(parent: int) -> list[int]:
    """Host pids whose parent is `parent` (read from /proc/PID/stat)."""
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return children


def _read_verdict(fd: int) -> dict:
    """The judge's one message, or {} if it died first (a failure, never a pass)."""
    data = b""
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    try:
        message = json.loads(data[8:]) if len(data) > 8 else {}
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _read_back(fd: int) -> str:
    """The first 64 KiB of a captured stream, decoded leniently."""
    return os.pread(fd, _OUTPUT_LIMIT, 0).decode("utf-8", errors="replace")


@functools.cache
def sandbox_interpreter() -> tuple[str, int | None]:
    """The Python the sandbox runs, and the uid to start it as (None: the caller's, when not root).

    A root caller starts the sandbox as SANDBOX_UID, which must be able to read the interpreter; one
    installed under /root (pyenv) is unreadable to it, so the system `python3` is used instead.
    Candidates get the standard library only either way (`python -I -S`).
    """
    if os.geteuid() != 0:
        return sys.executable, None
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3")]):
        if python and os.path.exists(python) and _runs([python, "-I", "-S", "-c", "import json, ctypes"], SANDBOX_UID):
            return python, SANDBOX_UID
    raise SandboxError(
        f"no Python interpreter here is readable by uid {SANDBOX_UID}, which a root caller "
        "runs the sandbox as; install a system python3 (e.g. apt-get install python3)"
    )


def _runs(command: list[str], uid: int | None) -> bool:
    as_user = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    try:
        return (
            subprocess.run(command, capture_output=True, timeout=20, cwd="/", check=False, env={}, **as_user).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def require_namespaces(python: str, uid: int | None) -> tuple[str, ...]:
    """The `unshare` command that starts a run; SandboxError (one line, what is missing) if this host
    cannot give the namespaces, so nothing ever runs unconfined."""
    unshare = shutil.which("unshare") or next(
        (p for p in ("/usr/bin/unshare", "/bin/unshare") if os.path.exists(p)), None
    )
    if unshare is None:
        raise SandboxError(
            "the code sandbox needs util-linux `unshare`, which is not installed; "
            "install util-linux (apt-get install util-linux)"
        )
    prefix = (unshare, *_NAMESPACES)
    as_user = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    try:
        probe = subprocess.run(
            [*prefix, python, "-I", "-S", "-c", "pass"],
            capture_output=True,
            timeout=20,
            cwd="/",
            env={},
            check=False,
            **as_user,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxError(f"could not start the sandbox ({unshare}, {python}): {error}") from error
    if probe.returncode != 0:
        why = (probe.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise SandboxError(
            f"the code sandbox needs user, mount, PID and network namespaces, which this host "
            f"refused ({why}); allow unprivileged user namespaces (sysctl "
            "user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1) — it never "
            "runs code unconfined"
        )
    return prefix


_FENCE = re.compile(r"```[ \t]*(python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str:
    """The program in a response: the last ```python fenced block, else the last fenced block,
    else the whole response (a bare program)."""
    blocks = _FENCE.findall(completion)
    python = [body for language, body in blocks if language]
    if python:
        return python[-1]
    if blocks:
        return blocks[-1][1]
    return completion
