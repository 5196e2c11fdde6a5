"""The kernel walls of one sandbox run, raised inside fresh namespaces before any candidate code exists.

Runs in the sandbox's first process (PID 1 of new user, mount, PID, network, IPC, UTS and cgroup
namespaces made by `unshare`), which is root of its own user namespace only: its capabilities act on
those namespaces, never on the host. Stdlib and ctypes only (glibc's mount/umount2/prctl/capset and
the pivot_root syscall), because this file is shipped to the interpreter as source, not imported.

`seal()` leaves the process with:
- a new root: a small tmpfs, read-only, holding read-only bind mounts of only the interpreter's
  standard library (its `sys.path` under `-I -S`) and the shared-library dirs (`/usr/lib`, `/lib`, ...);
- `/work` (also bound at `/tmp`): an empty tmpfs of `disk_bytes`, the one writable place;
- `/dev/{null,zero,random,urandom}` and a fresh `/proc` of the new PID namespace; nothing else of
  the host (no /home, /root, /etc, host /tmp or /dev/shm, no host sockets); the old root unmounted;
- no capabilities (bounding set emptied, no-new-privs), not dumpable (its memory and fds cannot be
  read through /proc or ptrace by another process of the same uid), and no new user namespaces.
"""

import ctypes
import os
import platform

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MNT_DETACH = 2
_ST_TO_MS = {
    1: MS_RDONLY,
    2: MS_NOSUID,
    4: MS_NODEV,
    8: MS_NOEXEC,
    16: 16,
    1024: 1024,
    2048: 2048,
    4096: 1 << 21,
}  # statvfs f_flag bits -> mount flags (the ones the kernel may lock)
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 4, 24, 38
SYSTEM_LIBRARIES = ("/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32")
DEVICES = ("null", "zero", "random", "urandom")
NEW_ROOT = "/tmp"  # a mount point that exists everywhere; covered only inside this mount namespace

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    def encode(s):
        return None if s is None else s.encode()

    _check(
        _libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
        f"mount {source or ''} on {target}",
    )


def _locked_flags(path: str) -> int:
    """The flags of the mount at `path` that a remount must keep (the kernel locks them for us)."""
    bits = os.statvfs(path).f_flag
    return sum(flag for bit, flag in _ST_TO_MS.items() if bits & bit)


def bind(source: str, target: str, extra_flags: int) -> None:
    """Bind `source` (file or dir, not its submounts) at `target`, remounted with `extra_flags`."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, MS_BIND)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | _locked_flags(target) | extra_flags)


def view_sources(search_path: list[str]) -> list[str]:
    """Host paths the candidate sees: the interpreter's import dirs and the shared-library dirs,
    without ones inside another (a bind covers what is below it)."""
    wanted = sorted(
        {
            os.path.normpath(p)
            for p in [*search_path, *SYSTEM_LIBRARIES]
            if os.path.isabs(p) and os.path.lexists(p) and (os.path.islink(p) or os.path.isdir(p))
        }
    )
    kept: list[str] = []
    for path in wanted:
        if path == "/" or path == NEW_ROOT or path.startswith(NEW_ROOT + "/"):
            raise OSError(
                f"cannot show {path} inside the sandbox (it is / or under {NEW_ROOT}); "
                "use an interpreter installed elsewhere"
            )
        if not any(path.startswith(k + "/") for k in kept if not os.path.islink(k)):
            kept.append(path)
    return kept


def build_root(sources: list[str], disk_bytes: int) -> None:
    """Assemble the candidate's file system under NEW_ROOT (still reachable from the host root)."""
    _mount("tmpfs", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")
    for path in sources:
        target = NEW_ROOT + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
        else:
            bind(path, target, MS_RDONLY | MS_NOSUID | MS_NODEV)
    for name in DEVICES:  # device nodes must not get nodev; null and zero stay writable
        bind(f"/dev/{name}", f"{NEW_ROOT}/dev/{name}", MS_NOSUID | MS_NOEXEC | (MS_RDONLY if "random" in name else 0))
    os.mkdir(f"{NEW_ROOT}/work")
    _mount("tmpfs", f"{NEW_ROOT}/work", "tmpfs", MS_NOSUID | MS_NODEV, f"size={disk_bytes},nr_inodes=16384,mode=700")
    bind(f"{NEW_ROOT}/work", f"{NEW_ROOT}/tmp", 0)  # same tmpfs, same cap, for code that hard-codes /tmp
    os.mkdir(f"{NEW_ROOT}/proc")
    _mount("proc", f"{NEW_ROOT}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def enter_root() -> None:
    """Make NEW_ROOT the root and unmount the host's: afterwards no path leads out."""
    os.chdir(NEW_ROOT)
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: no syscall number for {platform.machine()}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")  # the old root is now stacked on "."
    _check(_libc.umount2(b".", MNT_DETACH), "unmount the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | _locked_flags("/") | MS_RDONLY | MS_NOSUID | MS_NODEV)


def forbid_user_namespaces() -> None:
    """No nested user namespace (where capabilities would return, e.g. to mount an uncapped tmpfs)."""
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write("0")


def drop_privileges() -> None:
    """No capabilities now or after exec, no privilege gain via setuid files, not dumpable."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    _check(_libc.capset(header, (ctypes.c_uint32 * 6)()), "capset (clear all capabilities)")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no-new-privs")
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "set not dumpable")


def seal(search_path: list[str], disk_bytes: int) -> list[str]:
    """Raise every wall (see the module docstring); returns their names. Raises OSError naming the step."""
    build_root(view_sources(search_path), disk_bytes)
    forbid_user_namespaces()
    enter_root()
    drop_privileges()
    return [
        "userns",
        "mountns",
        "pidns",
        "netns",
        "ipcns",
        "readonly-root",
        f"tmpfs-{disk_bytes >> 20}MiB",
        "no-capabilities",
        "no-new-userns",
        "not-dumpable",
    ]
