"""DescribeVolumes pages as AWS does: `aws ec2 describe-volumes` sends
MaxResults=1000 by default (awscli's EC2 paginator), AWS answers at most
500 volumes a page for anything above 500, and below 5 is an error. Runs
against the session's `mallee up`; volumes need no VM."""

from __future__ import annotations

import uuid

from conftest import ZONE, AwsCli


def test_the_cli_default_page_size_works_and_pages_cap_at_500(server, tmp_path):
    other = server.create_account()
    ec2_b = server.client("ec2", creds=other)
    tag = uuid.uuid4().hex[:8]
    ids = [
        ec2_b.create_volume(
            Size=1,
            AvailabilityZone=ZONE,
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "paging", "Value": tag}]}],
        )["VolumeId"]
        for _ in range(7)
    ]
    try:
        # The plain CLI command (MaxResults=1000 on the wire) lists them all.
        cli = AwsCli(server, creds=other, home=tmp_path)
        listed = cli.json("ec2", "describe-volumes")
        assert sorted(v["VolumeId"] for v in listed["Volumes"]) == sorted(ids)
        # Above 500 is capped, not refused; pages of 5 walk through all.
        assert len(ec2_b.describe_volumes(MaxResults=5000)["Volumes"]) == 7
        first = ec2_b.describe_volumes(MaxResults=5)
        assert len(first["Volumes"]) == 5 and first.get("NextToken")
        rest = ec2_b.describe_volumes(MaxResults=5, NextToken=first["NextToken"])
        assert sorted(v["VolumeId"] for v in first["Volumes"] + rest["Volumes"]) == sorted(ids)
        assert "NextToken" not in rest or not rest["NextToken"]
        err = server.raw({"Action": "DescribeVolumes", "MaxResults": "4"}, creds=other)
        assert err.status == 400 and err.error_code == "InvalidParameterValue", err.text
        assert err.request_id
    finally:
        for vid in ids:
            ec2_b.delete_volume(VolumeId=vid)
