#!/usr/bin/env bash
# Access control on a replica set needs a key file for member authentication (--keyFile), even
# with a single member. Write it from MONGO_REPLICA_SET_KEY (6-1024 base64 characters), owned by
# the mongodb user with mode 0400 as mongod demands, then run the image's own entrypoint.
set -euo pipefail

: "${MONGO_REPLICA_SET_KEY:?set MONGO_REPLICA_SET_KEY in docker/.env}"
keyfile=/etc/mongo/replica.key
install -d -m 0755 /etc/mongo
printf '%s\n' "$MONGO_REPLICA_SET_KEY" > "$keyfile"
chown mongodb:mongodb "$keyfile"
chmod 0400 "$keyfile"
unset MONGO_REPLICA_SET_KEY

exec docker-entrypoint.sh "$@"
