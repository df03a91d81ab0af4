#!/bin/sh
# Docker secrets → environment, then exec the command (the gateway by default).
#
# For every variable NAME_FILE whose NAME is a gateway setting (GUANJIA_GATEWAY_*), a
# password for the broker tools (GUANJIA_MQTT_PASSWORD) or libpq's PGPASSWORD, export NAME
# with the file's content (one trailing newline dropped). Secrets live in files mounted
# under /run/secrets, never in the compose file or `docker inspect`'s environment.
set -eu
for pair in $(env | sed -n 's/^\(GUANJIA_GATEWAY_[A-Z0-9_]*_FILE\|GUANJIA_MQTT_PASSWORD_FILE\|PGPASSWORD_FILE\)=.*/\1/p'); do
    name=${pair%_FILE}
    eval "path=\${$pair}"
    if [ ! -r "$path" ]; then
        echo "error: $pair: $path is not a readable file" >&2
        exit 2
    fi
    value=$(cat "$path")
    export "$name=$value"
    unset "$pair"
done
exec "$@"
