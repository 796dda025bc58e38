#!/bin/sh
# Entrypoint of gateway plant-secure, written by bridge-gen.
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

mkdir -p "/mosquitto/certs/kaaiot"
install_file "/run/bridge-gen/kaaiot/ca.crt" "/mosquitto/certs/kaaiot/ca.crt" 0444
install_file "/run/bridge-gen/kaaiot/client.crt" "/mosquitto/certs/kaaiot/client.crt" 0444
install_file "/run/bridge-gen/kaaiot/client.key" "/mosquitto/certs/kaaiot/client.key" 0400

mkdir -p "/mosquitto/certs/_local"
install_file "/run/bridge-gen/_local/clients-ca.crt" "/mosquitto/certs/_local/clients-ca.crt" 0444
install_file "/run/bridge-gen/_local/server.crt" "/mosquitto/certs/_local/server.crt" 0444
install_file "/run/bridge-gen/_local/server.key" "/mosquitto/certs/_local/server.key" 0400
install_file "/run/bridge-gen/_local/passwd" "/mosquitto/certs/_local/passwd" 0400

chown -R mosquitto:mosquitto /mosquitto/certs /mosquitto/run
chmod 0700 /mosquitto/certs /mosquitto/run
exec /docker-entrypoint.sh "$@"
