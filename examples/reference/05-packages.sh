# PostgreSQL and barman from the distribution. pglab's boxes have them already (nothing
# happens); a plain box such as ubuntu/jammy64 (VirtualBox) gets them from its archive.
need=()
for p in postgresql postgresql-contrib barman barman-cli rsync; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  changed "installed ${need[*]}"
fi
