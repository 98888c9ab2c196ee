"""Installing what a host needs: `mallee doctor --fix` (the packages the
failed checks name, apt-get as root, every command said before it runs)
and `scripts/install-deps` (what the README's two commands install), which
install nothing and need no root when nothing is missing.

The install itself is apt-get's (a real run would download QEMU into the
test host, so it is not repeated here); what is checked is the plan, as a
user without root is told it exactly, and the no-op on a host that has
everything."""

from __future__ import annotations

import os
import shutil
import subprocess

from conftest import MALLEE_BIN, REPO, run_mallee

# setpriv (util-linux), by its full path: the tests empty PATH.
NOBODY = [shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def bookworm() -> bool:
    try:
        return "VERSION_CODENAME=bookworm" in open("/etc/os-release").read()
    except OSError:
        return False


def test_doctor_fix_without_root_says_exactly_what_it_would_install(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(tmp_path, 0o777)
    os.chmod(data, 0o777)
    empty = tmp_path / "emptybin"
    empty.mkdir()
    # An empty PATH: doctor finds no node program (but nft, dnsmasq and ip,
    # which it also looks for in /usr/sbin and /sbin).
    proc = subprocess.run(
        [*NOBODY, str(MALLEE_BIN), "doctor", "--fix", "--data-dir", str(data)],
        env={"PATH": str(empty), "HOME": str(tmp_path), "LANG": "C"},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "FAIL  node        qemu-system-x86_64" in out, out
    assert "installing packages needs root: run `sudo mallee doctor --fix`" in out, out
    assert "apt-get update -q" in out, out
    if bookworm():
        assert "apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils" in out, out
    else:
        assert "qemu-system-x86" in out and "qemu-utils" in out, out
    assert "mallee: running:" not in out, "nothing may run without root"


def test_doctor_fix_installs_nothing_when_nothing_is_missing(tmp_path):
    plain = run_mallee("doctor", "--data-dir", tmp_path / "d", timeout=60)
    fix = run_mallee("doctor", "--fix", "--data-dir", tmp_path / "d", timeout=120)
    assert fix.returncode == plain.returncode, fix.stdout + fix.stderr
    if plain.returncode == 0:
        assert "running: apt-get" not in fix.stdout, fix.stdout


def test_install_deps_needs_no_root_when_everything_is_there():
    # The test command ran it first, so everything is there now: a user
    # without root gets told so, and nothing runs.
    proc = subprocess.run(
        [*NOBODY, str(REPO / "scripts" / "install-deps"), "test"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "every package present (test)" in proc.stderr, proc.stderr
    assert "running:" not in proc.stderr
