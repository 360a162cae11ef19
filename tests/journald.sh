#!/usr/bin/env bash
# Runs inside `unshare -m`: a private systemd-journald on tmpfs, then fushi logging to it.
# Args: FUSHI CONFIG OUT_DIR. Waits on events (sockets, journal entries), never on fixed sleeps.
set -euo pipefail
fushi=$1 cfg=$2 out=$3
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
poll 'journalctl --no-pager -q EVENT=supervisor.child.escalated ACTOR=collectors/crash | grep -q .'
poll 'journalctl --no-pager -q EVENT=collector.heartbeat ACTOR=collectors/beat | grep -q .'
# `fushi tail` reads the journal when the daemon logs there.
"$fushi" tail -n 3 -c "$cfg" collectors/beat > "$out/tail.txt"
kill -TERM $fpid
wait $fpid
journalctl --no-pager -q -o json ACTOR=collectors/beat > "$out/beat.json"
journalctl --no-pager -q -o json ACTOR=collectors/crash > "$out/crash.json"
