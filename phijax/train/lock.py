"""One training at a time per run directory: `run_dir/.lock`, aware of locks left by dead processes.

The lock file holds the owner's host name, pid and process start time (JSON); the owner refreshes its
mtime every `HEARTBEAT_S` seconds from a daemon thread. Another process finds the lock:
- on the same host: held while that pid runs with the same start time (a reused pid is not the owner);
- on another host (a shared filesystem): held while the heartbeat is younger than `STALE_S`.
A stale lock is taken over with one info line; a held one is refused with one line naming the owner.
Creation is atomic (`O_CREAT | O_EXCL`); a takeover removes the stale file and creates it anew, so two
processes racing for one stale lock cannot both win.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from phijax.errors import PhijaxError

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"
HEARTBEAT_S = 30.0
STALE_S = 300.0


UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class RunDirLocked(PhijaxError):
    """Another live training owns the run directory."""


class RunDirUnwritable(PhijaxError):
    """The run directory cannot be written (read-only file system, no permission)."""


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/<pid>/stat), None where it is not known."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_record() -> dict[str, Any]:
    """This process as a lock owner."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start_time(os.getpid())}


def is_stale(owner: dict[str, Any], mtime: float, now: float | None = None, stale_s: float = STALE_S) -> bool:
    """Whether a lock of `owner` (last heartbeat at `mtime`) was left by a process that is gone."""
    if owner.get("host") == socket.gethostname():
        pid = int(owner.get("pid", -1))
        if pid <= 0 or not pid_alive(pid):
            return True
        start = owner.get("start")
        return start is not None and process_start_time(pid) not in (None, start)
    return (time.time() if now is None else now) - mtime > stale_s


class RunLock:
    """The lock of one run directory; `acquire()` then `release()` (or use it as a context manager)."""

    def __init__(self, run_dir: str | Path, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
        self.path = Path(run_dir) / LOCK_FILE
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock (taking over a stale one); RunDirLocked when a live process holds it,
        RunDirUnwritable when the run directory (or the lock file in it) cannot be written."""
        try:
            self._acquire()
        except OSError as err:
            if err.errno not in UNWRITABLE:
                raise
            raise RunDirUnwritable(
                f"cannot write {err.filename or self.path}: {err.strerror}: training writes its lock, config and "
                "checkpoints into run_dir; pass a writable run_dir (copy a finished run there to train it further)"
            ) from None

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self._start_heartbeat()
                return
            owner, mtime = self._read()
            if owner is None:
                continue  # removed between our create and read: try again
            if not is_stale(owner, mtime, stale_s=self.stale_s):
                raise RunDirLocked(
                    f"{self.path.parent} is in use by another training (host {owner.get('host')}, pid "
                    f"{owner.get('pid')}): wait for it to end, or use another run_dir"
                )
            log.info(
                "taking over the stale lock of %s (host %s, pid %s is gone)",
                self.path.parent,
                owner.get("host"),
                owner.get("pid"),
            )
            self.path.unlink(missing_ok=True)
        raise RunDirLocked(f"{self.path} keeps changing: another process is taking the run directory")

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(owner_record(), f)
        return True

    def _read(self) -> tuple[dict[str, Any] | None, float]:
        try:
            mtime = self.path.stat().st_mtime
            return json.loads(self.path.read_text() or "{}"), mtime
        except FileNotFoundError:
            return None, 0.0
        except ValueError:
            return {}, mtime  # a half-written lock: stale once its heartbeat is old

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    os.utime(self.path)
                except OSError:
                    return

        self._thread = threading.Thread(target=beat, name="phijax-run-lock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        owner, _ = self._read()
        if owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
