//! Normalisation of outputs before they are compared with snapshots: what changes from run to
//! run (timestamps, backup ids, LSNs, WAL names, sizes, PIDs, passwords, ports) is replaced by
//! a placeholder; what remains is what a human would check.

use regex::Regex;
use std::sync::OnceLock;

fn rules() -> &'static [(Regex, &'static str)] {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    RULES.get_or_init(|| {
        [
            // Barman backup ids: 20261123T211125
            (r"\b\d{8}T\d{6}\b", "[backup-id]"),
            // ISO and PostgreSQL timestamps, with optional fraction and zone.
            (r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?( ?([+-]\d{2}(:?\d{2})?|UTC|[A-Z]{3,4}))?", "[timestamp]"),
            // ctime style: Mon Nov 23 21:07:31 2026
            (r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d{2}:\d{2}:\d{2} \d{4}\b", "[timestamp]"),
            // WAL segment names (before LSNs: both are hex).
            (r"\b[0-9A-F]{24}(\.partial|\.history)?\b", "[wal]"),
            (r"\b[0-9A-F]{1,8}/[0-9A-F]{1,8}\b", "[lsn]"),
            // Sizes: 22.3 MiB, 1024 B, 16 kB.
            (r"\b\d+(\.\d+)? ?(B|KiB|MiB|GiB|TiB|kB|MB|GB|bytes)\b", "[size]"),
            // Durations: 2 seconds, 1.5s, 00:00:02
            (r"\b\d+(\.\d+)? ?(seconds?|secs?|ms)\b", "[duration]"),
            (r"\b\d{1,2}:\d{2}:\d{2}(\.\d+)?\b", "[duration]"),
            // PIDs and ports.
            (r"(?i)\b(pid)([ :=]+)\d+", "$1$2[pid]"),
            (r"(?i)\b(port)([ :=]+)\d+", "$1$2[port]"),
        ]
        .iter()
        .map(|(re, with)| (Regex::new(re).expect("valid normalisation rule"), *with))
        .collect()
    })
}

/// Normalises `text`: secrets first (exact values), then the rules; trailing spaces dropped.
pub fn normalize(text: &str, secrets: &[String]) -> String {
    let mut out = crate::model::secrets::redact_values(text, secrets);
    for (re, with) in rules() {
        out = re.replace_all(&out, *with).into_owned();
    }
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    lines.join("\n").trim_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn barman_list_backup() {
        let line =
            "node1 20261123T211125 - Mon Nov 23 21:11:27 2026 - Size: 22.3 MiB - WAL Size: 0 B";
        assert_eq!(
            normalize(line, &[]),
            "node1 [backup-id] - [timestamp] - Size: [size] - WAL Size: [size]"
        );
    }

    #[test]
    fn lsns_wal_names_timestamps() {
        let t = "lsn 0/3000148 file 000000010000000000000003 at 2026-11-23 21:07:31.123+00 and 2026-11-23T21:07:31Z";
        assert_eq!(
            normalize(t, &[]),
            "lsn [lsn] file [wal] at [timestamp] and [timestamp]Z"
        );
    }

    #[test]
    fn secrets_pids_ports_and_trailing_spaces() {
        let t = "password=Secret123 pid=4242 port 5432   \n";
        assert_eq!(
            normalize(t, &["Secret123".into()]),
            "password=[password] pid=[pid] port [port]"
        );
    }

    #[test]
    fn leaves_what_a_human_checks() {
        let t = " otus      | postgres | UTF8     | C.UTF-8 | C.UTF-8 |";
        assert_eq!(normalize(t, &[]), t.trim_end());
    }
}
