#!/usr/bin/env bash
# Runs inside `unshare -m`: a private systemd-journald on tmpfs, then fushi logging to it.
# Args: FUSHI CONFIG OUT_DIR. Waits on events (sockets, journal entries), never on fixed sleeps.
set -euo pipefail
fushi=$1 cfg=$2 out=$3
# shellcheck source=private_journald.sh
. "$(dirname "$0")/private_journald.sh"
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
