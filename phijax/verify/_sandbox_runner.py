"""The processes of one sandbox run: a judge that runs the tests, and the candidate it questions.

Shipped as source to `python -I -S -B -c` by `phijax.verify.sandbox` (after `_sandbox_root`), stdlib
only. Order, each step before any candidate code exists:
  1. PID 1 reads the candidate's code (not the tests) from stdin and raises the kernel walls
     (`_sandbox_root.seal`: new root, capped tmpfs, no capabilities, not dumpable);
  2. it forks the candidate, which closes stdin and the verdict fd, sets its rlimits, optionally adds
     the audit hook (defence in depth, not a wall), runs the code and then answers requests;
  3. PID 1 becomes the judge: it reads the tests, runs them with each name the candidate defined
     bound to a proxy (`Remote`), and writes the verdict to the verdict fd, which the candidate
     never held. Its memory and fds are out of the candidate's reach (separate, non-dumpable process).

Why the verdict cannot be forged: the candidate only ever sends *plain data* (None, bool, int,
float, complex, str, bytes and lists, tuples, dicts, sets of them) or opaque handles. Comparisons,
`bool()`, `in` and arithmetic happen in the judge on its own copies; a handle never compares equal to
anything but itself and refuses `bool()`, so an object with `__eq__` always true proves nothing.
What a test learns is exactly what the candidate's functions returned.
"""

import builtins
import json
import os
import sys
import types

if "_sandbox_root" in sys.modules:  # inside the sandbox: shipped as source beside this file
    import _sandbox_root as walls
else:  # imported by the host (tests, docs)
    from phijax.verify import _sandbox_root as walls

MAX_MESSAGE = 64 << 20
WORK_DIR = "/work"
_DATA = (type(None), bool, int, float, complex, str, bytes)


# ------------------------------------------------------------------------------------------ wire
def send(fd: int, message) -> None:
    """One JSON message, length-prefixed (8 bytes, big-endian)."""
    body = json.dumps(message, separators=(",", ":")).encode()
    data = len(body).to_bytes(8, "big") + body
    while data:
        data = data[os.write(fd, data) :]


def receive(fd: int):
    """The next message, or None at end of stream; refuses a message over MAX_MESSAGE bytes."""
    head = _read_exactly(fd, 8)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes is over the {MAX_MESSAGE} limit")
    body = _read_exactly(fd, size)
    if body is None:
        return None
    return json.loads(body)


def _read_exactly(fd: int, size: int):
    chunks, missing = [], size
    while missing:
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def encode(value, handle=None, depth: int = 0):
    """Plain data -> JSON-able tagged tree. Other objects go through `handle` (-> {"h": id}) or
    raise TypeError. Subclasses of the builtin types (Counter, namedtuple, IntEnum) become their base."""
    if depth > 100:
        raise ValueError("data nested deeper than 100 levels")

    def down(v):
        return encode(v, handle, depth + 1)

    if (
        value is None
        or type(value) in (bool, str)
        or (type(value) is float and value == value and abs(value) != float("inf"))
    ):
        return value
    for base, tag, convert in _TAGGED:
        if isinstance(value, base):
            return {tag: convert(value, down)}
    if handle is None:
        raise TypeError(f"cannot pass a {type(value).__name__} to the candidate: only plain data")
    return {"h": handle(value)}


_TAGGED = [
    (int, "i", lambda v, down: format(int.__index__(v), "x")),  # hex: no str-digits limit
    (float, "f", lambda v, down: float.__repr__(v)),
    (complex, "c", lambda v, down: [float.__repr__(v.real), float.__repr__(v.imag)]),
    (str, "s", lambda v, down: str.__str__(v)),
    (bytes, "b", lambda v, down: bytes.hex(v)),
    (list, "l", lambda v, down: [down(x) for x in list.__iter__(v)]),
    (tuple, "t", lambda v, down: [down(x) for x in tuple.__iter__(v)]),
    (dict, "d", lambda v, down: [[down(k), down(x)] for k, x in dict.items(v)]),
    (frozenset, "fs", lambda v, down: [down(x) for x in frozenset.__iter__(v)]),
    (set, "set", lambda v, down: [down(x) for x in set.__iter__(v)]),
]


def decode(tree, remote=None):
    """The inverse of `encode`, building only builtin types; {"h": id} -> remote(id) (or refused)."""
    if tree is None or type(tree) in (bool, str, float):
        return tree
    if type(tree) is not dict or len(tree) != 1:
        raise ValueError(f"malformed value from the sandbox: {str(tree)[:80]}")
    ((tag, body),) = tree.items()

    def down(t):
        return decode(t, remote)

    if tag == "h" and remote is not None and type(body) is int:
        return remote(body)
    builders = {
        "i": lambda b: int(b, 16),
        "f": float,
        "c": lambda b: complex(float(b[0]), float(b[1])),
        "s": str,
        "b": bytes.fromhex,
        "l": lambda b: [down(x) for x in b],
        "t": lambda b: tuple(down(x) for x in b),
        "d": lambda b: {down(k): down(x) for k, x in b},
        "fs": lambda b: frozenset(down(x) for x in b),
        "set": lambda b: {down(x) for x in b},
    }
    if tag not in builders:
        raise ValueError(f"malformed value from the sandbox: tag {tag!r}")
    return builders[tag](body)


# ------------------------------------------------------------------------------------ candidate
class CandidateServer:
    """The candidate's side: runs its code, then answers the judge's questions about its objects."""

    def __init__(self, requests: int, replies: int) -> None:
        self.requests, self.replies = requests, replies
        self.objects: list = []
        self.namespace = {"__name__": "candidate", "__builtins__": builtins}

    def encode(self, value):
        def handle(obj) -> int:
            self.objects.append(obj)
            return len(self.objects) - 1

        return encode(value, handle)

    def describe(self) -> dict:
        """Every global the code defined: modules by name, data by value, anything else as a handle.
        (The judge, not this process, decides which of them the tests may see.)"""
        defined = {}
        for name, value in list(self.namespace.items()):
            try:
                defined[name] = {"m": value.__name__} if type(value) is types.ModuleType else self.encode(value)
            except Exception:
                continue  # unencodable (e.g. a self-containing list): the tests cannot use it
        return defined

    def answer(self, request: list):
        """Do what one request asks of a candidate object and return the result."""
        op, target, *args = request
        target = self.objects[target]
        args = [decode(a, self.objects.__getitem__) for a in args]
        if op == "call":
            return target(*args[0], **args[1])
        operations = {
            "getattr": getattr,
            "setattr": setattr,
            "getitem": lambda t, k: t[k],
            "setitem": lambda t, k, v: t.__setitem__(k, v),
            "list": list,
            "len": len,
            "str": str,
        }
        return operations[op](target, *args)

    def serve(self) -> None:
        """Answer until the judge closes the channel; a raised exception is an answer too."""
        while (request := receive(self.requests)) is not None:
            try:
                reply = ["ok", self.encode(self.answer(request))]
            except BaseException as error:  # its SystemExit or MemoryError is its answer, not our exit
                reply = ["raise", type(error).__name__, _describe(error)]
            flush_output()
            send(self.replies, reply)


def _describe(error: BaseException) -> str:
    try:
        return str(error)[:1000]
    except BaseException:
        return "(unprintable)"


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def set_limits(limits: dict, processes: bool) -> None:
    """rlimits; hard = soft (+1 s of CPU so SIGXCPU comes before SIGKILL). The judge skips the
    process and file-size limits (it forks once and writes only its report)."""
    import resource

    pairs = {
        resource.RLIMIT_CPU: (limits["cpu_s"], limits["cpu_s"] + 1),
        resource.RLIMIT_AS: (limits["memory_bytes"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
    }
    if processes:
        pairs[resource.RLIMIT_FSIZE] = (limits["file_size_bytes"],) * 2
        pairs[resource.RLIMIT_NPROC] = (limits["nproc"],) * 2
    for which, pair in pairs.items():
        resource.setrlimit(which, pair)


def run_candidate(spec: dict, requests: int, replies: int) -> None:
    """The forked candidate process: limits, (optionally) the audit hook, the code, then questions."""
    set_limits(spec["limits"], processes=True)
    os.chdir(WORK_DIR)
    os.environ.clear()
    os.environ.update(HOME=WORK_DIR, TMPDIR=WORK_DIR, PATH="/usr/bin:/bin", LANG="C.UTF-8")
    for name in [m for m in sys.modules if m.partition(".")[0] in ("ctypes", "_ctypes", "_sandbox_root")]:
        del sys.modules[name]  # so the audit hook sees a fresh `import ctypes`
    globals()["walls"] = None
    if spec["audit_hook"]:
        sys.addaudithook(make_audit_hook(WORK_DIR))
    server = CandidateServer(requests, replies)
    try:
        exec(compile(spec["code"], "candidate.py", "exec"), server.namespace)
        message = ["defined", server.describe()]
    except BaseException as error:
        message = ["failed", type(error).__name__, _describe(error)]
        server.namespace.clear()  # free what it allocated (a MemoryError) before printing
        _print_exception(error)
    flush_output()
    send(replies, message)
    if message[0] == "defined":
        server.serve()
    flush_output()
    os._exit(0)


def _print_exception(error: BaseException) -> None:
    try:
        import traceback

        traceback.print_exception(error)
    except BaseException:
        os.write(2, f"{type(error).__name__}: {_describe(error)}\n".encode())


# ------------------------------------------------------------------------- audit hook (not a wall)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {
    "os.remove": 1,
    "os.rmdir": 1,
    "os.mkdir": 1,
    "os.rename": 2,
    "os.link": 2,
    "os.symlink": 2,
    "os.truncate": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.utime": 1,
    "shutil.rmtree": 1,
    "os.mkfifo": 1,
    "os.mknod": 1,
    "os.chroot": 1,
}
_PROCESS_EVENTS = {
    "os.fork",
    "os.forkpty",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "subprocess.Popen",
    "os.kill",
    "os.killpg",
    "ctypes.dlopen",
    "ctypes.dlsym",
    "os.setuid",
    "os.setgid",
}
_BLOCKED_IMPORTS = {"_posixsubprocess", "_ctypes", "ctypes", "multiprocessing", "_multiprocessing"}
_NETWORK_FAMILIES = {2, 10, 17}  # AF_INET, AF_INET6, AF_PACKET


def make_audit_hook(work_dir: str, also_writable: str = "/tmp"):
    """Refuse (PermissionError) writes outside `work_dir` (and `also_writable`, the same tmpfs),
    sockets, new processes and ctypes. Code in
    the process can switch it off (it lives in the process); it only turns most mistakes into a clear
    error message before they reach the kernel walls, which are what contains a candidate."""
    inside = [False]  # realpath inside the hook raises events of its own

    def outside(path) -> bool:
        if isinstance(path, int):
            return False  # an already-open descriptor: checked when it was opened
        resolved = os.path.realpath(os.path.join(os.getcwd(), os.fsdecode(path)))
        return all(os.path.commonpath([resolved, place]) != place for place in (work_dir, also_writable))

    def allowed(event: str, args: tuple) -> bool:
        if event == "open":
            path, mode, flags = args
            return not (any(c in (mode or "") for c in "wax+") or flags & _WRITE_FLAGS) or not outside(path)
        if event in _PATH_EVENTS:
            return not any(outside(p) for p in args[: _PATH_EVENTS[event]])
        if event == "socket.__new__":
            return args[1] not in _NETWORK_FAMILIES
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
            return False
        if event == "import":
            return args[0].partition(".")[0] not in _BLOCKED_IMPORTS
        return event not in _PROCESS_EVENTS

    def hook(event: str, args: tuple) -> None:
        if inside[0]:
            return
        inside[0] = True
        try:
            ok = allowed(event, args)
        finally:
            inside[0] = False
        if not ok:
            raise PermissionError(f"sandbox: {event} {str(args[:1])[:80]} is not allowed here")

    return hook


# ---------------------------------------------------------------------------------------- judge
class CandidateError(Exception):
    """The candidate raised an exception with no builtin type, or its process died mid-question."""


_NOT_MIRRORED = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"}


class Candidate:
    """The judge's end of the channel: one question, one plain-data answer."""

    def __init__(self, requests: int, replies: int) -> None:
        self.requests, self.replies = requests, replies

    def ask(self, op: str, handle: int, *args):
        send(self.requests, [op, handle, *[encode(a, _handle_of) for a in args]])
        return self.answer("ok")

    def answer(self, expected: str):
        """The next reply's value; its exception re-raised here; malformed replies fail closed."""
        reply = receive(self.replies)
        if reply is None:
            raise CandidateError("the candidate's process exited")
        if type(reply) is not list or len(reply) < 2 or type(reply[0]) is not str:
            raise ValueError("malformed reply from the candidate")
        if reply[0] in ("raise", "failed") and len(reply) == 3:
            raise _exception(reply[1], reply[2])
        if reply[0] != expected:
            raise ValueError(f"unexpected reply {reply[0][:20]!r} from the candidate")
        return reply[1] if expected == "defined" else decode(reply[1], self.remote)

    def remote(self, handle: int) -> "Remote":
        return Remote(self, handle)

    def definitions(self) -> dict:
        """The candidate's globals the tests may use: never a dunder or a builtin's name (so it cannot
        replace `abs` or `len` for the tests); modules become the judge's own stdlib module."""
        names = {}
        defined = self.answer("defined")
        for name, tree in defined.items() if type(defined) is dict else ():
            if name.startswith("__") or hasattr(builtins, name):
                continue
            if type(tree) is dict and list(tree) == ["m"]:
                module = str(tree["m"])
                if module.partition(".")[0] in sys.stdlib_module_names.difference(_NOT_MIRRORED):
                    try:
                        names[name] = __import__("importlib").import_module(module)
                    except ImportError:
                        pass
                continue
            names[name] = decode(tree, self.remote)
        return names


def _exception(name, message) -> Exception:
    kind = getattr(builtins, name, None) if type(name) is str else None
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(str(message))
        except Exception:
            pass
    return CandidateError(f"{name}: {message}")


def _handle_of(value) -> int:
    if type(value) is Remote:
        return object.__getattribute__(value, "_handle")
    raise TypeError(f"cannot pass a {type(value).__name__} to the candidate: only plain data and its own objects")


class Remote:
    """A candidate object seen from the judge. Calls, attributes, items, `len`, `str` and iteration
    are questions whose answers are plain data (or more handles); `==` is identity and `bool()` is
    refused, so the candidate's own `__eq__`/`__bool__` never decide an assertion."""

    __slots__ = ("_candidate", "_handle")

    def __init__(self, candidate: Candidate, handle: int) -> None:
        object.__setattr__(self, "_candidate", candidate)
        object.__setattr__(self, "_handle", handle)

    def _ask(self, op: str, *args):
        return self._candidate.ask(op, self._handle, *args)

    def __call__(self, *args, **kwargs):
        return self._ask("call", list(args), kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._ask("getattr", name)

    def __setattr__(self, name: str, value) -> None:
        self._ask("setattr", name, value)

    def __getitem__(self, key):
        return self._ask("getitem", key)

    def __setitem__(self, key, value) -> None:
        self._ask("setitem", key, value)

    def __iter__(self):
        return iter(self._ask("list"))

    def __contains__(self, item) -> bool:
        return item in self._ask("list")

    def __len__(self) -> int:
        return self._ask("len")

    def __str__(self) -> str:
        return self._ask("str")

    def __repr__(self) -> str:
        return f"<candidate object #{self._handle}>"

    def __eq__(self, other):
        return NotImplemented

    def __ne__(self, other):
        return NotImplemented

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError("the truth of a candidate's object is not plain data; test what it returns")


def run_tests(tests: str, candidate: Candidate) -> tuple[bool, str]:
    """Run the tests with the candidate's names bound; (passed, why not)."""
    try:
        namespace = {"__name__": "tests", "__builtins__": builtins, **candidate.definitions()}
        exec(compile(tests, "tests.py", "exec"), namespace)
        return True, ""
    except BaseException as error:  # a failed assert, the candidate's exception, a malformed reply...
        _print_exception(error)
        return False, f"{type(error).__name__}: {_describe(error)}"[:500]


# ----------------------------------------------------------------------------------------- main
def main() -> None:
    """PID 1: walls, fork the candidate, judge, write the verdict."""
    verdict_fd = int(sys.argv[1])
    spec = receive(0)
    try:
        isolation = walls.seal(sys.path, spec["disk_bytes"])
    except OSError as error:
        send(verdict_fd, {"setup_error": str(error)})
        os._exit(3)
    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    if os.fork() == 0:
        for fd in (verdict_fd, requests_w, replies_r):
            os.close(fd)
        empty, writer = os.pipe()  # stdin: still holds the tests, so replace it by an empty stream
        os.close(writer)
        os.dup2(empty, 0)
        run_candidate(spec, requests_r, replies_w)
    os.close(requests_r)
    os.close(replies_w)
    tests = receive(0)["tests"]
    set_limits(spec["limits"], processes=False)
    passed, detail = run_tests(tests, Candidate(requests_w, replies_r))
    flush_output()
    walls_up = [*isolation, "rlimits", "separate-judge"] + (["audit-hook"] if spec["audit_hook"] else [])
    send(verdict_fd, {"passed": passed, "detail": detail, "isolation": walls_up})
    os._exit(0)


if __name__ == "__main__":
    main()
