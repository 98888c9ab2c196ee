"""A datacenter made of network namespaces, for the cluster acceptance
tests: a controller host, N node hosts and a client host, each its own
namespace, wired like machines in a rack:

- `fabric` holds two bridges: `dc0`, the datacenter network (10.77.0.0/24:
  the node API, the controller's node listener and VXLAN between nodes),
  and `pub0`, the zone's public LAN (the public range; the client sits on
  it, holding the range's first address as the LAN's router would).
- `ctl` is the controller host: 10.77.0.1 on the datacenter network, and a
  point-to-point link to the test process's namespace (10.78.K.1/30 there,
  10.78.K.2 here) so boto3 reaches the API.
- `nK` are node hosts: 10.77.0.(10+K) on the datacenter network, and an
  interface without an address on the public LAN (`--public-interface`).
- `client` is a host on the public LAN.

The lab's mallee processes run in their host's network namespace but in
the machine's mount namespace (`nsenter --net`, not `ip netns exec`, which
also gives its command a mount namespace of its own): a node agent makes
its VPC namespaces with `ip netns add`, and under `ip netns exec` their
mounts would live and die with the agent's private mount namespace, so a
restarted agent could not enter them, which real hosts never see. Nothing
is routed toward the real uplink and only these namespaces carry the
lab's traffic. `close()` kills
the processes, purges the nodes' VMs and networks (`mallee purge`), and
deletes every namespace (their bridges and veths go with them) and the
host end of the link to the controller."""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import requests
from botocore.config import Config

from computeutil import qemu_pids
from conftest import _ACTIVE_SERVERS, _ANSI, HEALTH_PATH, MALLEE_BIN, STARTUP_TIMEOUT
from netutil import sh

DC_NET = "10.77.0"
PUBLIC_NET = "198.18.64"
PUBLIC_CIDR = f"{PUBLIC_NET}.0/24"
# Names of the admin's choosing, as a real cluster's: the controller, the
# tokens and the nodes must all agree on them.
REGION = "lab-1"
ZONE = "lab-1a"
CONTROLLER_URL = f"https://{DC_NET}.1:8774"
START_MARK = "===== start "
REGISTERED = "registered with the controller"


def in_netns(ns: str) -> list[str]:
    """The command prefix that runs a command in network namespace `ns`
    and the machine's mount namespace."""
    return ["nsenter", f"--net=/run/netns/{ns}", "--"]


def _epoch(rfc3339: str) -> float:
    """`2026-12-06T22:31:24.683Z` as seconds since the epoch."""
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class LabProcess:
    """One long-running mallee process inside a namespace, with its log
    (appended to across restarts, each start marked)."""

    def __init__(self, ns: str, args: list, log_path: Path, binary: Path = MALLEE_BIN):
        self.ns = ns
        self.args = [str(a) for a in args]
        self.log_path = Path(log_path)
        self.binary = Path(binary)
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "LabProcess":
        assert not self.running(), "already running"
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n{START_MARK}{time.strftime('%H:%M:%S')} {self.binary} {' '.join(self.args)} =====\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [*in_netns(self.ns), str(self.binary), *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if self not in _ACTIVE_SERVERS:
            _ACTIVE_SERVERS.append(self)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running() else None

    def kill(self, sig=signal.SIGKILL, timeout: float = 30) -> int | None:
        """Sends `sig` (default: kill -9) to the process alone (its VMs, if
        any, are not its children to kill) and waits; returns its exit code."""
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if self.proc is None else self.proc.returncode

    def stop(self) -> int | None:
        return self.kill(signal.SIGTERM)

    # `stop()`/`kill()` are what conftest's report hook may call; `purge`
    # is not ours to offer (the lab purges its nodes itself).
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def since_start(self) -> str:
        """The log of the current (last) start."""
        text = _ANSI.sub("", self.log_text())
        return text[text.rfind(START_MARK):] if START_MARK in text else text

    def log_tail(self, lines: int = 60) -> str:
        text = _ANSI.sub("", self.log_text()).splitlines()
        return f"--- {self.log_path} (last {lines} lines) ---\n" + "\n".join(text[-lines:])

    def wait_log(self, needle: str, timeout: float = 60) -> None:
        """Waits until the current start's log contains `needle`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.since_start():
                return
            if not self.running():
                break
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} not in the log of {self.args[:2]} after {timeout}s\n{self.log_tail()}")


class Node:
    """A node host: its namespace, addresses, data and `mallee node`."""

    def __init__(self, lab: "Datacenter", index: int):
        self.lab = lab
        self.index = index
        self.ns = f"{lab.prefix}-n{index}"
        self.address = f"{DC_NET}.{10 + index}"
        self.public_interface = "pub"
        # `mallee purge --data-dir ROOT` purges the node of ROOT/node.
        self.root = lab.root / f"node{index}"
        self.data_dir = self.root / "node"
        self.process: LabProcess | None = None

    def join(self, token: str, cores: int = 8) -> LabProcess:
        """Enrols with `token` and runs the agent offering `cores` (the
        token is spent; the same command starts the enrolled node again,
        see `restart`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = LabProcess(
            self.ns,
            [
                "node", "join", CONTROLLER_URL,
                "--token", token,
                "--data-dir", self.data_dir,
                "--listen", f"{self.address}:8775",
                "--zone", ZONE,
                "--region", REGION,
                "--underlay-ip", self.address,
                "--public-interface", self.public_interface,
                "--public-range", PUBLIC_CIDR,
                # Instances book what their type says (the host has two
                # cores, the guests are tiny and mostly idle); the disk
                # overlays are sparse.
                "--node-cores", str(cores),
                "--node-disk-gib", "500",
            ],
            self.lab.root / f"node{self.index}.log",
        )
        return self.process.start()

    def restart(self) -> LabProcess:
        assert self.process is not None
        return self.process.start()

    def wait_registered(self, timeout: float = 120) -> None:
        self.process.wait_log(REGISTERED, timeout)

    @property
    def node_id(self) -> str:
        return (self.data_dir / "node-id").read_text().strip()

    def instances(self) -> set[str]:
        """Instance ids this node keeps on disk."""
        d = self.data_dir / "instances"
        return {p.name for p in d.iterdir() if p.is_dir()} if d.is_dir() else set()

    def run(self, *args: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        return sh(*in_netns(self.ns), *args, timeout=timeout, check=check)

    def purge(self) -> None:
        """Kills the node's VMs and removes its networks."""
        if not self.data_dir.exists():
            return
        ids = self.instances()
        self.run(str(MALLEE_BIN), "purge", "--data-dir", str(self.root), timeout=180)
        # Whatever purge missed must not outlive the lab.
        for iid, pid in qemu_pids().items():
            if iid in ids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


class StorageHost:
    """The zone's storage host: its namespace, address, data and `mallee
    storage join` (it keeps the zone's volumes and exports them over NBD
    to the nodes on the datacenter network)."""

    def __init__(self, lab: "Datacenter"):
        self.lab = lab
        self.ns = f"{lab.prefix}-st"
        self.address = f"{DC_NET}.9"
        self.root = lab.root / "storage"
        self.data_dir = self.root / "storage"
        self.process: LabProcess | None = None

    def join(self, token: str) -> LabProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = LabProcess(
            self.ns,
            [
                "storage", "join", CONTROLLER_URL,
                "--token", token,
                "--data-dir", self.data_dir,
                "--listen", f"{self.address}:8776",
                "--zone", ZONE,
                "--nbd-address", self.address,
            ],
            self.lab.root / "storage.log",
        )
        return self.process.start()

    def restart(self) -> LabProcess:
        assert self.process is not None
        return self.process.start()

    def wait_registered(self, timeout: float = 120) -> None:
        self.process.wait_log(REGISTERED, timeout)

    @property
    def node_id(self) -> str:
        return (self.data_dir / "node-id").read_text().strip()

    def volume_file(self, volume_id: str) -> Path:
        return self.data_dir / "volumes" / f"{volume_id}.qcow2"

    def disk_used(self) -> int:
        """Bytes the storage host's volumes (and snapshot bases) take on
        disk."""
        total = 0
        for p in (self.data_dir / "volumes").rglob("*"):
            if p.is_file():
                total += p.stat().st_blocks * 512
        return total

    def run(self, *args: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        return sh(*in_netns(self.ns), *args, timeout=timeout, check=check)

    def purge(self) -> None:
        """Stops the storage host's NBD exports (qemu-storage-daemon)."""
        if self.data_dir.exists():
            self.run(str(MALLEE_BIN), "purge", "--data-dir", str(self.root), timeout=60)


class Datacenter:
    """The namespaces, bridges and processes of one lab."""

    def __init__(self, root: Path, nodes: int = 3, storage: bool = False):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        tag = os.urandom(2).hex()
        self.prefix = f"mlab{tag}"
        self.fabric = f"{self.prefix}-fab"
        self.ctl = f"{self.prefix}-ctl"
        self.client_ns = f"{self.prefix}-cli"
        self.client_address = f"{PUBLIC_NET}.1"
        # The link between the test process and the controller host: unique
        # per lab.
        self.link_net = f"10.78.{int(tag, 16) % 250}"
        self.api_address = f"{self.link_net}.1"
        self.host_link = f"mlh{tag}"
        self.nodes = [Node(self, i) for i in range(1, nodes + 1)]
        self.storage = StorageHost(self) if storage else None
        self.controller: LabProcess | None = None
        self._namespaces: list[str] = []
        self._host_links: list[str] = []
        self._build()

    # -- wiring
    def _ns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _plug(self, ns: str, inner: str, bridge: str, address: str | None) -> None:
        """A veth from `ns` (named `inner` there) to `bridge` in the fabric."""
        outer = f"v{os.urandom(4).hex()}"
        sh("ip", "-n", self.fabric, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
        sh("ip", "-n", self.fabric, "link", "set", outer, "master", bridge, "up")
        if address:
            sh("ip", "-n", ns, "addr", "add", address, "dev", inner)
        sh("ip", "-n", ns, "link", "set", inner, "up")

    def _build(self) -> None:
        try:
            self._ns(self.fabric)
            for bridge in ("dc0", "pub0"):
                sh("ip", "-n", self.fabric, "link", "add", bridge, "type", "bridge")
                sh("ip", "-n", self.fabric, "link", "set", bridge, "up")
            self._ns(self.ctl)
            self._plug(self.ctl, "dc", "dc0", f"{DC_NET}.1/24")
            sh("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "test", "netns", self.ctl)
            self._host_links.append(self.host_link)
            sh("ip", "addr", "add", f"{self.link_net}.2/30", "dev", self.host_link)
            sh("ip", "link", "set", self.host_link, "up")
            sh("ip", "-n", self.ctl, "addr", "add", f"{self.api_address}/30", "dev", "test")
            sh("ip", "-n", self.ctl, "link", "set", "test", "up")
            for node in self.nodes:
                self._ns(node.ns)
                self._plug(node.ns, "dc", "dc0", f"{node.address}/24")
                self._plug(node.ns, node.public_interface, "pub0", None)
            if self.storage is not None:
                self._ns(self.storage.ns)
                self._plug(self.storage.ns, "dc", "dc0", f"{self.storage.address}/24")
            self._ns(self.client_ns)
            self._plug(self.client_ns, "eth0", "pub0", f"{self.client_address}/24")
        except Exception:
            self.close()
            raise

    # -- the controller
    @property
    def endpoint(self) -> str:
        return f"http://{self.api_address}:8773"

    @property
    def data_dir(self) -> Path:
        return self.root / "controller"

    def start_controller(self, node_timeout: int, binary: Path = MALLEE_BIN) -> LabProcess:
        self.controller = LabProcess(
            self.ctl,
            [
                "controller",
                "--data-dir", self.data_dir,
                "--listen", "0.0.0.0:8773",
                "--node-listen", f"{DC_NET}.1:8774",
                "--region", REGION,
                "--zones", ZONE,
                "--public-range", PUBLIC_CIDR,
                "--node-timeout", node_timeout,
            ],
            self.root / "controller.log",
            binary=binary,
        )
        self.controller.start()
        self.wait_healthy()
        return self.controller

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.endpoint + HEALTH_PATH, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if not self.controller.running():
                break
            time.sleep(0.1)
        raise AssertionError(f"controller not healthy after {timeout}s\n{self.controller.log_tail()}")

    def admin(self, *args: str) -> subprocess.CompletedProcess:
        r = sh(str(MALLEE_BIN), "admin", *args, "--data-dir", str(self.data_dir), check=False, timeout=60)
        assert r.returncode == 0, f"mallee admin {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def token(self, zone: str = ZONE) -> str:
        return self.admin("node", "token", "create", "--zone", zone).stdout.strip()

    @property
    def admin_credentials(self) -> dict:
        return json.loads((self.data_dir / "credentials" / "admin.json").read_text())

    def create_account(self) -> dict:
        """A new account and its access key (admin CLI)."""
        name = f"acct{uuid.uuid4().hex[:10]}"
        acc = json.loads(self.admin("account", "create", name, "--json").stdout)
        key = json.loads(self.admin("access-key", "create", "--account", name, "--json").stdout)
        key.setdefault("account_id", acc["account_id"])
        return key

    def client(self, service: str = "ec2", creds: dict | None = None, **cfg):
        """A boto3 client of the lab's API (what computeutil.register_guest
        needs of a server)."""
        creds = creds or self.admin_credentials
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            config=Config(
                retries={"total_max_attempts": 1},
                connect_timeout=5,
                read_timeout=cfg.pop("read_timeout", 60),
                **cfg,
            ),
        )

    # -- nodes
    def node_list(self) -> list[dict] | None:
        """`mallee admin node list --json`, or None when the binary has no
        such command."""
        r = sh(str(MALLEE_BIN), "admin", "node", "list", "--json", "--data-dir", str(self.data_dir), check=False)
        if r.returncode != 0 and "unrecognized subcommand" in r.stderr:
            return None
        assert r.returncode == 0, f"mallee admin node list: {r.stderr}"
        return json.loads(r.stdout)

    def wait_heartbeats_since(self, since: float, timeout: float = 30) -> None:
        """Waits until every node has registered (its heartbeat) with the
        controller after `since` (time.time()): by `admin node list` when
        the binary has it, else by the controller's log of the current start
        (binaries that log every registration)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            listed = self.node_list()
            if listed is None:
                for node in self.nodes:
                    self.controller.wait_log(f"node registered node={node.node_id}", max(deadline - time.monotonic(), 0.1))
                return
            last = {n["node_id"]: n.get("last_heartbeat") for n in listed}
            heard = {
                node_id: at is not None and _epoch(at) > since for node_id, at in last.items()
            }
            if all(heard.get(n.node_id) for n in self.nodes):
                return
            time.sleep(0.5)
        raise AssertionError(f"not every node registered since {since}: {last}\n{self.controller.log_tail()}")

    def node_of(self, iid: str) -> int | None:
        """The index (1-based) of the node keeping `iid`."""
        held = [n.index for n in self.nodes if iid in n.instances()]
        assert len(held) <= 1, f"{iid} is on several nodes: {held}"
        return held[0] if held else None

    def placement(self, ids) -> dict[str, int | None]:
        return {iid: self.node_of(iid) for iid in ids}

    # -- the client host
    def client_run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.client_ns, *args, timeout=timeout, check=False)

    # -- teardown
    def close(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                node.process.kill()
        if self.storage is not None and self.storage.process is not None:
            self.storage.process.kill()
        if self.controller is not None:
            self.controller.kill()
        for node in self.nodes:
            node.purge()
        if self.storage is not None:
            self.storage.purge()
        for ns in reversed(self._namespaces):
            sh("ip", "netns", "del", ns, check=False)
        for link in self._host_links:
            sh("ip", "link", "del", link, check=False)
        self._namespaces.clear()
        self._host_links.clear()
