"""SSE-S3 with boto3 and awscli: a bucket's default encryption (AES256)
round trip and its checks, the per-request `x-amz-server-side-encryption`
header on PUT, copy and multipart uploads, the header on every answer, no
plaintext in the object files on disk, ranges read from encrypted data,
and another account touching none of the configuration.
"""

import hashlib
import json
import os
from pathlib import Path

from conftest import MiB, assert_s3_error, client_error

DATA = bytes((i * 7 + 3) % 251 for i in range(3 * MiB + 123))


def plaintext_on_disk(server, needle: bytes) -> bool:
    root = Path(server.data_dir) / "objects" / "data"
    for dirpath, _, files in os.walk(root):
        for name in files:
            if needle in (Path(dirpath) / name).read_bytes():
                return True
    return False


def test_default_encryption_round_trip_and_checks(s3, s3_other, bucket, aws_cli):
    assert_s3_error(client_error(s3.get_bucket_encryption, Bucket=bucket), 400,
                    "ServerSideEncryptionConfigurationNotFoundError")
    config = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]}
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=config)
    got = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert got == config
    out = aws_cli.json("s3api", "get-bucket-encryption", "--bucket", bucket)
    assert out["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    for algorithm, status, code in [("aws:kms", 501, "NotImplemented")]:
        err = client_error(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm}}]})
        assert_s3_error(err, status, code)
    for fn, kw in [
        (s3_other.get_bucket_encryption, {}),
        (s3_other.delete_bucket_encryption, {}),
        (s3_other.put_bucket_encryption, {"ServerSideEncryptionConfiguration": config}),
    ]:
        assert_s3_error(client_error(fn, Bucket=bucket, **kw), 403, "AccessDenied")
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"] == config
    s3.delete_bucket_encryption(Bucket=bucket)
    assert_s3_error(client_error(s3.get_bucket_encryption, Bucket=bucket), 400,
                    "ServerSideEncryptionConfigurationNotFoundError")


def test_encrypted_objects_keep_no_plaintext_and_read_back(server, s3, bucket, aws_cli, tmp_path):
    needle = DATA[MiB:MiB + 4096]
    # The control: a plain object is on disk as it was sent.
    s3.put_object(Bucket=bucket, Key="plain", Body=DATA)
    assert "ServerSideEncryption" not in s3.head_object(Bucket=bucket, Key="plain")
    assert plaintext_on_disk(server, needle)
    s3.delete_object(Bucket=bucket, Key="plain")

    put = s3.put_object(Bucket=bucket, Key="asked", Body=DATA, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == '"%s"' % hashlib.md5(DATA).hexdigest()
    assert not plaintext_on_disk(server, needle)
    got = s3.get_object(Bucket=bucket, Key="asked")
    assert got["ServerSideEncryption"] == "AES256"
    assert got["Body"].read() == DATA
    assert s3.head_object(Bucket=bucket, Key="asked")["ServerSideEncryption"] == "AES256"
    part = s3.get_object(Bucket=bucket, Key="asked", Range="bytes=1048570-2097160")
    assert part["ContentRange"] == f"bytes 1048570-2097160/{len(DATA)}"
    assert part["Body"].read() == DATA[1048570:2097161]
    assert_s3_error(client_error(s3.put_object, Bucket=bucket, Key="x", Body=b"x", ServerSideEncryption="aws:kms"),
                    501, "NotImplemented")

    # The bucket default encrypts what asks for nothing: awscli, copies and
    # multipart uploads.
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    src = tmp_path / "src.bin"
    src.write_bytes(DATA)
    out = json.loads(aws_cli.run("s3api", "put-object", "--bucket", bucket, "--key", "cli", "--body", src).stdout)
    assert out["ServerSideEncryption"] == "AES256"
    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "asked"})
    assert copied["ServerSideEncryption"] == "AES256"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    assert upload["ServerSideEncryption"] == "AES256"
    parts = []
    for n, chunk in enumerate([DATA[: 5 * MiB // 2] * 2, DATA[:1000]], start=1):
        etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=n, Body=chunk)["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                                        MultipartUpload={"Parts": parts})
    assert done["ServerSideEncryption"] == "AES256"
    assert not plaintext_on_disk(server, needle)
    dst = tmp_path / "dst.bin"
    aws_cli.run("s3", "cp", f"s3://{bucket}/cli", dst)
    assert dst.read_bytes() == DATA
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == DATA
    expected = DATA[: 5 * MiB // 2] * 2 + DATA[:1000]
    mp = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert mp["ServerSideEncryption"] == "AES256"
    assert mp["Body"].read() == expected[5 * MiB - 10: 5 * MiB + 10]


def test_sse_c_object_is_unreadable_without_its_key(server, s3, bucket):
    key = os.urandom(16).hex()  # boto3 takes the raw 32-byte key as text
    other = os.urandom(16).hex()
    put = s3.put_object(Bucket=bucket, Key="c", Body=DATA, SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert "ServerSideEncryption" not in put
    assert not plaintext_on_disk(server, DATA[MiB:MiB + 4096])
    # Without its key: neither GET nor HEAD; with another: 403.
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="c"), 400, "InvalidRequest")
    assert_s3_error(client_error(s3.head_object, Bucket=bucket, Key="c"), 400, None)
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256",
                                 SSECustomerKey=other), 403, "AccessDenied")
    got = s3.get_object(Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=key,
                        Range="bytes=100-2000000")
    assert got["Body"].read() == DATA[100:2000001]
    assert got["SSECustomerKeyMD5"] == put["SSECustomerKeyMD5"]
    head = s3.head_object(Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert head["ContentLength"] == len(DATA)
    # A wrong MD5 is refused before anything is stored.
    err = client_error(s3.put_object, Bucket=bucket, Key="bad", Body=b"x", SSECustomerAlgorithm="AES256",
                       SSECustomerKey=key, SSECustomerKeyMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert_s3_error(err, 400, "InvalidArgument")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="bad")
    # Copies need the source's key; the copy takes its own.
    assert_s3_error(client_error(s3.copy_object, Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "c"}),
                    400, "InvalidRequest")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "c"},
                   CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key,
                   SSECustomerAlgorithm="AES256", SSECustomerKey=other)
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="copy", SSECustomerAlgorithm="AES256",
                                 SSECustomerKey=key), 403, "AccessDenied")
    assert s3.get_object(Bucket=bucket, Key="copy", SSECustomerAlgorithm="AES256",
                         SSECustomerKey=other)["Body"].read() == DATA
    # Multipart: every part brings the key.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert up["SSECustomerAlgorithm"] == "AES256"
    assert_s3_error(client_error(s3.upload_part, Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                                 Body=b"x"), 400, "InvalidRequest")
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=DATA,
                          SSECustomerAlgorithm="AES256", SSECustomerKey=key)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert_s3_error(client_error(s3.get_object, Bucket=bucket, Key="mp"), 400, "InvalidRequest")
    assert s3.get_object(Bucket=bucket, Key="mp", SSECustomerAlgorithm="AES256",
                         SSECustomerKey=key)["Body"].read() == DATA
