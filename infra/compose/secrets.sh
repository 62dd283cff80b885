#!/usr/bin/env bash
# Makes the secret files docker-compose.yml reads, with fresh random passwords:
#   ./secrets.sh secrets/dev        (staging: secrets/staging, prod: secrets/prod)
# Existing files are kept, so running it again changes nothing. Put the real OpenAI key into
# <dir>/openai_api_key afterwards (left empty, replies say plainly that they are offline).
set -euo pipefail
dir=${1:?usage: secrets.sh <dir>}
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=\n'; }
put() { [[ -e $1 ]] || { umask 077; printf '%s' "$2" >"$1"; echo "wrote $dir/$1"; }; }
put postgres_password "$(rand)"
put database_url "postgres://gemello:$(cat postgres_password)@postgres:5432/gemello"
put redis_password "$(rand)"
put redis_url "redis://:$(cat redis_password)@redis:6379"
put grafana_admin_password "$(rand)"
# Clients present this token (Authorization: Bearer … or ?token=); the principal is "admin".
put gemello_api_keys "$(rand):admin"
put openai_api_key ""
# The master key wraps every conversation's data key: back it up apart from Kafka, and never
# lose it (without it the log's personal content cannot be read). 32 random bytes, base64.
put gemello_master_key "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
# The containers run as uid 1000 and read the files Docker mounts from here.
chmod 644 ./*
