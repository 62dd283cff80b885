#!/usr/bin/env bash
# Local single-node Kafka (KRaft) without Docker: jars from Maven Central, data in infra/.kafka/.
#   infra/kafka.sh start    download jars + format storage once, start in the background, wait until ready
#   infra/kafka.sh stop     SIGTERM, up to 30 s, then SIGKILL (data is kept)
#   infra/kafka.sh status   exit 0 if running and answering, 1 otherwise
# Env: KAFKA_PORT (default 9092), KAFKA_CONTROLLER_PORT (default 9093), KAFKA_WAIT_SECONDS (default 90),
#      KAFKA_HOME_DIR (default infra/.kafka): data, logs and pid file, so a second broker (a test's
#      private one, with its own ports) can run beside the first; the jars stay in infra/.kafka/libs.
#      KAFKA_NODE_ID, KAFKA_VOTERS (id@host:port,...) and KAFKA_CLUSTER_ID: one node of a cluster
#      (infra/kafka/cluster.properties; infra/kafka-cluster.sh starts three). KAFKA_CLUSTER_ID alone:
#      a single node formatted with that id (saves starting a JVM to make one).
#      KAFKA_EXTRA_PROPERTIES: "key=value" lines (or space-separated) appended to server.properties
#      (the tests' private brokers: faster re-registration after a SIGKILL, fewer offsets partitions).
#      KAFKA_JVM_OPTS: extra JVM flags (the tests' private brokers start with C1 only).
set -euo pipefail

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$INFRA")"
KDIR="${KAFKA_HOME_DIR:-$INFRA/.kafka}"
LIBS="$INFRA/.kafka/libs"
PIDFILE="$KDIR/kafka.pid"
LOGDIR="$KDIR/logs"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$INFRA/kafka/pom.xml")"
NODE="$ROOT/node_modules/.bin/node"
[ -x "$NODE" ] || NODE=node

die() { echo "kafka: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "'$1' is missing. $2"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid() { cat "$PIDFILE" 2>/dev/null || true; }
# A live pid is only ours if it is still a kafka.Kafka JVM (pids get reused).
pid_alive() { local p; p="$(pid)"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q kafka.Kafka; }
JVM_CP=(-cp "$LIBS/*" -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.properties" -Dkafka.logs.dir="$LOGDIR")
java_cp() { java "${JVM_CP[@]}" "$@"; }

ensure_libs() {
  [ -f "$LIBS/.kafka-$VERSION" ] && return
  need mvn "Install Maven 3.8+ (apt-get install maven) - it fetches the Kafka jars from Maven Central once."
  echo "kafka: downloading Apache Kafka $VERSION jars from Maven Central into $LIBS ..."
  rm -rf "$LIBS" "$LIBS.tmp"
  mvn -q -B -Dstyle.color=never -f "$INFRA/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" \
    || die "mvn dependency:copy-dependencies failed (is Maven Central reachable?)"
  mv "$LIBS.tmp" "$LIBS" && touch "$LIBS/.kafka-$VERSION"
}

ensure_storage() {
  mkdir -p "$KDIR/data" "$LOGDIR"
  local template="$INFRA/kafka/server.properties"
  [ -n "${KAFKA_VOTERS:-}" ] && template="$INFRA/kafka/cluster.properties"
  sed -e "s|@KAFKA_PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$KDIR/data|g" \
    -e "s|@NODE_ID@|${KAFKA_NODE_ID:-1}|g" -e "s|@VOTERS@|${KAFKA_VOTERS:-}|g" \
    "$template" >"$KDIR/server.properties"
  [ -n "${KAFKA_EXTRA_PROPERTIES:-}" ] && printf '%s\n' ${KAFKA_EXTRA_PROPERTIES} >>"$KDIR/server.properties"
  [ -f "$KDIR/data/meta.properties" ] && return
  if [ -n "${KAFKA_VOTERS:-}" ]; then
    # A cluster node: every node is formatted with the same cluster id, static voters.
    java_cp kafka.tools.StorageTool format --cluster-id="${KAFKA_CLUSTER_ID:?KAFKA_CLUSTER_ID is needed with KAFKA_VOTERS}" -c "$KDIR/server.properties" >"$LOGDIR/format.log" 2>&1 \
      || { cat "$LOGDIR/format.log" >&2; die "storage format failed"; }
    return
  fi
  # Format once. --standalone makes this node the sole KRaft voter (4.x dynamic quorum).
  local id="${KAFKA_CLUSTER_ID:-}"; [ -n "$id" ] || id="$(java_cp kafka.tools.StorageTool random-uuid)"
  # --cluster-id=…: a base64url id may begin with "-", which the tool would read as an option.
  java_cp kafka.tools.StorageTool format --standalone --cluster-id="$id" -c "$KDIR/server.properties" >"$LOGDIR/format.log" 2>&1 \
    || { cat "$LOGDIR/format.log" >&2; die "storage format failed"; }
}

wait_ready() {
  local secs="${KAFKA_WAIT_SECONDS:-90}" w
  if [ -f "$ROOT/node_modules/kafkajs/package.json" ]; then
    "$NODE" --disable-warning=TimeoutNegativeWarning "$INFRA/kafka/wait.ts" "127.0.0.1:$PORT" "$secs" >/dev/null &
  else # before `npm install`: fall back to the port only
    (for _ in $(seq $((secs * 2))); do port_open "$PORT" && exit 0; sleep 0.5; done; exit 1) &
  fi
  w=$!
  # Give up early if the broker process dies (bad config, port clash, ...). Alive is enough
  # here: pid_alive's kafka.Kafka check would fail in the moment before the fork execs java.
  local p; p="$(pid)"
  while kill -0 "$w" 2>/dev/null; do kill -0 "$p" 2>/dev/null || { kill "$w" 2>/dev/null; break; }; sleep 0.5; done
  wait "$w" 2>/dev/null && return
  echo "kafka: broker did not become ready (waited up to ${secs}s). Last errors and log lines ($LOGDIR):" >&2
  grep -hE '^\[.*\] (ERROR|FATAL)|^Caused by' "$LOGDIR/server.log" 2>/dev/null | tail -n 8 >&2 || true
  tail -n 25 "$LOGDIR/server.log" "$LOGDIR/stdout.log" >&2 2>/dev/null || true
  exit 1
}

start() {
  if pid_alive && port_open "$PORT"; then echo "kafka: already running (pid $(pid))"; return; fi
  if ! pid_alive; then
    need java "Install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)."
    # A broker we did not start (docker compose, another checkout) already answers: use it.
    if port_open "$PORT" && [ -f "$ROOT/node_modules/kafkajs/package.json" ] \
      && "$NODE" --disable-warning=TimeoutNegativeWarning "$INFRA/kafka/wait.ts" "127.0.0.1:$PORT" 10 >/dev/null 2>&1; then
      echo "kafka: a broker not started by this checkout already answers on 127.0.0.1:$PORT; using it"
      return
    fi
    for p in "$PORT" "$CONTROLLER_PORT"; do
      port_open "$p" && die "port $p is taken by another process (not our pid file); free it or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
    done
    ensure_libs
    ensure_storage
    # setsid: the broker must outlive `npm run` and its process group.
    setsid java -Xms256m -Xmx${KAFKA_HEAP:-768m} -XX:+UseG1GC ${KAFKA_JVM_OPTS:-} -Djava.awt.headless=true "${JVM_CP[@]}" kafka.Kafka "$KDIR/server.properties" >"$LOGDIR/stdout.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi # else: a broker we started is still coming up - just wait for it
  wait_ready
  echo "kafka: started (pid $(pid))"
}

stop() {
  if ! pid_alive; then rm -f "$PIDFILE"; echo "kafka: not running"; return; fi
  local p; p="$(pid)"
  kill -TERM "$p"
  for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$p" 2>/dev/null; then echo "kafka: no exit after 30 s, sending SIGKILL"; kill -KILL "$p"; fi
  while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  rm -f "$PIDFILE"
  echo "kafka: stopped"
}

status() {
  if pid_alive && port_open "$PORT"; then echo "kafka: running (pid $(pid), 127.0.0.1:$PORT)"
  else echo "kafka: not running"; return 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
