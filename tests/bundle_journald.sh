#!/usr/bin/env bash
# Runs inside `unshare -m`: a private systemd-journald on tmpfs, fushi logging to it, a bundle
# while it runs and one after a kill -9. Args: FUSHI CONFIG OUT_DIR (with running/ and stopped/).
# Waits on events (sockets, journal entries, the control socket), never on fixed sleeps.
set -euo pipefail
fushi=$1 cfg=$2 out=$3
unset XDG_RUNTIME_DIR
for d in /run/systemd /run/log /var/log/journal; do
  mkdir -p "$d"
  mount -t tmpfs tmpfs "$d"
done
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald &
jpid=$!
trap 'kill $jpid 2>/dev/null || true' EXIT
poll() { for _ in $(seq 600); do if eval "$1"; then return 0; fi; sleep 0.05; done; echo "timed out: $1" >&2; return 1; }
poll '[ -S /run/systemd/journal/socket ]'
"$fushi" run -c "$cfg" --log journald &
fpid=$!
poll 'journalctl --no-pager -q EVENT=collector.heartbeat ACTOR=collectors/beat | grep -q .'
poll '"$fushi" pid -c "$cfg" >/dev/null 2>&1'
"$fushi" bundle -c "$cfg" --out "$out/running" --json > "$out/running.json"
kill -9 $fpid
wait $fpid || true
"$fushi" bundle -c "$cfg" --out "$out/stopped" --json > "$out/stopped.json"
