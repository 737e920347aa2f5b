# Every lab host by name in /etc/hosts (ssh and barman's configuration use names).
{
  grep -v ' # pglab$' /etc/hosts || true
  for entry in $PGLAB_HOSTS; do echo "${entry#*=} ${entry%%=*} # pglab"; done
} | put_file /etc/hosts root:root 644
