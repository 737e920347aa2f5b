# The locales the Vagrant boxes this box stands in for have generated (Ubuntu's jammy64 has
# en_US.UTF-8; the homework's own postgresql.conf sets lc_messages, lc_monetary, lc_numeric
# and lc_time to 'en_US.UTF-8', and PostgreSQL refuses to start without it: "invalid value
# for parameter "lc_messages"", measured on a box with C.UTF-8 only). Needs `locales`.
sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen
grep -qx 'en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >> /etc/locale.gen
locale-gen
locale -a | grep -qx 'en_US.utf8' || { echo "locales.sh: en_US.UTF-8 was not generated" >&2; exit 1; }
