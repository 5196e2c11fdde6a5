"""Run untrusted Python (a sampled solution) against unit tests, contained, and say if it passed.

Walls, outermost first (docs/pts.md § Sandbox):
- a fresh network namespace (`unshare --net`: no interface but a downed loopback) and PID namespace
  (`--pid --fork --kill-child`: when the runner dies, the kernel kills every process the candidate
  started, even ones that left the process group), when `unshare` works here (root, or user
  namespaces); otherwise only the process-group kill;
- rlimits: CPU seconds, address space, file size, number of processes, no core dumps;
- as root, the candidate runs as an unprivileged uid (65534) — root ignores RLIMIT_NPROC and could
  write anywhere;
- a fresh temp dir as cwd, HOME and TMPDIR; the environment scrubbed; `python -I -B`;
- a Python audit hook (see `_sandbox_runner`) refusing writes outside that dir, sockets, new
  processes, ctypes and frame introspection;
- a wall-clock timeout that SIGKILLs the whole process group; output capped by RLIMIT_FSIZE.
The temp dir is deleted afterwards, whatever the candidate did to it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from phijax.errors import PhijaxError

SANDBOX_UID = 65534  # "nobody": used only when phijax runs as root
_RUNNER = Path(__file__).with_name("_sandbox_runner.py")
_NAMESPACES = ("--net", "--pid", "--fork", "--kill-child")


class SandboxError(PhijaxError):
    """The sandbox itself could not run (not the candidate failing, which is a verdict)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one run. Times in seconds, sizes in bytes."""

    timeout_s: float = 10.0          # wall clock, for the whole run
    cpu_s: int = 5                   # CPU time per process (RLIMIT_CPU)
    memory_bytes: int = 1 << 30      # address space per process (RLIMIT_AS)
    file_size_bytes: int = 8 << 20   # largest file it may write, stdout included (RLIMIT_FSIZE)
    max_processes: int = 16          # processes/threads of the sandbox user (RLIMIT_NPROC)
    audit_hook: bool = True          # the in-process wall; off only to test the OS walls alone


@dataclass(frozen=True)
class SandboxResult:
    """What happened. `passed` is the verdict; the rest explains it."""

    passed: bool
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    seconds: float
    isolation: tuple[str, ...]  # the walls that were up, e.g. ("netns", "pidns", "uid65534", "audit-hook")
    work_dir: str               # deleted when the run returns; tests check nothing is left


def run_python_tests(code: str, tests: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Execute `code` then `tests` (asserts) in one namespace inside the sandbox.

    Passes only when both run to the end: a crash, failed assert, timeout, resource limit or an
    early exit (even `os._exit(0)`) is a failure.
    """
    top = Path(tempfile.mkdtemp(prefix="phijax-sandbox-"))
    try:
        return _run_in(top, code, tests, limits)
    finally:
        _remove_tree(top)


def _run_in(top: Path, code: str, tests: str, limits: SandboxLimits) -> SandboxResult:
    work = top / "work"
    work.mkdir()
    python, uid = sandbox_interpreter()
    if uid is not None:
        top.chmod(0o711)  # the sandbox user may enter `work` but not list or read what is beside it
        os.chown(work, uid, uid)
    payload = top / "payload.json"
    payload.write_text(json.dumps({"code": code, "tests": tests, "uid": uid, "work_dir": str(work),
                                   "audit_hook": limits.audit_hook,
                                   "limits": _rlimits(limits, uid)}))
    payload.chmod(0o600)
    nonce = secrets.token_hex(16)
    prefix = namespace_prefix()
    command = [*prefix, python, "-I", "-B", str(_RUNNER), str(payload)]
    isolation = _isolation(uid, limits)
    started = time.monotonic()
    with open(top / "stdout", "w+b") as out, open(top / "stderr", "w+b") as err:
        returncode, timed_out = _run_killing_group(command, bool(prefix), work, nonce, out, err,
                                                  limits.timeout_s)
        finished = _tail(out).rstrip().endswith(nonce.encode())
        stdout, stderr = _read_back(out), _read_back(err)
    passed = returncode == 0 and not timed_out and finished
    return SandboxResult(passed, returncode, timed_out, stdout.replace(nonce, "").rstrip(), stderr,
                         time.monotonic() - started, isolation, str(work))


def _rlimits(limits: SandboxLimits, uid: int | None) -> dict[str, int]:
    """The numbers the runner applies; NPROC counts all processes of the user, so add existing ones."""
    nproc = limits.max_processes + (0 if uid is not None else _processes_of(os.getuid()))
    return {"cpu_s": limits.cpu_s, "memory_bytes": limits.memory_bytes,
            "file_size_bytes": limits.file_size_bytes, "nproc": nproc}


def _processes_of(uid: int) -> int:
    """How many processes and threads `uid` runs now (RLIMIT_NPROC counts threads too)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


def _run_killing_group(command: list[str], namespaced: bool, work: Path, nonce: str, out, err,
                       timeout_s: float) -> tuple[int | None, bool]:
    """Start the runner in its own session; on timeout SIGKILL its whole process group."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
    try:
        process = subprocess.Popen(command, cwd=work, env=env, stdin=subprocess.PIPE, stdout=out,
                                   stderr=err, start_new_session=True, close_fds=True)
    except OSError as error:
        raise SandboxError(f"could not start the sandbox ({' '.join(command[:2])}): {error}; "
                           "check that the Python interpreter and unshare are installed") from error
    try:
        process.stdin.write(nonce.encode() + b"\n")
        process.stdin.close()
    except BrokenPipeError:
        pass
    try:
        return process.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        return None, True
    finally:
        _kill_group(process, namespaced)


def _kill_group(process: subprocess.Popen, namespaced: bool) -> None:
    """Kill everything the run started, and return only once it is gone.

    With namespaces, SIGKILL the PID-namespace init (unshare's child): the kernel kills and reaps
    every process in the namespace before that init exits, and unshare exits after reaping it.
    Then SIGKILL the process group, which is all there is without namespaces.
    """
    if namespaced:
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


def _tail(file, size: int = 256) -> bytes:
    """The last `size` bytes of a captured stream (where the runner's nonce goes)."""
    file.seek(0, os.SEEK_END)
    file.seek(max(file.tell() - size, 0))
    return file.read()


def _read_back(file, limit: int = 1 << 16) -> str:
    """The first `limit` bytes of a captured stream, decoded leniently."""
    file.seek(0)
    return file.read(limit).decode("utf-8", errors="replace")


def _remove_tree(path: Path) -> None:
    """Delete the sandbox dir even if the candidate made parts of it read-only."""
    def make_writable_and_retry(function, target, _exc_info):
        os.chmod(os.path.dirname(target), stat.S_IRWXU)
        if os.path.isdir(target) and not os.path.islink(target):
            os.chmod(target, stat.S_IRWXU)
        function(target)

    shutil.rmtree(path, onerror=make_writable_and_retry)


@functools.cache
def sandbox_interpreter() -> tuple[str, int | None]:
    """The Python to run candidates with, and the uid to drop to (None when not root).

    As root the candidate runs as SANDBOX_UID, which must be able to import the interpreter's
    standard library; an interpreter installed under /root (pyenv) is unreadable to it, so a
    system `python3` is used instead. With none usable, uid stays root (NPROC then binds nothing;
    the PID namespace and the audit hook still hold) — `SandboxResult.isolation` says which.
    """
    if os.geteuid() != 0:
        return sys.executable, None
    probe = (f"import os; os.setgroups([]); os.setgid({SANDBOX_UID}); os.setuid({SANDBOX_UID}); "
             "import json, fractions, collections, socket")
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3")]):
        if python and os.path.exists(python) and _runs(["env", "-i", python, "-I", "-B", "-c", probe]):
            return python, SANDBOX_UID
    return sys.executable, None


def _runs(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=20, cwd="/", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give a new net + PID namespace here, or () when none works."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    attempts = [(unshare, *_NAMESPACES)]
    if os.geteuid() != 0:
        attempts.append((unshare, "--user", "--map-root-user", *_NAMESPACES))
    return next((prefix for prefix in attempts if _runs([*prefix, "true"])), ())


def _isolation(uid: int | None, limits: SandboxLimits) -> tuple[str, ...]:
    walls = ["rlimits", "process-group-kill", "temp-dir"]
    if namespace_prefix():
        walls += ["netns", "pidns"]
    if uid is not None:
        walls.append(f"uid{uid}")
    if limits.audit_hook:
        walls.append("audit-hook")
    return tuple(walls)


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
