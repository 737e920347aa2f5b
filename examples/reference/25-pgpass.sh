# The postgres user on both nodes can reach the other as replicator (.pgpass, mode 0600).
put_file /var/lib/postgresql/.pgpass postgres:postgres 600 <<PGPASS
$PGLAB_PRIMARY_ADDR:5432:*:replicator:$PGLAB_REPLICATOR_PASSWORD
$PGLAB_STANDBY_ADDR:5432:*:replicator:$PGLAB_REPLICATOR_PASSWORD
PGPASS
