"""`mallee status`: the health of a cloud in one command, as an
administrator runs it on the controller's data directory.

Against `mallee up` (controller, store, object store, its node and storage
host, with their accelerator and capacity) and against a controller with a
simulated node that is then killed: the node shows down, with a warning,
and the command exits non-zero; once the controller is stopped, status
says so."""

from __future__ import annotations

import json
import time

from conftest import run_mallee
from test_cluster_nodes import ec2_client, register_image
from test_cluster_pki import Cluster

NODE_TIMEOUT = 12


def status(data_dir) -> tuple[int, dict]:
    out = run_mallee("status", "--data-dir", data_dir, "--json", timeout=60)
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def test_status_of_an_all_in_one_cloud(mallee_factory):
    srv = mallee_factory("status")
    srv.client("s3").create_bucket(Bucket="status-check")
    rc, doc = status(srv.data_dir)
    assert doc["controller"]["ok"], doc
    assert srv.endpoint in doc["controller"]["detail"]
    assert f"pid {srv.proc.pid}" in doc["controller"]["detail"]
    assert doc["store"]["ok"] and "mallee.db" in doc["store"]["detail"], doc
    assert doc["object_store"]["ok"] and "1 bucket" in doc["object_store"]["detail"], doc
    roles = {n["role"]: n for n in doc["nodes"]}
    assert set(roles) == {"compute", "storage"}, doc["nodes"]
    node = roles["compute"]
    assert node["state"] == "up" and node["heartbeat_age_seconds"] < 30, node
    assert node["accel"], node
    assert node["capacity"]["cores"]["max"] > 0 and node["capacity"]["memory_mib"]["max"] > 0, node
    assert set(doc["instances"]) == {"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}
    # `up`'s node records its image cache limit (20 GiB by default).
    (cache,) = doc["image_caches"]
    assert cache["limit_bytes"] == 20 << 30 and not cache["over_limit"], cache
    assert rc == (0 if not doc["warnings"] else 1), doc
    # The table says the same.
    table = run_mallee("status", "--data-dir", srv.data_dir, timeout=60).stdout
    assert table.startswith("controller    ok"), table
    assert "node          up" in table and "instances" in table, table


def test_status_shows_a_killed_node_down_and_a_stopped_controller(tmp_path):
    c = Cluster(tmp_path, extra=["--node-timeout", str(NODE_TIMEOUT)])
    try:
        c.join("n1", c.token())
        agent = c.join("n2", c.token())
        n1, n2 = c.node_id("n1"), c.node_id("n2")
        c.ec2 = ec2_client(c)
        image = register_image(c)
        c.ec2.run_instances(ImageId=image, InstanceType="t1.micro", MinCount=2, MaxCount=2)
        deadline = time.monotonic() + 60
        while True:
            rc, doc = status(c.data)
            if doc["instances"]["running"] == 2:
                break
            assert time.monotonic() < deadline, doc
            time.sleep(1)
        assert {n["node_id"]: n["state"] for n in doc["nodes"]} == {n1: "up", n2: "up"}, doc
        assert not [w for w in doc["warnings"] if w["kind"] == "node-down"], doc

        agent.kill()
        deadline = time.monotonic() + NODE_TIMEOUT + 20
        while True:
            rc, doc = status(c.data)
            states = {n["node_id"]: n["state"] for n in doc["nodes"]}
            if states[n2] == "down":
                break
            assert time.monotonic() < deadline, doc
            time.sleep(1)
        assert states[n1] == "up", doc
        assert rc == 1 and not doc["healthy"], doc
        down = [w for w in doc["warnings"] if w["kind"] == "node-down"]
        assert len(down) == 1 and n2 in down[0]["message"], doc
        table = run_mallee("status", "--data-dir", c.data, timeout=60).stdout
        assert f"node          DOWN  {n2}" in table and "WARNING" in table, table

        c.controller.stop()
        rc, doc = status(c.data)
        assert rc == 1 and not doc["controller"]["ok"], doc
        assert "does not answer" in doc["controller"]["detail"], doc
        assert not doc["object_store"]["ok"], doc
        # The store still answers from the data directory.
        assert doc["store"]["ok"] and len(doc["nodes"]) == 2, doc
    finally:
        c.close()
