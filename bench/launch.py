"""Launch-latency driver for bench/run-launch.sh (boto3, against a running
`mallee up`).

Registers the test guest (kernel, ramdisk, paravirtual machine image) through
S3 and RegisterImage, then measures, from the moment each RunInstances is
sent:

- "process up": a qemu-system process whose `-name` is the instance id shows
  up in /proc. A separate watcher process scans /proc every 10 ms and
  reports each new QEMU process with the time it first saw it;
- "API running": DescribeInstances first says `running` (polled every 50 ms
  for one instance, every 100 ms for a batch);
- "guest booted": GetConsoleOutput first contains `MALLEE-GUEST: booted`
  (guest user space on its root disk), polled every 250 ms;
- "user-data ran": GetConsoleOutput first contains the marker the
  instance's `#!/bin/sh` user-data echoes.

Cases: one cold launch (empty image cache; reported alone), N launches one
at a time (each terminated, and gone, before the next), and one batch of B
RunInstances calls sent at once from B threads (MinCount=MaxCount=1 each).
Prints a markdown table and writes everything (raw samples included) as
JSON. Any failed launch fails the run.

Run by bench/run-launch.sh; by hand:

    .venv/bin/python bench/launch.py --endpoint http://127.0.0.1:PORT \
        --creds DATA/credentials/admin.json --images target/guest-images \
        --accel tcg --out /tmp/launch.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

REGION_DEFAULT = "mallee-1"
BOOTED = "MALLEE-GUEST: booted"
BOOTED_UPTIME = re.compile(r"MALLEE-GUEST: booted .*uptime=([0-9.]+)")
PROC_POLL_S = 0.010
DESCRIBE_POLL_SINGLE_S = 0.050
DESCRIBE_POLL_BATCH_S = 0.100
CONSOLE_POLL_S = 0.250


def log(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------ /proc watcher


def qemu_name(pid: str) -> str | None:
    """The instance id in the `-name guest=ID,...` of a qemu-system process,
    or None (not QEMU, not named, or gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return None
    if not args or b"qemu-system" not in args[0]:
        return None
    for i, a in enumerate(args[:-1]):
        if a == b"-name":
            return args[i + 1].decode(errors="replace").split(",")[0].removeprefix("guest=")
    return None


def watch_proc(out, stop, interval: float) -> None:
    """Runs in its own process: every `interval` s, finds new QEMU processes
    in /proc and sends (instance id, time.monotonic() when first seen, pid).

    Processes present at start are never reported. A new process is re-read
    on every scan while it is young (a launcher such as `ip netns exec`
    becomes QEMU by exec, keeping its pid) and settled after 2 s."""
    settled: set[str] = set()
    reported: set[str] = set()
    young: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            settled.add(pid)
            name = qemu_name(pid)
            if name:
                reported.add(name)
    out.send(("ready", time.monotonic(), 0))
    while not stop.is_set():
        started = time.monotonic()
        pids = {p for p in os.listdir("/proc") if p.isdigit()}
        for pid in pids - settled:
            name = qemu_name(pid)
            now = time.monotonic()
            if name:
                settled.add(pid)
                young.pop(pid, None)
                if name not in reported:
                    reported.add(name)
                    out.send((name, now, int(pid)))
            elif now - young.setdefault(pid, now) > 2.0:
                settled.add(pid)
                young.pop(pid, None)
        settled &= pids
        for pid in [p for p in young if p not in pids]:
            del young[pid]
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    out.close()


class ProcWatcher:
    """First-seen times of QEMU processes by instance id (monotonic clock,
    which is the same across processes)."""

    def __init__(self, interval: float = PROC_POLL_S):
        ctx = mp.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=watch_proc, args=(send, self._stop, interval), daemon=True)
        self._proc.start()
        send.close()
        kind, _, _ = self._recv.recv()
        assert kind == "ready"
        self.seen: dict[str, tuple[float, int]] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                name, t, pid = self._recv.recv()
            except (EOFError, OSError):
                return
            with self._cond:
                self.seen[name] = (t, pid)
                self._cond.notify_all()

    def wait(self, iid: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while iid not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no QEMU process named {iid} seen in /proc after {timeout} s")
                self._cond.wait(left)
            return self.seen[iid][0]

    def close(self) -> None:
        self._stop.set()
        self._proc.join(5)


# ------------------------------------------------------------ helpers


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "min_ms": round(min(values) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(sum(values) / len(values) * 1000, 1),
    }


class Bench:
    def __init__(self, args):
        self.args = args
        creds = json.loads(Path(args.creds).read_text())
        self.region = creds.get("region") or REGION_DEFAULT
        self.creds = creds
        self.ec2 = self.client("ec2")
        self.user_data_marker = f"BENCH-USERDATA-{uuid.uuid4().hex[:8]}"
        self.launched: set[str] = set()

    def client(self, service: str):
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.args.endpoint,
            aws_access_key_id=self.creds["access_key_id"],
            aws_secret_access_key=self.creds["secret_access_key"],
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=120,
                          max_pool_connections=32),
        )

    # -- images
    def register(self) -> str:
        images = Path(self.args.images)
        s3 = self.client("s3")
        bucket = f"launch-bench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        for name in ("vmlinuz", "initrd.img", "root.img"):
            s3.upload_file(str(images / name), bucket, name)
        tag = uuid.uuid4().hex[:6]
        kernel = self.ec2.register_image(Name=f"bench-kernel-{tag}", ImageLocation=f"{bucket}/vmlinuz")["ImageId"]
        ramdisk = self.ec2.register_image(Name=f"bench-ramdisk-{tag}", ImageLocation=f"{bucket}/initrd.img")["ImageId"]
        machine = self.ec2.register_image(
            Name=f"bench-guest-{tag}",
            ImageLocation=f"{bucket}/root.img",
            KernelId=kernel,
            RamdiskId=ramdisk,
            Architecture="x86_64",
        )["ImageId"]
        log(f"registered {kernel} (kernel), {ramdisk} (ramdisk), {machine} (paravirtual machine image) from s3://{bucket}")
        return machine

    # -- one instance
    def run_one(self, ec2, image: str) -> tuple[str, float, float]:
        """Sends RunInstances; returns (instance id, t sent, t answered)."""
        script = f'#!/bin/sh\necho "{self.user_data_marker} $(cat /proc/uptime)"\n'
        t0 = time.monotonic()
        resp = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType=self.args.instance_type, UserData=script
        )
        t1 = time.monotonic()
        (inst,) = resp["Instances"]
        self.launched.add(inst["InstanceId"])
        return inst["InstanceId"], t0, t1

    def states(self, ec2, ids) -> dict[str, dict]:
        out = {}
        for r in ec2.describe_instances(InstanceIds=list(ids))["Reservations"]:
            for i in r["Instances"]:
                out[i["InstanceId"]] = i
        return out

    def wait_running(self, ec2, ids, interval: float, deadline: float) -> dict[str, float]:
        """Polls DescribeInstances; returns each instance's first time seen
        running (time the answer arrived). Fails if one ends."""
        ids = list(ids)
        when: dict[str, float] = {}
        while len(when) < len(ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not running in time: {sorted(set(ids) - set(when))}")
            pending = [i for i in ids if i not in when]
            insts = self.states(ec2, pending)
            now = time.monotonic()
            for iid, d in insts.items():
                state = d["State"]["Name"]
                if state == "running":
                    when[iid] = now
                elif state not in ("pending",):
                    raise RuntimeError(f"{iid} went {state} instead of running: {d.get('StateReason')}")
            if len(when) < len(ids):
                time.sleep(interval)
        return when

    def console(self, ec2, iid: str) -> str:
        return ec2.get_console_output(InstanceId=iid).get("Output", "") or ""

    def wait_console(self, ec2, ids, deadline: float, interval: float) -> dict[str, dict]:
        """Polls GetConsoleOutput of each instance until it shows the boot
        marker and the user-data marker; returns their first-seen times and
        the guest's own uptime at `booted`."""
        out: dict[str, dict] = {i: {} for i in ids}
        while any("user_data" not in v for v in out.values()):
            if time.monotonic() > deadline:
                missing = [i for i, v in out.items() if "user_data" not in v]
                tail = self.console(ec2, missing[0])[-2000:]
                raise RuntimeError(f"console of {missing} lacks the markers in time; {missing[0]}:\n{tail}")
            for iid, v in out.items():
                if "user_data" in v:
                    continue
                text = self.console(ec2, iid)
                now = time.monotonic()
                if "booted" not in v and BOOTED in text:
                    v["booted"] = now
                    m = BOOTED_UPTIME.search(text)
                    v["guest_uptime_at_booted_s"] = float(m.group(1)) if m else None
                if self.user_data_marker in text:
                    v.setdefault("booted", now)
                    v["user_data"] = now
            time.sleep(interval)
        return out

    def terminate(self, ec2, ids, timeout: float = 300) -> None:
        ids = list(ids)
        if not ids:
            return
        ec2.terminate_instances(InstanceIds=ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(d["State"]["Name"] == "terminated" for d in self.states(ec2, ids).values()):
                self.launched.difference_update(ids)
                return
            time.sleep(0.5)
        raise RuntimeError(f"not terminated after {timeout} s: {ids}")

    def terminate_leftovers(self) -> None:
        if self.launched:
            log(f"terminating {len(self.launched)} leftover instance(s)")
            try:
                self.terminate(self.ec2, list(self.launched), timeout=120)
            except Exception as e:  # cleanup: the caller purges anyway
                log(f"terminate failed: {e}")

    # -- cases
    def single(self, watcher: ProcWatcher, image: str, label: str) -> dict:
        ec2 = self.ec2
        iid, t0, t_api = self.run_one(ec2, image)
        deadline = t0 + self.args.boot_timeout
        t_run = self.wait_running(ec2, [iid], DESCRIBE_POLL_SINGLE_S, deadline)[iid]
        t_proc = watcher.wait(iid, max(1.0, deadline - time.monotonic()))
        con = self.wait_console(ec2, [iid], deadline, CONSOLE_POLL_S)[iid]
        sample = {
            "instance_id": iid,
            "run_instances_s": t_api - t0,
            "process_up_s": t_proc - t0,
            "api_running_s": t_run - t0,
            "guest_booted_s": con["booted"] - t0,
            "user_data_s": con["user_data"] - t0,
            "guest_uptime_at_booted_s": con.get("guest_uptime_at_booted_s"),
        }
        log(
            f"{label} {iid}: RunInstances {sample['run_instances_s'] * 1000:.0f} ms, "
            f"process up {sample['process_up_s'] * 1000:.0f} ms, running {sample['api_running_s'] * 1000:.0f} ms, "
            f"booted {sample['guest_booted_s']:.2f} s, user-data {sample['user_data_s']:.2f} s"
        )
        self.terminate(ec2, [iid])
        return sample

    def batch(self, watcher: ProcWatcher, image: str, count: int) -> dict:
        clients = [self.client("ec2") for _ in range(count)]
        for c in clients:  # open each client's connection before the clock starts
            c.describe_availability_zones()
        barrier = threading.Barrier(count + 1)
        results: dict[int, tuple[str, float, float]] = {}
        errors: list[BaseException] = []
        lock = threading.Lock()

        def go(n: int) -> None:
            barrier.wait()
            try:
                r = self.run_one(clients[n], image)
                with lock:
                    results[n] = r
            except BaseException as e:  # reported below
                with lock:
                    errors.append(e)

        threads = [threading.Thread(target=go, args=(n,)) for n in range(count)]
        for t in threads:
            t.start()
        barrier.wait()
        t_start = time.monotonic()
        deadline = t_start + self.args.boot_timeout
        # DescribeInstances poller over the ids known so far, while the calls
        # are still coming back.
        running: dict[str, float] = {}
        while True:
            with lock:
                known = [r[0] for r in results.values()]
                failed = list(errors)
            if failed:
                for t in threads:
                    t.join()
                raise RuntimeError(f"{len(failed)} of {count} RunInstances calls failed: {failed[0]!r}")
            pending = [i for i in known if i not in running]
            if pending:
                insts = self.states(self.ec2, pending)
                now = time.monotonic()
                for iid, d in insts.items():
                    state = d["State"]["Name"]
                    if state == "running":
                        running[iid] = now
                    elif state != "pending":
                        raise RuntimeError(f"{iid} went {state} instead of running: {d.get('StateReason')}")
            if len(running) == count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"batch: {count - len(running)} instance(s) not running in time")
            time.sleep(DESCRIBE_POLL_BATCH_S)
        for t in threads:
            t.join()
        t_all_running = max(running.values())
        ids = [results[n][0] for n in range(count)]
        procs = {iid: watcher.wait(iid, max(1.0, deadline - time.monotonic())) for iid in ids}
        log(
            f"batch of {count}: all running {t_all_running - t_start:.2f} s after the calls went out; "
            f"waiting for every guest's user space"
        )
        con: dict[str, dict] = {}
        if self.args.batch_boot:
            con = self.wait_console(self.ec2, ids, deadline, 1.0)
        samples = []
        for n in range(count):
            iid, t0, t_api = results[n]
            s = {
                "instance_id": iid,
                "run_instances_s": t_api - t0,
                "process_up_s": procs[iid] - t0,
                "api_running_s": running[iid] - t0,
            }
            if iid in con:
                s["guest_booted_s"] = con[iid]["booted"] - t0
                s["user_data_s"] = con[iid]["user_data"] - t0
                s["guest_uptime_at_booted_s"] = con[iid].get("guest_uptime_at_booted_s")
            samples.append(s)
        last_up = max(procs.values()) - t_start
        log(
            f"batch of {count}: last process up {last_up:.2f} s, last running {t_all_running - t_start:.2f} s"
            + (f", last user-data {max(v['user_data'] for v in con.values()) - t_start:.1f} s" if con else "")
        )
        self.terminate(self.ec2, ids)
        return {
            "samples": samples,
            "all_process_up_s": last_up,
            "all_running_s": t_all_running - t_start,
            "all_user_data_s": (max(v["user_data"] for v in con.values()) - t_start) if con else None,
        }


# ------------------------------------------------------------ report

METRICS = [
    ("run_instances_s", "RunInstances answered"),
    ("process_up_s", "QEMU process up (/proc)"),
    ("api_running_s", "DescribeInstances: running"),
    ("guest_booted_s", "guest user space (MALLEE-GUEST: booted)"),
    ("user_data_s", "user-data ran (its marker on the console)"),
]


def summarize(samples: list[dict]) -> dict:
    return {key: stats([s[key] for s in samples if s.get(key) is not None]) for key, _ in METRICS}


def fmt_ms(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def table(result: dict) -> str:
    rows = [
        "| case | from RunInstances sent to | n | p50 ms | p99 ms | min ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for case, title in (
        ("cold", "cold: first launch, empty image cache"),
        ("single", "1 at a time"),
        ("batch", f"{result['config']['batch']} at once"),
    ):
        c = result["cases"].get(case)
        if not c:
            continue
        for key, label in METRICS:
            s = c["stats"].get(key, {"n": 0})
            if not s["n"]:
                continue
            rows.append(
                f"| {title} | {label} | {s['n']} | {fmt_ms(s['p50_ms'])} | {fmt_ms(s['p99_ms'])} | "
                f"{fmt_ms(s['min_ms'])} | {fmt_ms(s['max_ms'])} |"
            )
    return "\n".join(rows)


def host_info() -> dict:
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    try:
        qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        qemu = "?"
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": os.uname().release,
        "qemu": qemu,
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--creds", required=True, help="credentials JSON (DATA/credentials/admin.json)")
    p.add_argument("--images", required=True, help="directory with vmlinuz, initrd.img, root.img")
    p.add_argument("--accel", default="?", help="acceleration mode the server selected")
    p.add_argument("--accel-reason", default="", help="the server's reason for it")
    p.add_argument("--mallee", default="?", help="description of the mallee build (commit)")
    p.add_argument("--singles", type=int, default=10)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--batch-boot", type=int, default=1, help="1: also wait for every batch guest's user space")
    p.add_argument("--instance-type", default="t1.micro")
    p.add_argument("--boot-timeout", type=float, default=600.0, help="per launch (per batch), seconds")
    p.add_argument("--out", required=True, help="JSON result file")
    args = p.parse_args()

    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    bench = Bench(args)
    result = {
        "benchmark": "launch",
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mallee": args.mallee,
        "accel": {"mode": args.accel, "reason": args.accel_reason},
        "host": host_info(),
        "config": {
            "singles": args.singles,
            "batch": args.batch,
            "instance_type": args.instance_type,
            "proc_poll_ms": PROC_POLL_S * 1000,
            "describe_poll_ms": {"single": DESCRIBE_POLL_SINGLE_S * 1000, "batch": DESCRIBE_POLL_BATCH_S * 1000},
            "console_poll_ms": {"single": CONSOLE_POLL_S * 1000, "batch": 1000},
        },
        "cases": {},
    }
    watcher = ProcWatcher()
    try:
        image = bench.register()
        log("cold launch (the node fetches the image into its cache)")
        cold = bench.single(watcher, image, "cold")
        result["cases"]["cold"] = {"samples": [cold], "stats": summarize([cold])}
        singles = []
        for n in range(args.singles):
            singles.append(bench.single(watcher, image, f"single {n + 1}/{args.singles}"))
        result["cases"]["single"] = {"samples": singles, "stats": summarize(singles)}
        if args.batch > 0:
            log(f"batch: {args.batch} RunInstances calls at once")
            b = bench.batch(watcher, image, args.batch)
            b["stats"] = summarize(b["samples"])
            result["cases"]["batch"] = b
    finally:
        bench.terminate_leftovers()
        watcher.close()
    result["load_average"] = {"before": load_before, "after": loadavg()}
    result["elapsed_s"] = round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)
    result["table"] = table(result)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
