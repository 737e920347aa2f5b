# barman trusts postgres@node1's key; node1's host key is known, so no prompt ever appears.
{ grep -vF "$POSTGRES_PUBKEY" /var/lib/barman/.ssh/authorized_keys 2>/dev/null || true; echo "$POSTGRES_PUBKEY"; } |
  sort -u | put_file /var/lib/barman/.ssh/authorized_keys barman:barman 600
keys=$(host_keys "$PGLAB_PRIMARY" "$PGLAB_PRIMARY_ADDR")
printf '%s\n' "$keys" | put_file /var/lib/barman/.ssh/known_hosts barman:barman 644
runuser -u barman -- ssh -o BatchMode=yes "postgres@$PGLAB_PRIMARY" true
