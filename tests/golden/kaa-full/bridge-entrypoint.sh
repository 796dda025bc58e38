#!/bin/sh
# Entrypoint of gateway line-3, written by bridge-gen.
#
# Certificates, keys and the password file arrive as read-only mounts under
# /run/bridge-gen, owned as they are on the host (often root, mode 0600).
# The broker drops to uid 1883 before it opens them and could not read them
# there, so they are copied into a memory-only tmpfs that only that user can
# read. They never reach an image layer or a volume.
set -eu

install_file() {
  if ! cp "$1" "$2" 2>/dev/null; then
    echo "bridge-gen: cannot read $1, mounted from the host" >&2
    exit 1
  fi
  chmod "$3" "$2"
}

mkdir -p "/mosquitto/certs/kaa"
install_file "/run/bridge-gen/kaa/ca.crt" "/mosquitto/certs/kaa/ca.crt" 0444
install_file "/run/bridge-gen/kaa/client.crt" "/mosquitto/certs/kaa/client.crt" 0444
install_file "/run/bridge-gen/kaa/client.key" "/mosquitto/certs/kaa/client.key" 0400

chown -R mosquitto:mosquitto /mosquitto/certs /mosquitto/run
chmod 0700 /mosquitto/certs /mosquitto/run
exec /docker-entrypoint.sh "$@"
