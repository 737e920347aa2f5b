# postgres@node1 → barman@barman without a prompt (the homework's key exchange, both ways).
keys=$(host_keys "$PGLAB_BACKUP" "$PGLAB_BACKUP_ADDR")
printf '%s\n' "$keys" | put_file /var/lib/postgresql/.ssh/known_hosts postgres:postgres 644
as_postgres ssh -o BatchMode=yes "barman@$PGLAB_BACKUP" true
