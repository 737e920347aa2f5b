# barman's ssh key (barman → postgres@node1 is what `barman recover --remote-ssh-command` uses).
if [ ! -f /var/lib/barman/.ssh/id_ed25519 ]; then
  install -d -o barman -g barman -m 700 /var/lib/barman/.ssh
  runuser -u barman -- ssh-keygen -q -t ed25519 -N '' -f /var/lib/barman/.ssh/id_ed25519
  changed "generated barman's ssh key" >&2
fi
cat /var/lib/barman/.ssh/id_ed25519.pub
