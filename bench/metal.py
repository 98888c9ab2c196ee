"""Bare-metal provisioning time under TCG: run-instances → running for 1, 2
and 3 QEMU machines provisioned in parallel (PXE, deploy agent, image
written and verified, reboot from disk, check-in), each count on a fresh
`mallee up` and a fresh lab (network namespace, bridge, empty disks).
Prints a markdown table; writes the raw numbers as JSON.

Reuses the acceptance tests' lab (tests/acceptance/metalutil.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "acceptance"))
from metalutil import Lab, Metaleuca, build_images  # noqa: E402

NET = "10.254.9"
STEPS = ["powering-on", "dhcp", "netboot", "deploying", "rebooting"]


class Server:
    def __init__(self, mallee: Path, data_dir: Path, log: Path, lab: Lab, images: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [
                str(mallee), "up", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{self.port}",
                "--no-node", "--metal-interface", "br0", "--metal-address", f"{NET}.1/24",
                "--metal-netns", lab.netns, "--metal-http-port", "8782",
                "--metal-agent-dir", str(images),
            ],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/_mallee/health", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mallee up did not start (see {log})")
                time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


def measure(mallee: Path, images: Path, count: int, work: Path, timeout: float) -> dict:
    lab = Lab(f"mmbench{os.getpid()}", f"{NET}.1", 24, work / "lab")
    server = None
    try:
        machines = [lab.add_machine(f"m{i}", f"52:54:00:4d:09:0{i}", f"{NET}.1{i}") for i in (1, 2, 3)]
        server = Server(mallee, work / "data", work / "mallee.log", lab, images)
        ml = Metaleuca(server, work / "bin")
        rack = {
            "groups": [{"name": "rack"}],
            "profiles": [{
                "name": "debian-test",
                "location": str(images / "installed.raw"),
                "sha256": (images / "installed.sha256").read_text().split()[0],
            }],
            "systems": [
                {"name": m["name"], "mac": m["mac"], "ip": m["ip"], "group": "rack", "power": m["power"]}
                for m in machines
            ],
        }
        (work / "rack.json").write_text(json.dumps(rack))
        ml.mallee("import", work / "rack.json")
        load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        ml.run("run-instances", "-n", str(count), "-g", "rack", "-p", "debian-test", "-u", "bench")
        names = [f"m{i}" for i in range(1, count + 1)]
        seen: dict[str, dict[str, float]] = {n: {} for n in names}
        while True:
            now = time.monotonic() - t0
            items = {i["name"]: i for i in ml.json("describe-instances", "-u", "bench")}
            for n in names:
                i = items[n]
                if i["state"] == "failed":
                    raise RuntimeError(f"{n} failed: {i.get('reason')}")
                key = "running" if i["instanceState"] == "running" else i.get("step", i["state"])
                seen[n].setdefault(key, now)
            if all("running" in seen[n] for n in names):
                break
            if now > timeout:
                raise RuntimeError(f"not running after {timeout}s: {seen}")
            time.sleep(0.5)
        wall = time.monotonic() - t0
        ml.run("terminate-instances", "-u", "bench")
        return {
            "machines": count,
            "all_running_s": round(wall, 1),
            "per_machine_s": {n: round(seen[n]["running"], 1) for n in names},
            "steps_s": {n: {k: round(v, 1) for k, v in seen[n].items()} for n in names},
            "load_average_before": load_before,
        }
    finally:
        if server is not None:
            server.stop()
        lab.destroy(work / "data" / "metal" / "netboot" / "dnsmasq.pid")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mallee", required=True)
    ap.add_argument("--counts", default="1 2 3")
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    images = build_images()
    results = []
    for count in map(int, a.counts.split()):
        with tempfile.TemporaryDirectory(prefix="mallee-bench-metal-") as tmp:
            print(f"== {count} machine(s)", file=sys.stderr)
            results.append(measure(Path(a.mallee), images, count, Path(tmp), a.timeout))
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cores": os.cpu_count(), "kernel": platform.release()},
        "image_bytes": (images / "installed.raw").stat().st_size,
        "results": results,
    }
    Path(a.out).write_text(json.dumps(doc, indent=1))
    base = next((r["all_running_s"] for r in results if r["machines"] == 1), None)
    print(f"Bare-metal provisioning under TCG, {doc['date']}; {doc['host']['cores']} cores; "
          f"image {doc['image_bytes'] >> 20} MiB\n")
    print("| machines | all running (s) | per machine (s) | vs 1 machine | steps of the first machine (s) |")
    print("|---:|---:|---|---:|---|")
    for r in results:
        first = r["steps_s"]["m1"]
        steps = ", ".join(f"{k} {first[k]}" for k in STEPS + ["running"] if k in first)
        ratio = f"{r['all_running_s'] / base:.2f}x" if base else "-"
        per = " / ".join(str(v) for v in r["per_machine_s"].values())
        print(f"| {r['machines']} | {r['all_running_s']} | {per} | {ratio} | {steps} |")


if __name__ == "__main__":
    main()
