# Put in front of every shell step of a scenario (the lab's environment is exported before it).
# The PostgreSQL major is found on the host, never assumed.
PG_MAJOR=$(ls /usr/lib/postgresql | sort -n | tail -1)
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_DATA=/var/lib/postgresql/$PG_MAJOR/main
PG_SERVICE=postgresql@$PG_MAJOR-main
cd /tmp
