"""Block-storage driver for bench/run-volumes.sh (boto3, against a running
`mallee up`).

1. A guest (the test guest's paravirtual image) gets a 1 GiB volume,
   fills FILL MiB of it with random data, and measures sequential write
   and read MiB/s with busybox dd (conv=fsync on write, caches dropped
   before read) on the volume (the raw virtio disk) and on a file of IO
   MiB on its root disk (the instance's qcow2 overlay on the node), timed
   with the guest's /proc/uptime (10 ms resolution).
2. CreateSnapshot of that volume (attached, the guest idle): time to
   `completed` and the snapshot data's size in the object store.
3. COUNT volumes from that snapshot, all requested at once: time until
   every one is `available`, and the node's volume directory growth.

Prints a markdown table and writes everything as JSON. There is no peer on
this machine: the numbers stand alone (ratios are volume vs root disk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch import Bench, host_info, loadavg, log  # noqa: E402

ZONE = "mallee-1a"


def guest_script(fill_mib: int, io_mib: int) -> str:
    return f"""#!/bin/sh
while ! [ -b /dev/vdb ]; do sleep 1; done
dd if=/dev/urandom of=/dev/vdb bs=1M count={fill_mib} conv=fsync 2>/dev/null
echo "BENCH filled"
# busybox dd reports no rate: time it with /proc/uptime (10 ms steps).
now() {{ cut -d' ' -f1 /proc/uptime; }}
rate() {{ s=$(now); dd "$2" "$3" bs=1M count={io_mib} $4 2>/dev/null; echo "BENCH $1 $s $(now)"; }}
rate volume-write if=/dev/zero of=/dev/vdb conv=fsync
echo 3 > /proc/sys/vm/drop_caches
rate volume-read if=/dev/vdb of=/dev/null ""
rate root-write if=/dev/zero of=/root/bench.bin conv=fsync
echo 3 > /proc/sys/vm/drop_caches
rate root-read if=/root/bench.bin of=/dev/null ""
rm -f /root/bench.bin
echo "BENCH done"
"""


def wait(predicate, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def dir_bytes(path: Path) -> int:
    """Bytes actually allocated under `path` (du, so sparse files count
    what they hold)."""
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--creds", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--mallee", default="?")
    p.add_argument("--accel", default="?")
    p.add_argument("--accel-reason", default="")
    p.add_argument("--fill-mib", type=int, default=1024)
    p.add_argument("--io-mib", type=int, default=32)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--instance-type", default="m1.small")
    p.add_argument("--boot-timeout", type=float, default=900)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    bench = Bench(argparse.Namespace(endpoint=args.endpoint, creds=args.creds, images=args.images,
                                     instance_type=args.instance_type))
    ec2 = bench.ec2
    data = Path(args.data_dir)
    load_before = loadavg()
    started = time.monotonic()
    image = bench.register()

    vol = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
    iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=args.instance_type,
                            UserData=guest_script(args.fill_mib, args.io_mib))["Instances"][0]["InstanceId"]
    created = []
    try:
        wait(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available", 120, "volume")
        wait(lambda: bench.states(ec2, [iid])[iid]["State"]["Name"] == "running", args.boot_timeout, "instance")
        ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
        log(f"filling {args.fill_mib} MiB of {vol} from {iid} and measuring dd")
        out = wait(lambda: (lambda o: o if "BENCH done" in o else None)(
            ec2.get_console_output(InstanceId=iid, Latest=True).get("Output", "")), args.boot_timeout, "guest dd")
        rates = {}
        for name in ("volume-write", "volume-read", "root-write", "root-read"):
            found = re.search(rf"BENCH {name} ([0-9.]+) ([0-9.]+)", out)
            if not found:
                raise SystemExit(f"no {name} result in the console:\n{out[-3000:]}")
            seconds = float(found.group(2)) - float(found.group(1))
            rates[name] = round(args.io_mib / seconds, 1) if seconds > 0 else None

        objects_before = dir_bytes(data / "objects")
        t0 = time.monotonic()
        sid = ec2.create_snapshot(VolumeId=vol, Description="bench")["SnapshotId"]
        wait(lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed", 1800,
             "snapshot", poll=0.1)
        snapshot_s = time.monotonic() - t0
        snapshot_bytes = dir_bytes(data / "objects") - objects_before

        volumes_dir = data / "node" / "volumes"
        volumes_before = dir_bytes(volumes_dir)
        t0 = time.monotonic()
        for _ in range(args.count):
            created.append(ec2.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)["VolumeId"])
        calls_s = time.monotonic() - t0

        def all_available():
            states = {v["VolumeId"]: v["State"] for v in ec2.describe_volumes(VolumeIds=created)["Volumes"]}
            if any(s == "error" for s in states.values()):
                raise SystemExit(f"a volume failed: {states}")
            return all(s == "available" for s in states.values())

        wait(all_available, 3600, f"{args.count} volumes", poll=0.1)
        volumes_s = time.monotonic() - t0
        volumes_bytes = dir_bytes(volumes_dir) - volumes_before
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mallee": args.mallee,
        "accel": {"mode": args.accel, "reason": args.accel_reason},
        "host": host_info(),
        "config": {"fill_mib": args.fill_mib, "io_mib": args.io_mib, "count": args.count,
                   "instance_type": args.instance_type},
        "guest_mib_per_s": rates,
        "snapshot": {"seconds": round(snapshot_s, 2), "stored_bytes": snapshot_bytes},
        "volumes_from_snapshot": {"count": args.count, "calls_seconds": round(calls_s, 2),
                                  "all_available_seconds": round(volumes_s, 2), "disk_bytes": volumes_bytes},
        "load_average": {"before": load_before, "after": loadavg()},
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    mib = 1 << 20
    print("| measurement | value |")
    print("|---|---|")
    for name in ("volume-write", "volume-read", "root-write", "root-read"):
        print(f"| guest sequential {name.replace('-', ' ')} ({args.io_mib} MiB, dd) | {rates[name]} MiB/s |")
    for kind in ("write", "read"):
        v, r = rates[f"volume-{kind}"], rates[f"root-{kind}"]
        if v and r:
            print(f"| volume / root disk, {kind} | {v / r:.2f} |")
    print(f"| CreateSnapshot → completed (1 GiB volume, {args.fill_mib} MiB written) | {snapshot_s:.2f} s |")
    print(f"| snapshot data in the object store | {snapshot_bytes / mib:.1f} MiB |")
    print(f"| {args.count} × CreateVolume from it: calls | {calls_s:.2f} s |")
    print(f"| {args.count} volumes all available | {volumes_s:.2f} s ({volumes_s / args.count:.2f} s each) |")
    print(f"| their disk space on the node | {volumes_bytes / mib:.1f} MiB ({volumes_bytes / mib / args.count:.1f} MiB each) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
