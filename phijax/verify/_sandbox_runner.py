"""The process that runs untrusted code inside the sandbox (started by `phijax.verify.sandbox`).

Runs as `python -I -B _sandbox_runner.py PAYLOAD_JSON`, stdlib only, in this order, each step before
any candidate code exists in the process:
  1. read the payload (code, tests, limits) and delete it, so the candidate cannot read the tests;
  2. set rlimits (CPU seconds, address space, file size, processes);
  3. when started as root, drop to the unprivileged sandbox uid (RLIMIT_NPROC binds only non-root);
  4. install an audit hook that refuses writes outside the work dir, sockets, new processes and
     ctypes — a second wall behind the OS one, and the only one where namespaces are unavailable;
  5. exec the candidate, then the tests, in one namespace; print the nonce only if both finished.
The nonce arrives on stdin, so a candidate that exits early with status 0 (`sys.exit(0)`,
`os._exit(0)`) still fails. It guards the verdict against such accidents, not against code written
to game it: in-process code can always reach the runner's frame (or return an object whose __eq__
is always True). The walls protect the host; the verdict is as honest as the tests.
"""

import json
import os
import resource
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.rename": 2, "os.link": 2,
                "os.symlink": 2, "os.truncate": 1, "os.chmod": 1, "os.chown": 1, "os.utime": 1,
                "shutil.rmtree": 1, "os.mkfifo": 1, "os.mknod": 1, "os.chroot": 1}
_PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "subprocess.Popen", "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym",
                   "os.setuid", "os.setgid"}
_BLOCKED_IMPORTS = {"_posixsubprocess", "_ctypes", "ctypes", "multiprocessing", "_multiprocessing"}
_NETWORK_FAMILIES = {2, 10, 17}  # AF_INET, AF_INET6, AF_PACKET


def set_limits(limits):
    """Apply the rlimits; hard = soft (+1 s of CPU so SIGXCPU comes before SIGKILL)."""
    pairs = {resource.RLIMIT_CPU: (limits["cpu_s"], limits["cpu_s"] + 1),
             resource.RLIMIT_AS: (limits["memory_bytes"],) * 2,
             resource.RLIMIT_FSIZE: (limits["file_size_bytes"],) * 2,
             resource.RLIMIT_NPROC: (limits["nproc"],) * 2,
             resource.RLIMIT_CORE: (0, 0)}
    for which, (soft, hard) in pairs.items():
        resource.setrlimit(which, (soft, hard))


def drop_privileges(uid):
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _is_kernel_view(path):
    """Whether a path reads /proc or /sys (e.g. /proc/self/mem, the runner's own memory)."""
    resolved = os.path.realpath(os.fsdecode(path))
    return resolved.startswith(("/proc/", "/sys/")) or resolved in ("/proc", "/sys")


def make_audit_hook(work_dir):
    """An audit hook that raises PermissionError for anything but in-sandbox computation."""
    work_dir = os.path.realpath(work_dir)
    inside = [False]  # realpath inside the hook raises events of its own

    def outside(path):
        if isinstance(path, int):
            return False  # an already-open descriptor: checked when it was opened
        path = os.fsdecode(path)
        resolved = os.path.realpath(os.path.join(os.getcwd(), path))
        return os.path.commonpath([resolved, work_dir]) != work_dir

    def check(event, args):
        if event == "open":
            path, mode, flags = args
            writes = any(c in (mode or "") for c in "wax+") or bool(flags & _WRITE_FLAGS)
            if writes:
                return not outside(path)
            return isinstance(path, int) or not _is_kernel_view(path)
        if event in _PATH_EVENTS:
            return not any(outside(p) for p in args[:_PATH_EVENTS[event]])
        if event == "socket.__new__":
            return args[1] not in _NETWORK_FAMILIES
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
                     "socket.gethostbyname", "socket.gethostbyaddr"):
            return False
        if event == "import":
            return args[0].split(".")[0] not in _BLOCKED_IMPORTS
        return event not in _PROCESS_EVENTS

    def hook(event, args):
        if inside[0]:
            return
        inside[0] = True
        try:
            allowed = check(event, args)
        finally:
            inside[0] = False
        if not allowed:
            detail = f" {args[0]!r}"[:80] if args else ""
            raise PermissionError(f"sandbox: {event}{detail} is not allowed here")

    return hook


def main():
    payload_path = sys.argv[1]
    with open(payload_path) as f:
        payload = json.load(f)
    os.unlink(payload_path)
    nonce = os.read(0, 256)  # os.read: no Python-level buffer keeps a copy
    set_limits(payload["limits"])
    candidate = compile(payload["code"], "candidate.py", "exec")
    tests = compile(payload["tests"], "tests.py", "exec")
    uid, work_dir, audit = payload["uid"], payload["work_dir"], payload["audit_hook"]
    del payload
    run, write, exit_now = exec, os.write, os._exit  # bound before the candidate can patch them
    if uid is not None:
        drop_privileges(uid)
    os.chdir(work_dir)
    if audit:
        sys.addaudithook(make_audit_hook(work_dir))
    namespace = {"__name__": "candidate", "__builtins__": __builtins__}
    run(candidate, namespace)
    run(tests, namespace)
    write(1, b"\n" + nonce)
    exit_now(0)  # skip atexit handlers and threads the candidate left behind


if __name__ == "__main__":
    main()
