"""Two `mallee controller` processes on one PostgreSQL (issue 18): both
serve the API, one holds the background lease, and when it is killed with
`kill -9` the other takes the lease within 10 s (its log says so) and keeps
answering. PostgreSQL is a throw-away server started here, as the store's
Rust tests do (initdb as the `postgres` user when root, C collation, unix
socket only). No VMs. S3 data and the cluster CA are per data directory
(docs/cluster.md): this test uses EC2 calls only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import HEALTH_PATH, REGION, free_port
from pgutil import PgServer
from test_cluster_pki import Process

ACQUIRED = "acquired the background lease"


class Controller:
    def __init__(self, root: Path, name: str, database: str):
        self.data = root / name
        self.port = free_port()
        self.process = Process(
            ["controller", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}",
             "--node-listen", f"127.0.0.1:{free_port()}", "--database", database],
            root / f"{name}.log",
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}{HEALTH_PATH}", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert self.process.proc.poll() is None, self.process.text()
            assert time.monotonic() < deadline, self.process.text()
            time.sleep(0.1)

    def leads(self) -> bool:
        return ACQUIRED in self.process.text()

    def ec2(self, creds: dict):
        return boto3.client(
            "ec2", region_name=REGION, endpoint_url=f"http://127.0.0.1:{self.port}",
            aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    pg = PgServer()
    started: list[Controller] = []
    try:
        started.append(Controller(root, "c1", pg.url))
        # The first one is alone: it takes the free lease at its first try.
        started[0].process.wait_for(ACQUIRED, timeout=10)
        started.append(Controller(root, "c2", pg.url))
        yield started
    finally:
        for c in started:
            c.process.kill()
        pg.stop()


def test_both_serve_and_one_leads_then_the_other_takes_over(pair):
    first, second = pair
    # The admin account was made once, in the shared database; its keys
    # work on both controllers.
    creds = json.loads((first.data / "credentials" / "admin.json").read_text())
    for c in pair:
        zones = c.ec2(creds).describe_availability_zones()["AvailabilityZones"]
        assert zones, c.process.text()
    # Across several of its tries the second never takes a held lease.
    time.sleep(5)
    assert not second.leads(), second.process.text()

    first.process.kill()
    killed = time.monotonic()
    while not second.leads():
        assert time.monotonic() - killed < 10, second.process.text()[-4000:]
        time.sleep(0.1)
    print(f"hand-over in {time.monotonic() - killed:.1f} s")
    assert second.ec2(creds).describe_availability_zones()["AvailabilityZones"]
