"""Bare-metal lab for the acceptance tests: a provisioning network in its
own network namespace (bridge br0 with the provisioning address) and QEMU
machines with empty disks whose NICs are taps on it, powered by the
controller's `qemu` power driver. Nothing routes anywhere: the machines
reach only the provisioning address. Also a provisioning cloud without
machines (`machineless_cloud`), and the `metaleuca-…` command runner
(symlinks to the mallee binary, as the seed's names).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import MalleeServer, free_port

REPO = Path(__file__).resolve().parents[2]
MALLEE_BIN = Path(os.environ.get("MALLEE_BIN", str(REPO / "target" / "debug" / "mallee"))).resolve()

IMAGES = REPO / "target" / "metal-images"
GUEST = REPO / "target" / "guest-images"


def build_images() -> Path:
    """Builds (or finds up to date) the deploy agent and the installed image."""
    subprocess.run(
        [str(REPO / "guest" / "metal" / "build.sh"), str(IMAGES), str(GUEST)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=1800,
    )
    return IMAGES


def sh(*args, check=True):
    return subprocess.run(list(map(str, args)), check=check, capture_output=True, text=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (PID 1 here does not reap) is not a running machine.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class Lab:
    def __init__(self, netns: str, address: str, prefix: int, workdir: Path):
        self.netns = netns
        self.address = address
        self.prefix = prefix
        self.dir = Path(workdir)
        self.machines: list[dict] = []
        if Path(f"/run/netns/{netns}").exists():
            sh("ip", "netns", "del", netns)
        self.dir.mkdir(parents=True, exist_ok=True)
        sh("ip", "netns", "add", netns)
        self.ip("link", "set", "lo", "up")
        self.ip("link", "add", "br0", "type", "bridge")
        self.ip("addr", "add", f"{address}/{prefix}", "dev", "br0")
        self.ip("link", "set", "br0", "up")

    def ip(self, *args):
        return sh("ip", "-n", self.netns, *args)

    def add_machine(self, name: str, mac: str, ip: str, disk_mib: int = 256) -> dict:
        tap = f"mtap{len(self.machines)}"
        self.ip("tuntap", "add", tap, "mode", "tap")
        self.ip("link", "set", tap, "master", "br0", "up")
        run_dir = self.dir / name
        run_dir.mkdir(parents=True, exist_ok=True)
        disk = run_dir / "disk.qcow2"
        sh("qemu-img", "create", "-q", "-f", "qcow2", disk, f"{disk_mib}M")
        m = {
            "name": name,
            "mac": mac,
            "ip": ip,
            "run_dir": run_dir,
            "power": {
                "driver": "qemu",
                "run_dir": str(run_dir),
                "disk": str(disk),
                "disk_format": "qcow2",
                "tap": tap,
                "netns": self.netns,
                "memory_mib": 256,
                "accel": "tcg",
            },
        }
        self.machines.append(m)
        return m

    def qemu_pid(self, name: str) -> int | None:
        pid = read_pid(self.dir / name / "qemu.pid")
        return pid if pid is not None and pid_alive(pid) else None

    def console(self, name: str) -> str:
        try:
            return (self.dir / name / "console.log").read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self, dnsmasq_pidfile: Path | None = None):
        for m in self.machines:
            pid = self.qemu_pid(m["name"])
            if pid:
                os.kill(pid, signal.SIGKILL)
        if dnsmasq_pidfile is not None:
            pid = read_pid(dnsmasq_pidfile)
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
        sh("ip", "netns", "del", self.netns, check=False)


@contextlib.contextmanager
def machineless_cloud(workdir: Path, name: str, net: str = "10.254.9"):
    """A started `mallee up` (with its node agent) whose bare-metal
    provisioning is on, with no machine anywhere: the provisioning bridge
    is alone in its network namespace and the deploy agent files are
    stand-ins nothing boots. Systems added to it use the manual power
    driver, so the engine asks the operator to power them on or off and
    waits: reservations, installs, reboots and releases run their course
    up to that point. Yields (server, lab); stops, purges and removes both
    afterwards."""
    workdir = Path(workdir)
    agent = workdir / "agent"
    agent.mkdir(parents=True, exist_ok=True)
    (agent / "deploy-vmlinuz").write_bytes(b"a stand-in: nothing boots it")
    (agent / "deploy-initrd.img").write_bytes(b"a stand-in: nothing boots it")
    lab = Lab(f"mm{name}{os.getpid()}", f"{net}.1", 24, workdir / "lab")
    srv = MalleeServer(
        workdir / "data",
        workdir / "server.log",
        extra_args=[
            "--metal-interface", "br0",
            "--metal-address", f"{net}.1/24",
            "--metal-netns", lab.netns,
            "--metal-http-port", str(free_port()),
            "--metal-agent-dir", str(agent),
        ],
    )
    try:
        srv.start()
        yield srv, lab
    finally:
        srv.stop()
        srv.kill()
        srv.purge()
        lab.destroy(srv.data_dir / "metal" / "netboot" / "dnsmasq.pid")


class Metaleuca:
    """Runs `metaleuca-COMMAND …` (a symlink to the mallee binary) or
    `mallee metal COMMAND …` against a server (anything with `endpoint` and
    `data_dir`), with its admin credentials unless others are given."""

    def __init__(self, server, bindir: Path, creds: dict | None = None):
        self.server = server
        self.bindir = Path(bindir)
        self.bindir.mkdir(parents=True, exist_ok=True)
        self.creds = creds

    def env(self) -> dict:
        env = dict(os.environ)
        env["MALLEE_ENDPOINT"] = self.server.endpoint
        env["MALLEE_DATA_DIR"] = str(self.server.data_dir)
        env.pop("AWS_ACCESS_KEY_ID", None)
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        if self.creds is not None:
            env["AWS_ACCESS_KEY_ID"] = self.creds["access_key_id"]
            env["AWS_SECRET_ACCESS_KEY"] = self.creds["secret_access_key"]
        return env

    def link(self, command: str) -> Path:
        """The `metaleuca-COMMAND` symlink to the mallee binary."""
        link = self.bindir / f"metaleuca-{command}"
        if not link.is_symlink():
            link.symlink_to(MALLEE_BIN)
        return link

    def run(self, command: str, *args, check=True, timeout=300) -> subprocess.CompletedProcess:
        link = self.link(command)
        proc = subprocess.run(
            [str(link), *map(str, args)],
            capture_output=True, text=True, env=self.env(), timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"metaleuca-{command} {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def mallee(self, command: str, *args, check=True, timeout=300) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(MALLEE_BIN), "metal", command, *map(str, args)],
            capture_output=True, text=True, env=self.env(), timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"mallee metal {command} {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def lines(self, command: str, *args) -> list[list[str]]:
        out = self.run(command, *args).stdout
        return [l.split("\t") for l in out.splitlines() if l]

    def json(self, command: str, *args):
        return json.loads(self.run(command, *args, "--json").stdout)

    def wait_instances(self, user: str, names: list[str], what: str, pred, timeout: float):
        """Polls describe-instances until every named system satisfies pred."""
        start = time.monotonic()
        while True:
            items = {i["name"]: i for i in self.json("describe-instances", "-u", user)}
            chosen = [items.get(n) for n in names]
            for i in chosen:
                assert i is None or i.get("state") != "failed", f"{i['name']} failed: {i}"
            if all(i is not None and pred(i) for i in chosen):
                return chosen, time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{names} not {what} after {timeout}s: {chosen}"
            time.sleep(1)

    def wait_systems(self, names: list[str], what: str, pred, timeout: float):
        start = time.monotonic()
        while True:
            items = {s["name"]: s for s in self.json("describe-systems")}
            chosen = [items[n] for n in names]
            if all(pred(s) for s in chosen):
                return chosen, time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{names} not {what} after {timeout}s: {chosen}"
            time.sleep(1)
