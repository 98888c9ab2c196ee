"""The Debian package: built from the workspace (`scripts/build-deb`, with
the binary under test), installed with apt-get into a clean Debian 12
chroot (the Debian tree debianutil shares with the cloud-init image test:
minbase + systemd + cloud-init, made once with mmdebstrap), its units
validated there with `systemd-analyze verify --root`, then removed and
purged. These machines run no systemd as PID 1, so the units are verified,
not started; that VMs survive a unit restart rests on KillMode=process
(checked here) and on the node adopting its VMs (test_crash.py).

Also: under systemd (JOURNAL_STREAM naming its standard error) mallee logs
each line with its syslog priority and no timestamp, for the journal."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MALLEE_BIN, REPO, free_port
from debianutil import base_tarball

UNITS = ("mallee-controller.service", "mallee-node.service", "mallee-up.service")


def sh(*args, timeout=600, check=True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
    if check:
        assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture
def chroot(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    sh("tar", "-C", root, "-xzf", base_tarball())
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    sh("mount", "-t", "proc", "proc", root / "proc")
    try:
        yield root
    finally:
        sh("umount", "-l", root / "proc", check=False)
        shutil.rmtree(root, ignore_errors=True)


def inside(root: Path, command: str, check=True) -> subprocess.CompletedProcess:
    return sh("chroot", root, "/bin/sh", "-c", f"DEBIAN_FRONTEND=noninteractive {command}", check=check)


def build_deb(out: Path) -> Path:
    proc = sh(REPO / "scripts" / "build-deb", "--binary", MALLEE_BIN, "--out", out)
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert deb.exists() and deb.name.endswith("_amd64.deb"), proc.stdout
    return deb


# The first run makes the Debian tree (mmdebstrap, two to three minutes).
@pytest.mark.timeout(1500)
def test_the_deb_installs_into_a_clean_debian_12_and_its_units_verify(tmp_path, chroot):
    deb = build_deb(tmp_path / "deb")
    fields = {f: sh("dpkg-deb", "-f", deb, f).stdout.strip() for f in ("Package", "Depends", "Recommends")}
    assert fields["Package"] == "mallee"
    assert "qemu-system-x86" in fields["Recommends"] and "nftables" in fields["Recommends"], fields
    contents = sh("dpkg-deb", "-c", deb).stdout
    for path in ["./usr/bin/mallee", "./etc/mallee/controller.env", "./etc/mallee/node.env", "./etc/mallee/up.env",
                 *(f"./lib/systemd/system/{u}" for u in UNITS)]:
        assert path in contents, f"{path} not in the package:\n{contents}"

    shutil.copy(deb, chroot / "tmp" / deb.name)
    inside(chroot, "apt-get update -q")
    inside(chroot, f"apt-get install -y -q --no-install-recommends /tmp/{deb.name}")
    assert "install ok installed" in inside(chroot, "dpkg-query -W -f='${Status}' mallee").stdout
    assert inside(chroot, "mallee --version").stdout.startswith("mallee ")
    # The system user the controller runs as, and its data directory.
    user = inside(chroot, "getent passwd mallee").stdout.strip().split(":")
    assert int(user[2]) < 1000 and user[5] == "/var/lib/mallee" and user[6] in ("/usr/sbin/nologin", "/bin/false"), user
    owner = inside(chroot, "stat -c %U:%a /var/lib/mallee /etc/mallee/node.env").stdout.split()
    assert owner == ["mallee:750", "root:640"], owner
    conffiles = inside(chroot, "dpkg-query -W -f='${Conffiles}' mallee").stdout
    for env in ("controller", "node", "up"):
        assert f"/etc/mallee/{env}.env" in conffiles, conffiles

    # The units, as systemd reads them in the installed system.
    verify = sh("systemd-analyze", "verify", f"--root={chroot}", *UNITS, check=False)
    assert verify.returncode == 0 and not verify.stdout.strip() and not verify.stderr.strip(), (
        verify.stdout + verify.stderr)
    units = {u: (chroot / "lib" / "systemd" / "system" / u).read_text() for u in UNITS}
    for name, text in units.items():
        assert "Restart=on-failure" in text, name
        assert "ExecStart=/usr/bin/mallee " in text, name
    assert "User=mallee" in units["mallee-controller.service"]
    for name in ("mallee-node.service", "mallee-up.service"):
        # Root (namespaces, QEMU); VMs are not in the stop's kill scope.
        assert "User=" not in units[name] and "KillMode=process" in units[name], name
        assert "RuntimeDirectory=" not in units[name], "/run/mallee holds the VMs' pidfiles and sockets"

    # Removal keeps the settings; purge drops them; data and user stay.
    inside(chroot, "apt-get remove -y -q mallee")
    assert not (chroot / "usr" / "bin" / "mallee").exists()
    assert (chroot / "etc" / "mallee" / "node.env").exists()
    inside(chroot, "apt-get purge -y -q mallee")
    assert not (chroot / "etc" / "mallee" / "node.env").exists()
    assert (chroot / "var" / "lib" / "mallee").is_dir()


def test_under_systemd_lines_carry_their_priority_for_the_journal(tmp_path):
    log = tmp_path / "stderr.log"
    port = free_port()
    with open(log, "wb") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "RUST_LOG": "info"}
        proc = subprocess.Popen(
            [str(MALLEE_BIN), "up", "--no-node", "--data-dir", str(tmp_path / "data"),
             "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while b"mallee is up" not in log.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    up = next(line for line in lines if "mallee is up" in line)
    assert up.startswith("<6> INFO "), up
    assert all(line.startswith("<") for line in lines), lines
    assert "\x1b[" not in log.read_text(), "no colours into the journal"
