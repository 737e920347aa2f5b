# receive-wal is not a service: `barman cron` starts it (cron does so every minute).
runuser -u barman -- barman -q cron </dev/null >/dev/null 2>&1
wait_until 60 "barman receive-wal to run" sh -c "runuser -u barman -- barman check $PGLAB_PRIMARY | grep -q 'receive-wal running: OK'"
