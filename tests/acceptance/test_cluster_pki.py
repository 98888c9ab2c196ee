"""Cluster enrolment and mutual TLS through the real binary.

A `mallee controller` on loopback, tokens from `mallee admin node token
create`, nodes from `mallee node join --simulate` (simulated VMs: no QEMU,
no root needed) and Python's own TLS client standing in for a node that
presents a certificate of its own making, or one that was revoked. A used,
expired or forged token enrols nothing; a self-made certificate and a
removed node's certificate fail at the TLS handshake.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import HEALTH_PATH, MALLEE_BIN, ZONE, free_port, run_mallee

CONTROLLER_NAME = "controller.mallee-cluster"


class Process:
    """A mallee process with its log; stopped by its pid."""

    def __init__(self, args: list, log: Path):
        self.log = log
        self._fh = open(log, "ab")
        self.proc = subprocess.Popen(
            [str(MALLEE_BIN), *map(str, args)],
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not seen in {self.log}:\n{self.text()[-4000:]}")

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


class Cluster:
    """A controller on loopback and the simulated nodes joined to it."""

    def __init__(self, root: Path, extra=()):
        self.root = root
        self.data = root / "controller"
        self.processes: list[Process] = []
        # A free port may be taken by someone else before the controller
        # binds it: the first start picks new ports then.
        for attempt in range(3):
            self.port = free_port()
            self.node_port = free_port()
            self.url = f"https://127.0.0.1:{self.node_port}"
            self.controller_args = [
                "controller",
                "--data-dir", self.data,
                "--listen", f"127.0.0.1:{self.port}",
                "--node-listen", f"127.0.0.1:{self.node_port}",
                *extra,
            ]
            if self.start_controller(retry_port_clash=attempt < 2):
                break

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_controller(self, retry_port_clash: bool = False) -> bool:
        """Starts the controller and waits until it answers; `False` when
        it could not bind its ports and `retry_port_clash` allows another
        try."""
        self.controller = self._spawn(self.controller_args, "controller.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}{HEALTH_PATH}", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            if self.controller.proc.poll() is not None:
                text = self.controller.text()
                # The port check at start says "is in use by"; the bind
                # itself (a port taken just after) "Address already in use".
                if retry_port_clash and ("Address already in use" in text or ") is in use by" in text):
                    self.controller.kill()
                    return False
                raise AssertionError(f"the controller exited:\n{self.controller.text()}")
            assert time.monotonic() < deadline, self.controller.text()
            time.sleep(0.1)

    def _spawn(self, args: list, log: str) -> Process:
        process = Process(args, self.root / log)
        self.processes.append(process)
        return process

    def token(self, zone: str = ZONE, ttl: str = "1h") -> str:
        out = run_mallee(
            "admin", "node", "token", "create", "--zone", zone, "--ttl", ttl,
            "--data-dir", self.data, check=True,
        )
        return out.stdout.strip()

    def join_args(self, name: str, token: str | None, *extra) -> list:
        args = [
            "node", "join", self.url,
            "--simulate",
            "--data-dir", self.root / name,
            "--listen", f"127.0.0.1:{free_port()}",
            *extra,
        ]
        if token is not None:
            args += ["--token", token]
        return args

    def join(self, name: str, token: str | None) -> Process:
        """Starts node `name` and waits until the controller recorded it."""
        node = self._spawn(self.join_args(name, token), f"{name}.log")
        node.wait_for("simulated node agent running")
        self.controller.wait_for(f"node registered node={self.node_id(name)}")
        return node

    def join_refused(self, name: str, token: str | None, *extra) -> str:
        """Runs a join that must fail; returns what it said."""
        out = run_mallee(*self.join_args(name, token, *extra), timeout=30)
        assert out.returncode != 0, f"the join succeeded:\n{out.stdout}{out.stderr}"
        return out.stderr

    def node_id(self, name: str) -> str:
        return (self.root / name / "node-id").read_text().strip()

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def call(cluster: Cluster, cert: Path, key: Path, trust: Path) -> str:
    """One request on the node listener presenting `cert`: the HTTP status
    line, or the TLS failure."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(trust)
    context.load_cert_chain(cert, key)
    version = ".".join(
        run_mallee("--version", check=True).stdout.split()[-1].split(".")[:2]
    )
    request = (
        f"GET /_mallee/node/objects/images/none HTTP/1.1\r\nhost: x\r\n"
        f"x-mallee-node-api: {version}\r\nconnection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", cluster.node_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
                tls.sendall(request)
                answer = tls.recv(4096).decode(errors="replace")
                return answer.splitlines()[0] if answer else "closed without an answer"
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return f"TLS: {e}"


def test_a_token_enrols_one_node_once_and_the_node_needs_it_once(cluster):
    token = cluster.token()
    first = cluster.join("n1", token)
    pki = cluster.root / "n1" / "pki"
    assert json.loads((pki / "enrolment.json").read_text())["zone"] == ZONE
    assert (pki / "node.key").stat().st_mode & 0o777 == 0o600
    # The same token cannot enrol another node.
    said = cluster.join_refused("n2", token)
    assert "used already" in said, said
    assert not (cluster.root / "n2" / "pki" / "node.pem").exists()
    # The enrolled node restarts without a token.
    first.stop()
    cluster.join("n1", None)


def test_expired_forged_and_misdirected_tokens_enrol_nothing(cluster):
    expired = cluster.token(ttl="1s")
    time.sleep(2)
    said = cluster.join_refused("n1", expired)
    assert "expired" in said, said
    good = cluster.token()
    forged = good[:-8] + ("0" * 8 if not good.endswith("0" * 8) else "1" * 8)
    said = cluster.join_refused("n1", forged)
    assert "not recognised" in said, said
    said = cluster.join_refused("n1", good, "--zone", "elsewhere-1a")
    assert "is for zone" in said, said
    said = cluster.join_refused("n1", None)
    assert "--token" in said, said
    # Plain HTTP is not spoken.
    out = run_mallee("node", "join", cluster.url.replace("https", "http"), "--token", good,
                     "--data-dir", cluster.root / "n1", timeout=30)
    assert out.returncode != 0 and "HTTPS only" in out.stderr, out.stderr
    assert not (cluster.root / "n1" / "pki" / "node.pem").exists()
    # None of that spent the good token.
    cluster.join("n1", good)


def test_a_self_made_certificate_fails_at_the_handshake(cluster):
    token = cluster.token()
    cluster.join("n1", token)
    pki = cluster.root / "n1" / "pki"
    ca = cluster.data / "pki" / "ca.pem"
    # The real node gets in (its request reaches the route: no such object).
    assert call(cluster, pki / "node.pem", pki / "node.key", ca).startswith("HTTP/1.1 404")
    # A certificate of its own making, naming a node, does not.
    fake = cluster.root / "fake"
    fake.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", fake / "node.key", "-out", fake / "node.pem", "-days", "1",
            "-subj", "/CN=nd-fake.node.mallee-cluster",
            "-addext", "subjectAltName=DNS:nd-fake.node.mallee-cluster",
            "-addext", "extendedKeyUsage=clientAuth,serverAuth",
        ],
        check=True,
        capture_output=True,
    )
    answer = call(cluster, fake / "node.pem", fake / "node.key", ca)
    assert answer.startswith("TLS:"), answer
    cluster.controller.wait_for("TLS handshake refused")


def test_a_removed_node_is_refused_at_the_tls_layer(cluster):
    token = cluster.token()
    node = cluster.join("n1", token)
    node_id = cluster.node_id("n1")
    pki = cluster.root / "n1" / "pki"
    ca = cluster.data / "pki" / "ca.pem"
    assert call(cluster, pki / "node.pem", pki / "node.key", ca).startswith("HTTP/1.1 404")
    out = run_mallee("admin", "node", "remove", node_id, "--data-dir", cluster.data, check=True)
    assert out.stdout.startswith(f"REMOVED\t{node_id}\t1 certificate(s) revoked"), out.stdout
    # The running controller applies it within a second or so.
    deadline = time.monotonic() + 5
    while True:
        answer = call(cluster, pki / "node.pem", pki / "node.key", ca)
        if answer.startswith("TLS:") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "revoked" in answer.lower(), answer
    # The node's own heartbeat fails the same way.
    node.wait_for("CertificateRevoked", timeout=30)
    # Removing it again finds nothing more to revoke.
    again = run_mallee("admin", "node", "remove", node_id, "--data-dir", cluster.data, check=True)
    assert "\t0 certificate(s) revoked" in again.stdout, again.stdout


def test_tokens_are_for_the_zones_the_controller_recorded(tmp_path):
    c = Cluster(tmp_path, extra=["--region", "lab-9", "--zones", "lab-9a,lab-9b"])
    try:
        token = c.token(zone="lab-9b")
        c.join("n1", token)
        enrolled = json.loads((c.root / "n1" / "pki" / "enrolment.json").read_text())
        assert enrolled["zone"] == "lab-9b"
        out = run_mallee(
            "admin", "node", "token", "create", "--zone", ZONE, "--data-dir", c.data, timeout=30
        )
        assert out.returncode != 0 and ZONE in out.stderr, out.stderr
    finally:
        c.close()
