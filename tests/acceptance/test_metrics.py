"""The Prometheus endpoint (`--metrics-listen`), read with Prometheus' own
text parser (prometheus-client) as a scraper would: request counters and
latency histograms move with the requests made, errors carry their status,
the reconciler's passes go on, and the node and instance gauges say what
the store says. The session cloud listens for metrics on a loopback port of
its own."""

from __future__ import annotations

import time

import pytest
import requests
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families


def scrape(server) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape."""
    r = requests.get(server.metrics_url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_request_counters_and_histograms_follow_the_requests(server):
    ec2, s3 = server.client("ec2"), server.client("s3")
    before = scrape(server)
    for _ in range(3):
        ec2.describe_regions()
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(InstanceIds=["i-nothex"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    s3.list_buckets()
    after = scrape(server)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mallee_requests_total", service="ec2", action="DescribeRegions", status="200") == 3
    assert delta("mallee_requests_total", service="ec2", action="DescribeInstances", status="400") == 1
    assert delta("mallee_requests_total", service="s3", action="ListBuckets", status="200") == 1
    # One histogram per action, over every status; buckets are cumulative
    # and end at the count.
    assert delta("mallee_request_duration_seconds_count", service="ec2", action="DescribeRegions") == 3
    assert delta("mallee_request_duration_seconds_sum", service="ec2", action="DescribeRegions") > 0
    labels = dict(service="ec2", action="DescribeRegions")
    buckets = sorted(
        (float(dict(k[1])["le"]), v) for k, v in after.items()
        if k[0] == "mallee_request_duration_seconds_bucket" and dict(k[1]).items() >= labels.items()
    )
    assert buckets[-1] == (float("inf"), value(after, "mallee_request_duration_seconds_count", **labels))
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets


def test_reconciler_nodes_and_instances(server):
    first = scrape(server)
    time.sleep(2.5)
    second = scrape(server)
    # Passes run about once a second when nothing moves.
    assert value(second, "mallee_reconciler_passes_total") >= value(first, "mallee_reconciler_passes_total") + 1
    assert value(second, "mallee_reconciler_lag_seconds") < 10
    assert value(second, "mallee_reconciler_last_pass_seconds") > 0
    assert value(second, "mallee_reconciler_pass_failures_total") == 0

    # The nodes of `mallee up` (compute and storage): up, recently heard
    # from.
    nodes = {dict(k[1])["node"]: v for k, v in second.items() if k[0] == "mallee_node_up"}
    assert nodes and all(v == 1 for v in nodes.values()), nodes
    for node in nodes:
        ages = [v for k, v in second.items()
                if k[0] == "mallee_node_heartbeat_age_seconds" and dict(k[1])["node"] == node]
        assert ages and 0 <= ages[0] < 30, ages

    # The compute node has room; the storage host runs no instances.
    free = {dict(k[1])["role"]: v for k, v in second.items() if k[0] == "mallee_node_free_memory_bytes"}
    assert free.get("compute", 0) > 0 and free.get("storage") == 0, free

    # Every state has its gauge; their sum is the instances the store
    # holds, across accounts.
    states = {dict(k[1])["state"]: v for k, v in second.items() if k[0] == "mallee_instances"}
    assert set(states) == {"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}, states
    assert value(second, "mallee_process_resident_memory_bytes") > 1 << 20
    assert value(second, "mallee_build_info", version=server_version(server)) == 1


def server_version(server) -> str:
    import subprocess

    from conftest import MALLEE_BIN

    out = subprocess.run([str(MALLEE_BIN), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]
