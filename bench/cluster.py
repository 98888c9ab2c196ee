"""Cluster benchmark driver for bench/run-cluster.sh: a `mallee controller`
and three node hosts (`mallee node join`, real QEMU guests) in the
acceptance tests' datacenter of network namespaces
(tests/acceptance/labutil.py), measured with boto3.

Case 1, launches: LAUNCHES RunInstances calls (MinCount=MaxCount=1) sent at
once from as many threads; the time from the first send until
DescribeInstances says `running` for every one of them (polled every
100 ms), then all are terminated and gone before the next round. Once with
the zone's three nodes, once with one node (the other two disabled with
`mallee admin node disable`), alternated ROUNDS times so both see the same
machine.

Case 2, TCP between instances of one VPC: a server instance (busybox
httpd serving SIZE_MIB MiB from tmpfs) and two fetchers, one on the
server's node and one on another node (placement steered with
disable/enable). Each fetcher downloads the file with busybox wget
REPEATS times, one fetcher after the other, timing each download by
/proc/uptime and printing it on its console. The ratio cross-node / same-node is the price of VXLAN
(encapsulation and the datacenter bridge) under the guests' own cost.

Prints a markdown table and writes the raw numbers as JSON. Any failed
launch fails the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "acceptance"))

from computeutil import register_guest, user_data  # noqa: E402
from labutil import Datacenter  # noqa: E402

RATE = re.compile(r"BENCH-TCP run=(\d+) rc=0 bytes=(\d+) start=([0-9.]+) end=([0-9.]+)")


def log(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


def admin_node(lab: Datacenter, *args: str) -> None:
    lab.admin("node", *args)


def only_nodes(lab: Datacenter, keep: set[int]) -> None:
    """Placements only on the nodes whose index is in `keep`."""
    for node in lab.nodes:
        admin_node(lab, "enable" if node.index in keep else "disable", node.node_id)


def states(groups) -> dict[str, str]:
    """State of each instance; `groups` pairs a client with its account's
    instance ids."""
    out = {}
    for ec2, ids in groups:
        if not ids:
            continue
        for r in ec2.describe_instances(InstanceIds=list(ids))["Reservations"]:
            for i in r["Instances"]:
                out[i["InstanceId"]] = i["State"]["Name"]
    return out


def wait_states(groups, want: str, timeout: float, poll: float = 0.1) -> float:
    start = time.monotonic()
    count = sum(len(ids) for _, ids in groups)
    while True:
        seen = states(groups)
        if len(seen) == count and all(s == want for s in seen.values()):
            return time.monotonic() - start
        bad = {i: s for i, s in seen.items() if s in ("terminated", "shutting-down") and want == "running"}
        if bad:
            raise SystemExit(f"launch failed: {bad}")
        if time.monotonic() - start > timeout:
            raise SystemExit(f"not all {want} after {timeout}s: {seen}")
        time.sleep(poll)


def burst(lab: Datacenter, launchers: list[tuple[dict, str]], count: int, timeout: float) -> dict:
    """`count` RunInstances at once, shared out over `launchers` (credentials
    and image id: an account may run 20 instances); seconds until all are
    running."""
    clients = [lab.client("ec2", creds=creds, read_timeout=300) for creds, _ in launchers]
    ids: list[list[str]] = [[] for _ in launchers]
    errors: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(count + 1)

    def one(n: int) -> None:
        k = n % len(launchers)
        creds, image = launchers[k]
        client = lab.client("ec2", creds=creds, read_timeout=300)
        go.wait()
        try:
            out = client.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro")
            with lock:
                ids[k].append(out["Instances"][0]["InstanceId"])
        except Exception as e:  # reported, and fails the run
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    answered = time.monotonic() - t0
    if errors:
        raise SystemExit(f"{len(errors)} launches failed: {errors[:3]}")
    groups = list(zip(clients, ids))
    running = wait_states(groups, "running", timeout) + answered
    placed = lab.placement([i for group in ids for i in group])
    for ec2, group in groups:
        ec2.terminate_instances(InstanceIds=group)
    wait_states(groups, "terminated", timeout)
    return {
        "all_answered_s": answered,
        "all_running_s": running,
        "per_node": {str(n): list(placed.values()).count(n) for n in sorted(set(placed.values()), key=str)},
    }


def console(ec2, iid: str) -> str:
    return ec2.get_console_output(InstanceId=iid).get("Output", "") or ""


def tcp_case(lab: Datacenter, image: str, size_mib: int, repeats: int, timeout: float) -> dict:
    ec2 = lab.client("ec2")
    # busybox's nc stops after its first read of a file or pipe, so the
    # bytes travel as an HTTP download: busybox httpd serves SIZE_MIB MiB
    # from tmpfs, the sender fetches it with wget to /dev/null and times it
    # by /proc/uptime.
    server_script = user_data(
        f"""
mkdir -p /srv && mount -t tmpfs -o size={size_mib + 16}m tmpfs /srv
dd if=/dev/zero of=/srv/blob bs=1048576 count={size_mib} 2>/dev/null
echo ok > /srv/ping
busybox httpd -p 8080 -h /srv
echo BENCH-SERVING
"""
    )
    only_nodes(lab, {1})
    (server,) = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro", UserData=server_script
    )["Instances"]
    target = server["PrivateIpAddress"]
    fetch_script = user_data(
        f"""
until wget -q -O /dev/null http://{target}:8080/ping; do sleep 1; done
i=0
while [ $i -lt {repeats} ]; do
  i=$((i+1))
  t0=$(cut -d' ' -f1 /proc/uptime)
  wget -q -O /dev/null http://{target}:8080/blob
  rc=$?
  t1=$(cut -d' ' -f1 /proc/uptime)
  echo "BENCH-TCP run=$i rc=$rc bytes={size_mib * 1048576} start=$t0 end=$t1"
  sleep 1
done
echo BENCH-TCP-DONE
"""
    )
    result = {"server": server["InstanceId"], "size_mib": size_mib}
    launched = [server["InstanceId"]]
    try:
        wait_states([(ec2, [server["InstanceId"]])], "running", timeout)
        for case, nodes in (("same_node", {1}), ("cross_node", {2})):
            only_nodes(lab, nodes)
            (fetcher,) = ec2.run_instances(
                ImageId=image, MinCount=1, MaxCount=1, InstanceType="t1.micro", UserData=fetch_script
            )["Instances"]
            launched.append(fetcher["InstanceId"])
            start = time.monotonic()
            while "BENCH-TCP-DONE" not in (out := console(ec2, fetcher["InstanceId"])):
                if time.monotonic() - start > timeout:
                    raise SystemExit(f"{case}: no result after {timeout}s:\n{out[-2000:]}")
                time.sleep(2)
            runs = [(int(b), float(t1) - float(t0)) for _, b, t0, t1 in RATE.findall(out)]
            if len(runs) != repeats:
                raise SystemExit(f"{case}: {len(runs)} of {repeats} transfers succeeded:\n{out[-2000:]}")
            rates = [b * 8 / max(seconds, 0.01) / 1e6 for b, seconds in runs]
            where = lab.placement([server["InstanceId"], fetcher["InstanceId"]])
            result[case] = {"mbit_s": rates, "median_mbit_s": statistics.median(rates), "nodes": where}
            log(f"{case}: {[round(r) for r in rates]} Mbit/s, nodes {where}")
            ec2.terminate_instances(InstanceIds=[fetcher["InstanceId"]])
    finally:
        only_nodes(lab, {1, 2, 3})
        ec2.terminate_instances(InstanceIds=launched)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--launches", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mallee", default=os.environ.get("MALLEE_BIN", ""))
    args = ap.parse_args()

    started = time.monotonic()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="mallee-bench-cluster-"))
    lab = Datacenter(root, nodes=3)
    results: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "mallee": args.mallee}
    try:
        lab.start_controller(node_timeout=60)
        for node in lab.nodes:
            node.join(lab.token(), cores=args.launches * 2)
        for node in lab.nodes:
            node.wait_registered()
        image = register_guest(lab)["pv"]
        other = lab.create_account()
        launchers = [(lab.admin_credentials, image), (other, register_guest(lab, creds=other)["pv"])]
        log("warm-up: one launch per node (image caches)")
        only_nodes(lab, {1, 2, 3})
        burst(lab, launchers, 6, args.timeout)
        rounds = []
        for r in range(args.rounds):
            for case, keep in (("three_nodes", {1, 2, 3}), ("one_node", {1})):
                only_nodes(lab, keep)
                got = burst(lab, launchers, args.launches, args.timeout)
                log(f"round {r + 1} {case}: all running after {got['all_running_s']:.1f}s {got['per_node']}")
                rounds.append({"round": r + 1, "case": case, **got})
        only_nodes(lab, {1, 2, 3})
        results["launches"] = {"count": args.launches, "rounds": rounds}
        results["tcp"] = tcp_case(lab, image, args.size_mib, args.repeats, args.timeout)
    finally:
        lab.close()
    results["elapsed_s"] = time.monotonic() - started
    results["load_average"] = {"before": load_before, "after": os.getloadavg()}
    results["host"] = {"cores": os.cpu_count()}
    args.out.write_text(json.dumps(results, indent=2))

    def median(case: str) -> float:
        return statistics.median(r["all_running_s"] for r in results["launches"]["rounds"] if r["case"] == case)

    three, one = median("three_nodes"), median("one_node")
    tcp = results["tcp"]
    print(f"Cluster, {results['date']}; mallee {args.mallee}; {os.cpu_count()} cores; "
          f"load average before {load_before}, after {results['load_average']['after']}; "
          f"{results['elapsed_s']:.0f} s\n")
    print("| case | 3 nodes | 1 node | 3 / 1 |")
    print("|---|---:|---:|---:|")
    print(f"| {args.launches} launches to running, s (median of {args.rounds}) | {three:.1f} | {one:.1f} | {three / one:.2f} |")
    print()
    print("| case | cross-node | same node | cross / same |")
    print("|---|---:|---:|---:|")
    cross, same = tcp["cross_node"]["median_mbit_s"], tcp["same_node"]["median_mbit_s"]
    print(f"| TCP, {tcp['size_mib']} MiB x {args.repeats}, Mbit/s (median) | {cross:.0f} | {same:.0f} | {cross / same:.2f} |")


if __name__ == "__main__":
    main()
