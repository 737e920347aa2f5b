# Shared by every step. The PostgreSQL major is found on the host, never assumed
# (14 on Ubuntu jammy, 15 on Debian bookworm, 17 on trixie).
PG_MAJOR=$(ls /usr/lib/postgresql | sort -n | tail -1)
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_ETC=/etc/postgresql/$PG_MAJOR/main
PG_DATA=/var/lib/postgresql/$PG_MAJOR/main
PG_SERVICE=postgresql@$PG_MAJOR-main
cd /tmp

as_postgres() { runuser -u postgres -- "$@"; }
psql_local() { as_postgres psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }
changed() { echo "PGLAB_CHANGED $*"; }

# Writes stdin to $1 (owner $2, mode $3) only when the content differs; says so.
put_file() {
  local path=$1 owner=$2 mode=$3 tmp
  tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    install -D -o "${owner%:*}" -g "${owner#*:}" -m "$mode" "$tmp" "$path"
    rm -f "$tmp"
    changed "$path"
  fi
  chown "$owner" "$path"; chmod "$mode" "$path"
}

# Polls a command every 0.2 s until it succeeds or the deadline (seconds) passes.
wait_until() {
  local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "gave up waiting for: $what" >&2
      "$@" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}
# known_hosts lines for every name/address given, sorted (stable across runs). Retries until
# each one answered: under software emulation one key exchange can take seconds, and an
# empty known_hosts would make ssh fail later with "Host key verification failed".
host_keys() {
  local keys deadline=$(( $(date +%s) + 120 )) h missing
  while :; do
    keys=$(ssh-keyscan -T 20 "$@" 2>/dev/null | sort)
    missing=
    for h in "$@"; do grep -q "^$h " <<<"$keys" || missing="$missing $h"; done
    [ -z "$missing" ] && { printf '%s\n' "$keys"; return 0; }
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "gave up waiting for the ssh host keys of:$missing" >&2
      return 1
    fi
    sleep 1
  done
}
