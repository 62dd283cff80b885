#!/usr/bin/env bash
# Stops the local Kafka broker (data kept in infra/.kafka/data).
# With --all, also stops PostgreSQL and Redis. Run as `npm run infra:down [-- --all]`.
set -euo pipefail
INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

bash "$INFRA/kafka.sh" stop

if [ "${1:-}" = "--all" ]; then
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main stop && echo "postgres: stopped"
  fi
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true
    echo "redis: stopped"
  fi
fi
