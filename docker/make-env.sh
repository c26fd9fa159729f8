#!/usr/bin/env bash
# Writes docker/.env from docker/.env.example with a fresh random value for every `change-me`.
#   docker/make-env.sh [EXAMPLE [TARGET]]    (defaults: docker/.env.example, docker/.env)
# Never overwrites TARGET: the secrets in it are already baked into the volumes' data.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
example="${1:-$here/.env.example}"
target="${2:-$here/.env}"
if [ -e "$target" ]; then
  echo "make-env.sh: $target exists; not overwriting it (remove it to start afresh)" >&2
  exit 1
fi

hex() { head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }
fernet_key() { head -c 32 /dev/urandom | base64 | tr -d '\n' | tr '+/' '-_'; }

umask 077
tmp="$(mktemp "$target.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
  name="${line%%=*}"
  case "$line" in
    AIRFLOW_FERNET_KEY=change-me) line="$name=$(fernet_key)" ;;
    S3_ACCESS_KEY_ID=change-me) line="$name=$(hex 10)" ;;
    S3_SECRET_ACCESS_KEY=change-me | MINIO_ROOT_PASSWORD=change-me) line="$name=$(hex 20)" ;;
    *=change-me) line="$name=$(hex 32)" ;;
  esac
  printf '%s\n' "$line"
done < "$example" > "$tmp"
mv "$tmp" "$target"
trap - EXIT
echo "wrote $target (mode 600): review it, then start the stack with"
echo "  docker compose -f docker/docker-compose.yml --env-file docker/.env up -d"
