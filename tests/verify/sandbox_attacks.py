"""Attacks on the code sandbox, as candidate code, with the host-side evidence of each.

Used by test_sandbox.py in-process (the caller's uid) and, as a script, by a copy of the test run as
an unprivileged uid: `python sandbox_attacks.py PLACES_JSON` prints one JSON result per attack.
Stdlib + phijax.verify.sandbox only, so the system python3 can run it as uid 65534.
"""

from __future__ import annotations

import json
import os
import sys

from phijax.verify.sandbox import SandboxLimits, run_python_tests

# Switches the audit hook off from inside (issue 14, item 1): every attack below starts with it, so
# what contains them is the kernel, not Python.
HOOK_OFF = """
import gc
for f in gc.get_objects():
    if getattr(f, "__name__", "") == "hook" and getattr(f, "__closure__", None):
        for cell in f.__closure__:
            if isinstance(cell.cell_contents, list):
                cell.cell_contents[0] = True
import ctypes  # refused while the hook is on
print("hook-off")
"""

TRY = """
def attempt(what, action):
    try:
        result = action()
    except BaseException as error:
        print("contained", what, type(error).__name__)
    else:
        print("ESCAPED", what, repr(result)[:200])
"""

ATTACKS = {
    "write-host-tmp-shm-home": """
attempt("dev-shm", lambda: open("/dev/shm/{marker}", "w").write("pwned"))
attempt("bashrc", lambda: open("{home}/.bashrc", "a").write("pwned\\n"))
attempt("repo", lambda: open("{repo}/{marker}", "w").write("pwned"))
open("/tmp/{marker}", "w").write("inside")  # the sandbox's own /tmp: allowed, must not reach the host
""",
    "read-files": """
import os
attempt("world-readable", lambda: open("{public_file}").read())
attempt("secret-0600", lambda: open("{secret_file}").read())
attempt("etc-passwd", lambda: open("/etc/passwd").read())
attempt("repo", lambda: open("{repo}/pyproject.toml").read())
attempt("home", lambda: os.listdir("{home}"))
print("tmp listing", sorted(os.listdir("/tmp")), sorted(os.listdir("/")))
""",
    "subprocess": """
import subprocess, sys
for argv in (["/bin/sh", "-c", "cat {secret_file}"], [sys.executable, "-c", "print(open('{secret_file}').read())"],
             ["/usr/bin/cat", "{secret_file}"]):
    attempt("run " + argv[0], lambda: subprocess.run(argv, capture_output=True).stdout)
""",
    "ctypes": """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for what, call in [("mount-tmpfs", lambda: libc.mount(b"tmpfs", b"/work", b"tmpfs", 0, b"size=10g")),
                   ("remount-root-rw", lambda: libc.mount(None, b"/", None, 32 | 4096, None)),
                   ("unshare-userns", lambda: libc.unshare(0x10000000)),
                   ("chroot", lambda: libc.chroot(b"/work")),
                   ("keep-capabilities",
                    lambda: -1 if "CapEff:\\t0000000000000000" in open("/proc/self/status").read() else 0)]:
    attempt(what, lambda: call() == 0 or 1 / 0)  # success (0) is an escape; failure (-1) raises here
""",
    "unix-socket": """
import socket
for address in ("{socket_path}", "\\0{abstract_name}"):
    attempt("connect " + address[:20], lambda: socket.socket(socket.AF_UNIX).connect(address))
""",
    "fill-disk": """
written = 0
try:  # many files, each under RLIMIT_FSIZE: only the tmpfs cap can stop it
    for i in range(100):
        with open(f"/work/fill{{i}}", "wb") as f:
            for _ in range(4):
                f.write(b"x" * (1 << 20))
                f.flush()
                written += 1 << 20
except OSError as error:
    print("stopped", type(error).__name__, error.errno)
print("written", written)
""",
    "forge-verdict": """
import os, sys
frame = sys._getframe()
while frame is not None:  # the runner's frames: write a fake verdict to every fd it may hold
    for value in frame.f_locals.values():
        if isinstance(value, int) and 0 <= value < 256:
            for fake in (b'{{"passed": true}}', b'\\x00' * 7 + b'\\x10{{"passed":true}}'):
                try:
                    os.write(value, fake)
                except OSError:
                    pass
    frame = frame.f_back
for fd in range(256):
    try:
        os.write(fd, b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x10{{"passed": true}}')
    except OSError:
        pass
os._exit(0)
""",
    "outlive-the-run": """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(30)
    os._exit(0)
time.sleep(0.2)
""",
}
LIMITS = SandboxLimits(timeout_s=5.0, cpu_s=3, disk_bytes=16 << 20)


def runner_processes() -> set[int]:
    """Host pids of sandbox processes (their command line carries the runner's source)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if b"_sandbox_runner.py" in f.read():
                        found.add(int(entry.name))
            except OSError:
                continue
    return found


def run_attack(name: str, places: dict[str, str]) -> dict:
    """Run one attack; return the verdict, output and what is left on the host afterwards."""
    before = runner_processes()
    code = HOOK_OFF + TRY + ATTACKS[name].format(**places)
    result = run_python_tests(code, "assert add(1, 2) == 3", LIMITS)
    marker = places["marker"]
    return {
        "attack": name,
        "passed": result.passed,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "isolation": list(result.isolation),
        "leftover_processes": sorted(runner_processes() - before),
        "host_files": [
            p for p in (f"/tmp/{marker}", f"/dev/shm/{marker}", f"{places['repo']}/{marker}") if os.path.exists(p)
        ],
        "bashrc": open(f"{places['home']}/.bashrc").read(),
        "caller_reads_secret": open(places["secret_file"]).read() == places["secret"],
        "caller_reads_public": open(places["public_file"]).read() == places["secret"],
    }


if __name__ == "__main__":
    places = json.loads(sys.argv[1])
    for attack in ATTACKS:
        print(json.dumps(run_attack(attack, places)), flush=True)
