# The homework's settings, made correct: scram with a password for the replicator, a slot
# per consumer, and pg_hba that allows only what the homework needs.
put_file "$PG_ETC/conf.d/pglab.conf" postgres:postgres 644 <<CONF
listen_addresses = 'localhost, $PGLAB_ADDR'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
password_encryption = scram-sha-256
# pg_rewind needs hint bits in WAL (the homework forgets it).
wal_log_hints = on
CONF
put_file "$PG_ETC/pg_hba.conf" postgres:postgres 640 <<HBA
# TYPE  DATABASE     USER        ADDRESS                 METHOD
local   all          postgres                            peer
local   all          all                                 peer
host    all          all         127.0.0.1/32            scram-sha-256
host    all          all         ::1/128                 scram-sha-256
local   replication  all                                 peer
host    replication  replicator  $PGLAB_PRIMARY_ADDR/32   scram-sha-256
host    replication  replicator  $PGLAB_STANDBY_ADDR/32   scram-sha-256
host    all          barman      $PGLAB_BACKUP_ADDR/32    scram-sha-256
host    replication  barman      $PGLAB_BACKUP_ADDR/32    scram-sha-256
HBA
if ! systemctl is-active --quiet "$PG_SERVICE" || [ -n "$(find "$PG_ETC" -newer "$PG_DATA/postmaster.pid" -name '*.conf' 2>/dev/null)" ]; then
  systemctl restart "$PG_SERVICE"
  changed "restarted $PG_SERVICE"
fi
wait_until 30 "PostgreSQL to accept connections" as_postgres pg_isready -q
