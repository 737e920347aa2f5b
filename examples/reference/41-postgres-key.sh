# postgres@node1 trusts barman's key, and gets its own key (postgres → barman@barman).
install -d -o postgres -g postgres -m 700 /var/lib/postgresql/.ssh
{ grep -vF "$BARMAN_PUBKEY" /var/lib/postgresql/.ssh/authorized_keys 2>/dev/null || true; echo "$BARMAN_PUBKEY"; } |
  sort -u | put_file /var/lib/postgresql/.ssh/authorized_keys postgres:postgres 600 >&2
if [ ! -f /var/lib/postgresql/.ssh/id_ed25519 ]; then
  as_postgres ssh-keygen -q -t ed25519 -N '' -f /var/lib/postgresql/.ssh/id_ed25519
  changed "generated postgres's ssh key" >&2
fi
cat /var/lib/postgresql/.ssh/id_ed25519.pub
