# The floor for `pglab bench floor`: the PostgreSQL and barman work of the four homework
# scenarios (replicate, backup, drop, recover) done directly, one shell call per phase and
# host, without pglab's steps, checks, logs or snapshots. Put after scenarios/prelude.sh.

floor_fill() {          # node1
  runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
CREATE DATABASE otus;
\c otus
CREATE TABLE t (id int PRIMARY KEY, payload text NOT NULL);
INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 10000) g;
SQL
  local lsn
  lsn=$(runuser -u postgres -- psql -XAtqc "SELECT pg_current_wal_lsn()")
  until [ "$(runuser -u postgres -- psql -XAtqc "SELECT replay_lsn >= '$lsn' FROM pg_stat_replication LIMIT 1")" = t ]; do sleep 0.1; done
}

floor_backup() {        # barman, as barman
  archive_wal_now node1 >/dev/null && backup_now node1 >/dev/null
}

floor_drop() {          # node1
  runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -c "SELECT pg_create_restore_point('pglab_before_drop')" -c "DROP DATABASE otus" >/dev/null
}

floor_archive() {       # barman, as barman
  archive_wal_now node1 >/dev/null
}

floor_stop() {          # node1
  systemctl stop "$PG_SERVICE"
}

floor_recover() {       # barman, as barman
  barman recover --remote-ssh-command 'ssh postgres@node1' --target-name pglab_before_drop \
    --target-action promote node1 latest "/var/lib/postgresql/$PG_MAJOR/main" >/dev/null
}

floor_start() {         # node1
  systemctl start "$PG_SERVICE"
  until [ "$(runuser -u postgres -- psql -XAtqc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.1; done
}

floor_reclone() {       # node2
  reclone_standby node2 >/dev/null 2>&1
}

floor_rebackup() {      # barman, as barman
  barman receive-wal --stop node1 >/dev/null 2>&1 || true
  barman receive-wal --reset node1 >/dev/null
  barman receive-wal --create-slot node1 >/dev/null 2>&1 || true
  barman -q cron </dev/null >/dev/null 2>&1
  until archive_wal_now node1 >/dev/null 2>&1; do sleep 0.5; done
  backup_now node1 >/dev/null
}
