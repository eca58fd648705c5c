"""One writer per run folder: a lock file naming its owner.

``<folder>/.lossbench.lock`` holds the owner's PID, host, PID namespace, start
time and a random token; its modification time is a heartbeat the owner
refreshes every ``HEARTBEAT_S`` seconds. A lock is stale, and is taken over,
when its process is gone on this host (same host name and PID namespace), or
when its heartbeat is older than ``STALE_AFTER_S``: the only test that works
for another host on a shared cluster file system, where its PIDs cannot be
checked. Creation is atomic (a complete file hard-linked into place, or
``O_EXCL``); a takeover is serialised by a second, short-lived lock and
replaces the stale file in one rename, so there is never a moment with no lock
for a third process to slip into unnoticed.

A process may hold the same folder more than once (the command line claims a
run folder before Hydra starts, the job claims it again); it is released when
the last holder lets go, or when the process exits, SIGTERM included.
"""

import atexit
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lossbench.errors import UserError

LOCK_NAME = ".lossbench.lock"
HEARTBEAT_S = 30.0
# Ten missed heartbeats: a busy owner or a file system's attribute cache
# (up to a minute on NFS) never makes a live lock look stale.
STALE_AFTER_S = 300.0
TAKEOVER_STALE_S = 60.0


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    pid_namespace: int | None
    since: str
    token: str
    heartbeat_age_s: float

    def on_this_host(self) -> bool:
        return self.host == socket.gethostname() and self.pid_namespace == _pid_namespace()

    def stale_reason(self) -> str | None:
        """Why nobody holds the lock any more, or None while its owner lives."""
        if self.heartbeat_age_s > STALE_AFTER_S:
            return f"no heartbeat for {self.heartbeat_age_s:.0f} s"
        if self.on_this_host() and not _process_alive(self.pid):
            return "its process is gone"
        return None

    def is_stale(self) -> bool:
        return self.stale_reason() is not None

    def who(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since}"

    def describe(self) -> str:
        return f"{self.who()} (heartbeat {self.heartbeat_age_s:.0f} s ago)"


class FolderBusy(UserError):
    def __init__(self, folder: Path, owner: LockOwner):
        self.folder, self.owner = folder, owner
        super().__init__(f"{folder} is being written by {owner.describe()}: wait for it to finish, or stop that "
                         f"process (its lock is taken over once the process is gone, or after {STALE_AFTER_S:.0f} s "
                         f"without a heartbeat)")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_owner(folder: Path) -> LockOwner | None:
    """Who holds ``folder`` (stale or not), or None when nobody does."""
    path = Path(folder) / LOCK_NAME
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        text = ""
    try:
        record = json.loads(text)
        return LockOwner(int(record["pid"]), str(record["host"]), record.get("pid_namespace"), str(record["since"]),
                         str(record["token"]), age)
    except (ValueError, KeyError, TypeError):
        # unreadable or corrupt: only its age can tell whether anyone still owns it
        return LockOwner(0, "an unknown host", None, "an unknown time", "", age)


def live_owner(folder: Path) -> LockOwner | None:
    """The owner of ``folder`` if it is still writing there, else None."""
    owner = read_owner(folder)
    return owner if owner is not None and not owner.is_stale() else None


def _record(token: str) -> bytes:
    return json.dumps({
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "pid_namespace": _pid_namespace(),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token": token,
    }).encode()


def _create_exclusively(path: Path, content: bytes) -> bool:
    """Write ``path`` with its whole content at once, only if it does not exist."""
    staged = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    staged.write_bytes(content)
    try:
        os.link(staged, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return True
    finally:
        staged.unlink(missing_ok=True)


def _take_over(path: Path, stale: LockOwner, content: bytes) -> bool:
    """Replace the stale lock ``stale`` by ours; False if another process got there first."""
    guard = path.with_name(path.name + ".takeover")
    try:
        if time.time() - guard.stat().st_mtime > TAKEOVER_STALE_S:
            guard.unlink(missing_ok=True)  # left by a process killed mid-takeover
    except FileNotFoundError:
        pass
    if not _create_exclusively(guard, b""):
        return False
    try:
        current = read_owner(path.parent)
        if current is None or current.token != stale.token:
            return False
        staged = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        staged.write_bytes(content)
        os.replace(staged, path)
        return True
    finally:
        guard.unlink(missing_ok=True)


class FolderLock:
    """A held lock; ``release()`` (or leaving a ``with`` block) lets go of one hold."""

    def __init__(self, folder: Path, token: str, remove_if_empty: bool):
        self.folder, self.token, self.remove_if_empty = folder, token, remove_if_empty
        self.holds = 1

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def still_ours(self) -> bool:
        owner = read_owner(self.folder)
        return owner is not None and owner.token == self.token

    def release(self) -> None:
        with _registry_lock:
            self.holds -= 1
            if self.holds > 0:
                return
            _held.pop(self.folder, None)
        if self.still_ours():
            self.path.unlink(missing_ok=True)
        if self.remove_if_empty:
            try:
                self.folder.rmdir()  # only succeeds when nothing was written
            except OSError:
                pass


_held: dict[Path, FolderLock] = {}
_registry_lock = threading.Lock()
_heartbeat: threading.Thread | None = None


def _beat() -> None:
    warned = set()
    while True:
        time.sleep(HEARTBEAT_S)
        with _registry_lock:
            locks = list(_held.values())
        for lock in locks:
            if lock.still_ours():
                try:
                    os.utime(lock.path)
                except OSError:
                    pass
            elif lock.folder not in warned:
                warned.add(lock.folder)
                print(f"lossbench: warning: the lock on {lock.folder} was taken over by another process "
                      f"(no heartbeat for {STALE_AFTER_S:.0f} s)", file=sys.stderr)


def _release_all() -> None:
    for lock in list(_held.values()):
        lock.holds = 1
        lock.release()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(143)


def _start_process_hooks() -> None:
    global _heartbeat
    if _heartbeat is not None:
        return
    _heartbeat = threading.Thread(target=_beat, name="lossbench-lock-heartbeat", daemon=True)
    _heartbeat.start()
    atexit.register(_release_all)
    # SIGTERM's default action skips atexit: make it an exit that releases
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def claim(folder: Path, remove_if_empty: bool = False, wait_s: float = 0.0) -> FolderLock:
    """Hold ``folder`` for writing (created if missing), or raise FolderBusy naming its owner.

    ``remove_if_empty``: the caller created the folder; it goes again on release
    if nothing was written into it. ``wait_s``: how long to wait for a live owner
    to let go before giving up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _claim_once(folder, remove_if_empty)
        except FolderBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def _claim_once(folder: Path, remove_if_empty: bool) -> FolderLock:
    folder = Path(folder).absolute()
    with _registry_lock:
        if folder in _held:
            _held[folder].holds += 1
            return _held[folder]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run directory {folder}: {e.strerror or e}; "
                        f"set hydra.run.dir or paths.output_dir") from None
    token = secrets.token_hex(16)
    content = _record(token)
    path = folder / LOCK_NAME
    for _ in range(20):
        try:
            if _create_exclusively(path, content):
                break
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None
        owner = read_owner(folder)
        if owner is None:
            continue  # released in between: try again
        if not owner.is_stale():
            raise FolderBusy(folder, owner)
        if _take_over(path, owner, content):
            print(f"lossbench: took over {folder} from {owner.who()}: {owner.stale_reason()}", file=sys.stderr)
            break
        time.sleep(0.05)
    else:
        raise FolderBusy(folder, read_owner(folder) or LockOwner(0, "another process", None, "now", "", 0.0))
    lock = FolderLock(folder, token, remove_if_empty)
    with _registry_lock:
        _held[folder] = lock
    _start_process_hooks()
    return lock


def new_folder(base: Path) -> Path:
    """A folder that this call created: ``base``, or ``base_1``, ``base_2``, ... when taken."""
    base = Path(base)
    for n in range(10_000):
        candidate = base if n == 0 else base.with_name(f"{base.name}_{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as e:
            raise UserError(f"cannot create {candidate}: {e.strerror or e}; choose another output directory") from None
        return candidate
    raise UserError(f"{base} and 10,000 numbered folders beside it exist: choose another output directory")
