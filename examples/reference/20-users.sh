# replicator: REPLICATION with a password (scram needs one). barman: superuser, as
# barman's `backup_method = postgres` checks require (or the documented minimal grants).
for spec in "replicator:LOGIN REPLICATION:PGLAB_REPLICATOR_PASSWORD" "barman:LOGIN SUPERUSER REPLICATION:PGLAB_BARMAN_PASSWORD"; do
  role=${spec%%:*}; rest=${spec#*:}; attrs=${rest%%:*}; pwvar=${rest#*:}
  if [ "$(psql_local -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != 1 ]; then
    psql_local -c "CREATE ROLE $role WITH $attrs"
    changed "created role $role"
  fi
  # Set the password only when the current one does not work (idempotent, no churn).
  if ! PGPASSWORD=${!pwvar} psql -X -h 127.0.0.1 -U "$role" -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    psql_local -v pw="${!pwvar}" <<SQL
ALTER ROLE $role WITH $attrs PASSWORD :'pw';
SQL
    changed "set password of $role"
  fi
done
