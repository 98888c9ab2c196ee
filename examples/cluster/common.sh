# Shared by the cluster scripts: settings, and the AWS CLI calls they make.
# Settings come from the environment, as the hadoop-ec2 scripts took them
# from hadoop-ec2-env.sh:
#   CLUSTER_IMAGE      AMI to launch (required by launch-cluster.sh)
#   CLUSTER_KEY        key pair name (required by launch-cluster.sh)
#   CLUSTER_KEY_FILE   its private key, for login.sh (default: ./$CLUSTER_KEY.pem)
#   CLUSTER_TYPE       instance type (default: t1.micro)
#   CLUSTER_SSH_FROM   CIDR allowed to ssh to the cluster (default: 0.0.0.0/0)
# and the AWS CLI's own (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, credentials).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLUSTER_TYPE="${CLUSTER_TYPE:-t1.micro}"
CLUSTER_SSH_FROM="${CLUSTER_SSH_FROM:-0.0.0.0/0}"
AWS="${AWS:-aws}"

say() { printf '%s\n' "$*" >&2; }
die() { say "$(basename "$0"): $*"; exit 1; }

# instances NAME [ROLE]: ids of the cluster's live instances (of one role).
instances() {
    local filters=(Name=tag:cluster,Values="$1"
        Name=instance-state-name,Values=pending,running,stopping,stopped)
    [[ -n "${2:-}" ]] && filters+=(Name=tag:role,Values="$2")
    $AWS ec2 describe-instances --filters "${filters[@]}" \
        --query 'Reservations[].Instances[].InstanceId' --output text
}

# field ID QUERY: one field of one instance (QUERY relative to the instance).
field() {
    $AWS ec2 describe-instances --instance-ids "$1" \
        --query "Reservations[0].Instances[0].$2" --output text
}

# wait_state STATE ID...: polls every 2 s until every instance is in STATE
# (10 minutes at most).
wait_state() {
    local want="$1"; shift
    local deadline=$((SECONDS + 600)) states
    while :; do
        states="$($AWS ec2 describe-instances --instance-ids "$@" \
            --query 'Reservations[].Instances[].State.Name' --output text)"
        [[ -z "$(tr '\t ' '\n\n' <<<"$states" | grep -v "^$want\$" | grep -v '^$' || true)" ]] && return 0
        (( SECONDS < deadline )) || die "instances $* did not reach $want: $states"
        sleep 2
    done
}
