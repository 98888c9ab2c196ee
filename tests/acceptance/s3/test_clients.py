"""Real clients: `aws s3` (awscli v1) and s3cmd (SigV2 and SigV4)."""

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import MiB, bucket_name, delete_bucket_quietly, list_keys


def write_random(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            chunk = os.urandom(n)
            h.update(chunk)
            f.write(chunk)
            left -= n
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- aws s3


def test_aws_s3_high_level_commands(aws_cli, s3, tmp_path):
    b = bucket_name("cli")
    try:
        aws_cli.run("s3", "mb", f"s3://{b}")
        assert b in aws_cli.run("s3", "ls").stdout

        small = tmp_path / "small.txt"
        small.write_bytes(b"hello from aws s3 cp\n")
        aws_cli.run("s3", "cp", str(small), f"s3://{b}/docs/small.txt")
        assert s3.get_object(Bucket=b, Key="docs/small.txt")["Body"].read() == small.read_bytes()

        # larger than the 8 MiB multipart threshold
        big = tmp_path / "big.bin"
        digest = write_random(big, 20 * MiB + 123)
        aws_cli.run("s3", "cp", str(big), f"s3://{b}/big.bin")
        head = s3.head_object(Bucket=b, Key="big.bin")
        assert head["ContentLength"] == 20 * MiB + 123
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
        back = tmp_path / "big.back"
        aws_cli.run("s3", "cp", f"s3://{b}/big.bin", str(back))
        assert sha256_file(back) == digest

        listing = aws_cli.run("s3", "ls", f"s3://{b}/").stdout
        assert "PRE docs/" in listing and "big.bin" in listing, listing
        rec = aws_cli.run("s3", "ls", "--recursive", f"s3://{b}").stdout
        assert "docs/small.txt" in rec and "big.bin" in rec, rec

        # sync up, change, sync again, sync down
        src = tmp_path / "tree"
        (src / "sub" / "deeper").mkdir(parents=True)
        files = {
            "a.txt": b"a",
            "sub/b.txt": b"bb" * 1000,
            "sub/deeper/c.bin": os.urandom(70_000),
            "sp ace ü.txt": b"unicode name",
        }
        for rel, data in files.items():
            (src / rel).write_bytes(data)
        aws_cli.run("s3", "sync", str(src), f"s3://{b}/tree/")
        assert sorted(list_keys(s3, b, Prefix="tree/")) == sorted(f"tree/{k}" for k in files)
        (src / "a.txt").write_bytes(b"changed content")
        (src / "new.txt").write_bytes(b"new")
        out = aws_cli.run("s3", "sync", str(src), f"s3://{b}/tree/").stdout
        assert "new.txt" in out and "a.txt" in out, out
        assert "c.bin" not in out, f"unchanged file re-uploaded:\n{out}"
        dst = tmp_path / "down"
        aws_cli.run("s3", "sync", f"s3://{b}/tree/", str(dst))
        for rel, data in {**files, "a.txt": b"changed content", "new.txt": b"new"}.items():
            assert (dst / rel).read_bytes() == data, rel
        # second download sync copies nothing
        assert aws_cli.run("s3", "sync", f"s3://{b}/tree/", str(dst)).stdout.strip() == ""

        aws_cli.run("s3", "rm", "--recursive", f"s3://{b}/tree/")
        assert list_keys(s3, b, Prefix="tree/") == []
        proc = aws_cli.run("s3", "rb", f"s3://{b}", check=False)
        assert proc.returncode != 0, "rb of a non-empty bucket must fail"
        assert "BucketNotEmpty" in proc.stderr, proc.stderr
        aws_cli.run("s3", "rm", "--recursive", f"s3://{b}")
        aws_cli.run("s3", "rb", f"s3://{b}")
        assert b not in [x["Name"] for x in s3.list_buckets()["Buckets"]]
    finally:
        delete_bucket_quietly(s3, b)


def test_aws_s3_rb_force(aws_cli, s3, tmp_path):
    b = bucket_name("rbf")
    aws_cli.run("s3", "mb", f"s3://{b}")
    for i in range(5):
        s3.put_object(Bucket=b, Key=f"x/{i}", Body=b"x")
    aws_cli.run("s3", "rb", "--force", f"s3://{b}")
    assert b not in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_aws_s3_256mib_stream_presign_curl(aws_cli, s3, bucket, tmp_path):
    src = tmp_path / "big256"
    digest = write_random(src, 256 * MiB)
    aws_cli.run("s3", "cp", str(src), f"s3://{bucket}/big/256.bin", timeout=170)
    assert s3.head_object(Bucket=bucket, Key="big/256.bin")["ContentLength"] == 256 * MiB
    url = aws_cli.run("s3", "presign", f"s3://{bucket}/big/256.bin", "--expires-in", "600").stdout.strip()
    assert url.startswith("http://127.0.0.1:"), url
    out = tmp_path / "down256"
    proc = subprocess.run(
        ["curl", "-sS", "--fail", "-o", str(out), url], capture_output=True, text=True, timeout=170
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size == 256 * MiB
    assert sha256_file(out) == digest
    src.unlink()
    out.unlink()


def test_aws_s3api_roundtrip(aws_cli, s3, bucket, tmp_path):
    f = tmp_path / "body"
    f.write_bytes(b"s3api body")
    r = aws_cli.json("s3api", "put-object", "--bucket", bucket, "--key", "api/k", "--body", str(f),
                     "--metadata", "a=b", "--content-type", "text/plain")
    assert r["ETag"] == '"' + hashlib.md5(b"s3api body").hexdigest() + '"'
    out = tmp_path / "out"
    r = aws_cli.json("s3api", "get-object", "--bucket", bucket, "--key", "api/k", str(out))
    assert r["Metadata"] == {"a": "b"} and r["ContentType"] == "text/plain"
    assert out.read_bytes() == b"s3api body"
    r = aws_cli.json("s3api", "list-objects-v2", "--bucket", bucket)
    assert [o["Key"] for o in r["Contents"]] == ["api/k"]


# ---------------------------------------------------------------- s3cmd


def _s3cmd_config(tmp_path: Path, server, creds=None, v2=False) -> Path:
    creds = creds or server.admin
    cfg = tmp_path / ("s3cfg-v2" if v2 else "s3cfg-v4")
    cfg.write_text(
        "\n".join(
            [
                "[default]",
                f"access_key = {creds['access_key_id']}",
                f"secret_key = {creds['secret_access_key']}",
                f"host_base = 127.0.0.1:{server.port}",
                f"host_bucket = 127.0.0.1:{server.port}",
                "use_https = False",
                "check_ssl_certificate = False",
                "bucket_location = mallee-1",
                f"signature_v2 = {'True' if v2 else 'False'}",
                "socket_timeout = 30",
                "",
            ]
        )
    )
    return cfg


@pytest.mark.parametrize("v2", [True, False], ids=["sigv2", "sigv4"])
def test_s3cmd(server, s3, s3cmd_bin, tmp_path, v2):
    cfg = _s3cmd_config(tmp_path, server, v2=v2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)

    def s3cmd(*args, check=True):
        cmd = [s3cmd_bin, "-c", str(cfg), "--no-progress"]
        if v2:
            cmd.append("--signature-v2")
        cmd += list(map(str, args))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"s3cmd {' '.join(map(str, args))} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    b = bucket_name("s3cmd")
    try:
        s3cmd("mb", f"s3://{b}")
        assert b in [x["Name"] for x in s3.list_buckets()["Buckets"]]
        assert f"s3://{b}" in s3cmd("ls").stdout

        f = tmp_path / "file.txt"
        f.write_bytes(b"s3cmd content\n" * 100)
        s3cmd("put", str(f), f"s3://{b}/dir/file.txt")
        assert s3.get_object(Bucket=b, Key="dir/file.txt")["Body"].read() == f.read_bytes()

        big = tmp_path / "big.bin"
        digest = write_random(big, 12 * MiB + 7)
        s3cmd("put", "--multipart-chunk-size-mb=5", str(big), f"s3://{b}/big.bin")
        assert s3.head_object(Bucket=b, Key="big.bin")["ETag"].strip('"').endswith("-3")

        ls = s3cmd("ls", "--recursive", f"s3://{b}").stdout
        assert f"s3://{b}/dir/file.txt" in ls and f"s3://{b}/big.bin" in ls, ls

        out = tmp_path / "got.txt"
        s3cmd("get", f"s3://{b}/dir/file.txt", str(out))
        assert out.read_bytes() == f.read_bytes()
        outbig = tmp_path / "got.bin"
        s3cmd("get", f"s3://{b}/big.bin", str(outbig))
        assert sha256_file(outbig) == digest

        assert requests.get(f"{server.endpoint}/{b}/dir/file.txt", timeout=10).status_code == 403
        s3cmd("setacl", "--acl-public", f"s3://{b}/dir/file.txt")
        r = requests.get(f"{server.endpoint}/{b}/dir/file.txt", timeout=10)
        assert r.status_code == 200 and r.content == f.read_bytes()
        s3cmd("setacl", "--acl-private", f"s3://{b}/dir/file.txt")
        assert requests.get(f"{server.endpoint}/{b}/dir/file.txt", timeout=10).status_code == 403

        s3cmd("del", f"s3://{b}/dir/file.txt")
        s3cmd("del", f"s3://{b}/big.bin")
        assert list_keys(s3, b) == []
        s3cmd("rb", f"s3://{b}")
        assert b not in [x["Name"] for x in s3.list_buckets()["Buckets"]]
    finally:
        delete_bucket_quietly(s3, b)
