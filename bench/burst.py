"""Launch-burst driver for bench/run-burst.sh (boto3, against a running
mallee whose node agent, real or simulated, logs to a file).

Sends COUNT RunInstances calls at once (MinCount=MaxCount=1 each, from
COUNT threads, each with its own client whose connection is opened before
the clock starts), then polls DescribeInstances over the ids every
POLL_MS (10) ms until all are `running`, and reports:

- *all running*: from the calls going out to the last instance seen
  `running` (the burst's wall time);
- *RunInstances → running* per instance (p50/p99);
- *lag*: from the node's own state change (its `instance state` log line
  with state Running: the real agent writes it when QEMU runs the guest,
  the simulated one when its boot delay is over) to the first
  DescribeInstances answer saying `running`, per instance (p50/p99).
  The log's timestamps are the node's wall clock, the answers' this
  process's: one machine, one clock. A node that does not write the line
  (the simulated agent of builds before the state push) gives no lag.

Then terminates what it launched and waits until they are gone (so the
next round starts from an empty node). ROUNDS bursts; the samples of all
rounds are pooled. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config

POLL_S = 0.010
TEXT_LINE = re.compile(
    r"^(\S+Z)\s+INFO\s.*instance state.*instance=(i-[0-9a-f]+).*state=\"?Running"
)


def log(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    rank = q * (len(values) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (rank - lo)


def stats_ms(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "min_ms": round(min(values) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def parse_time(stamp: str) -> float:
    # 2026-12-07T19:55:01.123456Z (text) or the same in JSON's timestamp.
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def running_lines(path: Path) -> dict[str, float]:
    """Instance id → wall time of the node's first `instance state`
    Running line in the log (JSON or text format)."""
    seen: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        if "instance state" not in line:
            continue
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("message") == "instance state" and str(rec.get("state")) == "Running":
                iid = rec.get("instance")
                if iid and iid not in seen:
                    seen[iid] = parse_time(rec["timestamp"])
        else:
            m = TEXT_LINE.match(line)
            if m and m.group(2) not in seen:
                seen[m.group(2)] = parse_time(m.group(1))
    return seen


class Burst:
    def __init__(self, a):
        self.a = a
        creds = json.loads(Path(a.creds).read_text())
        self.creds = creds
        self.region = creds.get("region") or "mallee-1"
        self.ec2 = self.client()

    def client(self, service: str = "ec2"):
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.a.endpoint,
            aws_access_key_id=self.creds["access_key_id"],
            aws_secret_access_key=self.creds["secret_access_key"],
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=120,
                          max_pool_connections=32),
        )

    def image(self) -> str:
        s3 = self.client("s3")
        bucket = f"burst-{int(time.time() * 1000):x}"
        s3.create_bucket(Bucket=bucket)
        if self.a.guest_images:
            images = Path(self.a.guest_images)
            for name in ("vmlinuz", "initrd.img", "root.img"):
                s3.upload_file(str(images / name), bucket, name)
            kernel = self.ec2.register_image(Name=f"{bucket}-k", ImageLocation=f"{bucket}/vmlinuz")["ImageId"]
            ramdisk = self.ec2.register_image(Name=f"{bucket}-r", ImageLocation=f"{bucket}/initrd.img")["ImageId"]
            return self.ec2.register_image(Name=f"{bucket}-m", ImageLocation=f"{bucket}/root.img",
                                           KernelId=kernel, RamdiskId=ramdisk,
                                           Architecture="x86_64")["ImageId"]
        # Simulated VMs never read the disk.
        s3.put_object(Bucket=bucket, Key="disk.img", Body=b"\0" * (1 << 20))
        return self.ec2.register_image(Name=bucket, ImageLocation=f"{bucket}/disk.img")["ImageId"]

    def burst(self, image: str) -> dict:
        count = self.a.count
        clients = [self.client() for _ in range(count)]
        for c in clients:  # open each connection before the clock starts
            c.describe_availability_zones()
        barrier = threading.Barrier(count + 1)
        sent: dict[str, float] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def one(c):
            barrier.wait()
            try:
                t0 = time.time()
                r = c.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=self.a.instance_type)
                with lock:
                    sent[r["Instances"][0]["InstanceId"]] = t0
            except Exception as e:  # noqa: BLE001 (reported whole)
                with lock:
                    errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.time()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError(f"{len(errors)} RunInstances failed: {errors[:3]}")
        ids = list(sent)
        seen: dict[str, float] = {}
        deadline = time.time() + self.a.timeout
        while len(seen) < len(ids):
            if time.time() > deadline:
                raise RuntimeError(f"not running after {self.a.timeout} s: {sorted(set(ids) - set(seen))}")
            pending = [i for i in ids if i not in seen]
            answer = self.ec2.describe_instances(InstanceIds=pending)
            now = time.time()
            for r in answer["Reservations"]:
                for i in r["Instances"]:
                    state = i["State"]["Name"]
                    if state == "running":
                        seen[i["InstanceId"]] = now
                    elif state != "pending":
                        raise RuntimeError(f"{i['InstanceId']} went {state}: {i.get('StateReason')}")
            time.sleep(POLL_S)
        all_running = max(seen.values()) - start
        time.sleep(0.5)  # the log lines are flushed
        node_running = running_lines(Path(self.a.node_log))
        lags = [seen[i] - node_running[i] for i in ids if i in node_running]
        self.ec2.terminate_instances(InstanceIds=ids)
        deadline = time.time() + self.a.timeout
        while True:
            states = [i["State"]["Name"] for r in self.ec2.describe_instances(InstanceIds=ids)["Reservations"]
                      for i in r["Instances"]]
            if all(s == "terminated" for s in states):
                break
            if time.time() > deadline:
                raise RuntimeError("instances not terminated in time")
            time.sleep(0.2)
        return {
            "all_running_s": all_running,
            "to_running": [seen[i] - sent[i] for i in ids],
            "lag": lags,
        }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--creds", required=True)
    p.add_argument("--node-log", required=True)
    p.add_argument("--guest-images", default="", help="real guests (empty: a simulated node)")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--instance-type", default="t1.micro")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--label", default="")
    a = p.parse_args()
    b = Burst(a)
    image = b.image()
    rounds = []
    for n in range(a.rounds):
        r = b.burst(image)
        log(f"{a.label} round {n + 1}: all {a.count} running in {r['all_running_s']:.2f} s; "
            f"lag samples {len(r['lag'])}")
        rounds.append(r)
    all_running = [r["all_running_s"] for r in rounds]
    print(json.dumps({
        "label": a.label,
        "count": a.count,
        "rounds": a.rounds,
        "all_running": stats_ms(all_running),
        "to_running": stats_ms([x for r in rounds for x in r["to_running"]]),
        "lag": stats_ms([x for r in rounds for x in r["lag"]]),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
