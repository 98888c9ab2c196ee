"""Block-storage driver for bench/run-volumes.sh (boto3, against two running
`mallee up` clouds side by side: one with `--local-volumes`, where a volume
is a qcow2 file on the node that QEMU opens itself, and one with its
storage host, where the volume is a qcow2 file on the storage host that a
qemu-storage-daemon exports over NBD with TLS and QEMU reaches through the
node agent's relay socket).

1. Each cloud boots one guest (the test guest's paravirtual image,
   `m1.medium`: 1 vCPU, 512 MiB). The guest puts IO MiB of random data on
   a tmpfs, says it is ready, and then, for every round, waits for a new
   1 GiB volume to appear (/dev/vdb, /dev/vdc, ...) and measures on the raw
   device, timed with its /proc/uptime (10 ms steps):
   - seq-write: dd of the tmpfs data to the volume, bs=1M, conv=fsync;
   - seq-read: the same MiB back after `echo 3 > drop_caches`;
   - rand-fsync: N × dd bs=4k count=1 at a random 4 KiB block of the
     written region, conv=fsync (a write and a flush, each one waited for);
   - rand-direct: the same with oflag=direct and no fsync (the write
     reaches the virtual disk and is waited for; no flush);
   - loop: the same N dd processes writing to /dev/null (what the shell,
     the fork and exec of busybox dd cost).
   The three take turns every 25 writes and each adds up its own time.
   The test guest has busybox only (no fio), hence one dd process per
   4 KiB write; "net" IOPS take the loop's own cost out: N / (t - t_loop).
2. Rounds alternate between the clouds (local, NBD; then NBD, local; ...):
   the driver attaches the round's volume to one guest, waits for that
   round's results on its console, then does the other cloud. Only one
   guest works at a time; both see the same machine load.
3. On the storage-host cloud only: a 1 GiB volume filled with FILL MiB of
   random data, CreateSnapshot of it (attached, the guest idle), then COUNT
   volumes from that snapshot requested at once: time until all are
   `available`, and the growth of the storage host's volume directory
   (DATA/storage/volumes, its .bases included) as a fraction of COUNT ×
   the snapshot's stored size.

Each round also records the CPU seconds (/proc/PID/stat) that the
measured cloud's processes spent in it: the guest's QEMU, `mallee up`
(controller, node agent with the NBD relay, storage host agent) and the
qemu-storage-daemon, so the table says where the NBD path's CPU goes.

Prints markdown tables and writes everything (every round) as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch import Bench, host_info, loadavg, log  # noqa: E402

ZONE = "mallee-1a"
MIB = 1 << 20
SEQ = ("seq-write", "seq-read")
RAND = ("loop", "rand-fsync", "rand-direct")


# Random writes go in chunks of this many, the three cases taking turns.
CHUNK = 25


def guest_script(rounds: int, io_mib: int, rand_writes: int, fill_mib: int) -> str:
    """The guest's user-data: one measurement round per volume that
    appears, then (fill_mib > 0) fill the next volume for the snapshot.

    The random-write cases take turns every CHUNK writes (loop, fsync,
    direct, loop, ...) and each adds up its own time in centiseconds of
    /proc/uptime, read with the shell's `read` (no process): a burst of
    load on the machine then falls on all three alike, and the loop's cost
    can be taken out of the other two."""
    blocks = io_mib * 256
    chunks = max(1, rand_writes // CHUNK)
    devices = " ".join(f"/dev/vd{chr(ord('b') + r)}" for r in range(rounds))
    fill_dev = f"/dev/vd{chr(ord('b') + rounds)}"
    return f"""#!/bin/sh
now() {{ cut -d' ' -f1 /proc/uptime; }}
cs() {{ read up _ < /proc/uptime; c=${{up%.*}}${{up#*.}}; }}
appear() {{ while ! [ -b "$1" ]; do usleep 200000; done; }}
# {CHUNK} single-block writes at random 4 KiB blocks of the first {io_mib} MiB.
chunk() {{
    out=$1; shift
    j=0
    while [ $j -lt {CHUNK} ]; do
        dd if=/bench/data of="$out" bs=4k count=1 seek=$(( (RANDOM * 32768 + RANDOM) % {blocks} )) "$@" 2>/dev/null \\
            || echo "BENCH error $r $out $*"
        j=$((j + 1))
    done
}}
rand() {{
    tl=0; tf=0; td=0; k=0
    while [ $k -lt {chunks} ]; do
        k=$((k + 1))
        cs; s=$c; chunk /dev/null; cs; tl=$((tl + c - s))
        s=$c; chunk "$1" conv=notrunc,fsync; cs; tf=$((tf + c - s))
        s=$c; chunk "$1" conv=notrunc oflag=direct; cs; td=$((td + c - s))
    done
    echo "BENCH $r loop $tl"
    echo "BENCH $r rand-fsync $tf"
    echo "BENCH $r rand-direct $td"
}}
mkdir -p /bench && mount -t tmpfs -o size={io_mib + 8}m tmpfs /bench
dd if=/dev/urandom of=/bench/data bs=1M count={io_mib} 2>/dev/null
echo "BENCH ready"
r=0
for dev in {devices}; do
    r=$((r + 1))
    appear "$dev"
    s=$(now); dd if=/bench/data of="$dev" bs=1M count={io_mib} conv=fsync 2>/dev/null || echo "BENCH error $r seq-write"
    echo "BENCH $r seq-write $s $(now)"
    echo 3 > /proc/sys/vm/drop_caches
    s=$(now); dd if="$dev" of=/dev/null bs=1M count={io_mib} 2>/dev/null || echo "BENCH error $r seq-read"
    echo "BENCH $r seq-read $s $(now)"
    rand "$dev"
    echo "BENCH $r done"
done
if [ {fill_mib} -gt 0 ]; then
    appear {fill_dev}
    dd if=/dev/urandom of={fill_dev} bs=1M count={fill_mib} conv=fsync 2>/dev/null || echo "BENCH error fill"
    echo "BENCH filled"
fi
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


def cpu_by_process(data: Path) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system, all threads) of every process whose
    command line names `data`: the cloud's `mallee up`, its QEMU and its
    qemu-storage-daemons, by pid, with the binary's name."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if str(data) not in cmdline:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(pid)] = (Path(cmdline.split("\0", 1)[0]).name, (int(fields[11]) + int(fields[12])) / tick)
    return found


# What cpu_by_process's binaries are, for the table.
CPU_KINDS = {"qemu-system-x86_64": "qemu", "qemu-storage-daemon": "qsd", "mallee": "mallee"}


def cpu_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between two cpu_by_process samples, by kind
    (a process started in between counts from zero)."""
    out = dict.fromkeys(CPU_KINDS.values(), 0.0)
    for pid, (name, seconds) in after.items():
        kind = CPU_KINDS.get(name)
        if kind:
            prev = before.get(pid)
            out[kind] += seconds - (prev[1] if prev and prev[0] == name else 0.0)
    return {k: round(v, 2) for k, v in out.items()}


def other_qemu(ours: list[Path]) -> list[str]:
    """QEMU processes on this machine that are not the benchmark's (another
    session's tests): their pid and binary."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        binary = cmdline.split("\0", 1)[0]
        if "qemu-system" in binary or "qemu-storage-daemon" in binary:
            if not any(str(d) in cmdline for d in ours):
                found.append(f"{pid} {Path(binary).name}")
    return found


@dataclass
class Cloud:
    """One `mallee up` and what the benchmark made in it."""

    name: str
    bench: Bench
    data: Path
    volumes_dir: Path
    fill_mib: int
    instance: str = ""
    volumes: list[str] = field(default_factory=list)
    devices_used: int = 0

    @property
    def ec2(self):
        return self.bench.ec2

    def console(self) -> str:
        return self.ec2.get_console_output(InstanceId=self.instance, Latest=True).get("Output", "")

    def create_volume(self, **kw) -> str:
        """CreateVolume, retried while the zone's storage host is still
        registering (its first seconds after `mallee up`)."""
        deadline = time.monotonic() + 120
        while True:
            try:
                return self.ec2.create_volume(AvailabilityZone=ZONE, **kw)["VolumeId"]
            except ClientError as e:
                if time.monotonic() > deadline:
                    raise
                log(f"{self.name}: CreateVolume: {e.response['Error']['Code']}; retrying")
                time.sleep(1)

    def attach_next(self, volume: str) -> None:
        device = f"/dev/sd{chr(ord('f') + self.devices_used)}"
        self.devices_used += 1
        self.ec2.attach_volume(VolumeId=volume, InstanceId=self.instance, Device=device)

    def wait_console(self, marker: str, timeout: float) -> str:
        def check():
            out = self.console()
            if "BENCH error" in out:
                raise SystemExit(f"{self.name}: a dd failed in the guest:\n{out[-3000:]}")
            return out if marker in out else None

        return wait(check, timeout, f"{self.name}: {marker!r} on the console", poll=0.5)


def volume_states(ec2, ids: list[str]) -> dict[str, str]:
    return {v["VolumeId"]: v["State"] for v in ec2.describe_volumes(VolumeIds=ids)["Volumes"]}


def round_result(out: str, r: int, io_mib: int, n: int) -> dict:
    seconds = {}
    for name in SEQ:
        found = re.search(rf"BENCH {r} {name} ([0-9.]+) ([0-9.]+)", out)
        if not found:
            raise SystemExit(f"no round {r} {name} result on the console:\n{out[-3000:]}")
        seconds[name] = round(float(found.group(2)) - float(found.group(1)), 2)
    for name in RAND:
        found = re.search(rf"BENCH {r} {name} ([0-9]+)\s*$", out, re.MULTILINE)
        if not found:
            raise SystemExit(f"no round {r} {name} result on the console:\n{out[-3000:]}")
        seconds[name] = int(found.group(1)) / 100
    res: dict = {"seconds": seconds}
    res["seq_write_mib_s"] = io_mib / seconds["seq-write"] if seconds["seq-write"] > 0 else None
    res["seq_read_mib_s"] = io_mib / seconds["seq-read"] if seconds["seq-read"] > 0 else None
    res["loop_ms_per_iteration"] = seconds["loop"] / n * 1000
    for name in ("rand-fsync", "rand-direct"):
        key = name.replace("-", "_")
        t = seconds[name]
        res[f"{key}_iops"] = n / t if t > 0 else None
        net = t - seconds["loop"]
        res[f"{key}_net_iops"] = n / net if net > 0 else None
    return res


METRICS = [
    ("seq_write_mib_s", "sequential write, MiB/s ({io} MiB, dd bs=1M conv=fsync)"),
    ("seq_read_mib_s", "sequential read, MiB/s ({io} MiB, dd bs=1M, caches dropped)"),
    ("rand_fsync_iops", "4 KiB random write + fsync, IOPS ({n} dd processes)"),
    ("rand_fsync_net_iops", "4 KiB random write + fsync, IOPS net of the loop"),
    ("rand_direct_iops", "4 KiB random write O_DIRECT, IOPS ({n} dd processes)"),
    ("rand_direct_net_iops", "4 KiB random write O_DIRECT, IOPS net of the loop"),
    ("loop_ms_per_iteration", "loop alone (dd to /dev/null), ms per write"),
    ("cpu_qemu_s", "CPU s per round: the guest's QEMU"),
    ("cpu_mallee_s", "CPU s per round: mallee up (controller, node agent and its NBD relay, storage host agent)"),
    ("cpu_qsd_s", "CPU s per round: qemu-storage-daemon"),
]


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for cloud in ("local", "nbd"):
        p.add_argument(f"--{cloud}-endpoint", required=True)
        p.add_argument(f"--{cloud}-creds", required=True)
        p.add_argument(f"--{cloud}-data-dir", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--mallee", default="?")
    p.add_argument("--accel", default="?")
    p.add_argument("--accel-reason", default="")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--io-mib", type=int, default=64)
    p.add_argument("--rand-writes", type=int, default=300, help=f"rounded down to a multiple of {CHUNK}")
    p.add_argument("--fill-mib", type=int, default=256)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--instance-type", default="m1.medium")
    p.add_argument("--boot-timeout", type=float, default=900)
    p.add_argument("--round-timeout", type=float, default=900)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    def make(name: str, volumes_sub: str, fill_mib: int) -> Cloud:
        a = vars(args)
        bench = Bench(argparse.Namespace(endpoint=a[f"{name}_endpoint"], creds=a[f"{name}_creds"],
                                         images=args.images, instance_type=args.instance_type))
        data = Path(a[f"{name}_data_dir"])
        return Cloud(name, bench, data, data / volumes_sub, fill_mib)

    local = make("local", "node/volumes", 0)
    nbd = make("nbd", "storage/volumes", args.fill_mib)
    clouds = [local, nbd]
    ours = [c.data for c in clouds]
    rand_writes = max(1, args.rand_writes // CHUNK) * CHUNK
    load_before = loadavg()
    others_before = other_qemu(ours)
    started = time.monotonic()

    for c in clouds:
        image = c.bench.register()
        c.volumes = [c.create_volume(Size=1) for _ in range(args.rounds + (1 if c.fill_mib else 0))]
        script = guest_script(args.rounds, args.io_mib, args.rand_writes, c.fill_mib)
        c.instance = c.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=args.instance_type,
                                         UserData=script)["Instances"][0]["InstanceId"]
        log(f"{c.name}: instance {c.instance}, volumes {' '.join(c.volumes)}")
    created: list[str] = []
    rounds: list[dict] = []
    try:
        for c in clouds:
            wait(lambda c=c: all(s == "available" for s in volume_states(c.ec2, c.volumes).values()), 120,
                 f"{c.name} volumes")
        for c in clouds:
            c.wait_console("BENCH ready", args.boot_timeout)
        log(f"both guests ready after {time.monotonic() - started:.0f} s")

        for r in range(1, args.rounds + 1):
            order = clouds if r % 2 else clouds[::-1]
            for c in order:
                load = loadavg()
                log(f"round {r}: {c.name} (load average {load})")
                t0 = time.monotonic()
                cpu0 = cpu_by_process(c.data)
                c.attach_next(c.volumes[r - 1])
                out = c.wait_console(f"BENCH {r} done", args.round_timeout)
                cpu = cpu_delta(cpu0, cpu_by_process(c.data))
                res = round_result(out, r, args.io_mib, rand_writes)
                res.update({f"cpu_{k}_s": v for k, v in cpu.items()})
                rounds.append({"round": r, "cloud": c.name, "load_average": load,
                               "wall_s": round(time.monotonic() - t0, 1), **res})
                log(f"round {r} {c.name}: " + ", ".join(f"{k} {fmt(res[k])}" for k, _ in METRICS))

        log(f"nbd: filling {args.fill_mib} MiB of {nbd.volumes[-1]} for the snapshot")
        nbd.attach_next(nbd.volumes[-1])
        nbd.wait_console("BENCH filled", args.round_timeout)
        objects_before = dir_bytes(nbd.data / "objects")
        t0 = time.monotonic()
        sid = nbd.ec2.create_snapshot(VolumeId=nbd.volumes[-1], Description="bench")["SnapshotId"]
        wait(lambda: nbd.ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed", 1800,
             "snapshot", poll=0.1)
        snapshot_s = time.monotonic() - t0
        snapshot_bytes = dir_bytes(nbd.data / "objects") - objects_before

        volumes_before = dir_bytes(nbd.volumes_dir)
        t0 = time.monotonic()
        for _ in range(args.count):
            created.append(nbd.ec2.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)["VolumeId"])
        calls_s = time.monotonic() - t0

        def all_available():
            states = volume_states(nbd.ec2, created)
            if any(s == "error" for s in states.values()):
                raise SystemExit(f"a volume failed: {states}")
            return all(s == "available" for s in states.values())

        wait(all_available, 3600, f"{args.count} volumes", poll=0.1)
        volumes_s = time.monotonic() - t0
        volumes_bytes = dir_bytes(nbd.volumes_dir) - volumes_before
        bases_bytes = dir_bytes(nbd.volumes_dir / ".bases") if (nbd.volumes_dir / ".bases").is_dir() else 0
    finally:
        for c in clouds:
            if c.instance:
                c.ec2.terminate_instances(InstanceIds=[c.instance])

    summary: dict = {}
    for c in clouds:
        mine = [x for x in rounds if x["cloud"] == c.name]
        summary[c.name] = {k: median([x[k] for x in mine]) for k, _ in METRICS}
    summary["nbd_over_local"] = {
        k: (summary["nbd"][k] / summary["local"][k] if summary["nbd"][k] and summary["local"][k] else None)
        for k, _ in METRICS
    }
    fraction = volumes_bytes / (args.count * snapshot_bytes) if snapshot_bytes > 0 else None
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mallee": args.mallee,
        "accel": {"mode": args.accel, "reason": args.accel_reason},
        "host": host_info(),
        "config": {"rounds": args.rounds, "io_mib": args.io_mib, "rand_writes": rand_writes, "chunk": CHUNK,
                   "fill_mib": args.fill_mib, "count": args.count, "instance_type": args.instance_type},
        "rounds": rounds,
        "summary_median": summary,
        "snapshot": {"seconds": round(snapshot_s, 2), "stored_bytes": snapshot_bytes},
        "volumes_from_snapshot": {"count": args.count, "calls_seconds": round(calls_s, 2),
                                  "all_available_seconds": round(volumes_s, 2), "disk_bytes": volumes_bytes,
                                  "bases_bytes_after": bases_bytes,
                                  "fraction_of_count_x_snapshot": fraction},
        "load_average": {"before": load_before, "after": loadavg()},
        "other_qemu_processes": {"before": others_before, "after": other_qemu(ours)},
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))

    fields = {"io": args.io_mib, "n": rand_writes}
    print(f"| in a guest, on a fresh 1 GiB volume (median of {args.rounds} rounds; the runs) "
          "| local qcow2 file | NBD from the storage host | NBD ÷ local |")
    print("|---|---:|---:|---:|")
    for key, label in METRICS:
        runs = {c.name: ", ".join(fmt(x[key]) for x in rounds if x["cloud"] == c.name) for c in clouds}
        print(f"| {label.format(**fields)} | {fmt(summary['local'][key])} ({runs['local']}) "
              f"| {fmt(summary['nbd'][key])} ({runs['nbd']}) | {fmt(summary['nbd_over_local'][key])} |")
    print()
    print("| storage-host cloud | value |")
    print("|---|---|")
    print(f"| CreateSnapshot → completed (1 GiB volume, {args.fill_mib} MiB of random data) | {snapshot_s:.2f} s |")
    print(f"| snapshot data in the object store | {snapshot_bytes / MIB:.1f} MiB |")
    print(f"| {args.count} × CreateVolume from it: calls | {calls_s:.2f} s |")
    print(f"| {args.count} volumes all available | {volumes_s:.2f} s |")
    print(f"| storage host's volume directory growth (.bases included) | {volumes_bytes / MIB:.1f} MiB "
          f"(of which .bases {bases_bytes / MIB:.1f} MiB) |")
    if fraction is not None:
        print(f"| growth ÷ ({args.count} × snapshot size) | {fraction * 100:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
