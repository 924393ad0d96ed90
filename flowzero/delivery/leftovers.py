"""What a killed delivery leaves behind, cleaned when the next delivery to the same destination starts.

A run killed with SIGKILL (or a power cut) cannot clean up: temp files beside the targets
(``.flowzero-tmp-<name>.<pid>.<random>[.part]``) and incomplete S3 multipart uploads stay. Nothing half-written
ever has a final name, so they are only clutter, but uploads are billed until aborted.

Every delivery holds a lock on its destination (``~/.flowzero/locks``, shared by concurrent runs). A run that
gets it exclusively knows no other flowzero delivery to that destination is running on this machine, and then:

- removes the temp files, in the folders it delivers to, of processes that no longer exist;
- aborts the incomplete multipart uploads under those folders that were started before it began.

A run that finds the lock held by another run skips the cleaning (the next lone run does it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from flowzero.delivery.layout import join_key
from flowzero.leases import process_alive
from flowzero.redact import redact

if TYPE_CHECKING:
    from flowzero.delivery.s3requests import S3Requests

TEMP_PREFIX = ".flowzero-tmp-"
# .flowzero-tmp-<name>.<pid>.<random> (fast) or the same plus .part (threads, s5cmd staging)
_TEMP_NAME = re.compile(r"^\.flowzero-tmp-.+\.(\d+)\.[A-Za-z0-9_]+(?:\.part)?$")
LOCK_FOLDER = "~/.flowzero/locks"


def temp_owner(file_name: str) -> int | None:
    """The process id in a flowzero temp file name, or None if the name is not one of flowzero's."""
    match = _TEMP_NAME.match(file_name)
    return int(match.group(1)) if match else None


def remove_stale_temp_files(folders: Sequence[str]) -> list[str]:
    """Delete flowzero temp files of dead processes directly inside ``folders``; returns what was removed."""
    removed = []
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            pid = temp_owner(name)
            if pid is None or process_alive(pid):
                continue
            path = os.path.join(folder, name)
            try:
                if os.path.isfile(path) and not os.path.islink(path):
                    os.unlink(path)
                    removed.append(path)
            except OSError:
                pass
    return removed


def abort_stale_uploads(s3: S3Requests, bucket: str, prefixes: Sequence[str], started: dt.datetime) -> list[str]:
    """Abort the incomplete multipart uploads under ``prefixes`` begun before ``started``; returns their keys."""
    aborted = []
    for prefix in prefixes:
        for key, upload_id, initiated in s3.uploads(bucket, prefix):
            if initiated is not None and initiated >= started:
                continue
            s3.abort_upload(bucket, key, upload_id)
            aborted.append(key)
    return aborted


class DeliveryLock:
    """Held for a whole delivery run; cleans the leftovers of killed runs when it is the only run.

    ``folders`` are the destination folders (relative keys) the run writes to; ``s3`` gives the requests that
    list and abort uploads on an S3 destination (without it, uploads are left alone). Failing to lock or to
    clean never stops a delivery: the run goes on and says what it could not do.
    """

    def __init__(self, destination: Any, folders: Sequence[str], s3: Callable[[], S3Requests] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.destination = destination
        self.folders = sorted(set(folders))
        self.s3 = s3
        self.say = say or (lambda _message: None)
        self.started = dt.datetime.now(dt.timezone.utc)
        self.exclusive = False
        self.cleaned: list[str] = []
        self._fd: int | None = None

    def __enter__(self) -> DeliveryLock:
        import fcntl  # noqa: PLC0415 (POSIX only: importing this module must work without it)

        if self.destination is None:
            return self
        try:
            self._fd = _open_lock_file(self.destination.describe())
        except OSError:
            return self
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.exclusive = True
        except OSError:
            self.exclusive = False
        if self.exclusive:
            try:
                self.cleaned = self._clean()
            except Exception as exc:
                self.say(redact(f"could not clean up after earlier runs: {type(exc).__name__}: {exc}"))
            if self.cleaned:
                self.say(f"cleaned {len(self.cleaned)} leftover(s) of an earlier, interrupted delivery")
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # from now on, others may run alongside but not clean
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def _clean(self) -> list[str]:
        dest = self.destination
        if dest.is_s3:
            if self.s3 is None:
                return []
            prefixes = [join_key(dest.prefix, folder).rstrip("/") + "/" for folder in self.folders]
            return abort_stale_uploads(self.s3(), dest.root, prefixes, self.started)
        return remove_stale_temp_files([dest.target(folder) for folder in self.folders])


def _open_lock_file(name: str) -> int:
    """The lock file for destination ``name``; folders flowzero creates for it are private (0700), the file 0600."""
    folder = Path(os.path.expanduser(LOCK_FOLDER))
    for part in (folder.parent, folder):
        if not part.is_dir():
            try:
                part.mkdir(mode=0o700)
                os.chmod(part, 0o700)  # whatever the umask
            except FileExistsError:
                pass
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
    fd = os.open(folder / f"delivery-{digest}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd
