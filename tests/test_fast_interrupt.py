"""Ctrl-C during a `fast` transfer: cancelled promptly, the S3 upload aborted, no file left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.loopback import LoopbackServer, QuietHandler
from tests.fixtures.s3 import S3Bucket

MIB = 1024 * 1024
SIZE = 64 * MIB  # at ~3 MiB/s per connection: about 20 s, far longer than the test waits
BLOCK = 64 * 1024

CHILD = """
import sys
from flowzero import _fast

url, local_dest, s3_dest, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
done = [0]

def progress(n):
    done[0] += n
    print(done[0], flush=True)

jobs = [_fast.Job(url + "?token=a", local_dest, size=size), _fast.Job(url + "?token=b", s3_dest, size=size)]
_fast.transfer(jobs, part_size=5 * 1024 * 1024, progress=progress)
print("finished", flush=True)
"""


@pytest.fixture
def trickle_server() -> Iterator[str]:
    """Serves SIZE bytes slowly (64 KiB every 20 ms) and stops as soon as the client goes away."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(SIZE))
            self.end_headers()
            block = b"\x07" * BLOCK
            try:
                for _ in range(SIZE // BLOCK):
                    self.wfile.write(block)
                    time.sleep(0.02)
            except OSError:
                return

    server = LoopbackServer(Handler).start()
    yield f"{server.url}/slow.tif"
    server.close()


def _wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_cancels_aborts_the_upload_and_removes_temp_files(
        trickle_server: str, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    local_dest = out_dir / "slow.tif"
    s3_dest = f"s3://{s3_bucket.name}/scenes/slow.tif"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, trickle_server, str(local_dest), s3_dest, str(SIZE)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    try:
        # Both files well into their second part: the multipart upload exists, the temp file too.
        received = 0
        deadline = time.monotonic() + 30
        while received < 2 * (5 * MIB + MIB) and time.monotonic() < deadline:
            line = child.stdout.readline()  # type: ignore[union-attr]
            assert line, f"child ended early: {child.stderr.read()}"  # type: ignore[union-attr]
            received = int(line)
        assert _wait_for(lambda: s3_bucket.multipart_uploads() != [], 10), "no multipart upload was started"
        assert any(p.name.startswith(".flowzero-tmp-") for p in out_dir.iterdir())

        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert "finished" not in stdout
    assert elapsed < 5, f"took {elapsed:.1f}s to stop"
    assert list(out_dir.iterdir()) == []
    assert s3_bucket.multipart_uploads() == []
    assert s3_bucket.keys() == []


HANGING_HEAD = """
import sys
from flowzero import _fast

objects = _fast.S3Objects(endpoint_url=sys.argv[1], timeout=60.0)
print("asking", flush=True)
objects.head("bkt", "metadata.json")
print("finished", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_interrupts_a_small_s3_request_that_hangs() -> None:
    """S3Objects requests (metadata.json, clean-up) wait with the GIL released but still notice Ctrl-C."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers: a request would wait for its 60 s timeout
    host, port = listener.getsockname()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDHANG", "AWS_SECRET_ACCESS_KEY": "hang-secret"}
    child = subprocess.Popen([sys.executable, "-c", HANGING_HEAD, f"http://{host}:{port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "asking"  # type: ignore[union-attr]
        time.sleep(0.5)
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr and "finished" not in stdout
    assert elapsed < 2, f"took {elapsed:.1f}s to stop"
