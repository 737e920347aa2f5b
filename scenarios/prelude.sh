# Put in front of every shell step of a scenario (the lab's environment is exported before it).
# The PostgreSQL major is found on the host, never assumed.
PG_MAJOR=$(ls /usr/lib/postgresql | sort -n | tail -1)
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_DATA=/var/lib/postgresql/$PG_MAJOR/main
PG_SERVICE=postgresql@$PG_MAJOR-main
cd /tmp

# `barman switch-wal --force --archive SERVER`, without its wait of up to 15 s: pg_receivewal
# closes a WAL segment only when WAL of the next one arrives, which on an idle server is the
# next running-xacts record (every 15 s). A tiny non-transactional WAL record written after
# the switch makes it arrive at once. Run as the barman user (it uses barman's conninfo).
archive_wal_now() {
  local server=$1 conninfo nudger rc
  conninfo=$(barman show-server "$server" | sed -n 's/^[[:space:]]*conninfo: //p')
  ( for _ in $(seq 1 100); do
      sleep 0.2
      psql "$conninfo" -XAtqc "SELECT pg_logical_emit_message(false, 'pglab', 'wal nudge')" >/dev/null 2>&1 || true
    done ) </dev/null >/dev/null 2>&1 &
  nudger=$!
  barman switch-wal --force --archive --archive-timeout 60 "$server"
  rc=$?
  kill "$nudger" 2>/dev/null
  wait "$nudger" 2>/dev/null
  return $rc
}
