"""A "client host" on a node's public network, for the networking
acceptance tests: a network namespace built by the test, joined to the
public bridge `mallee up` creates in the host namespace, from which the
tests ssh, connect and ping like someone on the public network would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time


def sh(*args: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout, **kw)


def public_range_for(port: int) -> str:
    """A /24 of 198.18.0.0/15 (RFC 2544, never routed) unique per server,
    never 198.18.0.0/24: the session's cloud (the default range) holds it
    on the same host for the whole run."""
    return f"198.18.{1 + port % 249}.0/24"


def bridge_with_address(address: str, timeout: float = 30) -> str:
    """The host interface that holds `address` (the node's public bridge)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for link in json.loads(sh("ip", "-j", "addr", "show").stdout):
            for a in link.get("addr_info", []):
                if a.get("local") == address:
                    return link["ifname"]
        time.sleep(0.2)
    raise AssertionError(f"no host interface has {address}: the node's public bridge is missing")


class Client:
    """A namespace with one veth on the public bridge."""

    def __init__(self, public_cidr: str, host_octet: int = 250):
        base = public_cidr.split("/")[0].rsplit(".", 1)[0]
        self.bridge = bridge_with_address(f"{base}.1")
        tag = os.urandom(3).hex()
        self.ns = f"mtcl-{tag}"
        self.outer = f"mtco{tag}"
        self.address = f"{base}.{host_octet}"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.outer, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        sh("ip", "link", "set", self.outer, "master", self.bridge, "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.ns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")

    def run(self, *args: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *args, timeout=timeout, check=check)

    def tcp_open(self, host: str, port: int, timeout: float = 1.0) -> bool:
        """Whether a TCP connection from the client to host:port succeeds."""
        code = (
            "import socket,sys\n"
            "s=socket.socket(); s.settimeout(float(sys.argv[3]))\n"
            "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
            "except Exception as e: print('closed', e)\n"
        )
        r = self.run("python3", "-c", code, host, str(port), str(timeout), timeout=timeout + 10)
        return r.stdout.startswith("open")

    def ping(self, host: str) -> bool:
        return self.run("busybox", "ping", "-c", "1", "-W", "1", host, timeout=10).returncode == 0

    def ssh(self, key_path: str, host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run(
            "ssh", "-i", key_path,
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            f"root@{host}", command,
            timeout=timeout,
        )

    def close(self):
        sh("ip", "netns", "del", self.ns, check=False)
        sh("ip", "link", "del", self.outer, check=False)


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Seconds until `predicate()` held, or None if it never did."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    return None
