# Put in front of every shell step of a scenario (the lab's environment is exported before it).
# The PostgreSQL major is found on the host, never assumed.
PG_MAJOR=$(ls /usr/lib/postgresql | sort -n | tail -1)
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_DATA=/var/lib/postgresql/$PG_MAJOR/main
PG_SERVICE=postgresql@$PG_MAJOR-main
cd /tmp

# Runs a barman command (as the barman user) that waits for WAL to be archived, while a tiny
# non-transactional WAL record is written on SERVER every 0.2 s. pg_receivewal closes a WAL
# segment only when WAL of the next one arrives; on an idle server that is the next
# running-xacts record, up to 15 s later, or never: barman 3.13's `backup --wait` waited for
# ever on an idle PostgreSQL 17.
with_wal_nudges() {
  local server=$1 conninfo nudger rc
  shift
  conninfo=$(barman show-server "$server" | sed -n 's/^[[:space:]]*conninfo: //p')
  # Every 5 s, a switch to a new segment instead: barman 3.13 waits for the WAL file that
  # holds the backup's end LSN, and a backup that ends exactly on a segment boundary
  # ("Backup end at LSN: 0/7000000 (000000010000000000000007, 00000000)", seen on tmpfs
  # where the backup takes 0.4 s) names the next, empty file, which tiny records never fill.
  ( i=0
    for _ in $(seq 1 3000); do
      sleep 0.2
      i=$((i + 1))
      if [ $((i % 25)) -eq 0 ]; then
        q="SELECT pg_switch_wal()"
      else
        q="SELECT pg_logical_emit_message(false, 'pglab', 'wal nudge')"
      fi
      psql "$conninfo" -XAtqc "$q" >/dev/null 2>&1 || true
    done ) </dev/null >/dev/null 2>&1 &
  nudger=$!
  "$@"
  rc=$?
  kill "$nudger" 2>/dev/null
  wait "$nudger" 2>/dev/null
  return $rc
}

# `barman switch-wal --force --archive SERVER`: blocks until a WAL file is archived.
archive_wal_now() {
  with_wal_nudges "$1" barman switch-wal --force --archive --archive-timeout 60 "$1"
}

# `barman backup --wait SERVER`: returns when the backup and its WAL are complete.
backup_now() {
  with_wal_nudges "$1" barman backup --wait --wait-timeout 300 "$1"
}

# Writes that go on while a fault happens: ROWS single-row transactions into TABLE (in the
# postgres database on this host), PAUSE seconds apart, in a transient systemd unit.
start_writes() {
  local table=$1 rows=$2 pause=${3:-0.02}
  runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE IF NOT EXISTS $table (id bigint PRIMARY KEY, note text NOT NULL);
CREATE OR REPLACE PROCEDURE pglab_write(tbl text, n int, pause float8) LANGUAGE plpgsql AS \$\$
DECLARE first bigint;
BEGIN
  EXECUTE format('SELECT coalesce(max(id), 0) FROM %I', tbl) INTO first;
  FOR i IN 1..n LOOP
    EXECUTE format('INSERT INTO %I VALUES (%s, %L)', tbl, first + i, 'row ' || (first + i));
    COMMIT;
    PERFORM pg_sleep(pause);
  END LOOP;
END \$\$;
SQL
  systemctl reset-failed "pglab-writes-$table" 2>/dev/null || true
  systemd-run --quiet --unit="pglab-writes-$table" --uid=postgres --gid=postgres \
    --working-directory=/tmp psql -XAtq -c "CALL pglab_write('$table', $rows, $pause)"
}

# Succeeds once the writes into TABLE have ended (whether they finished or were cut off).
writes_ended() {
  ! systemctl is-active --quiet "pglab-writes-$1"
}

# Row count and checksum of a writes table, comparable between hosts.
table_digest() {
  runuser -u postgres -- psql -XAtq -d "${2:-postgres}" -c \
    "SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(id || ',' || note, ';' ORDER BY id), '')) FROM $1"
}

# Re-clones this standby from the primary through its own slot (dropped first if it exists):
# what node2 needs after the primary's point-in-time recovery or after losing its slot.
reclone_standby() {
  local slot=${1:-$PGLAB_HOST}
  systemctl stop "$PG_SERVICE"
  rm -rf "$PG_DATA"
  install -d -o postgres -g postgres -m 700 "$PG_DATA"
  runuser -u postgres -- pg_receivewal -h "$PGLAB_PRIMARY_ADDR" -U replicator --slot="$slot" --drop-slot >/dev/null 2>&1 || true
  runuser -u postgres -- pg_basebackup -h "$PGLAB_PRIMARY_ADDR" -U replicator -D "$PG_DATA" -R -C -S "$slot" -X stream --checkpoint=fast &&
    systemctl start "$PG_SERVICE"
}

# Restores the latest backup of SERVER into a throwaway directory on this (barman) host,
# starts a private PostgreSQL on it (no network: a socket in that directory only; `trust`
# is safe there), waits for the recovery to end and prints table_digest of TABLE. Proves
# that the backup and its WAL hold what the primary committed. Run as the barman user.
restored_digest() {
  local server=$1 table=$2 dir port=5499 i
  dir=$(mktemp -d /var/tmp/pglab-restored-XXXXXX)
  if ! barman recover "$server" latest "$dir" >"$dir.log" 2>&1; then
    cat "$dir.log" >&2; rm -rf "$dir" "$dir.log"; return 1
  fi
  printf "port = %s\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" "$port" "$dir" > "$dir/postgresql.conf"
  echo "local all all trust" > "$dir/pg_hba.conf"
  : > "$dir/pg_ident.conf"
  chmod 700 "$dir"
  if ! "$PG_BIN/pg_ctl" -D "$dir" -w -t 120 -l "$dir.log" start >/dev/null; then
    cat "$dir.log" >&2; rm -rf "$dir" "$dir.log"; return 1
  fi
  for i in $(seq 1 600); do
    [ "$(psql -h "$dir" -p "$port" -d postgres -XAtqc 'SELECT pg_is_in_recovery()')" = f ] && break
    sleep 0.1
  done
  psql -h "$dir" -p "$port" -d postgres -XAtqc \
    "SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(id || ',' || note, ';' ORDER BY id), '')) FROM $table"
  "$PG_BIN/pg_ctl" -D "$dir" -m immediate stop >/dev/null
  rm -rf "$dir" "$dir.log"
}
