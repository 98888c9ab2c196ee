"""The bare-metal inventory as an administrator keeps it, with the seed's
commands (`metaleuca-…` and `mallee metal …`), and the manual power
workflow, on a provisioning cloud without machines (metalutil's
`machineless_cloud`): systems use the manual power driver, so the engine
asks the operator to power them on or off and waits.

- distros, groups, systems and installer profiles are added, described,
  edited and removed; `render-answer-file` shows the answer file a system
  would get, with the system's and the profile's variables and the
  system's new host name after `edit-system`; removing a group that still
  has systems, or a profile being installed, is refused.
- a reserved system gets a profile (`set-profile`), netboot on and off;
  `reboot-system` with netboot on reinstalls it (provisioning, waiting for
  the operator to power it on); `release-systems` waits for the operator
  to power it off, and `confirm-powered-off` makes it free.

Needs root, ip and dnsmasq; no QEMU machine is started.
"""

from __future__ import annotations

import json

import pytest

from metalutil import Metaleuca, machineless_cloud

NET = "10.254.10"

TEMPLATE = """hostname={{ hostname }}
system={{ system }}
profile={{ profile }}
role={{ role | none }}
slot={{ slot | none }}
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with machineless_cloud(tmp_path_factory.mktemp("metal-inventory"), "inv", NET) as (srv, _lab):
        yield srv


@pytest.fixture
def ml(cloud, tmp_path):
    return Metaleuca(cloud, tmp_path / "bin")


def refused(proc, code: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert f": {code}: " in proc.stderr, proc.stderr
    return proc.stderr


def system(ml, name: str) -> dict:
    (s,) = ml.json("describe-systems", "-n", name)
    return s


def test_inventory_is_added_described_edited_and_removed(ml, tmp_path):
    template = tmp_path / "answers.tmpl"
    template.write_text(TEMPLATE)

    ml.run("add-distro", "inst", "--kernel", "/srv/inst/vmlinuz", "--initrd", "/srv/inst/initrd.img",
           "--kernel-args", "console=ttyS0")
    assert ["DISTRO", "inst", "/srv/inst/vmlinuz", "/srv/inst/initrd.img", "console=ttyS0"] in ml.lines(
        "describe-distros"
    )
    assert ml.mallee("add-group", "rack2", "--description", "spare rack").stdout.split() == ["GROUP", "rack2"]
    assert ml.lines("describe-system-groups", "-g", "rack2") == [["GROUP", "rack2", "0", "0", "spare rack", "none"]]
    ml.run("add-profile", "answers", "--distro", "inst", "--template", template, "--var", "role=db")
    assert ["PROFILE", "answers", "installer:inst"] in ml.lines("describe-profiles")

    added = ml.lines("add-system", "--name", "x1", "--mac", "52:54:00:4d:0a:01", "--ip", f"{NET}.21",
                     "--group", "rack2", "--var", "slot=7")
    assert added[0][:7] == ["SYSTEM", "x1", "52:54:00:4d:0a:01", f"{NET}.21", "rack2", "manual", "free"], added
    answer = ml.run("render-answer-file", "-n", "x1", "-p", "answers").stdout
    assert "hostname=x1\nsystem=x1\nprofile=answers\nrole=db\nslot=7\n" in answer, answer

    ml.mallee("edit-system", "--name", "x1", "--hostname", "web1", "--var", "slot=8")
    edited = system(ml, "x1")
    assert (edited["hostname"], json.loads(edited["variables"])) == ("web1", {"slot": "8"}), edited
    answer = ml.run("render-answer-file", "-i", f"{NET}.21", "-p", "answers").stdout
    assert "hostname=web1\nsystem=x1\nprofile=answers\nrole=db\nslot=8\n" in answer, answer

    refused(ml.run("remove-group", "rack2", check=False), "Conflict")
    assert ml.run("remove-system", "x1").stdout.split() == ["SYSTEM", "x1"]
    refused(ml.run("describe-systems", "-n", "x1", check=False), "InvalidSystem.NotFound")
    ml.run("remove-group", "rack2")
    assert "rack2" not in [g[1] for g in ml.lines("describe-system-groups")]
    ml.run("remove-profile", "answers")
    assert "answers" not in [p[1] for p in ml.lines("describe-profiles")]
    ml.run("remove-distro", "inst")
    assert "inst" not in [d[1] for d in ml.lines("describe-distros")]
    refused(ml.run("remove-distro", "inst", check=False), "InvalidDistro.NotFound")


def test_manual_power_reinstall_and_release(ml, tmp_path):
    image = tmp_path / "tiny.raw"
    image.write_bytes(b"\0" * 4096)
    ml.run("add-group", "rack3")
    ml.run("add-profile", "tiny", "--location", image)
    ml.run("add-system", "--name", "y1", "--mac", "52:54:00:4d:0a:11", "--ip", f"{NET}.31", "--group", "rack3")
    ml.run("reserve-systems", "-i", f"{NET}.31", "-u", "ops")
    users = ml.lines("describe-system-users", "-u", "ops")
    assert [u[:4] for u in users] == [["USER", "ops", "y1", f"{NET}.31"]], users

    assert ml.lines("set-profile", "-n", "y1", "-p", "tiny")[0][6:9] == ["reserved", "ops", "tiny"]
    assert system(ml, "y1")["netboot"] == "false"
    assert ml.lines("enable-netboot", "-n", "y1")[0][9] == "netboot"
    assert ml.lines("disable-netboot", "-i", f"{NET}.31")[0][9] == "local"
    ml.run("enable-netboot", "-n", "y1")

    # With netboot on and a profile, a reboot is a reinstall: the engine
    # asks the operator to power the machine on and waits.
    ml.run("reboot-system", "-n", "y1")
    s = system(ml, "y1")
    assert (s["state"], s["step"], s["lastEvent"]) == ("provisioning", "powering-on", "power on with netboot"), s
    refused(ml.run("disable-netboot", "-n", "y1", check=False), "IncorrectState")
    refused(ml.run("remove-profile", "tiny", check=False), "Conflict")

    # Released, it waits for the operator to power it off and say so.
    ml.run("release-systems", "-i", f"{NET}.31")
    assert system(ml, "y1")["state"] == "releasing"
    confirmed = ml.lines("confirm-powered-off", "-n", "y1")[0]
    assert confirmed[6:8] == ["free", ""], confirmed
    assert "owner" not in system(ml, "y1")
    assert ml.lines("describe-system-users", "-u", "ops") == []

    ml.run("remove-system", "y1")
    ml.run("remove-profile", "tiny")
    ml.run("remove-group", "rack3")
