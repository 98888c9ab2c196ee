#!/usr/bin/env bash
# terminate-cluster.sh NAME: ends every instance of the cluster and removes
# its security group, as hadoop-ec2's terminate-cluster did.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $# -eq 1 ]] || die "usage: terminate-cluster.sh NAME"
name="$1"
ids="$(instances "$name")"
if [[ -n "$ids" ]]; then
    say "terminating $(wc -w <<<"$ids") instances of $name"
    # shellcheck disable=SC2086
    $AWS ec2 terminate-instances --instance-ids $ids >/dev/null
    # shellcheck disable=SC2086
    wait_state terminated $ids
fi
if $AWS ec2 describe-security-groups --group-names "$name" >/dev/null 2>&1; then
    $AWS ec2 delete-security-group --group-name "$name"
fi
say "cluster $name terminated"
