#!/usr/bin/env bash
# Local infrastructure for development and tests (no Docker): Kafka, PostgreSQL, Redis.
# Idempotent: services that already answer are left alone. Run as `npm run infra:up`.
set -euo pipefail
INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need() { command -v "$1" >/dev/null || { echo "infra: '$1' is missing. $2" >&2; exit 1; }; }

# PostgreSQL (system cluster, trust auth, database `test`)
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  need pg_ctlcluster "Install PostgreSQL (apt-get install postgresql) or run infra/docker-compose.yml."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "infra: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

# Redis (no persistence: it is a cache here)
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  need redis-server "Install Redis (apt-get install redis-server) or run infra/docker-compose.yml."
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "infra: Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }

# Kafka (downloads jars on first run, then starts/waits; see infra/kafka.sh)
bash "$INFRA/kafka.sh" start

echo "postgres  postgres://postgres@127.0.0.1:5432/test"
echo "redis     redis://127.0.0.1:6379"
echo "kafka     127.0.0.1:${KAFKA_PORT:-9092}"
