"""Black-box acceptance fixtures for mallee.

Every test talks to a real `mallee up` process over HTTP with real clients
(boto3, awscli v1, hand-signed `requests`).  Nothing is mocked.

Fixtures
--------
server          session-scoped shared server (one data dir for the session)
mallee_factory  function-scoped factory for tests that kill/restart servers
ec2             boto3 EC2 client for the shared server's admin account
aws_cli         runs `python -m awscli ... --endpoint-url ... --output json`
raw             hand-signed (botocore SigV4Auth) raw requests, returns RawResponse
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from netutil import public_range_for

REPO = Path(__file__).resolve().parents[2]
MALLEE_BIN = Path(os.environ.get("MALLEE_BIN", str(REPO / "target" / "debug" / "mallee")))
REGION = "mallee-1"
ZONE = "mallee-1a"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
API_VERSION = "2016-11-15"
HEALTH_PATH = "/_mallee/health"
STARTUP_TIMEOUT = float(os.environ.get("MALLEE_STARTUP_TIMEOUT", "30"))

# Servers started during the current test (plus the session server), so that
# their logs can be attached to a failing test's report.
_ACTIVE_SERVERS: list["MalleeServer"] = []
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SESSION_SERVER: list["MalleeServer"] = []

# MALLEE_TEST_DATABASE=postgres runs every MalleeServer on a database of its
# own in one throw-away PostgreSQL for the session (pgutil); SQLite, each
# data directory's own file, otherwise.
TEST_DATABASE = os.environ.get("MALLEE_TEST_DATABASE", "sqlite")
assert TEST_DATABASE in ("sqlite", "postgres"), f"MALLEE_TEST_DATABASE={TEST_DATABASE}: sqlite or postgres"
_POSTGRES: list = []


def session_postgres():
    """The session's PostgreSQL server, started at first use."""
    if not _POSTGRES:
        from pgutil import PgServer

        _POSTGRES.append(PgServer())
    return _POSTGRES[0]


def pytest_unconfigure(config):
    for pg in _POSTGRES:
        pg.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mallee(*args, timeout=60, env=None, check=False) -> subprocess.CompletedProcess:
    """Run a one-shot mallee subcommand (admin, doctor, ...)."""
    proc = subprocess.run(
        [str(MALLEE_BIN), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mallee {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


# ---------------------------------------------------------------- server


class MalleeServer:
    """One `mallee up` process (restartable on the same data dir and port)."""

    def __init__(self, data_dir: Path, log_path: Path, port: int | None = None, extra_args=(), env=None):
        self.data_dir = Path(data_dir)
        # Extra environment of the next starts (e.g. MALLEE_PAUSE_AT).
        self.env: dict[str, str] = dict(env or {})
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.database: str | None = None
        if "--database" in self.extra_args:
            self.database = self.extra_args[self.extra_args.index("--database") + 1]
        elif TEST_DATABASE == "postgres":
            self.database = session_postgres().create_database()
            self.extra_args += ["--database", self.database]
        if "--public-range" not in self.extra_args:
            # A range of its own: a second cloud on a range another one
            # holds is refused (the session's cloud holds 198.18.0.0/24).
            self.extra_args += ["--public-range", public_range_for(self.port)]
        if "--node-disk-gib" not in self.extra_args:
            # Root overlays are sparse qcow2 files, but each instance books
            # its type's full disk against the node's free space; CI
            # machines with a small disk would refuse launches the tests
            # need. Capacity itself is tested with --node-cores.
            self.extra_args += ["--node-disk-gib", "1000"]
        self.proc: subprocess.Popen | None = None
        self._log_fh = None
        self.starts = 0

    # -- lifecycle
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = STARTUP_TIMEOUT) -> "MalleeServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if not MALLEE_BIN.exists():
            raise AssertionError(f"mallee binary not found at {MALLEE_BIN} (set MALLEE_BIN or cargo build -p mallee)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log_path, "ab")
        self.starts += 1
        self._log_fh.write(f"\n===== start #{self.starts} {time.strftime('%H:%M:%S')} =====\n".encode())
        self._log_fh.flush()
        cmd = [
            str(MALLEE_BIN), "up",
            "--data-dir", str(self.data_dir),
            "--listen", f"127.0.0.1:{self.port}",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        if self not in _ACTIVE_SERVERS:
            _ACTIVE_SERVERS.append(self)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"mallee up exited with {self.proc.returncode} before becoming healthy\n{self.log_tail()}"
                )
            try:
                r = requests.get(self.endpoint + HEALTH_PATH, timeout=1)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as e:  # not listening yet
                last = repr(e)
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"mallee not healthy after {timeout}s (last: {last})\n{self.log_tail()}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int | None:
        """Send `sig` and wait; returns the exit code (SIGKILL fallback → None)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_log()
                return None
        self._close_log()
        return self.proc.returncode

    def kill(self):
        """SIGKILL (kill -9), no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def purge(self):
        """Stops the VMs of this server's node and removes its network
        namespace (`mallee purge`): VMs outlive `mallee up` by design."""
        subprocess.run(
            [str(MALLEE_BIN), "purge", "--data-dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )

    def restart(self, timeout: float = STARTUP_TIMEOUT):
        if self.running():
            rc = self.stop()
            assert rc == 0, f"clean stop exit code {rc}\n{self.log_tail()}"
        return self.start(timeout)

    def _close_log(self):
        if self._log_fh is not None:
            try:
                self._log_fh.close()
            finally:
                self._log_fh = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int | None = None) -> str:
        lines = lines or int(os.environ.get("MALLEE_LOG_TAIL", "80"))
        text = _ANSI.sub("", self.log_text()).splitlines()
        return f"--- {self.log_path} (last {lines} lines) ---\n" + "\n".join(text[-lines:])

    # -- credentials & clients
    @property
    def cred_dir(self) -> Path:
        return self.data_dir / "credentials"

    @property
    def admin(self) -> dict:
        return json.loads((self.cred_dir / "admin.json").read_text())

    def client(self, service: str = "ec2", creds: dict | None = None, endpoint: str | None = None, **cfg):
        creds = creds or self.admin
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            config=Config(
                retries={"total_max_attempts": 1},
                connect_timeout=5,
                read_timeout=cfg.pop("read_timeout", 30),
                **cfg,
            ),
        )

    def raw(self, params=None, **kw) -> "RawResponse":
        kw.setdefault("creds", self.admin)
        return raw_request(self.endpoint, params, **kw)

    def admin_cli(self, *args, **kw):
        if self.database:
            kw["env"] = {**os.environ, "MALLEE_DATABASE": self.database, **(kw.get("env") or {})}
        return run_mallee("admin", *args, "--data-dir", self.data_dir, **kw)

    def create_account(self, name: str | None = None) -> dict:
        """Create an account + access key with the admin CLI; returns key dict."""
        name = name or f"acct{uuid.uuid4().hex[:10]}"
        acc = json.loads(self.admin_cli("account", "create", name, "--json", check=True).stdout)
        key = json.loads(
            self.admin_cli("access-key", "create", "--account", name, "--json", check=True).stdout
        )
        key.setdefault("account_name", acc["account_name"])
        key.setdefault("account_id", acc["account_id"])
        return key


# ---------------------------------------------------------------- raw HTTP


@dataclass
class RawResponse:
    status: int
    headers: dict
    body: bytes
    elapsed: float = 0.0
    _xml: object = field(default=None, repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def xml(self):
        if self._xml is None:
            self._xml = ET.fromstring(self.body)
        return self._xml

    @property
    def error_code(self) -> str | None:
        try:
            el = self.xml.find(".//Errors/Error/Code")
        except ET.ParseError:
            return None
        return el.text if el is not None else None

    @property
    def error_message(self) -> str | None:
        try:
            el = self.xml.find(".//Errors/Error/Message")
        except ET.ParseError:
            return None
        return el.text if el is not None else None

    @property
    def request_id(self) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == "x-amzn-requestid":
                return v
        return None

    def find_all(self, local_name: str):
        """All elements with this local name, namespace ignored."""
        return [e for e in self.xml.iter() if e.tag.split("}")[-1] == local_name]

    def describe(self) -> str:
        return f"HTTP {self.status}\n{self.text[:2000]}"


class FixedTimeSigV4(SigV4Auth):
    """SigV4Auth with a caller-chosen timestamp (for clock-skew tests)."""

    def __init__(self, credentials, service, region, when: _dt.datetime):
        super().__init__(credentials, service, region)
        self._when = when

    def add_auth(self, request):
        request.context["timestamp"] = self._when.strftime("%Y%m%dT%H%M%SZ")
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)


def _encode_params(params) -> str:
    if params is None:
        return ""
    if isinstance(params, (str, bytes)):
        return params if isinstance(params, str) else params.decode()
    items = list(params.items()) if isinstance(params, dict) else list(params)
    return urlencode(items, doseq=False)


def raw_request(
    endpoint: str,
    params=None,
    *,
    creds: dict | None = None,
    method: str = "POST",
    path: str = "/",
    service: str = "ec2",
    region: str = REGION,
    sign: bool = True,
    when: _dt.datetime | None = None,
    headers: dict | None = None,
    body: bytes | None = None,
    timeout: float = 30,
    add_version: bool = True,
) -> RawResponse:
    """Send an EC2 Query request, SigV4-signed with botocore unless sign=False.

    params: dict or list of (k, v); Version=2016-11-15 is added unless present
    (or add_version=False).  For POST the params are the form body, for GET the
    query string.
    """
    if isinstance(params, dict):
        params = dict(params)
        if add_version:
            params.setdefault("Version", API_VERSION)
    elif isinstance(params, list):
        params = list(params)
        if add_version and not any(k == "Version" for k, _ in params):
            params.append(("Version", API_VERSION))
    encoded = _encode_params(params)
    hdrs = {}
    url = endpoint.rstrip("/") + path
    if method == "GET":
        if encoded:
            url += "?" + encoded
        data = body
    else:
        data = body if body is not None else encoded.encode()
        hdrs["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    if headers:
        hdrs.update(headers)
    req = AWSRequest(method=method, url=url, data=data, headers=hdrs)
    if sign:
        c = Credentials(creds["access_key_id"], creds["secret_access_key"])
        signer = FixedTimeSigV4(c, service, region, when or _dt.datetime.now(_dt.timezone.utc))
        signer.add_auth(req)
    prepared = req.prepare()
    t0 = time.monotonic()
    r = requests.request(
        prepared.method, prepared.url, headers=dict(prepared.headers), data=prepared.body, timeout=timeout
    )
    return RawResponse(r.status_code, dict(r.headers), r.content, time.monotonic() - t0)


def assert_aws_error(resp: RawResponse, code: str, status: int | tuple | None):
    """Assert an AWS EC2-style XML error with the given code (and HTTP status)."""
    ctx = resp.describe()
    assert resp.error_code == code, f"expected error code {code}, got {resp.error_code!r}\n{ctx}"
    if status is not None:
        allowed = status if isinstance(status, tuple) else (status,)
        assert resp.status in allowed, f"expected HTTP {status}, got {resp.status}\n{ctx}"
    root = resp.xml
    assert root.tag == "Response", f"error root element must be <Response>\n{ctx}"
    assert root.find("Errors/Error/Message") is not None, f"error without <Message>\n{ctx}"
    assert (root.findtext("RequestID") or "").strip(), f"error without <RequestID>\n{ctx}"
    assert resp.request_id, f"no x-amzn-RequestId header\n{ctx}"


# ---------------------------------------------------------------- aws cli


class AwsCli:
    def __init__(self, server: MalleeServer, creds: dict | None = None, home: Path | None = None):
        self.server = server
        self.creds = creds
        self.home = home

    def env(self, extra: dict | None = None) -> dict:
        creds = self.creds or self.server.admin
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=creds["access_key_id"],
            AWS_SECRET_ACCESS_KEY=creds["secret_access_key"],
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_MAX_ATTEMPTS="1",
            AWS_PAGER="",
        )
        if self.home:
            env["HOME"] = str(self.home)
        if extra:
            env.update(extra)
        return env

    def run(self, *args, check=True, env_extra=None, endpoint=None, timeout=60) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable, "-m", "awscli",
            "--endpoint-url", endpoint or self.server.endpoint,
            "--output", "json",
            *map(str, args),
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=self.env(env_extra), timeout=timeout, stdin=subprocess.DEVNULL
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(map(str, args))} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args, **kw):
        out = self.run(*args, **kw).stdout
        return json.loads(out) if out.strip() else {}


# ---------------------------------------------------------------- store snapshot


def snapshot(ec2) -> dict:
    """Everything observable in the Foundation store for one account."""
    kps = ec2.describe_key_pairs(IncludePublicKey=True)["KeyPairs"]
    keys = sorted(
        (
            k["KeyName"],
            k.get("KeyPairId"),
            k.get("KeyFingerprint"),
            k.get("KeyType"),
            tuple(sorted((t["Key"], t["Value"]) for t in k.get("Tags", []))),
        )
        for k in kps
    )
    tags = []
    for page in ec2.get_paginator("describe_tags").paginate(PaginationConfig={"PageSize": 1000}):
        tags.extend((t["ResourceId"], t["ResourceType"], t["Key"], t["Value"]) for t in page["Tags"])
    return {"keys": keys, "tags": sorted(tags)}


def unique(prefix="t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def session_tmp():
    d = Path(tempfile.mkdtemp(prefix="mallee-acc-"))
    yield d
    if os.environ.get("MALLEE_KEEP_TMP") != "1":
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def server(session_tmp):
    # Developers running several suites side by side on one host give each
    # session cloud its own public range; one range per host otherwise.
    extra = ["--public-range", os.environ.get("MALLEE_TEST_SESSION_RANGE") or "198.18.0.0/24"]
    # Its Prometheus endpoint (test_metrics.py).
    metrics_port = free_port()
    extra += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    srv = MalleeServer(session_tmp / "shared-data", session_tmp / "shared-server.log", extra_args=extra)
    srv.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    _SESSION_SERVER.append(srv)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        srv.kill()
        srv.purge()
        _SESSION_SERVER.clear()


@pytest.fixture
def mallee_factory(tmp_path):
    """Factory: mallee_factory(name='a', start=True, port=None) -> MalleeServer."""
    servers: list[MalleeServer] = []

    def make(name: str = "srv", start: bool = True, port: int | None = None, extra_args=(), env=None) -> MalleeServer:
        srv = MalleeServer(
            tmp_path / f"{name}-data", tmp_path / f"{name}.log", port=port, extra_args=extra_args, env=env
        )
        servers.append(srv)
        _ACTIVE_SERVERS.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in servers:
        srv.kill()
        srv.purge()


@pytest.fixture
def ec2(server):
    return server.client("ec2")


@pytest.fixture
def aws_cli(server, tmp_path):
    return AwsCli(server, home=tmp_path)


@pytest.fixture
def raw(server):
    return server.raw


@pytest.fixture(scope="session")
def other_account(server):
    """A second account (created with the admin CLI) with its own access key."""
    return server.create_account()


# ---------------------------------------------------------------- failure logs


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _ACTIVE_SERVERS.clear()
    # The session cloud only stops at the end of the run: if it has died,
    # every later test would fail on a closed connection and bury the cause
    # hundreds of reports up. Stop the run here and say why, last.
    for srv in _SESSION_SERVER:
        if srv.proc is not None and srv.proc.poll() is not None:
            free = shutil.disk_usage(srv.data_dir).free / 2**30
            pytest.exit(
                f"the session cloud (mallee up) exited with code {srv.proc.returncode} during the run, "
                f"before {item.nodeid}; {free:.1f} GiB free on its disk\n{srv.log_tail()}",
                returncode=1,
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seen = set()
        for srv in _ACTIVE_SERVERS + _SESSION_SERVER:
            if id(srv) in seen:
                continue
            seen.add(id(srv))
            report.sections.append((f"mallee server log {srv.log_path.name}", srv.log_tail()))


# ---------------------------------------------------------------- ssh keys


def ssh_keygen(tmp_dir: Path, key_type: str = "rsa", bits: int = 2048, fmt: str | None = None) -> tuple[Path, str]:
    """Generate a key with ssh-keygen; returns (private key path, public key line)."""
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    path = tmp_dir / f"id_{key_type}_{uuid.uuid4().hex[:8]}"
    cmd = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "acceptance@test", "-f", str(path)]
    if key_type == "rsa":
        cmd += ["-b", str(bits)]
    if fmt:
        cmd += ["-m", fmt]
    subprocess.run(cmd, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return path, Path(str(path) + ".pub").read_text().strip()
