"""IAM authorisation cost, driven by bench/run-iam.sh against one running
`mallee up --no-node`.

1. As the account's `admin` (always allowed, no policy read), the driver
   creates an IAM user with one inline policy of 20 statements (the kind a
   CI user gets: `ec2:Describe*`, launches limited by instance type,
   lifecycle actions by tag, an explicit Deny outside the region that is
   evaluated on every request, S3 and IAM scoped by `${aws:username}`,
   a few conditions), gives it a key, and checks that the policy is in
   force: the user may DescribeInstances and may not RunInstances.
2. For each concurrency level, ROUNDS rounds of signed DescribeInstances
   with bench/'s `ec2-load`: the admin's key, then the user's (the next
   round the other way round), each DURATION seconds after WARMUP. Both
   keys see the same server, data and machine load; the server has no
   instances, so the request is the front door, authentication,
   authorisation and an empty answer.
3. Prints a markdown table: req/s (median over rounds) of each caller,
   the user's ÷ the admin's (of the medians, and the lowest and highest
   of the per-round ratios) and the latency percentiles, then the worst
   level's ratio against the goal (0.9). Writes every run as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

GOAL = 0.9
USER = "bench-ci"


def policy(account: str, region: str) -> dict:
    """The user's 20 statements."""
    ec2 = "arn:aws:ec2:*:*"
    tagged_qa = {"StringEquals": {"ec2:ResourceTag/team": "qa"}}
    statements = [
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Effect": "Deny", "NotAction": ["iam:*", "sts:*", "s3:*"], "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:RequestedRegion": region}}},
        {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": f"{ec2}:instance/*",
         "Condition": {"StringEquals": {"ec2:InstanceType": ["t1.micro", "m1.small"]}}},
        {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": ["arn:aws:ec2:*::image/*", f"{ec2}:key-pair/*"]},
        {"Effect": "Allow", "Action": "ec2:St*Instances", "Resource": f"{ec2}:instance/*", "Condition": tagged_qa},
        {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*",
         "Condition": {"StringEquals": {"ec2:ResourceTag/env": "prod"}}},
        {"Effect": "Allow", "Action": "ec2:TerminateInstances",
         "Resource": f"{ec2}:instance/*", "Condition": tagged_qa},
        {"Effect": "Allow", "Action": "ec2:*Tags", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:*KeyPair*", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:*SecurityGroup*", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:*Volume", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:*Snapshot*", "Resource": "*"},
        {"Effect": "Allow", "Action": "ec2:*Address", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
        {"Effect": "Allow", "Action": "ec2:GetConsoleOutput", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:CurrentTime": "2031-01-01T00:00:00Z"}}},
        {"Effect": "Deny", "Action": "ec2:DeleteVolume", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::qa/${aws:username}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::qa",
         "Condition": {"StringLike": {"s3:prefix": "${aws:username}/*"}}},
        {"Effect": "Allow", "Action": ["iam:GetUser", "iam:*AccessKey*"],
         "Resource": f"arn:aws:iam::{account}:user/ci/${{aws:username}}"},
        {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
    ]
    assert len(statements) == 20
    return {"Version": "2012-10-17", "Statement": statements}


def client(service: str, endpoint: str, region: str, key: dict):
    return boto3.client(
        service, endpoint_url=endpoint, region_name=region,
        aws_access_key_id=key["access_key_id"], aws_secret_access_key=key["secret_access_key"],
        config=Config(retries={"total_max_attempts": 1}),
    )


def make_user(endpoint: str, region: str, admin: dict) -> tuple[dict, int]:
    """Creates the user, its policy and key; returns the key and the
    policy's size as IAM counts it (characters other than white space)."""
    account = client("sts", endpoint, region, admin).get_caller_identity()["Account"]
    iam = client("iam", endpoint, region, admin)
    iam.create_user(UserName=USER, Path="/ci/", Tags=[{"Key": "team", "Value": "qa"}])
    document = json.dumps(policy(account, region), separators=(",", ":"))
    iam.put_user_policy(UserName=USER, PolicyName="ci", PolicyDocument=document)
    made = iam.create_access_key(UserName=USER)["AccessKey"]
    key = {"access_key_id": made["AccessKeyId"], "secret_access_key": made["SecretAccessKey"]}
    ec2 = client("ec2", endpoint, region, key)
    ec2.describe_instances()
    try:
        ec2.run_instances(ImageId="ami-00000000", MinCount=1, MaxCount=1, InstanceType="m1.large")
        raise SystemExit("the user could launch an m1.large: its policy is not in force")
    except ClientError as e:
        if e.response["Error"]["Code"] != "UnauthorizedOperation":
            raise SystemExit(f"RunInstances by the user answered {e.response['Error']['Code']}")
    return key, sum(1 for ch in document if not ch.isspace())


def load(args, key: dict, who: str, concurrency: int) -> dict:
    cmd = [
        args.load, "run", "--endpoint", args.endpoint + "/", "--region", args.region,
        "--access-key", key["access_key_id"], "--secret-key", key["secret_access_key"],
        "--action", "DescribeInstances", "--concurrency", str(concurrency),
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--client-threads", str(args.client_threads), "--expect-count", "</DescribeInstancesResponse>=1",
        "--label", who, "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"ec2-load failed ({who}, c={concurrency}):\n{proc.stdout}\n{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    print(lines[0], file=sys.stderr)
    return json.loads(lines[-1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--creds", required=True, help="the admin's credentials file (admin.json)")
    p.add_argument("--region", default="mallee-1")
    p.add_argument("--load", required=True, help="bench/'s ec2-load binary")
    p.add_argument("--pid", type=int, required=True, help="the mallee up process")
    p.add_argument("--mallee", default="", help="what mallee binary this is")
    p.add_argument("--concurrency", default="1 4 16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--client-threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    admin = json.load(open(args.creds))
    started = time.monotonic()
    load_before = open("/proc/loadavg").read().split()[:3]
    user, policy_size = make_user(args.endpoint, args.region, admin)
    keys = {"admin": admin, "user": user}
    runs = []
    for c in [int(x) for x in args.concurrency.split()]:
        for r in range(args.rounds):
            order = ["admin", "user"] if r % 2 == 0 else ["user", "admin"]
            for who in order:
                cpu = cpu_seconds(args.pid)
                result = load(args, keys[who], who, c)
                result["server_cpu_s"] = cpu_seconds(args.pid) - cpu
                result.update(who=who, round=r)
                runs.append(result)

    rows = []
    for c in sorted({run["concurrency"] for run in runs}):
        at = [run for run in runs if run["concurrency"] == c]
        by = {who: [run for run in at if run["who"] == who] for who in ("admin", "user")}
        med = {who: statistics.median(run["rps"] for run in rs) for who, rs in by.items()}
        per_round = [u["rps"] / a["rps"] for a, u in zip(by["admin"], by["user"])]
        cpu_per_req = {
            who: 1e6 * sum(run["server_cpu_s"] for run in rs) / sum(run["ok"] for run in rs)
            for who, rs in by.items()
        }
        rows.append({
            "concurrency": c, "admin_rps": med["admin"], "user_rps": med["user"],
            "ratio": med["user"] / med["admin"], "ratio_min": min(per_round), "ratio_max": max(per_round),
            "admin_p50_ms": statistics.median(run["p50_ms"] for run in by["admin"]),
            "user_p50_ms": statistics.median(run["p50_ms"] for run in by["user"]),
            "admin_p99_ms": statistics.median(run["p99_ms"] for run in by["admin"]),
            "user_p99_ms": statistics.median(run["p99_ms"] for run in by["user"]),
            "admin_cpu_us_per_req": cpu_per_req["admin"], "user_cpu_us_per_req": cpu_per_req["user"],
        })
    worst = min(rows, key=lambda row: row["ratio"])
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mallee": args.mallee,
        "cores": os.cpu_count(),
        "load_average": {"before": " ".join(load_before), "after": " ".join(open("/proc/loadavg").read().split()[:3])},
        "config": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                   "client_threads": args.client_threads, "statements": 20, "policy_size": policy_size},
        "rows": rows, "runs": runs, "worst_ratio": worst["ratio"], "goal": GOAL,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)

    print("| c | admin req/s | user req/s | user ÷ admin (rounds: min–max) | p50 ms admin / user | "
          "p99 ms admin / user | server CPU µs/req admin / user |")
    print("|---:|---:|---:|---:|---|---|---|")
    for row in rows:
        print(f"| {row['concurrency']} | {row['admin_rps']:.0f} | {row['user_rps']:.0f} | "
              f"**{row['ratio']:.2f}** ({row['ratio_min']:.2f}–{row['ratio_max']:.2f}) | "
              f"{row['admin_p50_ms']:.2f} / {row['user_p50_ms']:.2f} | "
              f"{row['admin_p99_ms']:.2f} / {row['user_p99_ms']:.2f} | "
              f"{row['admin_cpu_us_per_req']:.0f} / {row['user_cpu_us_per_req']:.0f} |")
    verdict = "meets" if worst["ratio"] >= GOAL else "misses"
    print(f"\nworst level c={worst['concurrency']}: user ÷ admin = {worst['ratio']:.2f}, "
          f"{verdict} the goal of {GOAL}")


if __name__ == "__main__":
    main()
