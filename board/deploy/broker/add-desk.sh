#!/usr/bin/env bash
# Adds a desk to the school's broker set up by setup-broker.sh: a random password for the
# desk's user (its desk id) in DIR/passwords, the password in DIR/desks/DESK_ID.password,
# and prints what goes into that desk's config and onto its card. Reload the broker
# afterwards (systemctl reload mosquitto, or SIGHUP) to apply.
#
# Usage: board/deploy/broker/add-desk.sh DIR DESK_ID [HOST:PORT]
set -euo pipefail
dir="${1:?usage: add-desk.sh DIR DESK_ID [HOST:PORT]}"
desk="${2:?usage: add-desk.sh DIR DESK_ID [HOST:PORT]}"
broker="${3:-BROKER_HOST:8883}"
# The desk id is the broker user name and a topic level: the config's own rule.
[[ "$desk" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] || { echo "DESK_ID: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit" >&2; exit 1; }
[[ "$desk" != live ]] || { echo "'live' is the live view's user" >&2; exit 1; }
[ -f "$dir/passwords" ] || { echo "$dir/passwords missing: run setup-broker.sh first" >&2; exit 1; }
umask 077
mkdir -p "$dir/desks"
password="$(openssl rand -hex 24)"
printf '%s\n' "$password" > "$dir/desks/$desk.password"
mosquitto_passwd -b "$dir/passwords" "$desk" "$password"
cat <<MSG
desk $desk added. On the desk:
  copy $dir/ca.pem            to /etc/ekspresi/broker-ca.pem
  copy $dir/desks/$desk.password to /etc/ekspresi/broker-password (mode 0600)
  and put in /etc/ekspresi/config.json:
    "publish": {"broker": "$broker", "ca": "/etc/ekspresi/broker-ca.pem", "password_file": "/etc/ekspresi/broker-password"}
MSG
