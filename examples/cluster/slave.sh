#!/bin/sh
# A slave's user data: launch-cluster.sh puts the master's private DNS name
# in place of @MASTER@. The slave resolves it, then calls the master.
MASTER=@MASTER@
i=0
until nslookup "$MASTER" >/dev/null 2>&1 || [ $i -ge 120 ]; do i=$((i + 1)); sleep 1; done
echo "CLUSTER-RESOLVED $MASTER $(nslookup "$MASTER" 2>/dev/null | awk '/^Address/ { a = $NF } END { print a }')"
i=0
until answer=$(wget -q -O - "http://$MASTER:50030/cgi-bin/join" 2>/dev/null) || [ $i -ge 120 ]; do i=$((i + 1)); sleep 1; done
echo "CLUSTER-SLAVE ${answer:-no answer from $MASTER}"
