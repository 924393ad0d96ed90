"""One AWS resolver for every downloader (flowzero.aws): named profiles, credential_process, AssumeRole, web
identity, instance metadata with credentials that expire during the batch, a private CA; the same one-line error
everywhere when nothing is found. moto's server plays S3 and STS; tests/fixtures/aws.py plays IMDSv2 and a TLS /
expiry-checking front for S3."""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowzero import aws
from flowzero.downloaders.base import DownloadOptions
from flowzero.downloaders.fast import FastDownloader
from flowzero.downloaders.threads import ThreadsDownloader
from flowzero.errors import TransferError
from flowzero.models import TransferJob, TransferResult
from flowzero.sandbox.tls import throwaway_ca
from tests.fixtures.aws import InstanceMetadata, S3Front
from tests.fixtures.fileserver import FileServer
from tests.fixtures.s3 import S3Bucket

MIB = 1024 * 1024
DOWNLOADERS = ["threads", "s5cmd", "fast"]
KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowzero.downloaders import http

    monkeypatch.setattr(http, "BACKOFF_BASE", 0.01)


@pytest.fixture
def bucket(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Bucket:
    """A bucket on moto; the process has no AWS key variables, shared files under tmp_path, STS on moto."""
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws" / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", s3_bucket.endpoint_url)
    return s3_bucket


def aws_files(tmp_path: Path, credentials: str = "", config: str = "") -> None:
    folder = tmp_path / "aws"
    folder.mkdir(exist_ok=True)
    (folder / "credentials").write_text(credentials)
    (folder / "config").write_text(config)


def job(server: FileServer, bucket: S3Bucket, name: str, size: int) -> TransferJob:
    data = random.Random(size).randbytes(size)
    manifest = server.add(name, data)
    return TransferJob(url=server.url(name), destination=f"s3://{bucket.name}/in/{name}", size=size,
                       sha256=str(manifest["sha256"]), name=name)


def run(downloader: str, jobs: list[TransferJob], **options: object) -> list[TransferResult]:
    settings: dict[str, object] = {"max_workers": 2, "timeout": 10.0, "max_retries": 2, "part_size": 5 * MIB,
                                   "s3_region": "us-east-1", **options}
    opts = DownloadOptions(**settings)  # type: ignore[arg-type]
    if downloader == "fast":
        return FastDownloader(opts).transfer(jobs)
    if downloader == "threads":
        return ThreadsDownloader(opts).transfer(jobs)
    s5cmd = pytest.importorskip("flowzero_s5cmd", reason="pip install -e plugins/flowzero-s5cmd")
    return s5cmd.S5cmdDownloader(opts).transfer(jobs)


def delivered(bucket: S3Bucket, jobs: list[TransferJob], results: list[TransferResult]) -> None:
    assert all(r.ok for r in results), [r.error for r in results]
    for j in jobs:
        data = bucket.get(j.destination.split("/", 3)[3])
        assert hashlib.sha256(data).hexdigest() == j.sha256


@pytest.mark.parametrize("downloader", DOWNLOADERS)
def test_a_named_profile_only(downloader: str, fileserver: FileServer, bucket: S3Bucket, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    aws_files(tmp_path, credentials="[prod]\naws_access_key_id = AKIAPROFILE0001\naws_secret_access_key = s1\n",
              config="[profile prod]\nregion = us-east-1\n")
    jobs = [job(fileserver, bucket, f"p-{downloader}.tif", 1000)]
    delivered(bucket, jobs, run(downloader, jobs, s3_profile="prod"))
    monkeypatch.setenv("AWS_PROFILE", "prod")  # the AWS tools' variable works the same
    again = run(downloader, jobs)
    assert again[0].ok and again[0].skipped


PROCESS = """import datetime as dt, json, pathlib, sys
count = pathlib.Path(sys.argv[1])
n = int(count.read_text() or 0) if count.exists() else 0
count.write_text(str(n + 1))
until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=float(sys.argv[2]))
print(json.dumps({"Version": 1, "AccessKeyId": f"ASIAPROCESS{n:05d}", "SecretAccessKey": "process-secret",
                  "SessionToken": "process-token", "Expiration": until.strftime("%Y-%m-%dT%H:%M:%SZ")}))
"""


def process_profile(tmp_path: Path, ttl: float) -> Path:
    script, count = tmp_path / "creds.py", tmp_path / "count"
    script.write_text(PROCESS)
    aws_files(tmp_path, config=f"[profile proc]\ncredential_process = {sys.executable} {script} {count} {ttl}\n")
    return count


def test_credential_process(fileserver: FileServer, bucket: S3Bucket, tmp_path: Path) -> None:
    process_profile(tmp_path, ttl=3600)
    jobs = [job(fileserver, bucket, "proc.tif", 6 * MIB)]
    for downloader in ("fast", "threads"):
        delivered(bucket, jobs, run(downloader, jobs, s3_profile="proc", overwrite=True))
    key, secret, token, expiry = aws.resolve(profile="proc").current()
    assert (key[:11], secret, token) == ("ASIAPROCESS", "process-secret", "process-token") and expiry


def test_short_lived_process_credentials_are_fetched_again_during_the_upload(
        fileserver: FileServer, bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = process_profile(tmp_path, ttl=3)
    issued: dict[str, float] = {}
    real = aws.AwsAccess.current

    def recording(self: aws.AwsAccess) -> aws.CredentialTuple:
        answer = real(self)
        issued.setdefault(answer[0], answer[3] or 0.0)
        return answer

    monkeypatch.setattr(aws.AwsAccess, "current", recording)
    import time

    front = S3Front(bucket.endpoint_url, accept=lambda key: issued.get(key, 0.0) > time.time())
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", front.url)
    jobs = [job(fileserver, bucket, "proc-long.tif", 3 * 5 * MIB + 1)]
    fileserver.faults.slow[jobs[0].name] = 0.02  # ~5 s of streaming: the 3 s credentials expire on the way
    try:
        delivered(bucket, jobs, run("fast", jobs, s3_profile="proc", max_workers=1))
    finally:
        front.close()
    assert int(count.read_text()) >= 2 and len(issued) >= 2
    assert front.refused == []


def test_role_arn_with_source_profile_assumes_the_role(fileserver: FileServer, bucket: S3Bucket,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aws_files(tmp_path, credentials="[base]\naws_access_key_id = AKIABASE00000001\naws_secret_access_key = b\n",
              config="[profile role]\nrole_arn = arn:aws:iam::123456789012:role/flowzero\nsource_profile = base\n")
    front = S3Front(bucket.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", front.url)
    try:
        jobs = [job(fileserver, bucket, "role.tif", 1000)]
        delivered(bucket, jobs, run("fast", jobs, s3_profile="role"))
    finally:
        front.close()
    used = {k for k in front.key_ids if k}
    assert used and "AKIABASE00000001" not in used  # signed with the role's temporary keys, not the base keys


def test_web_identity(fileserver: FileServer, bucket: S3Bucket, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmbG93emVybyJ9.c2ln")
    aws_files(tmp_path)
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    jobs = [job(fileserver, bucket, "irsa.tif", 1000)]
    for downloader in ("fast", "threads"):
        delivered(bucket, jobs, run(downloader, jobs, overwrite=True))


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[InstanceMetadata]:
    """IMDSv2 handing out 3-second credentials. botocore stretches instance credentials that are about to expire
    by 12-20 minutes on purpose (static stability during IMDS outages), so real ones never look like this; that
    stretch is switched off here so that the refresh path itself is what gets exercised."""
    import botocore.utils

    monkeypatch.setattr(botocore.utils.InstanceMetadataFetcher, "_evaluate_expiration", lambda self, creds: None)
    service = InstanceMetadata(ttl=3.0)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", service.url)
    yield service
    service.close()


@pytest.mark.parametrize("downloader", ["fast", "threads"])
def test_instance_role_credentials_are_refreshed_during_a_long_upload(
        downloader: str, fileserver: FileServer, bucket: S3Bucket, tmp_path: Path, imds: InstanceMetadata,
        monkeypatch: pytest.MonkeyPatch) -> None:
    aws_files(tmp_path)
    front = S3Front(bucket.endpoint_url, accept=imds.valid)  # refuses requests signed with expired keys
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", front.url)
    jobs = [job(fileserver, bucket, f"imds-{downloader}.tif", 3 * 5 * MIB + 1)]
    fileserver.faults.slow[jobs[0].name] = 0.02  # ~5 s of streaming: the 3 s credentials expire on the way
    try:
        results = run(downloader, jobs, max_workers=1)
    finally:
        front.close()
    delivered(bucket, jobs, results)
    assert imds.fetches >= 2, "the credentials were fetched again before they expired"
    assert len({k for k in front.key_ids if k}) >= 2
    assert front.refused == []  # never a request signed with expired keys


@pytest.mark.parametrize("downloader", DOWNLOADERS)
def test_https_endpoint_trusted_only_through_aws_ca_bundle(downloader: str, fileserver: FileServer,
                                                          s3_bucket: S3Bucket, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tls = throwaway_ca(tmp_path / "tls")
    front = S3Front(s3_bucket.endpoint_url, tls=tls)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", front.url)
    jobs = [job(fileserver, s3_bucket, f"tls-{downloader}.tif", 6 * MIB)]
    try:
        try:  # a private CA is not trusted by default: the run stops, or the file fails
            untrusted = [r.ok for r in run(downloader, jobs, max_retries=0)]
        except TransferError:
            untrusted = []
        assert not any(untrusted) and s3_bucket.keys() == []
        monkeypatch.setenv("AWS_CA_BUNDLE", str(tls.ca))
        delivered(s3_bucket, jobs, run(downloader, jobs))
    finally:
        front.close()
    assert front.url.startswith("https://")


def test_the_same_line_from_every_downloader_when_no_credentials_are_found(
        fileserver: FileServer, bucket: S3Bucket, tmp_path: Path) -> None:
    jobs = [job(fileserver, bucket, "none.tif", 100)]
    lines = set()
    for downloader in DOWNLOADERS:
        with pytest.raises(TransferError) as info:
            run(downloader, jobs)
        lines.add(info.value.message)
        assert info.value.hint
    [line] = lines
    assert line == aws.no_credentials_error().message
    assert line.startswith("no AWS credentials found for S3 (tried: environment variables AWS_ACCESS_KEY_ID")
    for source in ("credential_process", "SSO", "role_arn", "web identity", "ECS container", "instance metadata"):
        assert source in line
    assert str(tmp_path / "aws" / "credentials") in line
    assert fileserver.requests == []  # stopped before any download


def test_the_resolver_reads_region_endpoint_and_bundle_from_the_profile(tmp_path: Path, bucket: S3Bucket,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    aws_files(tmp_path, credentials="[minio]\naws_access_key_id = AKIAMINIO0000001\naws_secret_access_key = m\n",
              config="[profile minio]\nregion = eu-north-1\nca_bundle = /etc/minio-ca.pem\nservices = onprem\n"
                     "[services onprem]\ns3 =\n  endpoint_url = https://minio.local:9000\n")
    access = aws.resolve(profile="minio")
    assert (access.region, access.endpoint_url, access.ca_bundle) == ("eu-north-1", "https://minio.local:9000",
                                                                     "/etc/minio-ca.pem")
    assert aws.resolve("us-west-1", "http://given", "minio").region == "us-west-1"  # flowzero's settings win
    env = access.subprocess_env()
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAMINIO0000001" and env["AWS_CA_BUNDLE"] == "/etc/minio-ca.pem"
    with pytest.raises(aws.CredentialsError, match="profile 'nope'"):
        aws.resolve(profile="nope")


@pytest.mark.parametrize("downloader", ["threads", "fast"])
@pytest.mark.parametrize("variable", ["AWS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_https_source_trusted_through_the_bundle_variables(downloader: str, variable: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    tls = throwaway_ca(tmp_path / "tls")
    server = FileServer(tls=tls.server_context()).start()
    data = random.Random(7).randbytes(200_000)
    manifest = server.add("s.tif", data)
    job = TransferJob(url=server.url("s.tif"), destination=str(tmp_path / "s.tif"),
                      size=len(data), sha256=str(manifest["sha256"]), name="s.tif")
    try:
        [untrusted] = run(downloader, [job], max_retries=0)
        monkeypatch.setenv(variable, str(tls.ca))
        [trusted] = run(downloader, [job])
    finally:
        server.stop()
    assert not untrusted.ok and trusted.ok, trusted.error
    assert (tmp_path / "s.tif").read_bytes() == data


@pytest.mark.parametrize("downloader", ["threads", "fast"])
def test_proxies_come_from_the_environment_as_for_the_aws_tools(downloader: str, fileserver: FileServer,
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from http.server import BaseHTTPRequestHandler

    from tests.fixtures.loopback import LoopbackServer, QuietHandler

    data = random.Random(3).randbytes(10_000)
    asked: list[str] = []

    class ForwardProxy(QuietHandler):  # answers the absolute-form request itself: no onward connection
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    handler: type[BaseHTTPRequestHandler] = ForwardProxy
    proxy = LoopbackServer(handler).start()
    sha = hashlib.sha256(data).hexdigest()
    via_proxy = TransferJob(url="http://planet-storage.invalid/f.tif?token=T", size=len(data), sha256=sha,
                            destination=str(tmp_path / "proxied.tif"))
    manifest = fileserver.add("direct.tif", data)
    direct = TransferJob(url=fileserver.url("direct.tif"), destination=str(tmp_path / "direct.tif"),
                         size=len(data), sha256=str(manifest["sha256"]))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    try:
        results = run(downloader, [via_proxy, direct])
    finally:
        proxy.close()
    assert all(r.ok for r in results), [r.error for r in results]
    assert asked == ["http://planet-storage.invalid/f.tif?token=T"]  # through the proxy, by absolute URI
    assert fileserver.count("direct.tif") == 1  # NO_PROXY: straight to the source


def test_sso_profile_with_a_cached_token(fileserver: FileServer, bucket: S3Bucket, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An `aws sso login` profile: botocore reads the cached token and asks the SSO portal (a stand-in here)."""
    import json as json_module
    import os
    import time

    from tests.fixtures.loopback import LoopbackServer, QuietHandler

    asked: list[tuple[str, str | None]] = []

    class Portal(QuietHandler):
        def do_GET(self) -> None:
            asked.append((self.path, self.headers.get("x-amz-sso_bearer_token")))
            body = json_module.dumps({"roleCredentials": {
                "accessKeyId": "ASIASSO000000001", "secretAccessKey": "sso-secret", "sessionToken": "sso-token",
                "expiration": int((time.time() + 3600) * 1000)}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    portal = LoopbackServer(Portal).start()
    start_url = "https://flowzero.awsapps.com/start"
    aws_files(tmp_path, config=f"[profile sso]\nsso_start_url = {start_url}\nsso_region = us-east-1\n"
                               "sso_account_id = 123456789012\nsso_role_name = Reader\n")
    cache = Path(os.environ["HOME"]) / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True)
    (cache / f"{hashlib.sha1(start_url.encode()).hexdigest()}.json").write_text(json_module.dumps(
        {"startUrl": start_url, "region": "us-east-1", "accessToken": "cached-sso-token",
         "expiresAt": "2099-01-01T00:00:00Z"}))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSO", portal.url)
    import botocore.credentials  # its token cache folder was fixed from HOME when botocore was first imported

    monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", str(cache))
    try:
        jobs = [job(fileserver, bucket, "sso.tif", 1000)]
        delivered(bucket, jobs, run("fast", jobs, s3_profile="sso"))
    finally:
        portal.close()
    path, token = asked[0]
    assert path.startswith("/federation/credentials") and "role_name=Reader" in path and token == "cached-sso-token"


def test_boto3_sends_plain_bodies_to_s3_compatible_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's aws-chunked checksum trailers (HTTPS) are refused by many S3-compatible servers (rclone, MinIO,
    Ceph releases): a custom endpoint gets plain bodies unless the user asked otherwise; AWS keeps the default."""
    from flowzero.s3 import make_s3_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACHECKSUMS0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    custom = make_s3_client("us-east-1", "https://minio.local:9000")
    assert custom.meta.config.request_checksum_calculation == "when_required"
    assert make_s3_client("us-east-1").meta.config.request_checksum_calculation != "when_required"
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
    assert make_s3_client("us-east-1", "https://minio.local:9000").meta.config.request_checksum_calculation \
        == "when_supported"
