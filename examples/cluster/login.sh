#!/usr/bin/env bash
# login.sh NAME [COMMAND…]: ssh to the cluster's master by its public DNS
# name (the host resolves it through the cloud's DNS server), as
# hadoop-ec2's login did.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -ge 1 ]] || die "usage: login.sh NAME [COMMAND...]"
name="$1"; shift
master="$(instances "$name" master)"
[[ -n "$master" ]] || die "cluster $name has no master"
host="$(field "$master" PublicDnsName)"
[[ -n "$host" && "$host" != None ]] || die "the master of $name has no public DNS name"
exec ssh -i "${CLUSTER_KEY_FILE:-./$CLUSTER_KEY.pem}" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "root@$host" "$@"
