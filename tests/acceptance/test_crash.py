"""kill -9 in the middle of a write burst: acknowledged writes survive, nothing half-written."""

import threading
import time
from collections import Counter

from botocore.exceptions import ClientError

WORKERS = 4
BURST_SECONDS = 2.0  # kill after this long, or earlier once enough writes succeeded
MIN_ACKED = 60
MAX_CALLS_PER_WORKER = 400


def _burst(srv, round_no):
    """Threads issue CreateKeyPair(+TagSpecifications) and CreateTags until the server dies."""
    acked_keys = {}  # name -> (id, fingerprint, tags dict)
    acked_tags = []  # (key id, key, value)
    attempted = set()
    lock = threading.Lock()
    stop = threading.Event()
    go = threading.Event()
    ready = threading.Barrier(WORKERS + 1)
    creds = srv.admin

    def worker(w):
        c = srv.client(creds=creds, read_timeout=10)  # client set-up is slow: do it before the clock starts
        ready.wait(timeout=30)
        go.wait(timeout=30)
        last = None
        for i in range(MAX_CALLS_PER_WORKER):
            if stop.is_set():
                return
            name = f"r{round_no}-w{w}-{i:04d}"
            spec = {"round": str(round_no), "worker": str(w), "seq": str(i), "name": name}
            with lock:
                attempted.add(name)
            try:
                kp = c.create_key_pair(
                    KeyName=name,
                    KeyType="rsa" if i % 3 == 0 else "ed25519",
                    TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": k, "Value": v} for k, v in spec.items()]}],
                )
            except Exception:
                if not srv.running():
                    return
                continue
            with lock:
                acked_keys[name] = (kp["KeyPairId"], kp["KeyFingerprint"], spec)
            if last is not None:
                try:
                    c.create_tags(Resources=[last], Tags=[{"Key": f"extra{i}", "Value": name}])
                except Exception:
                    if not srv.running():
                        return
                    continue
                with lock:
                    acked_tags.append((last, f"extra{i}", name))
            last = kp["KeyPairId"]

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(WORKERS)]
    for t in threads:
        t.start()
    ready.wait(timeout=30)
    go.set()
    deadline = time.monotonic() + BURST_SECONDS
    while time.monotonic() < deadline:
        with lock:
            if len(acked_keys) + len(acked_tags) >= MIN_ACKED:
                break
        time.sleep(0.02)
    srv.kill()  # SIGKILL mid-burst
    stop.set()
    for t in threads:
        t.join(timeout=15)
    return acked_keys, acked_tags, attempted


def _verify(ec2, acked_keys, acked_tags, attempted, round_no):
    kps = ec2.describe_key_pairs()["KeyPairs"]
    names = Counter(k["KeyName"] for k in kps)
    dups = [n for n, c in names.items() if c > 1]
    assert not dups, f"duplicate key names after crash: {dups}"
    by_name = {k["KeyName"]: k for k in kps}
    ids = Counter(k["KeyPairId"] for k in kps)
    assert all(c == 1 for c in ids.values()), "duplicate key pair ids"

    lost = [n for n in acked_keys if n not in by_name]
    assert not lost, f"{len(lost)} acknowledged CreateKeyPair calls lost by kill -9: {lost[:5]}"
    for name, (kid, fp, spec) in acked_keys.items():
        k = by_name[name]
        assert k["KeyPairId"] == kid, name
        assert k["KeyFingerprint"] == fp, name

    tags_by_id = {}
    for page in ec2.get_paginator("describe_tags").paginate(PaginationConfig={"PageSize": 1000}):
        for t in page["Tags"]:
            tags_by_id.setdefault(t["ResourceId"], {})[t["Key"]] = t["Value"]

    # every key pair created in this round carries its whole TagSpecification (all or nothing)
    prefix = f"r{round_no}-"
    for name, k in by_name.items():
        if not name.startswith(prefix):
            continue
        assert name in attempted, f"key pair {name} was never requested"
        tags = tags_by_id.get(k["KeyPairId"], {})
        kp_tags = {t["Key"]: t["Value"] for t in k.get("Tags", [])}
        assert kp_tags == tags, f"{name}: DescribeKeyPairs and DescribeTags disagree"
        _, w, seq = name.split("-")
        spec = {"round": str(round_no), "worker": w[1:], "seq": str(int(seq)), "name": name}
        for kk, vv in spec.items():
            assert tags.get(kk) == vv, f"{name}: half-written TagSpecification, tags={tags}"
    # orphan tags: every tagged key-… id exists
    existing_ids = {k["KeyPairId"] for k in kps}
    orphans = [rid for rid in tags_by_id if rid.startswith("key-") and rid not in existing_ids]
    assert not orphans, f"tags on key pairs that do not exist: {orphans[:5]}"

    for rid, key, value in acked_tags:
        assert tags_by_id.get(rid, {}).get(key) == value, f"acknowledged CreateTags lost: {rid} {key}"


def test_kill9_mid_burst(mallee_factory):
    srv = mallee_factory("crash")
    total_acked = 0
    for round_no in (1, 2):
        acked_keys, acked_tags, attempted = _burst(srv, round_no)
        total_acked += len(acked_keys) + len(acked_tags)
        print(f"round {round_no}: {len(attempted)} CreateKeyPair attempted, {len(acked_keys)} acked, {len(acked_tags)} CreateTags acked")
        srv.start()
        ec2 = srv.client()
        _verify(ec2, acked_keys, acked_tags, attempted, round_no)
    assert total_acked >= 10, f"burst too small to mean anything ({total_acked} acknowledged writes)"
    # the server is fully usable after the crashes
    ec2 = srv.client()
    ec2.create_key_pair(KeyName="after-crash")
    try:
        ec2.create_key_pair(KeyName="after-crash")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidKeyPair.Duplicate"
    else:
        raise AssertionError("duplicate name accepted after crash recovery")
    assert srv.stop() == 0


def test_kill9_idle_then_restart(mallee_factory):
    srv = mallee_factory("crash-idle")
    ec2 = srv.client()
    kp = ec2.create_key_pair(KeyName="idle", TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "a", "Value": "b"}]}])
    admin = srv.admin
    srv.kill()
    srv.start()
    assert srv.admin == admin
    got = srv.client().describe_key_pairs(KeyNames=["idle"])["KeyPairs"][0]
    assert got["KeyFingerprint"] == kp["KeyFingerprint"]
    assert got["Tags"] == [{"Key": "a", "Value": "b"}]
