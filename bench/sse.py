"""SSE-S3 throughput, driven by bench/run-sse.sh against one running
`mallee up --no-node`: PUT and GET MiB/s of objects stored with SSE-S3 ÷
the same without, side by side in one run.

Two buckets of the admin account: `plain`, and `sealed` with default
encryption (AES256). For ROUNDS rounds, alternating which bucket goes
first, COUNT objects of SIZE MiB are PUT into each, then GET back in full
(and checked: size and MD5). Requests are presigned (SigV4 query,
UNSIGNED-PAYLOAD) and sent over one keep-alive connection with
http.client, so the client does not hash payloads and both cases pay the
same client cost. Prints a markdown table of the medians over rounds and
the ratios against the goal (0.8); writes every round as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import statistics
import time
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

GOAL = 0.8
MiB = 1024 * 1024


def client(endpoint, creds):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="mallee-1",
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def timed(conn, s3, method, bucket, key, body=None):
    op = "put_object" if method == "PUT" else "get_object"
    url = urlsplit(s3.generate_presigned_url(op, Params={"Bucket": bucket, "Key": key}, ExpiresIn=600))
    start = time.perf_counter()
    conn.request(method, f"{url.path}?{url.query}", body=body,
                 headers={"Content-Length": str(len(body))} if body is not None else {})
    resp = conn.getresponse()
    digest = hashlib.md5()
    size = 0
    while chunk := resp.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    elapsed = time.perf_counter() - start
    if resp.status != 200:
        raise SystemExit(f"{method} {bucket}/{key}: HTTP {resp.status}")
    return elapsed, size, digest.hexdigest()


def run_case(conn, s3, bucket, data, count, expected_md5):
    put = get = 0.0
    for i in range(count):
        elapsed, _, _ = timed(conn, s3, "PUT", bucket, f"o{i}", data)
        put += elapsed
    for i in range(count):
        elapsed, size, md5 = timed(conn, s3, "GET", bucket, f"o{i}")
        if size != len(data) or md5 != expected_md5:
            raise SystemExit(f"GET {bucket}/o{i}: wrong data")
        get += elapsed
    total = count * len(data) / MiB
    return total / put, total / get


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--creds", required=True)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mallee", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    creds = json.load(open(args.creds))
    s3 = client(args.endpoint, creds)
    for bucket in ("plain", "sealed"):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(Bucket="sealed", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    data = os.urandom(args.size_mib * MiB)
    md5 = hashlib.md5(data).hexdigest()
    host = urlsplit(args.endpoint)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=600)
    started = time.time()
    rounds = []
    for r in range(args.rounds):
        order = ["plain", "sealed"] if r % 2 == 0 else ["sealed", "plain"]
        result = {}
        for bucket in order:
            put, get = run_case(conn, s3, bucket, data, args.count, md5)
            result[bucket] = {"put_mib_s": put, "get_mib_s": get}
        head = s3.head_object(Bucket="sealed", Key="o0")
        assert head.get("ServerSideEncryption") == "AES256", "the sealed bucket's objects are encrypted"
        rounds.append(result)
    med = {b: {k: statistics.median(r[b][k] for r in rounds) for k in ("put_mib_s", "get_mib_s")}
           for b in ("plain", "sealed")}
    ratios = {k: med["sealed"][k] / med["plain"][k] for k in ("put_mib_s", "get_mib_s")}
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mallee": args.mallee, "cores": os.cpu_count(),
        "config": {"size_mib": args.size_mib, "count": args.count, "rounds": args.rounds},
        "rounds": rounds, "median": med, "ratio": ratios, "goal": GOAL,
        "elapsed_s": round(time.time() - started, 1),
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print("| op | plain MiB/s | SSE-S3 MiB/s | SSE-S3 ÷ plain | goal |")
    print("|---|---:|---:|---:|---:|")
    for op, key in (("PUT", "put_mib_s"), ("GET", "get_mib_s")):
        print(f"| {op} {args.size_mib} MiB | {med['plain'][key]:.0f} | {med['sealed'][key]:.0f} | "
              f"{ratios[key]:.2f} | ≥ {GOAL} |")


if __name__ == "__main__":
    main()
