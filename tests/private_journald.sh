# Sourced by the scripts that run inside `unshare -m`: a private systemd-journald on tmpfs (its
# socket and storage dirs), killed on exit, and `poll CMD`, which waits on an event (a socket, a
# journal entry) up to 30 s instead of sleeping a fixed time.
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
