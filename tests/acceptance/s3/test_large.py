"""Large objects and memory: a 2 GiB multipart upload by `aws s3 cp` read back
with curl from a presigned URL, and the server's peak RSS while 16 clients
stream 256 MiB objects at once (the object store streams, it never holds an
object in memory)."""

import hashlib
import os
import subprocess
import threading

import requests

from conftest import AwsCli, bucket_name, s3_client

MiB = 1024 * 1024


def _peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process has ever had."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


class PatternStream:
    """A sized, file-like body of `size` bytes generated on the fly (never
    held whole), with its SHA-256 computed as it is read."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.left = size
        self.block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
        self.sha = hashlib.sha256()

    def __len__(self):
        return self.size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        n = min(n, len(self.block))
        chunk = self.block[:n]
        self.left -= n
        self.sha.update(chunk)
        return chunk


def test_2gib_aws_cp_then_presigned_curl(mallee_factory, tmp_path):
    srv = mallee_factory("big")
    s3 = s3_client(srv)
    bucket = bucket_name("big")
    s3.create_bucket(Bucket=bucket)
    src = tmp_path / "two-gib"
    want = hashlib.sha256()
    with open(src, "wb") as f:
        for _ in range(2048 // 8):
            chunk = os.urandom(8 * MiB)
            want.update(chunk)
            f.write(chunk)
    cli = AwsCli(srv, home=tmp_path)
    cli.run("s3", "cp", str(src), f"s3://{bucket}/two-gib.bin", timeout=900)
    src.unlink()
    head = s3.head_object(Bucket=bucket, Key="two-gib.bin")
    assert head["ContentLength"] == 2048 * MiB
    assert head["ETag"].strip('"').endswith(f"-{head.get('PartsCount', 0)}") or "-" in head["ETag"], head["ETag"]
    url = cli.run("s3", "presign", f"s3://{bucket}/two-gib.bin", "--expires-in", "900").stdout.strip()
    back = tmp_path / "two-gib.back"
    subprocess.run(["curl", "-sfS", "-o", str(back), url], check=True, timeout=900)
    got = hashlib.sha256()
    with open(back, "rb") as f:
        while chunk := f.read(8 * MiB):
            got.update(chunk)
    back.unlink()
    assert got.hexdigest() == want.hexdigest(), "2 GiB object changed on the way through"


def test_peak_rss_while_16_clients_stream_256mib(mallee_factory):
    srv = mallee_factory("rss")
    s3 = s3_client(srv)
    bucket = bucket_name("rss")
    s3.create_bucket(Bucket=bucket)
    size = 256 * MiB
    results: dict[int, tuple[int, str, str]] = {}

    def upload(i: int):
        body = PatternStream(size, i)
        url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"obj-{i}"}, ExpiresIn=900)
        r = requests.put(url, data=body, timeout=900)
        results[i] = (r.status_code, r.text[:300], body.sha.hexdigest())

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    peak = _peak_rss_mib(srv.proc.pid)
    assert all(status == 200 for status, _, _ in results.values()) and len(results) == 16, results
    print(f"peak RSS of mallee with 16 x 256 MiB concurrent uploads: {peak:.0f} MiB")
    assert peak < 200, f"mallee's peak RSS was {peak:.0f} MiB while streaming 16 x 256 MiB uploads"
    # every object is whole: size and content digest
    for i, (_, _, digest) in results.items():
        obj = s3.get_object(Bucket=bucket, Key=f"obj-{i}")
        h = hashlib.sha256()
        for chunk in obj["Body"].iter_chunks(8 * MiB):
            h.update(chunk)
        assert h.hexdigest() == digest, f"obj-{i} differs from what was sent"
