#!/usr/bin/env bash
# A 3-node KRaft cluster on loopback (each node broker and controller; RF 3, min.insync.replicas 2):
#   infra/kafka-cluster.sh start|stop|status
# Env: KAFKA_CLUSTER_DIR (default infra/.kafka-cluster): one home per node (node1..node3);
#      KAFKA_CLUSTER_PORTS: six ports "b1 b2 b3 c1 c2 c3" (default "19092 19093 19094 19192 19193 19194").
# Each node is infra/kafka.sh with its own home, ports and node id; the jars are shared.
set -euo pipefail
INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${KAFKA_CLUSTER_DIR:-$INFRA/.kafka-cluster}"
read -r B1 B2 B3 C1 C2 C3 <<<"${KAFKA_CLUSTER_PORTS:-19092 19093 19094 19192 19193 19194}"
BROKERS=("$B1" "$B2" "$B3")
CONTROLLERS=("$C1" "$C2" "$C3")
VOTERS="1@127.0.0.1:$C1,2@127.0.0.1:$C2,3@127.0.0.1:$C3"
mkdir -p "$DIR"

node_env() { # node index 0..2
  local i="$1"
  echo "KAFKA_HOME_DIR=$DIR/node$((i + 1)) KAFKA_PORT=${BROKERS[$i]} KAFKA_CONTROLLER_PORT=${CONTROLLERS[$i]} KAFKA_NODE_ID=$((i + 1)) KAFKA_VOTERS=$VOTERS KAFKA_HEAP=${KAFKA_HEAP:-512m}"
}
on_node() { local i="$1"; shift; env $(node_env "$i") KAFKA_CLUSTER_ID="$(cluster_id)" bash "$INFRA/kafka.sh" "$@"; }
cluster_id() {
  # One id for the three nodes, made once (22 characters of base64url, as Kafka's random-uuid).
  [ -f "$DIR/cluster.id" ] || head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | head -c 22 | sed 's/^-/A/' >"$DIR/cluster.id"
  cat "$DIR/cluster.id"
}

case "${1:-}" in
  start)
    cluster_id >/dev/null
    # Side by side: a node waits for a quorum, so none can become ready alone.
    pids=()
    for i in 0 1 2; do on_node "$i" start & pids+=($!); done
    rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
    [ "$rc" = 0 ] || { echo "kafka-cluster: a node did not start (logs in $DIR/node*/logs)" >&2; exit 1; }
    echo "kafka-cluster: brokers 127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3"
    ;;
  stop) for i in 0 1 2; do on_node "$i" stop || true; done ;;
  status) rc=0; for i in 0 1 2; do on_node "$i" status || rc=1; done; exit "$rc" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
