#!/usr/bin/env bash
# Runs inside `unshare -m`: a private systemd-journald on tmpfs, fushi logging to it, a bundle
# while it runs and one after a kill -9. Args: FUSHI CONFIG OUT_DIR (with running/ and stopped/).
# Waits on events (sockets, journal entries, the control socket), never on fixed sleeps.
set -euo pipefail
fushi=$1 cfg=$2 out=$3
unset XDG_RUNTIME_DIR
# shellcheck source=private_journald.sh
. "$(dirname "$0")/private_journald.sh"
"$fushi" run -c "$cfg" --log journald &
fpid=$!
poll 'journalctl --no-pager -q EVENT=collector.heartbeat ACTOR=collectors/beat | grep -q .'
poll '"$fushi" pid -c "$cfg" >/dev/null 2>&1'
"$fushi" bundle -c "$cfg" --out "$out/running" --json > "$out/running.json"
kill -9 $fpid
wait $fpid || true
"$fushi" bundle -c "$cfg" --out "$out/stopped" --json > "$out/stopped.json"
