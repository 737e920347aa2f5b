# Barman with streaming backups and its own slot; `path_prefix` is the Debian/Ubuntu path
# of this host's PostgreSQL (the homework's /usr/pgsql-14/bin is Red Hat's).
# The server here only provides client binaries: it need not run.
if systemctl is-enabled --quiet postgresql 2>/dev/null; then
  systemctl disable --now postgresql >/dev/null 2>&1
  changed "disabled the local PostgreSQL server on $PGLAB_HOST"
fi
put_file /var/lib/barman/.pgpass barman:barman 600 <<PGPASS
$PGLAB_PRIMARY_ADDR:5432:*:barman:$PGLAB_BARMAN_PASSWORD
PGPASS
put_file "/etc/barman.d/$PGLAB_PRIMARY.conf" root:barman 640 <<CONF
[$PGLAB_PRIMARY]
description = "PostgreSQL on $PGLAB_PRIMARY, streaming backups"
conninfo = host=$PGLAB_PRIMARY_ADDR user=barman dbname=postgres
streaming_conninfo = host=$PGLAB_PRIMARY_ADDR user=barman
backup_method = postgres
streaming_archiver = on
slot_name = barman
create_slot = auto
path_prefix = $PG_BIN
ssh_command = ssh postgres@$PGLAB_PRIMARY
retention_policy = REDUNDANCY 3
CONF
# barman must reach node1 as user barman, plainly and for replication (pg_hba, .pgpass):
# say so in PostgreSQL's words now rather than time out waiting for receive-wal below.
barman_psql() { runuser -u barman -- env PGPASSFILE=/var/lib/barman/.pgpass psql -X "host=$PGLAB_PRIMARY_ADDR user=barman $1" -Atqc "$2" 2>&1 >/dev/null; }
if ! out=$(barman_psql dbname=postgres 'SELECT 1') || ! out=$(barman_psql replication=true 'IDENTIFY_SYSTEM'); then
  echo "barman cannot connect to $PGLAB_PRIMARY as user barman: $out" >&2
  exit 1
fi
# `barman cron` starts receive-wal (and creates the slot); cron repeats it every minute.
runuser -u barman -- barman -q cron </dev/null >/dev/null 2>&1
wait_until 60 "barman receive-wal to run" sh -c "runuser -u barman -- barman status $PGLAB_PRIMARY | grep -q 'Active WAL streaming.*True\|streaming.*OK' || runuser -u barman -- barman check $PGLAB_PRIMARY | grep -q 'receive-wal running: OK'"
# `barman cron` returns before anything is archived: switch-wal --archive blocks until a
# WAL file is, and only then can `barman check` pass ("WAL archive: OK").
# `switch-wal --force --archive --archive-timeout` is the same in barman 2.12 (bullseye), 3.4
# and 3.13 (2.12's cli.py also keeps the old name `switch-xlog` as an alias; not needed).
if ! runuser -u barman -- barman check "$PGLAB_PRIMARY" >/dev/null 2>&1; then
  # An idle server sends the switched segment's end only with its next WAL record (up to
  # 15 s later): write small ones while the switch waits.
  ( for _ in $(seq 1 50); do
      sleep 0.2
      PGPASSFILE=/var/lib/barman/.pgpass psql -h "$PGLAB_PRIMARY_ADDR" -U barman -d postgres \
        -XAtqc "SELECT pg_logical_emit_message(false, 'pglab', 'wal nudge')" || true
    done ) </dev/null >/dev/null 2>&1 &
  runuser -u barman -- barman switch-wal --force --archive --archive-timeout 60 "$PGLAB_PRIMARY" >&2
  kill $! 2>/dev/null || true
  changed "archived the first WAL file"
fi
wait_until 60 "barman check $PGLAB_PRIMARY to be all OK" runuser -u barman -- barman check "$PGLAB_PRIMARY"
