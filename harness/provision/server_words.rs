//! When a submission's provisioning fails, the servers' own words at that moment: what
//! PostgreSQL logged (a client's "failed" says less than the server's FATAL line: why an
//! authentication failed, which address it could not bind) and, for a step that was stopped
//! because it never finished, what each PostgreSQL was doing (`pg_stat_activity` wait events).

use crate::lab::Lab;
use std::time::Duration;

const LOG_TAIL: &str = r#"for f in /var/log/postgresql/postgresql-*-main.log; do
  [ -f "$f" ] && tail -n 40 "$f" | grep -E 'FATAL|PANIC|ERROR|DETAIL|HINT|could not|invalid value|unrecognized configuration|syntax error' | tail -n 6
done 2>/dev/null || true"#;

const ACTIVITY: &str = r#"runuser -u postgres -- psql -XAtq -F ' | ' -c "SELECT coalesce(usename, backend_type), coalesce(client_addr::text, 'local'), state, coalesce(wait_event_type || ':' || wait_event, 'running'), left(regexp_replace(query, '\s+', ' ', 'g'), 80) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state IS NOT NULL AND state <> 'idle'" 2>/dev/null || true"#;

/// The oldest commit waiting for a synchronous standby (`seconds | query | synchronous
/// standbys connected | synchronous_standby_names`), if any.
const SYNC_WAIT: &str = r#"runuser -u postgres -- psql -XAtq -F ' | ' -c "SELECT extract(epoch FROM now() - a.query_start)::int, left(regexp_replace(a.query, '\s+', ' ', 'g'), 80), (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')), current_setting('synchronous_standby_names') FROM pg_stat_activity a WHERE a.wait_event = 'SyncRep' ORDER BY a.query_start LIMIT 1" 2>/dev/null || true"#;

/// Why a lab is stuck, when one of its servers waits on something that cannot arrive: a
/// commit that has waited at least `after` for a synchronous standby while none is
/// connected (`synchronous_standby_names` names a standby that does not exist yet: the
/// commit never returns, and neither does the step that made it).
pub fn stuck(lab: &Lab, after: Duration) -> Option<String> {
    for h in &lab.topology().hosts {
        let t = Duration::from_secs(10);
        let Ok(o) = lab.backend().check(&h.name, "root", SYNC_WAIT, t) else {
            continue;
        };
        let f: Vec<&str> = o.stdout.trim().splitn(4, " | ").collect();
        let [secs, query, synced, names] = f[..] else {
            continue;
        };
        let (Ok(secs), Ok(0)) = (secs.parse::<u64>(), synced.parse::<u64>()) else {
            continue;
        };
        if secs >= after.as_secs() {
            return Some(format!(
                "on {} a commit has waited {secs} s for a synchronous standby (synchronous_standby_names = '{names}') and none is connected, so it never finishes: {query}",
                h.name
            ));
        }
    }
    None
}

/// Whether a failure paragraph is a command stopped at its deadline (`sys::exec`'s words).
pub fn stopped_at_deadline(message: &str) -> bool {
    message.contains("did not finish within")
}

/// Lines to append to a provisioning failure; empty when the servers said nothing.
pub fn at_failure(lab: &Lab, message: &str) -> String {
    servers_now(lab, stopped_at_deadline(message))
}

/// What the servers say now: PostgreSQL's log and, for something `stuck`, what each
/// PostgreSQL is doing (`pg_stat_activity`). Empty when they said nothing.
pub fn servers_now(lab: &Lab, stuck: bool) -> String {
    let mut out = String::new();
    for h in &lab.topology().hosts {
        for hit in lab.backend().limits_hit(&h.name) {
            out.push_str(&format!("\n    | {}: {hit}", h.name));
        }
        let t = Duration::from_secs(15);
        if let Ok(o) = lab.backend().check(&h.name, "root", LOG_TAIL, t) {
            for l in o.stdout.lines().filter(|l| !l.trim().is_empty()) {
                out.push_str(&format!(
                    "\n    | {}: PostgreSQL's log: {}",
                    h.name,
                    l.trim()
                ));
            }
        }
        if stuck {
            if let Ok(o) = lab.backend().check(&h.name, "root", ACTIVITY, t) {
                for l in o.stdout.lines().filter(|l| !l.trim().is_empty()) {
                    out.push_str(&format!(
                        "\n    | {}: pg_stat_activity: {}",
                        h.name,
                        l.trim()
                    ));
                }
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    format!("\n  the servers at that moment:{out}")
}

/// For a playbook stopped at its deadline: the task it was in (the last header in its output).
pub fn last_task(message: &str) -> Option<String> {
    let i = message.rfind("TASK [")?;
    let rest = &message[i + 6..];
    Some(rest.split(']').next().unwrap_or(rest).to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_task_header_names_where_a_playbook_hung() {
        let m = "command did not finish within 10m\n    | TASK [a]\n    | ok: [n]\n    | TASK [clone with a password prompt]\n";
        assert_eq!(
            super::last_task(m).as_deref(),
            Some("clone with a password prompt")
        );
    }
}
