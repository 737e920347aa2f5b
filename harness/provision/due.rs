//! `pglab grade --due TIME`: a git repository is graded at its last commit before the due
//! time, taken out with `git archive` into a snapshot of pglab's, never touching the
//! student's working tree. git runs on the student's `.git`, whose config can name programs
//! (a `filter.*.smudge` driver runs during `git archive`): so it runs in the same sandbox as
//! the Vagrantfile reader — bubblewrap as `nobody`, no network, no capabilities, only /usr,
//! the `.git` read-only and the snapshot folder writable.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;

/// The commit a repository is graded at.
#[derive(Debug, Clone, PartialEq)]
pub struct AtDue {
    pub commit: String,
    /// Its committer date (ISO 8601, as git gives it).
    pub date: String,
    /// How many commits came after it (the student kept working after the due time).
    pub later: usize,
}

/// `2026-12-01T23:59+03:00` (seconds and `Z` allowed; a space for `T`) as Unix seconds.
pub fn parse_due(s: &str) -> Result<i64> {
    let bad = || format!("--due {s:?}: expected e.g. 2026-12-01T23:59+03:00 or 2026-12-01T20:59Z");
    let t = s.trim().replacen(' ', "T", 1);
    let (date, rest) = t.split_once('T').with_context(bad)?;
    let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => bail!("{}: the time needs its offset (Z or +HH:MM)", bad()),
    };
    let num = |x: &str| x.parse::<i64>().ok();
    let d: Vec<i64> = date.split('-').filter_map(num).collect();
    let c: Vec<i64> = clock.split(':').filter_map(num).collect();
    if d.len() != 3 || !(2..=3).contains(&c.len()) {
        bail!("{}", bad());
    }
    let off = match offset {
        "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hm: Vec<i64> = o[1..].split(':').filter_map(num).collect();
            match hm[..] {
                [h, m] => sign * (h * 3600 + m * 60),
                _ => bail!("{}", bad()),
            }
        }
    };
    let (y, m, day) = (d[0], d[1], d[2]);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || c[0] > 23 || c[1] > 59 {
        bail!("{}", bad());
    }
    let secs = c[0] * 3600 + c[1] * 60 + c.get(2).copied().unwrap_or(0);
    Ok(days_from_civil(y, m, day) * 86400 + secs - off)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// What runs inside the sandbox: the commit before the due time, its date, the count of
/// later commits, then its tree into /out (files at most 64 MiB each, the archive at most
/// 1 GiB: a cut archive fails tar, and the repository gets that verdict).
const SCRIPT: &str = r#"set -e
g() { git -c safe.directory='*' -c core.fsmonitor=false -c core.hooksPath=/dev/null "$@"; }
c=$(g rev-list -1 --before="@$1" HEAD)
if [ -z "$c" ]; then echo "none $(g log --reverse --format=%cI HEAD | head -1)"; exit 0; fi
echo "commit $c"
g log -1 --format='date %cI' "$c"
echo "later $(g rev-list --count "$c..HEAD")"
ulimit -f 65536
set -o pipefail
g archive --format=tar "$c" | head -c 1073741824 | tar -x -C /out --no-same-owner --no-same-permissions
"#;

/// Takes the repository `repo` out at its last commit before `due` (Unix seconds) into the
/// empty folder `into`. None: it has no commit before then (the string: its first commit's
/// date, when it has one).
pub fn checkout_at(
    repo: &Path,
    due: i64,
    into: &Path,
) -> Result<std::result::Result<AtDue, String>> {
    crate::sys::doctor::ensure_repository_reader()?;
    let git = repo.join(".git");
    if !git.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        bail!("{} is no git repository (no .git folder)", repo.display());
    }
    if git.join("shallow").exists() {
        bail!(
            "{} is a shallow clone: its history is cut, so it cannot say which commit came before the due time; clone it whole (without --depth) to grade it with --due",
            repo.display()
        );
    }
    crate::sys::tree::chown_tree(into, 65534)?;
    let argv = sandboxed(&git, into, due);
    let setup = crate::sys::exec::Setup {
        own_group: true,
        ..Default::default()
    };
    let out = crate::sys::exec::run_with(&argv, None, Duration::from_secs(120), &setup)
        .with_context(|| format!("taking {} out at the due time", repo.display()))?;
    if !out.ok() {
        bail!(
            "git could not take {} out at the due time (as nobody, in a sandbox: the repository must be readable by others): {}",
            repo.display(),
            crate::sys::safe_text::terminal(out.stderr.trim())
        );
    }
    parse_answer(&out.stdout)
}

fn parse_answer(text: &str) -> Result<std::result::Result<AtDue, String>> {
    let mut at = AtDue {
        commit: String::new(),
        date: String::new(),
        later: 0,
    };
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("none", first)) => return Ok(Err(first.trim().to_string())),
            Some(("commit", c)) => at.commit = c.trim().into(),
            Some(("date", d)) => at.date = d.trim().into(),
            Some(("later", n)) => at.later = n.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    if at.commit.len() < 40 {
        bail!(
            "git said no commit: {}",
            crate::sys::safe_text::terminal(text)
        );
    }
    Ok(Ok(at))
}

fn sandboxed(git: &Path, into: &Path, due: i64) -> Vec<String> {
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let mut argv = Vec::new();
    if crate::sys::doctor::is_root() {
        argv.extend(words(crate::provision::vagrantfile_read::AS_NOBODY));
    }
    argv.extend(words(crate::provision::vagrantfile_read::BWRAP));
    let s = |p: &Path| p.to_string_lossy().into_owned();
    argv.extend(["--ro-bind".into(), s(git), "/repo.git".into()]);
    argv.extend(["--bind".into(), s(into), "/out".into()]);
    argv.extend(words(
        "--setenv GIT_DIR /repo.git --setenv GIT_CONFIG_NOSYSTEM 1",
    ));
    argv.extend(words("--setenv GIT_CONFIG_GLOBAL /dev/null --chdir /tmp"));
    argv.extend(["bash".into(), "-c".into(), SCRIPT.into(), "due".into()]);
    argv.push(due.to_string());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_read_with_their_offset() {
        // The figures are what `date -d TIME +%s` says.
        assert_eq!(parse_due("1970-01-01T00:00Z").unwrap(), 0);
        assert_eq!(parse_due("2026-12-01T23:59+03:00").unwrap(), 1_796_158_740);
        assert_eq!(parse_due("2026-12-01 20:59:00Z").unwrap(), 1_796_158_740);
        assert_eq!(parse_due("2024-02-29T12:00-01:30").unwrap(), 1_709_213_400);
        for bad in [
            "2026-12-01",
            "2026-12-01T23:59",
            "2026-13-01T00:00Z",
            "tomorrow",
        ] {
            assert!(parse_due(bad).is_err(), "{bad}");
        }
    }

    /// Two commits, the second after the due time, and a hostile `.git/config` whose smudge
    /// filter would write a marker: the first commit's tree comes out, the later one is
    /// counted, the filter runs (it is git's) but only inside the sandbox, where /tmp is its
    /// own.
    #[test]
    fn a_repository_is_taken_out_at_its_last_commit_before_the_due_time() {
        if !crate::sys::doctor::is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("alice");
        std::fs::create_dir(&repo).unwrap();
        let git = |args: &[&str], date: &str| {
            let st = std::process::Command::new("git")
                .args(["-c", "user.name=a", "-c", "user.email=a@x", "-C"])
                .arg(&repo)
                .args(args)
                .env("GIT_AUTHOR_DATE", date)
                .env("GIT_COMMITTER_DATE", date)
                .status()
                .unwrap();
            assert!(st.success(), "git {args:?}");
        };
        git(&["init", "-q"], "2026-11-30T10:00:00Z");
        std::fs::write(repo.join("site.yml"), "first\n").unwrap();
        git(&["add", "."], "2026-11-30T10:00:00Z");
        git(&["commit", "-qm", "one"], "2026-11-30T10:00:00Z");
        std::fs::write(repo.join("site.yml"), "late\n").unwrap();
        git(&["commit", "-qam", "two"], "2026-12-03T10:00:00Z");
        let marker = "/tmp/pglab-hostile-git-filter-ran";
        let _ = std::fs::remove_file(marker);
        let cfg = format!("[filter \"x\"]\n\tsmudge = \"touch {marker} && cat\"\n");
        let mut c = std::fs::read_to_string(repo.join(".git/config")).unwrap();
        c.push_str(&cfg);
        std::fs::write(repo.join(".git/config"), c).unwrap();
        std::fs::write(repo.join(".git/info/attributes"), "* filter=x\n").unwrap();
        let into = d.path().join("snap");
        std::fs::create_dir(&into).unwrap();
        let due = parse_due("2026-12-01T23:59+03:00").unwrap();
        let at = checkout_at(&repo, due, &into).unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(into.join("site.yml")).unwrap(),
            "first\n"
        );
        assert_eq!(at.later, 1);
        assert!(at.date.starts_with("2026-11-30T10:00:00"), "{at:?}");
        assert!(
            !Path::new(marker).exists(),
            "the filter ran on this machine"
        );
        assert_eq!(
            std::fs::read_to_string(repo.join("site.yml")).unwrap(),
            "late\n"
        );
        let early = parse_due("2026-11-01T00:00Z").unwrap();
        let into2 = d.path().join("snap2");
        std::fs::create_dir(&into2).unwrap();
        let none = checkout_at(&repo, early, &into2).unwrap().unwrap_err();
        assert!(none.starts_with("2026-11-30T10:00:00"), "{none}");
        // A shallow clone's history is cut: refused, not graded at the wrong commit.
        std::fs::write(repo.join(".git/shallow"), "x\n").unwrap();
        let e = checkout_at(&repo, due, &into2).unwrap_err().to_string();
        assert!(e.contains("is a shallow clone"), "{e}");
    }
}
