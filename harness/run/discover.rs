//! Names the scenarios take from the provisioned lab rather than from pglab's own choices:
//! the standby's slot (whatever the submission named it), barman's server name and its slot.
//! `{{primary}}`, `{{standby}}`, `{{backup}}` are the hosts with those roles, and
//! `{{primary_addr}}`... their addresses (`{{gateway_addr}}`: pglab's side of the lab).

use crate::lab::Lab;
use crate::model::topology::Role;
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn names(lab: &Lab) -> Result<BTreeMap<String, String>> {
    let topo = lab.topology();
    let primary = topo.with_role(Role::Primary);
    let standby = topo.with_role(Role::Standby);
    let backup = topo.with_role(Role::Backup);
    let mut vars = BTreeMap::from([
        ("primary".to_string(), primary.name.clone()),
        ("standby".to_string(), standby.name.clone()),
        ("backup".to_string(), backup.name.clone()),
        ("primary_addr".to_string(), primary.address.to_string()),
        ("standby_addr".to_string(), standby.address.to_string()),
        ("backup_addr".to_string(), backup.address.to_string()),
        ("gateway_addr".to_string(), topo.gateway.to_string()),
    ]);
    // The slot the standby streams through: the one whose active walsender serves the
    // standby's address. Without one (no slot), the standby's own name: the checks that
    // need it then fail with their hint (`-C -S`).
    // The standby may still be connecting right after provisioning: wait up to 10 s for
    // its walsender (a standby that never connects costs those 10 s once).
    let sql = format!(
        "SELECT coalesce(s.slot_name, '-') FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON r.pid = s.active_pid WHERE r.client_addr = '{}' LIMIT 1",
        standby.address
    );
    let probe = format!(
        "for _ in $(seq 50); do v=$(runuser -u postgres -- psql -XAtq -c \"{sql}\" 2>/dev/null); [ -n \"$v\" ] && break; sleep 0.2; done; [ \"$v\" = - ] || echo \"$v\""
    );
    let out = lab
        .backend()
        .check(&primary.name, "root", &probe, Duration::from_secs(30))?;
    let slot = out.stdout.trim();
    vars.insert(
        "standby_slot".into(),
        if slot.is_empty() {
            standby.name.clone()
        } else {
            slot.to_string()
        },
    );
    // barman's server: the one named as the primary, else the first listed, else the
    // primary's name.
    let probe = "barman list-server --minimal 2>/dev/null || true";
    let out = lab
        .backend()
        .check(&backup.name, "barman", probe, Duration::from_secs(30))?;
    let servers: Vec<&str> = out.stdout.split_whitespace().collect();
    let server = if servers.contains(&primary.name.as_str()) || servers.is_empty() {
        primary.name.clone()
    } else {
        servers[0].to_string()
    };
    let slot = barman_slot(lab, &backup.name, &server)?;
    vars.insert("barman_slot".into(), slot);
    vars.insert("barman_server".into(), server);
    Ok(vars)
}

/// barman's own slot on the primary: its server's `slot_name`, else barman's usual one.
fn barman_slot(lab: &Lab, backup: &str, server: &str) -> Result<String> {
    let probe = format!(
        "barman show-server {} 2>/dev/null | sed -n 's/^[[:space:]]*slot_name: //p'",
        crate::backend::shell_quote(server)
    );
    let out = lab
        .backend()
        .check(backup, "barman", &probe, Duration::from_secs(30))?;
    let slot = out.stdout.trim();
    Ok(if slot.is_empty() || slot == "None" {
        "barman".into()
    } else {
        slot.into()
    })
}

/// Each host's role from what runs there after provisioning: barman naming a server is the
/// backup server; otherwise PostgreSQL answering and not in recovery is the primary, in
/// recovery the standby. `None` unless that gives exactly one of each.
pub fn roles(lab: &Lab) -> Result<Option<Vec<(String, Role)>>> {
    let probe = "pg=$(runuser -u postgres -- psql -XAtqc 'SELECT pg_is_in_recovery()' 2>/dev/null)\n\
                 servers=$(runuser -u barman -- barman list-server --minimal 2>/dev/null | head -1)\n\
                 echo \"${pg:--} ${servers:--}\"";
    let mut found = Vec::new();
    for h in &lab.topology().hosts {
        let out = lab
            .backend()
            .check(&h.name, "root", probe, Duration::from_secs(30))?;
        let Some(role) = role_seen(&out.stdout) else {
            return Ok(None);
        };
        found.push((h.name.clone(), role));
    }
    let one_each = [Role::Primary, Role::Standby, Role::Backup]
        .iter()
        .all(|r| found.iter().filter(|(_, f)| f == r).count() == 1);
    Ok(one_each.then_some(found))
}

/// A host's role from the probe's line: `pg_is_in_recovery()` (or `-`) and barman's first
/// server (or `-`).
fn role_seen(probe_output: &str) -> Option<Role> {
    // A configured barman server says backup first: students' barman hosts often still run
    // the PostgreSQL their packages started (the homework never stops it).
    match probe_output.split_whitespace().collect::<Vec<_>>()[..] {
        [_, server] if server != "-" => Some(Role::Backup),
        ["f", _] => Some(Role::Primary),
        ["t", _] => Some(Role::Standby),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_runs_says_the_role() {
        assert_eq!(role_seen("f -\n"), Some(Role::Primary));
        assert_eq!(role_seen("t -"), Some(Role::Standby));
        assert_eq!(role_seen("- pg"), Some(Role::Backup));
        // barman's host that still runs its own PostgreSQL is the backup server.
        assert_eq!(role_seen("f pg"), Some(Role::Backup));
        assert_eq!(role_seen("- -"), None, "nothing runs");
        assert_eq!(role_seen(""), None);
    }
}
