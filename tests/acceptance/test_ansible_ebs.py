"""Ansible's `amazon.aws` `ec2_key`, `ec2_vol`, `ec2_snapshot` and
`ec2_eip` modules, unchanged, against the session server (the runner of
test_ansible.py), in a fresh account: one playbook imports a key, makes a
volume, snapshots it and allocates a tagged elastic IP; a second run of
the same playbook reports no change at all; a third grows the volume
(`modify_volume`: ModifyVolume); a last one removes everything. No instance is needed:
`ec2_instance` runs in test_tools_instances.py."""

import uuid

from conftest import ZONE, ssh_keygen
from test_ansible import PLAY, run_playbook

PRESENT = PLAY + """    - name: key
      amazon.aws.ec2_key:
        name: "{{ group }}"
        key_material: "{{ public_key }}"
        tags: {env: test}
    - name: volume
      amazon.aws.ec2_vol:
        name: "{{ group }}"
        zone: "{{ zone }}"
        volume_size: "{{ size }}"
        volume_type: gp2
        modify_volume: true
        tags: {env: test}
      register: vol
    - name: snapshot
      amazon.aws.ec2_snapshot:
        volume_id: "{{ vol.volume_id }}"
        description: made by ansible
        snapshot_tags: {env: test}
        last_snapshot_min_age: 60
        wait: true
        wait_timeout: 120
    - name: address
      amazon.aws.ec2_eip:
        in_vpc: true
        reuse_existing_ip_allowed: true
        tag_name: Name
        tag_value: "{{ group }}"
        tags: {Name: "{{ group }}"}
"""

ABSENT = PLAY + """    - name: address
      when: public_ip != ""
      amazon.aws.ec2_eip:
        public_ip: "{{ public_ip }}"
        state: absent
    - name: snapshot
      when: snapshot_id != ""
      amazon.aws.ec2_snapshot:
        snapshot_id: "{{ snapshot_id }}"
        state: absent
    - name: volume
      amazon.aws.ec2_vol:
        name: "{{ group }}"
        state: absent
    - name: key
      amazon.aws.ec2_key:
        name: "{{ group }}"
        state: absent
"""


def test_key_volume_snapshot_and_address_playbooks_are_idempotent(server, tmp_path):
    creds = server.create_account()
    ec2 = server.client("ec2", creds=creds)
    key = {"access_key_id": creds["access_key_id"], "secret_access_key": creds["secret_access_key"]}
    _, public = ssh_keygen(tmp_path / "keys", "rsa")
    name = f"ansible-{uuid.uuid4().hex[:8]}"

    def run(tag, playbook, **extra):
        return run_playbook(tmp_path / tag, server.endpoint, key, name, playbook,
                            {"zone": ZONE, "public_key": public, "size": 1, **extra})

    first = run("first", PRESENT)
    for task in ("key", "volume", "snapshot", "address"):
        assert first[task]["changed"], (task, first[task])
    (made_key,) = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert made_key["KeyFingerprint"] == first["key"]["key"]["fingerprint"]
    assert {t["Key"]: t["Value"] for t in made_key["Tags"]} == {"env": "test"}
    # ec2_key imports the material once more under a temporary name to
    # learn its fingerprint; nothing of that is left.
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == [name]
    vol_id = first["volume"]["volume_id"]
    (vol,) = ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"]
    assert (vol["Size"], vol["VolumeType"], vol["State"], vol["AvailabilityZone"]) == (1, "gp2", "available", ZONE)
    assert {t["Key"]: t["Value"] for t in vol["Tags"]} == {"Name": name, "env": "test"}
    snap_id = first["snapshot"]["snapshot_id"]
    (snap,) = ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"]
    assert (snap["VolumeId"], snap["State"], snap["Description"]) == (vol_id, "completed", "made by ansible")
    assert {t["Key"]: t["Value"] for t in snap["Tags"]} == {"Name": name, "env": "test"}
    public_ip = first["address"]["public_ip"]
    (address,) = ec2.describe_addresses(PublicIps=[public_ip])["Addresses"]
    assert address["AllocationId"] == first["address"]["allocation_id"]
    assert address["Tags"] == [{"Key": "Name", "Value": name}]

    second = run("second", PRESENT)
    for task in ("key", "volume", "snapshot", "address"):
        assert not second[task]["changed"], (task, second[task])
    assert second["volume"]["volume_id"] == vol_id
    assert second["snapshot"]["snapshot_id"] == snap_id
    assert second["address"]["public_ip"] == public_ip
    assert len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 1
    assert len(ec2.describe_addresses()["Addresses"]) == 1

    grown = run("grown", PRESENT, size=2)
    assert grown["volume"]["changed"], grown["volume"]
    assert not any(grown[t]["changed"] for t in ("key", "snapshot", "address"))
    assert ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["Size"] == 2

    gone = run("gone", ABSENT, public_ip=public_ip, snapshot_id=snap_id)
    for task in ("address", "snapshot", "volume", "key"):
        assert gone[task]["changed"], (task, gone[task])
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    assert [v for v in ec2.describe_volumes()["Volumes"] if v["State"] != "deleted"] == []
