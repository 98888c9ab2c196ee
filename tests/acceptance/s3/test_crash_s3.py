"""kill -9 while 8 clients PUT and overwrite objects: acknowledged data survives, never a mix,
and no blob file outlives the restart unless an object or an upload refers to it."""

import hashlib
import os
import random
import threading
import time

from conftest import MiB, list_keys, s3_client

WORKERS = 8
KEYS = 10  # shared by all workers, so overwrites race
BURST_SECONDS = 2.5
MIN_ACKED = 40
MP_PART = 5 * MiB


class Attempt:
    __slots__ = ("key", "md5", "size", "start", "end", "acked", "multipart")

    def __init__(self, key, md5, size, start, multipart=False):
        self.key, self.md5, self.size, self.start = key, md5, size, start
        self.end = None
        self.acked = False
        self.multipart = multipart


def _burst(srv, bucket, prefix, seed):
    attempts: list[Attempt] = []
    lock = threading.Lock()
    stop = threading.Event()
    ready = threading.Barrier(WORKERS + 1)
    clock = time.monotonic

    def worker(w):
        rnd = random.Random(seed * 1000 + w)
        c = s3_client(srv, read_timeout=15)
        ready.wait(timeout=30)
        i = 0
        while not stop.is_set():
            i += 1
            key = f"{prefix}k{rnd.randrange(KEYS)}"
            multipart = w == 0 and i % 3 == 0
            if multipart:
                key = f"{prefix}mp{rnd.randrange(3)}"
                parts = [os.urandom(MP_PART), os.urandom(rnd.randrange(1, 300_000))]
                body = b"".join(parts)
            else:
                size = rnd.choice([0, 1, 1000, 64 * 1024, 300_000, 1_500_000])
                body = os.urandom(size)
            a = Attempt(key, hashlib.md5(body).hexdigest(), len(body), clock(), multipart)
            with lock:
                attempts.append(a)
            try:
                if multipart:
                    up = c.create_multipart_upload(Bucket=bucket, Key=key)
                    done = []
                    for n, p in enumerate(parts, start=1):
                        e = c.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=p)
                        done.append({"PartNumber": n, "ETag": e["ETag"]})
                    resp = c.complete_multipart_upload(
                        Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": done}
                    )
                    if "ETag" not in resp:
                        continue
                else:
                    r = c.put_object(Bucket=bucket, Key=key, Body=body)
                    if "ETag" not in r:
                        # botocore turns a connection the dying server closed during
                        # Expect: 100-continue into an empty "200": not an acknowledgement
                        continue
                    assert r["ETag"] == f'"{a.md5}"', (r["ETag"], a.md5)
            except AssertionError:
                raise
            except Exception:
                if not srv.running():
                    return
                continue
            a.end = clock()
            a.acked = True

    errors = []

    def run(w):
        try:
            worker(w)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in range(WORKERS)]
    for t in threads:
        t.start()
    ready.wait(timeout=60)
    t0 = clock()
    while clock() - t0 < BURST_SECONDS * 3:
        time.sleep(0.05)
        with lock:
            n_acked = sum(a.acked for a in attempts)
        if clock() - t0 >= BURST_SECONDS and n_acked >= MIN_ACKED:
            break
    srv.kill()  # SIGKILL
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return attempts


def _check(srv, bucket, attempts, c):
    by_key: dict[str, list[Attempt]] = {}
    for a in attempts:
        by_key.setdefault(a.key, []).append(a)
    present = set(list_keys(c, bucket))
    listed = {o["Key"]: o for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket)
              for o in page.get("Contents", [])}
    problems = []
    for key, atts in by_key.items():
        acked = [a for a in atts if a.acked]
        if key not in present:
            if acked:
                problems.append(f"{key}: {len(acked)} acknowledged PUT(s) but the object is gone")
            continue
        got = c.get_object(Bucket=bucket, Key=key)
        body = got["Body"].read()
        md5 = hashlib.md5(body).hexdigest()
        matching = [a for a in atts if a.md5 == md5 and a.size == len(body)]
        if not matching:
            problems.append(f"{key}: body (md5 {md5}, {len(body)} bytes) matches no attempted PUT (torn/mixed)")
            continue
        # A PUT is superseded if an acknowledged PUT of the same key started after it was acknowledged.
        allowed = [
            a for a in matching
            if not any(q.acked and a.acked and q.start > a.end for q in acked)
        ]
        if not allowed:
            problems.append(f"{key}: stale body: a later acknowledged PUT was lost")
        o = listed.get(key)
        if o is None or o["Size"] != len(body):
            problems.append(f"{key}: listing entry {o} disagrees with GET ({len(body)} bytes)")
        if not matching[0].multipart and got["ETag"] != f'"{md5}"':
            problems.append(f"{key}: ETag {got['ETag']} is not the MD5 of the body {md5}")
    for key in present:
        if key not in by_key:
            problems.append(f"{key}: listed but never attempted")
    return problems


def _tmp_entries(srv):
    tmp = srv.data_dir / "objects" / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def _blob_files(srv):
    data = srv.data_dir / "objects" / "data"
    return sum(len(files) for _, _, files in os.walk(data))


def _referenced_blobs(c, bucket):
    """Blob files the bucket's objects and unfinished uploads use: one per
    simple object, one per part of a multipart object (its ETag ends -N)."""
    n = 0
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            etag = o["ETag"].strip('"')
            n += int(etag.rsplit("-", 1)[1]) if "-" in etag else 1
    for up in c.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        n += len(c.list_parts(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"]).get("Parts", []))
    return n


def test_kill9_during_concurrent_puts(mallee_factory):
    srv = mallee_factory("s3crash")
    c = s3_client(srv)
    bucket = "crash-bucket"
    c.create_bucket(Bucket=bucket)
    all_attempts = []
    for rnd in range(2):
        attempts = _burst(srv, bucket, f"r{rnd}/", seed=rnd + 1)
        n_acked = sum(a.acked for a in attempts)
        print(f"round {rnd}: {len(attempts)} PUTs attempted, {n_acked} acknowledged, "
              f"{sum(a.multipart and a.acked for a in attempts)} multipart acknowledged")
        assert n_acked >= 10, "too few acknowledged PUTs to mean anything"
        all_attempts.extend(attempts)
        srv.start()
        c = s3_client(srv)
        problems = _check(srv, bucket, all_attempts, c)
        assert not problems, "\n".join(problems[:30])
        assert _tmp_entries(srv) == [], f"objects/tmp not cleaned after restart: {_tmp_entries(srv)[:20]}"
        # Blobs are written under their final names: those a crash left
        # half-written (or never committed) are swept at start-up.
        assert _blob_files(srv) == _referenced_blobs(c, bucket), "unreferenced blob files after restart"
    # still fully usable
    c.put_object(Bucket=bucket, Key="after", Body=b"fine")
    assert c.get_object(Bucket=bucket, Key="after")["Body"].read() == b"fine"
