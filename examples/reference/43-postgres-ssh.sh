# postgres@node1 → barman@barman without a prompt (the homework's key exchange, both ways).
wait_until 30 "sshd on $PGLAB_BACKUP" ssh-keyscan -T 2 "$PGLAB_BACKUP"
ssh-keyscan -T 5 "$PGLAB_BACKUP" "$PGLAB_BACKUP_ADDR" 2>/dev/null | sort | put_file /var/lib/postgresql/.ssh/known_hosts postgres:postgres 644
as_postgres ssh -o BatchMode=yes "barman@$PGLAB_BACKUP" true
