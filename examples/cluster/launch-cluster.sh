#!/usr/bin/env bash
# launch-cluster.sh NAME N: a master, then N slaves that find it by its
# private DNS name, as hadoop-ec2's launch-cluster did. Uses only the AWS
# CLI (settings: see common.sh). Prints the master's public DNS name.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -eq 2 && "$2" =~ ^[0-9]+$ ]] || die "usage: launch-cluster.sh NAME N"
name="$1" count="$2"
: "${CLUSTER_IMAGE:?set CLUSTER_IMAGE to the AMI to launch}"
: "${CLUSTER_KEY:?set CLUSTER_KEY to a key pair name}"
[[ -z "$(instances "$name")" ]] || die "cluster $name is already running"

# One group for the cluster: its members talk freely, ssh from outside.
if ! group="$($AWS ec2 describe-security-groups --group-names "$name" \
        --query 'SecurityGroups[0].GroupId' --output text 2>/dev/null)"; then
    say "creating security group $name"
    group="$($AWS ec2 create-security-group --group-name "$name" \
        --description "cluster $name" --query GroupId --output text)"
    $AWS ec2 authorize-security-group-ingress --group-id "$group" \
        --ip-permissions "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$group}]" >/dev/null
    $AWS ec2 authorize-security-group-ingress --group-id "$group" \
        --protocol tcp --port 22 --cidr "$CLUSTER_SSH_FROM" >/dev/null
fi

launch() { # launch ROLE COUNT USER-DATA-FILE
    $AWS ec2 run-instances --image-id "$CLUSTER_IMAGE" --instance-type "$CLUSTER_TYPE" \
        --key-name "$CLUSTER_KEY" --security-group-ids "$group" \
        --count "$2" --user-data "file://$3" \
        --tag-specifications "ResourceType=instance,Tags=[{Key=cluster,Value=$name},{Key=role,Value=$1}]" \
        --query 'Instances[].InstanceId' --output text
}

say "launching the master of $name"
master="$(launch master 1 "$here/master.sh")"
wait_state running "$master"
master_name="$(field "$master" PrivateDnsName)"
say "master $master is running: $master_name"

if (( count > 0 )); then
    slave_data="$(mktemp)"
    trap 'rm -f "$slave_data"' EXIT
    sed "s/@MASTER@/$master_name/" "$here/slave.sh" > "$slave_data"
    say "launching $count slaves"
    # shellcheck disable=SC2046
    wait_state running $(launch slave "$count" "$slave_data")
fi
say "cluster $name is up; log in with: login.sh $name"
field "$master" PublicDnsName
