//! The host's own Debian apt sources, turned into mmdebstrap mirror lines for another suite.
//!
//! mmdebstrap without a mirror uses deb.debian.org and security.debian.org whatever the host
//! is configured with. A recipe with `sources = "host"` is built from the host's configured
//! Debian source instead: every `deb` entry whose suite is the host's release (or its
//! `-updates`/`-security` suite) is repeated with the recipe's suite. Measured on the
//! project's machine (bookworm, deb822 in /etc/apt/sources.list.d/debian.sources): its
//! `deb.debian.org/debian` and `deb.debian.org/debian-security` serve bullseye,
//! bullseye-updates and bullseye-security (PostgreSQL 13, barman 2.12).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// One `deb` entry: URI, suites, components, and the keyring it is signed by (a path).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    uri: String,
    suites: Vec<String>,
    components: Vec<String>,
    signed_by: Option<String>,
}

/// The suite suffixes carried over: the release itself, its updates and its security suite.
const SUFFIXES: [&str; 3] = ["", "-updates", "-security"];

/// Mirror lines (`deb [signed-by=K] URI SUITE COMPONENTS`) for `suite`, from the host's apt
/// configuration under `etc_apt` (normally `/etc/apt`) and the host's release `codename`.
pub fn mirrors_for(suite: &str, etc_apt: &Path, codename: &str) -> Result<Vec<String>> {
    let entries = read_entries(etc_apt)?;
    let mut lines = Vec::new();
    for e in &entries {
        for s in &e.suites {
            let Some(suffix) = s.strip_prefix(codename) else {
                continue;
            };
            if !SUFFIXES.contains(&suffix) {
                continue;
            }
            let opts = e
                .signed_by
                .as_ref()
                .map(|k| format!(" [signed-by={k}]"))
                .unwrap_or_default();
            let line = format!(
                "deb{opts} {} {suite}{suffix} {}",
                e.uri,
                e.components.join(" ")
            );
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if !lines.iter().any(|l| l.contains(&format!(" {suite} "))) {
        bail!(
            "no apt source of this host serves its release {codename:?} (looked in {0}/sources.list and {0}/sources.list.d/): \
             a box with `sources = \"host\"` repeats the host's Debian source with suite {suite:?}. \
             Configure a Debian source for {codename}, or leave `sources` out to use mmdebstrap's default mirror",
            etc_apt.display()
        );
    }
    Ok(lines)
}

/// The host's release codename (`VERSION_CODENAME` in /etc/os-release).
pub fn host_codename() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("cannot read /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME: cannot tell the host's release")
}

fn read_entries(etc_apt: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let main = etc_apt.join("sources.list");
    if let Ok(text) = std::fs::read_to_string(&main) {
        out.extend(one_line(&text));
    }
    let dir = etc_apt.join("sources.list.d");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .with_context(|| format!("cannot read apt source {}", f.display()))?;
        match f.extension().and_then(|e| e.to_str()) {
            Some("list") => out.extend(one_line(&text)),
            Some("sources") => out.extend(deb822(&text)),
            _ => {}
        }
    }
    Ok(out)
}

/// `deb [opt=val ...] URI SUITE COMPONENT...` lines.
fn one_line(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            signed_by = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            rest = after.trim();
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() >= 3 {
            out.push(Entry {
                uri: words[0].into(),
                suites: vec![words[1].into()],
                components: words[2..].iter().map(|s| s.to_string()).collect(),
                signed_by,
            });
        }
    }
    out
}

/// deb822 paragraphs (`Types: deb`, `URIs`, `Suites`, `Components`, `Signed-By`).
fn deb822(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields = std::collections::HashMap::new();
        for line in para.lines() {
            if line.starts_with('#') || line.starts_with(' ') || line.starts_with('\t') {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let words = |k: &str| -> Vec<String> {
            fields
                .get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if !words("types").iter().any(|t| t == "deb")
            || fields.get("enabled").is_some_and(|v| v == "no")
        {
            continue;
        }
        // An inline key (a multi-line field) cannot go on a one-line entry: left to apt's keys.
        let signed_by = fields
            .get("signed-by")
            .filter(|v| v.starts_with('/'))
            .cloned();
        for uri in words("uris") {
            out.push(Entry {
                uri,
                suites: words("suites"),
                components: words("components"),
                signed_by: signed_by.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The project machine's own files (bookworm, deb822, plus two vendors' sources).
    fn host_like() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sources.list.d")).unwrap();
        std::fs::write(
            d.path().join("sources.list.d/debian.sources"),
            "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sources.list.d/google-cloud-sdk.list"),
            "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sources.list.d/nodesource.sources"),
            "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn the_hosts_debian_source_serves_another_suite() {
        let d = host_like();
        let lines = mirrors_for("bullseye", d.path(), "bookworm").unwrap();
        let key = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]";
        assert_eq!(
            lines,
            [
                format!("deb {key} http://deb.debian.org/debian bullseye main"),
                format!("deb {key} http://deb.debian.org/debian bullseye-updates main"),
                format!("deb {key} http://deb.debian.org/debian-security bullseye-security main"),
            ]
        );
    }

    #[test]
    fn one_line_sources_and_backports_left_out() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("sources.list"),
            "# comment\ndeb http://mirror.example/debian bookworm main contrib\ndeb-src http://mirror.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm-backports main\n",
        )
        .unwrap();
        let lines = mirrors_for("bullseye", d.path(), "bookworm").unwrap();
        assert_eq!(
            lines,
            ["deb http://mirror.example/debian bullseye main contrib"]
        );
    }

    #[test]
    fn no_debian_source_for_the_hosts_release_is_an_error() {
        let d = host_like();
        let e = mirrors_for("bullseye", d.path(), "jammy")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"jammy\"") && e.contains("sources"), "{e}");
    }
}
