//! Submissions alike: pairs whose files (outside a base the teacher names, e.g. the course's
//! template) are identical or nearly so, grouped, with the files they have in common.
//!
//! Exact matches come from the files' contents; near matches from winnowing (Schleimer,
//! Wilkerson and Aiken 2003, what MOSS does): each file's tokens (comments and spacing
//! dropped, so re-indenting or re-commenting changes nothing) are cut into k-grams, each
//! window of w hashes keeps its smallest, and two submissions are alike when their sets of
//! kept hashes mostly agree (Jaccard). A kept library was looked for: jscpd (npm) finds
//! duplicated blocks within one code base and reports blocks, not how alike two
//! submissions are, and would parse students' files in another runtime; the algorithm is
//! 40 lines here, over files read through the same rules as the rest of the door.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Tokens per k-gram and hashes per window.
const K: usize = 7;
const W: usize = 4;
/// Two submissions are alike from this share of common fingerprints...
pub const ALIKE: f64 = 0.7;
/// ...when each has at least this many (a few lines of their own prove nothing).
const MIN_PRINTS: usize = 30;
/// What is read of a submission: regular files, no larger than this, no more of them.
const FILE_MAX: u64 = 256 << 10;
const FILES_MAX: usize = 2000;
/// ...and no more text in all (a homework is a few hundred KiB; what is beyond is not read).
const TOTAL_MAX: usize = 8 << 20;

/// A submission's own text: each file's content digest and fingerprints.
#[derive(Debug, Default, Clone)]
pub struct Prints {
    files: BTreeMap<String, (String, BTreeSet<u64>)>,
    all: BTreeSet<u64>,
}

/// A group of submissions alike: who, how alike (the lowest pair's share), and their files
/// in common (`~` before a name: nearly the same, not identical).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alike {
    pub submissions: Vec<String>,
    pub similarity: f64,
    pub files: Vec<String>,
}

fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = match line.find('#') {
            Some(0) => continue,
            Some(i) if line[..i].ends_with(char::is_whitespace) => &line[..i],
            _ => line,
        };
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            let word = |c: char| c.is_alphanumeric() || "_./-".contains(c);
            let n = if c.is_whitespace() {
                rest = &rest[c.len_utf8()..];
                continue;
            } else if word(c) {
                rest.find(|c: char| !word(c)).unwrap_or(rest.len())
            } else {
                c.len_utf8()
            };
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
    }
    out
}

/// The winnowed fingerprints of a text.
pub fn fingerprints(text: &str) -> BTreeSet<u64> {
    use sha2::{Digest, Sha256};
    let t = tokens(text);
    let grams: Vec<u64> = t
        .windows(K)
        .map(|g| {
            let h = Sha256::digest(g.join(" ").as_bytes());
            u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
        })
        .collect();
    if grams.len() < W {
        return grams.into_iter().collect();
    }
    grams
        .windows(W)
        .map(|w| *w.iter().min().expect("a window"))
        .collect()
}

fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// The text files under `dir` (`.git`, `.vagrant` and links left out) by relative path.
fn text_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut total = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() && name != ".git" && name != ".vagrant" {
                stack.push(e.path());
            } else if meta.is_file() && meta.len() <= FILE_MAX && out.len() < FILES_MAX {
                let Ok(bytes) = std::fs::read(e.path()) else {
                    continue;
                };
                if bytes.iter().take(8192).any(|b| *b == 0) || total + bytes.len() > TOTAL_MAX {
                    continue;
                }
                total += bytes.len();
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap_or(&e.path())
                    .display()
                    .to_string();
                out.insert(rel, bytes);
            }
        }
    }
    out
}

impl Prints {
    /// What `dir` holds of its own: files identical to a file of `base` and fingerprints
    /// that `base` has are left out.
    pub fn of(dir: &Path, base: &Prints) -> Prints {
        let base_digests: BTreeSet<&String> = base.files.values().map(|(d, _)| d).collect();
        let mut p = Prints::default();
        for (rel, bytes) in text_files(dir) {
            let d = digest(&bytes);
            if base_digests.contains(&d) {
                continue;
            }
            let f: BTreeSet<u64> = fingerprints(&String::from_utf8_lossy(&bytes))
                .difference(&base.all)
                .copied()
                .collect();
            p.all.extend(&f);
            p.files.insert(rel, (d, f));
        }
        p
    }

    /// The teacher's base (`--base DIR`), read the same way.
    pub fn base(dir: &Path) -> Prints {
        Prints::of(dir, &Prints::default())
    }
}

fn jaccard(a: &BTreeSet<u64>, b: &BTreeSet<u64>) -> f64 {
    let both = a.intersection(b).count() as f64;
    let either = (a.len() + b.len()) as f64 - both;
    if either == 0.0 {
        0.0
    } else {
        both / either
    }
}

/// Files two submissions have in common: identical ones by name, then nearly identical ones
/// of the same name (`~name`).
fn common_files(a: &Prints, b: &Prints) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, (d, f)) in &a.files {
        match b.files.get(rel) {
            Some((d2, _)) if d2 == d => out.push(rel.clone()),
            Some((_, f2)) if jaccard(f, f2) >= ALIKE => out.push(format!("~{rel}")),
            _ => {}
        }
    }
    let b_digests: BTreeMap<&String, &String> =
        b.files.iter().map(|(rel, (d, _))| (d, rel)).collect();
    for (rel, (d, _)) in &a.files {
        if let Some(other) = b_digests.get(d).filter(|o| **o != rel) {
            out.push(format!("{rel} = {other}"));
        }
    }
    out
}

/// The groups of submissions alike, most alike first.
pub fn alike(subs: &[(String, Prints)]) -> Vec<Alike> {
    let mut pairs = Vec::new();
    for (i, (na, a)) in subs.iter().enumerate() {
        for (nb, b) in &subs[i + 1..] {
            if a.all.len() < MIN_PRINTS || b.all.len() < MIN_PRINTS {
                continue;
            }
            let s = jaccard(&a.all, &b.all);
            if s >= ALIKE {
                pairs.push((na.clone(), nb.clone(), s, common_files(a, b)));
            }
        }
    }
    // Groups: pairs joined through a shared member.
    let mut groups: Vec<Alike> = Vec::new();
    for (a, b, s, files) in pairs {
        let at: Vec<usize> = (0..groups.len())
            .filter(|&g| groups[g].submissions.iter().any(|n| n == &a || n == &b))
            .collect();
        let mut g = Alike {
            submissions: vec![a, b],
            similarity: s,
            files,
        };
        for &i in at.iter().rev() {
            let old = groups.remove(i);
            g.submissions.extend(old.submissions);
            g.similarity = g.similarity.min(old.similarity);
            g.files.extend(old.files);
        }
        g.submissions.sort();
        g.submissions.dedup();
        g.files.sort();
        g.files.dedup();
        let exact: BTreeSet<String> = g
            .files
            .iter()
            .filter(|f| !f.starts_with('~'))
            .cloned()
            .collect();
        g.files
            .retain(|f| !f.strip_prefix('~').is_some_and(|f| exact.contains(f)));
        groups.push(g);
    }
    for g in &mut groups {
        g.similarity = (g.similarity * 100.0).round() / 100.0;
    }
    groups.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.submissions.cmp(&b.submissions))
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAYBOOK: &str = "- hosts: all\n  become: true\n  tasks:\n    - name: install postgresql\n      apt:\n        name: postgresql-14\n        state: present\n        update_cache: true\n    - name: configure listen addresses\n      lineinfile:\n        path: /etc/postgresql/14/main/postgresql.conf\n        regexp: '^listen_addresses'\n        line: \"listen_addresses = '*'\"\n    - name: allow replication\n      lineinfile:\n        path: /etc/postgresql/14/main/pg_hba.conf\n        line: host replication replicator 192.168.57.0/24 scram-sha-256\n    - name: restart\n      service:\n        name: postgresql\n        state: restarted\n";

    fn tree(root: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
        for (rel, text) in files {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        root.to_path_buf()
    }

    /// A copy with another address, re-indented and re-commented, is found with its files;
    /// an independent solution is not; a file both took from the course's template does not
    /// make two submissions alike.
    #[test]
    fn copies_are_found_with_their_files_and_the_template_is_left_out() {
        let d = tempfile::tempdir().unwrap();
        let template = "# course template\nVagrant.configure('2') do |config|\n  config.vm.box = 'ubuntu/jammy64'\n  config.vm.define 'node1' do |n|\n    n.vm.network 'private_network', ip: '192.168.57.11'\n  end\n  config.vm.define 'node2' do |n|\n    n.vm.network 'private_network', ip: '192.168.57.12'\n  end\nend\n";
        let base = tree(&d.path().join("base"), &[("Vagrantfile", template)]);
        let copied = PLAYBOOK
            .replace("192.168.57.0/24", "10.0.0.0/24")
            .replace("  ", "    ");
        let copied = format!("# my own work!\n{copied}");
        let other = "#!/bin/bash\nset -e\napt-get install -y postgresql\npg_ctlcluster 14 main stop\nrm -rf /var/lib/postgresql/14/main\npg_basebackup -h node1 -U replicator -D /var/lib/postgresql/14/main -R -C -S node2 -X stream\nchown -R postgres: /var/lib/postgresql/14/main\npg_ctlcluster 14 main start\npsql -c 'select * from pg_stat_wal_receiver'\nbarman switch-wal --force --archive node1\nbarman backup node1 --wait\nbarman check node1\n";
        let subs: Vec<(String, Prints)> = [
            (
                "ann",
                vec![
                    ("Vagrantfile", template),
                    ("site.yml", PLAYBOOK),
                    ("README.md", "ann's homework\n"),
                ],
            ),
            (
                "bob",
                vec![("Vagrantfile", template), ("site.yml", copied.as_str())],
            ),
            ("cid", vec![("Vagrantfile", template), ("setup.sh", other)]),
            ("dee", vec![("Vagrantfile", template)]),
        ]
        .iter()
        .map(|(n, files)| {
            let dir = tree(&d.path().join(n), files);
            (n.to_string(), Prints::of(&dir, &Prints::base(&base)))
        })
        .collect();
        let groups = alike(&subs);
        assert_eq!(groups.len(), 1, "{groups:#?}");
        assert_eq!(groups[0].submissions, ["ann", "bob"]);
        assert!(groups[0].similarity >= ALIKE, "{groups:#?}");
        assert_eq!(groups[0].files, ["~site.yml"]);
        // Without the base, the template alone proves nothing either (too few prints of its
        // own), and an exact copy is found at 1.0 with its file.
        let exact: Vec<(String, Prints)> = ["ann", "eve"]
            .iter()
            .map(|n| {
                let dir = tree(&d.path().join(format!("x-{n}")), &[("site.yml", PLAYBOOK)]);
                (n.to_string(), Prints::of(&dir, &Prints::default()))
            })
            .collect();
        let g = alike(&exact);
        assert_eq!(
            (g[0].similarity, g[0].files.clone()),
            (1.0, vec!["site.yml".to_string()])
        );
    }

    #[test]
    fn comments_and_spacing_change_no_fingerprint() {
        let a = fingerprints(PLAYBOOK);
        let b = fingerprints(&format!("# header\n{}", PLAYBOOK.replace("  ", "\t")));
        assert_eq!(a, b);
        assert!(a.len() > MIN_PRINTS, "{}", a.len());
    }
}
