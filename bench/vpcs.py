"""Describe calls at scale, driven by bench/run-vpcs.sh: 2,000 instances in
50 VPCs, in mallee (a controller with one simulated node agent: real
control plane, no QEMU) and in moto_server, side by side in one run.

1. Starts `mallee controller`, a token, `mallee node join --simulate` (one
   node big enough for every instance), and moto_server.
2. Seeds both the same way through boto3: per VPC (10.N.0.0/16) a subnet,
   a security group with one ingress rule, and one RunInstances of 40
   t1.micro into the subnet with the group; mallee's instances are waited
   for until `running`.
3. For each case and concurrency, bench/'s ec2-load sends the same signed
   request to mallee, then to moto (the response is checked for the count
   it must hold), and a markdown table of req/s and latency percentiles is
   printed. Every run is kept as JSON.

With `--baseline BIN` a second mallee (another build, e.g. of main) is the
peer instead of moto: started, seeded and loaded the same way, to measure a
change side by side. `--vpcs` and `--per-vpc` set the scale (default 50 ×
40 = 2,000 instances).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import requests
from botocore.config import Config

REGION_MOTO = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            sys.exit(f"{what} exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    sys.exit(f"{what} not ready after 60 s:\n{log.read_text()[-3000:]}")


def client(endpoint: str, key: str, secret: str, region: str):
    return boto3.client("ec2", endpoint_url=endpoint, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 3}))


def seed(ec2, image: str, vpcs_n: int, per_vpc: int) -> tuple[list[str], list[str]]:
    """The VPCs with their instances; returns the VPC and subnet ids."""
    vpcs, subnets = [], []
    for n in range(vpcs_n):
        vpc = ec2.create_vpc(CidrBlock=f"10.{n}.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{n}.0.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName=f"web-{n}", Description="bench", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        # Every 40 instances, one reservation (AWS-like batches), each
        # tagged with its VPC's number.
        left = per_vpc
        while left > 0:
            count = min(left, 40)
            ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count, InstanceType="t1.micro",
                              SubnetId=subnet, SecurityGroupIds=[group],
                              TagSpecifications=[{"ResourceType": "instance",
                                                  "Tags": [{"Key": "fleet", "Value": f"f{n}"}]}])
            left -= count
        vpcs.append(vpc)
        subnets.append(subnet)
    return vpcs, subnets


def count_running(ec2) -> int:
    n = 0
    for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["running"]}]):
        n += sum(len(r["Instances"]) for r in page["Reservations"])
    return n


def mallee_image(endpoint: str, creds: dict) -> str:
    """A registered machine image (a small raw disk: simulated VMs never
    read it)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=creds["region"],
                      aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"])
    s3.create_bucket(Bucket="bench-images")
    s3.put_object(Bucket="bench-images", Key="disk.img", Body=b"\0" * (1 << 20))
    ec2 = client(endpoint, creds["access_key_id"], creds["secret_access_key"], creds["region"])
    return ec2.register_image(Name="bench", ImageLocation="bench-images/disk.img")["ImageId"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mallee", required=True)
    p.add_argument("--mallee-desc", default="")
    p.add_argument("--load", required=True)
    p.add_argument("--moto-server", required=True)
    p.add_argument("--moto-version", default="")
    p.add_argument("--concurrency", default="1 16")
    p.add_argument("--duration", default="10")
    p.add_argument("--warmup", default="2")
    p.add_argument("--out", required=True)
    p.add_argument("--baseline", help="another mallee build to compare with, instead of moto")
    p.add_argument("--baseline-desc", default="")
    p.add_argument("--vpcs", type=int, default=50)
    p.add_argument("--per-vpc", type=int, default=40)
    a = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mallee-vpcs-bench."))
    procs: list[subprocess.Popen] = []

    def spawn(args, log: Path) -> subprocess.Popen:
        proc = subprocess.Popen([str(x) for x in args], stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        return proc

    def start_mallee(binary: str, name: str, total: int) -> tuple[str, dict, subprocess.Popen]:
        """A controller with one simulated node big enough for `total`
        instances; its endpoint, admin credentials and process."""
        port, node_port = free_port(), free_port()
        data = work / name
        log = work / f"{name}.log"
        controller = spawn([binary, "controller", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                            "--node-listen", f"127.0.0.1:{node_port}",
                            "--max-instances-per-account", str(total)], log)
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(f"{endpoint}/_mallee/health", controller, f"{name} controller", log)
        creds = json.loads((data / "credentials" / "admin.json").read_text())
        creds.setdefault("region", "mallee-1")
        token = subprocess.run([binary, "admin", "node", "token", "create", "--zone", f"{creds['region']}a",
                                "--data-dir", data], capture_output=True, text=True, check=True).stdout.strip()
        node_log = work / f"{name}-node.log"
        spawn([binary, "node", "join", f"https://127.0.0.1:{node_port}", "--simulate", "--token", token,
               "--data-dir", work / f"{name}-node", "--listen", f"127.0.0.1:{free_port()}",
               "--node-cores", str(max(4000, 2 * total)), "--node-memory-mib", str(max(2000000, 1024 * total)),
               "--node-disk-gib", str(max(100000, 50 * total))], node_log)
        deadline = time.monotonic() + 60
        while b"simulated node agent running" not in node_log.read_bytes():
            assert time.monotonic() < deadline, f"the simulated node never started:\n{node_log.read_text()}"
            time.sleep(0.2)
        time.sleep(1)  # its registration reaches the controller
        return endpoint, creds, controller

    def seed_mallee(endpoint: str, creds: dict) -> tuple[list[str], list[str], float]:
        ec2 = client(endpoint, creds["access_key_id"], creds["secret_access_key"], creds["region"])
        started = time.monotonic()
        vpcs, subnets = seed(ec2, mallee_image(endpoint, creds), a.vpcs, a.per_vpc)
        deadline = time.monotonic() + 1800
        while (running := count_running(ec2)) < a.vpcs * a.per_vpc:
            assert time.monotonic() < deadline, f"only {running} instances running after 1800 s"
            time.sleep(2)
        return vpcs, subnets, time.monotonic() - started

    try:
        total = a.vpcs * a.per_vpc
        endpoint, creds, controller = start_mallee(a.mallee, "controller", total)
        mallee_vpcs, mallee_subnets, mallee_seed_s = seed_mallee(endpoint, creds)
        if a.baseline:
            peer = "baseline"
            peer_endpoint, peer_creds, _ = start_mallee(a.baseline, "baseline", total)
            moto_vpcs, moto_subnets, moto_seed_s = seed_mallee(peer_endpoint, peer_creds)
            peer_target = ["--endpoint", f"{peer_endpoint}/", "--access-key", peer_creds["access_key_id"],
                           "--secret-key", peer_creds["secret_access_key"], "--region", peer_creds["region"]]
        else:
            peer = "moto"
            moto_port = free_port()
            moto_endpoint = f"http://127.0.0.1:{moto_port}"
            moto = spawn([a.moto_server, "-H", "127.0.0.1", "-p", str(moto_port)], work / "moto.log")
            wait_http(f"{moto_endpoint}/moto-api/", moto, "moto_server", work / "moto.log")
            moto_ec2 = client(moto_endpoint, "bench", "bench", REGION_MOTO)
            moto_image = moto_ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            started = time.monotonic()
            moto_vpcs, moto_subnets = seed(moto_ec2, moto_image, a.vpcs, a.per_vpc)
            moto_seed_s = time.monotonic() - started
            peer_target = ["--endpoint", f"{moto_endpoint}/", "--access-key", "bench", "--secret-key", "bench",
                           "--region", REGION_MOTO]
        print(f"seeded: mallee {mallee_seed_s:.0f} s (to running), {peer} {moto_seed_s:.0f} s", file=sys.stderr)

        targets = {
            "mallee": ["--endpoint", f"{endpoint}/", "--access-key", creds["access_key_id"],
                       "--secret-key", creds["secret_access_key"], "--region", creds["region"]],
            peer: peer_target,
        }
        per = a.per_vpc
        page = min(100, total)
        # name, action, params per server, expected string and count
        cases = [
            ("DescribeInstances, all 2,000", "DescribeInstances", {}, f"<instanceId>={total}"),
            (f"DescribeInstances vpc-id=one VPC ({per})", "DescribeInstances",
             {"mallee": [f"Filter.1.Name=vpc-id", f"Filter.1.Value.1={mallee_vpcs[17]}"],
              peer: [f"Filter.1.Name=vpc-id", f"Filter.1.Value.1={moto_vpcs[17]}"]}, f"<instanceId>={per}"),
            (f"DescribeInstances subnet-id + state=running ({per})", "DescribeInstances",
             {server: [f"Filter.1.Name=subnet-id", f"Filter.1.Value.1={subnets[23]}",
                       "Filter.2.Name=instance-state-name", "Filter.2.Value.1=running"]
              for server, subnets in (("mallee", mallee_subnets), (peer, moto_subnets))}, f"<instanceId>={per}"),
            (f"DescribeInstances tag:fleet=f31 ({per})", "DescribeInstances",
             {server: ["Filter.1.Name=tag:fleet", "Filter.1.Value.1=f31"] for server in ("mallee", peer)},
             f"<instanceId>={per}"),
            (f"DescribeInstances MaxResults={page} (first page)", "DescribeInstances",
             {server: [f"MaxResults={page}"] for server in ("mallee", peer)}, f"<instanceId>={page}"),
            ("DescribeNetworkInterfaces, all 2,000", "DescribeNetworkInterfaces", {},
             f"<networkInterfaceId>={total}"),
            ("DescribeSecurityGroups, all", "DescribeSecurityGroups", {}, None),
        ]
        results = []
        for name, action, params, expect in cases:
            for c in a.concurrency.split():
                for server in ("mallee", peer):
                    cmd = [a.load, "run", *targets[server], "--action", action, "--concurrency", c,
                           "--duration", a.duration, "--warmup", a.warmup, "--label", server, "--json"]
                    for param in params.get(server, []):
                        cmd += ["--param", param]
                    if expect:
                        cmd += ["--expect-count", expect]
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    if out.returncode != 0:
                        sys.exit(f"{server} {name} c={c} failed:\n{out.stdout}{out.stderr}")
                    lines = out.stdout.strip().splitlines()
                    print(lines[0], file=sys.stderr)
                    results.append({**json.loads(lines[-1]), "case": name, "server": server,
                                    "concurrency": int(c)})
        rss = Path(f"/proc/{controller.pid}/status").read_text()
        peak = next(int(l.split()[1]) // 1024 for l in rss.splitlines() if l.startswith("VmHWM"))
        record = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "mallee": a.mallee_desc, "peer": peer,
            "peer_desc": a.baseline_desc if a.baseline else f"moto_server {a.moto_version}",
            "cores": os.cpu_count(),
            "instances": total, "vpcs": a.vpcs, "seed_s": {"mallee": mallee_seed_s, peer: moto_seed_s},
            "controller_peak_rss_mib": peak, "load_average": os.getloadavg(), "results": results,
        }
        Path(a.out).write_text(json.dumps(record, indent=1))
        print(table(record))
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(work)])


def table(record: dict) -> str:
    peer = record["peer"]
    rows = [f"{record['instances']:,} instances in {record['vpcs']} VPCs; mallee {record['mallee']} "
            f"(controller peak RSS {record['controller_peak_rss_mib']} MiB), {peer}: {record['peer_desc']}; "
            f"{record['cores']} cores, load average after {record['load_average'][0]:.1f}",
            "",
            f"| case | c | mallee req/s | {peer} req/s | mallee/{peer} | mallee p50/p99 ms | {peer} p50/p99 ms |",
            "|---|---:|---:|---:|---:|---|---|"]
    by = {(r["case"], r["concurrency"], r["server"]): r for r in record["results"]}
    for case, c in dict.fromkeys((r["case"], r["concurrency"]) for r in record["results"]):
        m, o = by[(case, c, "mallee")], by[(case, c, peer)]
        rows.append(f"| {case} | {c} | {m['rps']:.1f} | {o['rps']:.1f} | {m['rps'] / o['rps']:.1f}x | "
                    f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} | {o['p50_ms']:.1f} / {o['p99_ms']:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
