"""The verified server-side copy of one staged object (flowzero.delivery.cloud.copy) against moto S3: each way of
proving the staged bytes, refusals that leave nothing at the final key, multipart copies, reruns."""

from __future__ import annotations

import hashlib
import os

import pytest

from flowzero.delivery.cloud.copy import S3Arranger
from flowzero.models import TransferJob
from tests.fixtures.s3 import S3Bucket

MIB = 1024 * 1024
STAGED = "planet-staging/order-1/PSScene/20240105_181001_00_2262_3B_AnalyticMS_SR_clip.tif"
FINAL = "planetscope analytic/four_bands/Salinas/2024_01_05_181001_00_2262.tiff"


def put_multipart(bucket: S3Bucket, key: str, data: bytes, part: int = 5 * MIB) -> None:
    """Stage ``data`` as a multipart upload, so its ETag is no md5 (as for Planet's big files)."""
    client = bucket.client
    upload = client.create_multipart_upload(Bucket=bucket.name, Key=key)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part), start=1):
        answer = client.upload_part(Bucket=bucket.name, Key=key, UploadId=upload, PartNumber=number,
                                    Body=data[start:start + part])
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(Bucket=bucket.name, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


def job_for(bucket: S3Bucket, data: bytes, md5: bool = True, sha256: bool = True) -> TransferJob:
    return TransferJob(url=f"s3://{bucket.name}/{STAGED}", destination=f"s3://{bucket.name}/{FINAL}", size=len(data),
                       md5=hashlib.md5(data).hexdigest() if md5 else None,
                       sha256=hashlib.sha256(data).hexdigest() if sha256 else None, name="scene.tiff")


def assert_placed(bucket: S3Bucket, data: bytes) -> None:
    assert bucket.get(FINAL) == data
    meta = bucket.client.head_object(Bucket=bucket.name, Key=FINAL)["Metadata"]
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    keys = bucket.keys()
    assert STAGED not in keys and not [k for k in keys if "flowzero-tmp" in k]


def test_single_part_is_proven_by_its_etag_and_never_read(s3_bucket: S3Bucket) -> None:
    data = os.urandom(200_000)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=STAGED, Body=data)

    result = S3Arranger(s3_bucket.client).place(job_for(s3_bucket, data))

    assert result.ok and not result.skipped and result.bytes == 0, result.error
    assert_placed(s3_bucket, data)
    assert s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=FINAL)["ContentType"] == "image/tiff"

    rerun = S3Arranger(s3_bucket.client).place(job_for(s3_bucket, data))
    assert rerun.ok and rerun.skipped  # verified final copy, staged one gone: nothing to do


def test_multipart_staged_is_proven_by_the_checksum_s3_computes_while_copying(s3_bucket: S3Bucket) -> None:
    data = os.urandom(6 * MIB)
    put_multipart(s3_bucket, STAGED, data)

    result = S3Arranger(s3_bucket.client).place(job_for(s3_bucket, data))

    assert result.ok and result.bytes == 0, result.error  # verified without reading it here
    assert_placed(s3_bucket, data)


def test_multipart_staged_with_wrong_bytes_is_refused_and_nothing_reaches_the_final_key(s3_bucket: S3Bucket) -> None:
    expected = os.urandom(6 * MIB)
    corrupted = bytearray(expected)
    corrupted[3 * MIB] ^= 0x01
    put_multipart(s3_bucket, STAGED, bytes(corrupted))

    result = S3Arranger(s3_bucket.client).place(job_for(s3_bucket, expected))

    assert not result.ok and "sha256 mismatch" in (result.error or "")
    assert s3_bucket.keys() == [STAGED]  # no final object, no temporary copy; the staged one is kept


def test_without_sha256_a_multipart_object_is_read_and_hashed_as_a_last_resort(s3_bucket: S3Bucket) -> None:
    data = os.urandom(6 * MIB)
    put_multipart(s3_bucket, STAGED, data)
    wrong = TransferJob(url=f"s3://{s3_bucket.name}/{STAGED}", destination=f"s3://{s3_bucket.name}/{FINAL}",
                        size=len(data), md5=hashlib.md5(b"other").hexdigest())

    refused = S3Arranger(s3_bucket.client).place(wrong)
    assert not refused.ok and "md5 mismatch" in (refused.error or "") and s3_bucket.keys() == [STAGED]

    result = S3Arranger(s3_bucket.client).place(job_for(s3_bucket, data, sha256=False))
    assert result.ok and result.bytes == len(data), result.error
    listing = s3_bucket.keys()
    assert s3_bucket.get(FINAL) == data and STAGED not in listing
    meta = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=FINAL)["Metadata"]
    assert meta == {"md5": hashlib.md5(data).hexdigest()}


def test_above_the_copy_limit_the_final_object_is_built_from_part_copies(s3_bucket: S3Bucket) -> None:
    data = os.urandom(11 * MIB)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=STAGED, Body=data)
    arranger = S3Arranger(s3_bucket.client, multipart_threshold=5 * MIB, part_size=5 * MIB)

    result = arranger.place(job_for(s3_bucket, data))

    assert result.ok, result.error
    assert_placed(s3_bucket, data)
    assert s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=FINAL)["ETag"].endswith('-3"')
    assert s3_bucket.multipart_uploads() == []


@pytest.mark.parametrize(("staged", "size", "error"), [
    (None, 10, "staged copy"),
    (b"0123456789", 11, "size mismatch"),
])
def test_missing_or_wrong_sized_staged_objects_are_refused(s3_bucket: S3Bucket, staged: bytes | None, size: int,
                                                          error: str) -> None:
    if staged is not None:
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=STAGED, Body=staged)
    job = TransferJob(url=f"s3://{s3_bucket.name}/{STAGED}", destination=f"s3://{s3_bucket.name}/{FINAL}",
                      size=size, md5="0" * 32)
    result = S3Arranger(s3_bucket.client).place(job)
    assert not result.ok and error in (result.error or "")
    listing = s3_bucket.keys()
    assert FINAL not in listing
