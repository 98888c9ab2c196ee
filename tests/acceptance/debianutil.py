"""One Debian 12 tree for the tests that need real Debian: the package
test installs the .deb into a chroot of it, and the cloud-init test boots
an image made from it. It is made once with mmdebstrap
(guest/debian-cloud-image.sh base) and cached as a tarball under
target/debian-chroot; the first run takes two to three minutes."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO

CACHE = Path(os.environ.get("MALLEE_CHROOT_CACHE", str(REPO / "target" / "debian-chroot")))
BASE = CACHE / "bookworm-cloud.tar.gz"
SCRIPT = REPO / "guest" / "debian-cloud-image.sh"


def _run(*args, timeout: int) -> None:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def base_tarball() -> Path:
    """The Debian 12 tree (minbase, systemd, cloud-init, the cloud kernel)."""
    assert shutil.which("mmdebstrap"), "mmdebstrap is needed (scripts/install-deps test installs it)"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not BASE.exists():
            _run(SCRIPT, "base", BASE, timeout=1500)
    return BASE


def cloud_image(out: Path) -> Path:
    """vmlinuz, initrd.img and root.qcow2 of a Debian 12 cloud-init image
    built from the shared tree into `out`."""
    _run(SCRIPT, "image", out, base_tarball(), timeout=600)
    return out
