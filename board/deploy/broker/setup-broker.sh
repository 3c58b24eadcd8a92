#!/usr/bin/env bash
# Sets up the school's broker for the live class view in DIR: a small CA (its certificate,
# ca.pem, goes to every desk and to the teacher's machine), the broker's own certificate
# signed by it for HOST (a separate end-entity certificate: rustls refuses a CA certificate
# used as the server's), the password file with the live view's user, the ACL and
# mosquitto.conf for PORT. Keys never leave DIR.
#
# Usage: board/deploy/broker/setup-broker.sh DIR HOST [PORT]   (PORT defaults to 8883)
# Then:  board/deploy/broker/add-desk.sh DIR DESK_ID   for each desk.
set -euo pipefail
dir="${1:?usage: setup-broker.sh DIR HOST [PORT]}"
host="${2:?usage: setup-broker.sh DIR HOST [PORT]}"
port="${3:-8883}"
here="$(cd "$(dirname "$0")" && pwd)"
command -v openssl >/dev/null || { echo "setup-broker.sh needs openssl" >&2; exit 1; }
command -v mosquitto_passwd >/dev/null || { echo "setup-broker.sh needs mosquitto (apt install mosquitto)" >&2; exit 1; }
case "$host" in
  *[!A-Za-z0-9.-]*|"") echo "HOST must be a host name or IPv4 address" >&2; exit 1 ;;
esac
[[ "$port" =~ ^[0-9]+$ ]] && (( port > 0 && port < 65536 )) || { echo "PORT must be 1..65535" >&2; exit 1; }
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
umask 077
if [[ "$host" =~ ^[0-9.]+$ ]]; then san="IP:$host"; else san="DNS:$host"; fi

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 3650 \
  -subj "/CN=Ekspresi school CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -subj "/CN=$host" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
cat > "$dir/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 825 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"

: > "$dir/passwords"
openssl rand -hex 24 > "$dir/live-password"
mosquitto_passwd -b "$dir/passwords" live "$(cat "$dir/live-password")"
cp "$here/acl" "$dir/acl"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$here/mosquitto.conf" > "$dir/mosquitto.conf"
chmod 644 "$dir/ca.pem"
# The broker runs as the mosquitto user: let it read its files, nobody else.
if getent group mosquitto >/dev/null; then
  chgrp mosquitto "$dir/server.key" "$dir/server.pem" "$dir/passwords" "$dir/acl" "$dir/mosquitto.conf"
  chmod 640 "$dir/server.key" "$dir/server.pem" "$dir/passwords" "$dir/acl" "$dir/mosquitto.conf"
fi
echo "broker for $host:$port set up in $dir"
echo "  the teacher's live view: ekspresi live --broker $host:$port --ca $dir/ca.pem --password-file $dir/live-password"
echo "  each desk: $here/add-desk.sh $dir DESK_ID"
