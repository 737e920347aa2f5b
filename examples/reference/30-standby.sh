# node2 is re-cloned from node1 with its own slot (`-C -S`): the homework's
# `pg_basebackup -R` alone creates no slot at all.
SLOT=$PGLAB_HOST
# pg_stat_wal_receiver's `status` and `slot_name` are the same in PostgreSQL 13, 14, 15 and 17
# (13 renamed received_lsn to written_lsn/flushed_lsn, which this does not use; checked in
# system_views.sql of the bullseye and bookworm boxes).
streaming_through_slot() {
  [ -f "$PG_DATA/standby.signal" ] &&
  [ "$(psql_local -c "SELECT status || ':' || coalesce(slot_name, '') FROM pg_stat_wal_receiver")" = "streaming:$SLOT" ]
}
if systemctl is-active --quiet "$PG_SERVICE" && streaming_through_slot; then
  exit 0
fi
systemctl stop "$PG_SERVICE"
rm -rf "$PG_DATA"
install -d -o postgres -g postgres -m 700 "$PG_DATA"
# A slot of the same name left by an earlier clone would make -C fail.
as_postgres pg_receivewal -h "$PGLAB_PRIMARY_ADDR" -U replicator --slot="$SLOT" --drop-slot >/dev/null 2>&1 || true
as_postgres pg_basebackup -h "$PGLAB_PRIMARY_ADDR" -U replicator -D "$PG_DATA" -R -C -S "$SLOT" -X stream --checkpoint=fast
systemctl start "$PG_SERVICE"
changed "re-cloned $PG_DATA from $PGLAB_PRIMARY through slot $SLOT"
wait_until 60 "$PGLAB_HOST to stream from $PGLAB_PRIMARY through slot $SLOT" streaming_through_slot
