"""Running a cluster, as its administrator does: a `mallee controller` and
three simulated nodes (`mallee node join --simulate`: real processes, real
mutual TLS and heartbeats, VMs in memory) on loopback, driven with boto3 and
`mallee admin node …`.

Covered: the node list (zone, state, heartbeat age, accelerator, capacity
used/free, version, instances) in JSON and as a table; spread placement and
DescribeAvailabilityZones' verbose capacity summed over the zone's nodes;
disable and enable (maintenance); kill -9 of the controller during 20
concurrent RunInstances (after the restart the acknowledged instances are
there, retries with the same client tokens duplicate nothing, every
instance runs); kill -9 of a node agent (down after the timeout, its
instances impaired, launches elsewhere, terminating its instance waits for
the node, and force-removing the node ends it). One cluster for the module;
the tests run in file order and the node kill comes last."""

from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config

from conftest import REGION, ZONE, run_mallee
from netutil import wait_until
from test_cluster_pki import Cluster

NODE_TIMEOUT = 12
NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("nodes"), extra=["--node-timeout", str(NODE_TIMEOUT)])
    try:
        for name in NODES:
            c.join(name, c.token())
        c.ids = {name: c.node_id(name) for name in NODES}
        c.ec2 = ec2_client(c)
        c.image = register_image(c)
        yield c
    finally:
        c.close()


def ec2_client(c: Cluster, read_timeout: int = 60):
    creds = json.loads((c.data / "credentials" / "admin.json").read_text())
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=c.endpoint,
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=read_timeout),
    )


def register_image(c: Cluster) -> str:
    creds = json.loads((c.data / "credentials" / "admin.json").read_text())
    s3 = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=c.endpoint,
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
    )
    s3.create_bucket(Bucket="cluster-images")
    s3.put_object(Bucket="cluster-images", Key="disk.img", Body=b"\0" * (1 << 20))
    return c.ec2.register_image(
        Name="sim", ImageLocation="cluster-images/disk.img", VirtualizationType="hvm", Architecture="x86_64"
    )["ImageId"]


def admin(c: Cluster, *args: str, check: bool = True):
    return run_mallee("admin", "node", *args, "--data-dir", c.data, check=check)


def node_list(c: Cluster) -> dict[str, dict]:
    return {n["node_id"]: n for n in json.loads(admin(c, "list", "--json").stdout)}


def placed(c: Cluster, ids) -> dict[str, str]:
    """The node of each instance in `ids`, from the node list."""
    return {iid: node for node, n in node_list(c).items() for iid in n["instances"] if iid in ids}


def launch(c: Cluster, count: int, **kw) -> list[str]:
    out = c.ec2.run_instances(ImageId=c.image, MinCount=count, MaxCount=count, InstanceType="t1.micro", **kw)
    return [i["InstanceId"] for i in out["Instances"]]


def wait_for(what, check, timeout: float = 60, interval: float = 0.5):
    """The first truthy value of `check()`, polled until `timeout`."""
    seen = []
    if wait_until(lambda: seen.append(check()) or seen[-1], timeout, interval) is None:
        raise AssertionError(f"{what} not seen within {timeout}s (last: {seen[-1] if seen else None!r})")
    return seen[-1]


def states(c: Cluster, ids) -> dict[str, str]:
    out = {}
    for r in c.ec2.describe_instances(InstanceIds=list(ids))["Reservations"]:
        for i in r["Instances"]:
            out[i["InstanceId"]] = i["State"]["Name"]
    return out


def wait_running(c: Cluster, ids, timeout: float = 60) -> None:
    wait_for(f"{ids} running", lambda: all(s == "running" for s in states(c, ids).values()), timeout)


def terminate(c: Cluster, ids) -> None:
    if ids:
        c.ec2.terminate_instances(InstanceIds=list(ids))
        wait_for(
            "terminated", lambda: all(s == "terminated" for s in states(c, ids).values()), timeout=60
        )


def micro_free_max(c: Cluster) -> tuple[int, int]:
    rows = c.ec2.describe_availability_zones(ZoneNames=["verbose"])["AvailabilityZones"]
    (row,) = [r for r in rows if r["ZoneName"] == "|- t1.micro"]
    free, _, maximum = row["State"].split()[:3]
    return int(free), int(maximum)


def test_the_node_list_shows_every_node(cluster):
    version = run_mallee("--version", check=True).stdout.split()[-1]
    nodes = node_list(cluster)
    assert set(nodes) == set(cluster.ids.values())
    for n in nodes.values():
        assert n["zone"] == ZONE and n["role"] == "compute", n
        assert n["state"] == "up" and n["schedulable"] and not n["disabled"], n
        assert 0 <= n["heartbeat_age_seconds"] < NODE_TIMEOUT, n
        assert n["accel"].startswith("sim"), n
        assert n["version"] == version, n
        assert n["capacity"]["cores"] == {"used": 0, "free": 16, "max": 16}, n
        assert n["instance_count"] == 0 and n["instances"] == []
    table = admin(cluster, "list").stdout.splitlines()
    assert table[0].split("\t")[:5] == ["NODE", "ROLE", "ZONE", "STATE", "HEARTBEAT"], table[0]
    rows = {line.split("\t")[0]: line.split("\t") for line in table[1:]}
    assert set(rows) == set(nodes)
    for row in rows.values():
        assert row[1:4] == ["compute", ZONE, "up"] and row[6] == "0/16" and row[-1] == "0", row


def test_spread_placement_and_zone_capacity_come_from_the_nodes(cluster):
    free, maximum = micro_free_max(cluster)
    # Three simulated nodes of 16 cores: 16 t1.micro each.
    assert (free, maximum) == (48, 48)
    ids = launch(cluster, 3)
    try:
        where = placed(cluster, ids)
        assert sorted(where.values()) == sorted(cluster.ids.values()), f"one per node: {where}"
        assert micro_free_max(cluster) == (45, 48)
        for n in node_list(cluster).values():
            assert n["capacity"]["cores"] == {"used": 1, "free": 15, "max": 16}, n
            assert n["instance_count"] == 1
    finally:
        terminate(cluster, ids)
    assert micro_free_max(cluster) == (48, 48), "terminated instances hold nothing"


def test_a_disabled_node_takes_nothing_new_until_enabled(cluster):
    n2 = cluster.ids["n2"]
    first = launch(cluster, 3)
    ids = list(first)
    try:
        wait_running(cluster, first)
        out = admin(cluster, "disable", n2)
        assert out.stdout.strip() == f"DISABLED\t{n2}"
        listed = node_list(cluster)[n2]
        assert listed["disabled"] and not listed["schedulable"] and listed["state"] == "up"
        assert "up,disabled" in admin(cluster, "list").stdout
        # Its room leaves the zone's free count; its maximum stays.
        assert micro_free_max(cluster) == (45 - 15, 48)
        during = launch(cluster, 4)
        ids += during
        assert n2 not in placed(cluster, during).values(), placed(cluster, during)
        # What it runs keeps running.
        assert states(cluster, [i for i, n in placed(cluster, first).items() if n == n2]) == {
            i: "running" for i, n in placed(cluster, first).items() if n == n2
        }
        assert admin(cluster, "enable", n2).stdout.strip() == f"ENABLED\t{n2}"
        # Spread: the node with fewest instances (n2, with one) comes first.
        after = launch(cluster, 1)
        ids += after
        assert placed(cluster, after) == {after[0]: n2}
        bad = admin(cluster, "disable", "nd-nosuchnode", check=False)
        assert bad.returncode != 0 and "no node nd-nosuchnode" in bad.stderr, bad.stderr
    finally:
        admin(cluster, "enable", n2, check=False)
        terminate(cluster, ids)


def test_controller_killed_during_20_concurrent_launches(cluster):
    """Every launch carries a client token. The controller dies with
    launches in flight; after it restarts, the acknowledged instances are
    all there, and asking again with each unanswered token yields one
    reservation per token: nothing lost, nothing duplicated."""
    tokens = [f"burst-{uuid.uuid4().hex[:12]}" for _ in range(20)]
    answered: dict[str, str] = {}
    lock = threading.Lock()
    go = threading.Barrier(len(tokens) + 1)

    def one(token: str) -> None:
        ec2 = ec2_client(cluster, read_timeout=120)
        go.wait()
        try:
            out = ec2.run_instances(
                ImageId=cluster.image, MinCount=1, MaxCount=1, InstanceType="t1.micro", ClientToken=token
            )
        except Exception:  # the controller died under this one
            return
        with lock:
            answered[token] = out["Instances"][0]["InstanceId"]

    threads = [threading.Thread(target=one, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    go.wait()
    # Let some launches finish, then kill while the rest are in flight.
    wait_for("a first answer", lambda: len(answered) >= 3, timeout=60, interval=0.01)
    cluster.controller.kill()
    for t in threads:
        t.join(timeout=130)
    acknowledged = dict(answered)
    print(f"{len(acknowledged)} of 20 launches answered before the kill")
    cluster.start_controller()
    ec2 = ec2_client(cluster)
    existing = {
        i["InstanceId"]: i.get("ClientToken", "")
        for r in ec2.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"]
        for i in r["Instances"]
    }
    assert set(acknowledged.values()) <= set(existing), "an acknowledged launch was lost"
    assert set(existing.values()) <= set(tokens), f"an instance of no launch: {existing}"
    # The client retries what went unanswered, with the same tokens.
    final = dict(acknowledged)
    for token in tokens:
        out = ec2.run_instances(
            ImageId=cluster.image, MinCount=1, MaxCount=1, InstanceType="t1.micro", ClientToken=token
        )
        final[token] = out["Instances"][0]["InstanceId"]
        if token in acknowledged:
            assert final[token] == acknowledged[token], "a retry of an answered launch made another"
    ids = sorted(final.values())
    assert len(set(ids)) == 20
    try:
        all_now = {
            i["InstanceId"]
            for r in ec2.describe_instances(
                Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
            )["Reservations"]
            for i in r["Instances"]
        }
        assert all_now == set(ids), f"duplicates or leftovers: {sorted(all_now - set(ids))}"
        wait_running(cluster, ids, timeout=90)
        spread = list(placed(cluster, ids).values())
        assert len(spread) == 20 and set(spread) == set(cluster.ids.values()), spread
        assert max(spread.count(n) for n in set(spread)) - min(spread.count(n) for n in set(spread)) <= 1
    finally:
        terminate(cluster, ids)


def test_a_silent_node_goes_down_alone_and_force_removal_ends_its_instances(cluster):
    ids = launch(cluster, 3)
    wait_running(cluster, ids)
    where = placed(cluster, ids)
    n3 = cluster.ids["n3"]
    (victim,) = [i for i, n in where.items() if n == n3]
    others = [i for i in ids if i != victim]
    agent = [p for p in cluster.processes if p.log.name == "n3.log"][-1]
    agent.kill()
    wait_for("n3 down", lambda: node_list(cluster)[n3]["state"] == "down", timeout=NODE_TIMEOUT + 15)
    listed = node_list(cluster)
    assert [n for n, v in listed.items() if v["state"] == "down"] == [n3], listed

    def system_status() -> dict[str, str]:
        out = cluster.ec2.describe_instance_status(InstanceIds=ids, IncludeAllInstances=True)
        return {s["InstanceId"]: s["SystemStatus"]["Status"] for s in out["InstanceStatuses"]}

    status = wait_for("impaired", lambda: (s := system_status())[victim] == "impaired" and s, timeout=10)
    assert all(status[i] == "ok" for i in others), status
    # New launches avoid the down node.
    more = launch(cluster, 2)
    assert n3 not in placed(cluster, more).values()
    # Terminating its instance waits for the node to confirm...
    cluster.ec2.terminate_instances(InstanceIds=[victim])
    time.sleep(3)
    assert states(cluster, [victim])[victim] == "shutting-down"
    # ... or for the administrator to force-remove the node.
    out = admin(cluster, "remove", n3, "--force")
    assert out.stdout.startswith(f"REMOVED\t{n3}"), out.stdout
    wait_for("terminated", lambda: states(cluster, [victim])[victim] == "terminated", timeout=30)
    assert n3 not in node_list(cluster)
    assert set(states(cluster, others).values()) == {"running"}
    terminate(cluster, others + more)
