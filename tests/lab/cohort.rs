//! `pglab grade`: the fixture submissions and the reference graded as one cohort, two labs at
//! once. The scenarios are `recover` and what leads to it (replicate, backup, drop): every
//! check group of the homework, each fixture's known mistake among them, in about 20 s of
//! lab time per submission (the fault scenarios would add minutes per submission for no
//! check group that these fixtures fail).

use super::verbs::*;
use pglab::report::cohort::Row;
use pglab::report::outcome::Status;
use pglab::run::bench::cohort_options;
use pglab::run::grade::grade;
use pglab::run::RunReport;

/// The row's cells as words, in the table's order.
fn cells(row: &Row) -> Vec<&'static str> {
    row.cells
        .iter()
        .map(|c| match c.status {
            Status::Passed => "passed",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        })
        .collect()
}

/// The row of `name`: its cells, and that its first failure names `needles`.
fn assert_row(rows: &[Row], name: &str, want: &[&str], needles: &[&str]) {
    let row = rows.iter().find(|r| r.name == name).expect(name);
    assert_eq!(cells(row), want, "{name}: {row:#?}");
    let first = row.first_failure().unwrap_or_default();
    for n in needles {
        assert!(first.contains(n), "{name}: {n:?} not in {first:?}");
    }
    if !row.lab.is_empty() {
        assert_nothing_left(&row.lab);
    }
}

/// The provision.toml fixtures that end (each one mistake), the reference, and students'
/// repositories as they come: a Vagrant shell provisioner (which sets up no ssh for barman),
/// an ansible one without a standby slot, a Red Hat box and playbooks without an inventory
/// (both get their verdict without a lab), an inventory-only one that installs packages and
/// nothing more, inventories in the INI and YAML forms students write, and a playbook that
/// installs with pip (tests/lab/students.rs has the others).
fn cohort() -> Vec<std::path::PathBuf> {
    let root = pglab::sys::paths::repo_root();
    let mut dirs: Vec<_> = pglab::run::bench::ONE_MISTAKE
        .iter()
        .map(|d| root.join(d))
        .collect();
    dirs.push(root.join("examples/reference"));
    dirs.extend(
        [
            "shell-provisioners",
            "no-standby-slot",
            "red-hat-box",
            "playbook-only",
            "inventory-only",
            "inventory-ini-forms",
            "inventory-yaml",
            "pip-install",
        ]
        .map(crate::students::student),
    );
    dirs
}

#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn a_cohort_of_fixtures_is_graded_two_labs_at_a_time() {
    let _g = serial();
    let out = tempfile::tempdir().unwrap();
    let opts = pglab::run::grade::GradeOptions {
        roster: Some(pglab::sys::paths::repo_root().join("tests/fixtures/roster.csv")),
        assignment: "Replication".into(),
        ..cohort_options(&cohort(), "", 2, out.path())
    };
    let g = grade(&opts).unwrap();
    assert_eq!(
        g.groups,
        ["provisioned", "replicate", "backup", "drop", "recover"]
    );
    assert_eq!(g.rows.len(), cohort().len());
    let md = std::fs::read_to_string(out.path().join("cohort.md")).unwrap();
    let csv = std::fs::read_to_string(out.path().join("cohort.csv")).unwrap();
    eprintln!("{md}");
    check_rows(&g.rows);
    check_recover_messages(&g.reports);
    check_silent_primary(&g.rows, &g.reports);
    check_causes(&g.reports);
    check_forms(&g.reports);
    insta::assert_snapshot!("cohort-md", md);
    insta::assert_snapshot!("cohort-csv", csv);
    check_gradebook(out.path());
    check_page(out.path(), &g.rows);
    for r in &g.rows {
        let card = out.path().join(&r.name).join("report.md");
        assert!(card.is_file(), "{}", card.display());
        // A submission that ran in a lab has its logs (red-hat-box got its verdict without).
        let logs = out.path().join(&r.name).join("logs");
        assert_eq!(logs.is_dir(), !r.lab.is_empty(), "{}", logs.display());
    }
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), cohort().len());
    regrade_keeps_unchanged(out.path());
}

/// The roster's LMS files: every student with a submission has its score (Moodle with the
/// first failure as feedback), the student without one gets 0, and the submission nobody
/// owns (red-hat-box) is listed.
fn check_gradebook(out: &std::path::Path) {
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    insta::assert_snapshot!("cohort-moodle-csv", read("cohort-moodle.csv"));
    let canvas = read("cohort-canvas.csv");
    assert!(canvas.starts_with("Student,ID,SIS User ID,SIS Login ID,Section,Replication\n"));
    assert!(
        canvas.contains("Lev Kozlov,1010,S1010,lev@course.example,C,65\n"),
        "{canvas}"
    );
    assert!(
        canvas.contains("Olga Absent,1013,S1013,olga@course.example,C,0\n"),
        "{canvas}"
    );
    let roster = read("roster.md");
    assert!(roster.contains("owns (1):\n- red-hat-box\n"), "{roster}");
    assert!(
        roster.contains("submission (1):\n- Olga Absent (olga@course.example)\n"),
        "{roster}"
    );
}

/// Headless Chromium with no network at all (its own empty network namespace), as root
/// without its sandbox, on a page of this cohort.
fn chromium(args: &[&str], page: &std::path::Path) -> String {
    pglab::sys::doctor::ensure_browser().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args([
            "--net",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// cohort.html as a real browser renders it: every submission with a cell per group and its
/// explanation, the histogram and what the cohort got wrong; a screenshot goes into the
/// test's output (and, with PGLAB_SCREENSHOT_TO, to that file: the README's picture).
fn check_page(out: &std::path::Path, rows: &[Row]) {
    let page = out.join("cohort.html");
    let dom = chromium(&["--dump-dom"], &page);
    let passed = rows.iter().filter(|r| r.passed()).count();
    let summary = format!("{} submissions, {passed} passed every group.", rows.len());
    assert!(dom.contains(&summary), "{summary:?} not in {dom}");
    assert_eq!(
        dom.matches("class=\"cell ").count(),
        rows.len() * 5,
        "{dom}"
    );
    for r in rows {
        assert!(
            dom.contains(&format!(">{}</a>", r.name)),
            "{} not in {dom}",
            r.name
        );
    }
    assert!(dom.contains("What the cohort got wrong") && dom.contains("<svg id=\"histogram\""));
    assert!(
        dom.contains("title=\"replicate: node2 is not streaming")
            || dom.contains("title=\"node2 is not streaming"),
        "{dom}"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cohort.png");
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1500,1000",
        ],
        &page,
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("cohort.html's screenshot: {}", shot.display());
    if let Some(to) = std::env::var_os("PGLAB_SCREENSHOT_TO") {
        std::fs::copy(&shot, to).unwrap();
    }
}

/// The run report of submission `name` (one that ran in a lab).
fn report_of<'a>(reports: &'a [(String, Option<RunReport>)], name: &str) -> &'a RunReport {
    reports
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, r)| r.as_ref())
        .expect(name)
}

/// The failed step of `name`'s run and its whole message.
fn failed_step(reports: &[(String, Option<RunReport>)], name: &str) -> (String, String) {
    let r = report_of(reports, name);
    let f: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.status == Status::Failed)
        .collect();
    assert_eq!(f.len(), 1, "{name}: {f:#?}");
    (f[0].step.clone(), f[0].message.clone())
}

/// Recovery paused at its target (no `--target-action promote`) cannot end by waiting: the
/// promotion check stops at once, saying so, instead of waiting out its 120 s. A recovery into
/// a directory no PostgreSQL uses is named before the recovery target could be blamed.
fn check_recover_messages(reports: &[(String, Option<RunReport>)]) {
    let (step, m) = failed_step(reports, "recovery-paused");
    assert_eq!(step, "node1 finished recovery and was promoted");
    for n in [
        "stopped waiting after",
        "\"paused\", a state that does not change by waiting",
        "--target-action promote",
    ] {
        assert!(m.contains(n), "{n:?} not in {m}");
    }
    let (step, m) = failed_step(reports, "recovery-elsewhere");
    assert_eq!(
        step,
        "a recovery ran in the data directory node1's PostgreSQL uses"
    );
    for n in [
        "no recovery in /var/lib/postgresql/15/main",
        "barman recover wrote somewhere else",
    ] {
        assert!(m.contains(n), "{n:?} not in {m}");
    }
}

/// The cause a provisioning verdict carries from the servers: barman's own WARNING (its
/// server disabled with no archiver), PostgreSQL's DETAIL from node1's log (passwords stored
/// as md5 under scram-sha-256: the client says only "password authentication failed").
fn check_causes(reports: &[(String, Option<RunReport>)]) {
    // The provisioning's verdict, which names the step that failed.
    let failed = |name: &str, step: &str| -> String {
        let r = report_of(reports, name);
        let c = r.checks.iter().find(|c| c.scenario == "provision");
        let c = c.unwrap_or_else(|| panic!("{name}: no provisioning in {:#?}", r.checks));
        assert_eq!(c.status, Status::Failed, "{c:#?}");
        let named = format!("provisioning step \"{step}\"");
        assert!(c.message.starts_with(&named), "{named:?}: {c:#?}");
        c.message.clone()
    };
    let m = failed(
        "barman-no-archiver",
        "barman streaming backups configured and checked",
    );
    let warning = "No archiver enabled for server 'node1'";
    assert!(m.contains("host barman") && m.contains(warning), "{m}");
    let row = pglab::report::cohort::plain_why(&m);
    assert!(row.contains(warning), "{row}");
    let m = failed("md5-passwords", "standby cloned through its own slot");
    for n in [
        "host node2",
        "password authentication failed for user \"replicator\"",
        "node1: PostgreSQL's log:",
        "User \"replicator\" does not have a valid SCRAM secret",
    ] {
        assert!(m.contains(n), "{n:?} not in {m}");
    }
}

/// Repositories in the forms students write: the inventory-only one (its playbooks only
/// install the packages: node2 is no standby, barman has no server) has its waits ended at
/// once on states that do not change by waiting, instead of waiting out 30 s and 60 s; the
/// playbook that installs with pip got psycopg2-binary from PyPI through the lab's proxy.
fn check_forms(reports: &[(String, Option<RunReport>)]) {
    let report = |name: &str| report_of(reports, name);
    let r = report("inventory-only");
    let check = |step: &str| r.checks.iter().find(|c| c.step == step).expect(step);
    let standby = check("node2 is a hot standby");
    assert_eq!(standby.status, Status::Failed, "{standby:#?}");
    for n in [
        "stopped waiting after",
        "the output shows \"not in recovery\", a state that does not change by waiting",
        "node2's PostgreSQL is not a standby",
    ] {
        assert!(standby.message.contains(n), "{n:?} in {standby:#?}");
    }
    let barman = check("barman check is all OK");
    assert!(
        barman.message.contains(
            "the output shows \"Unknown server\", a state that does not change by waiting"
        ),
        "{barman:#?}"
    );
    let pip = report("pip-install");
    assert!(
        pip.provision_changes
            .iter()
            .any(|c| c.starts_with("psycopg2-binary from PyPI")),
        "pip installed nothing: {:?}",
        pip.provision_changes
    );
}

/// A primary whose PostgreSQL never starts (a wal_level typo): provisioning fails, the first
/// scenario fails at once saying PostgreSQL does not answer on node1, and the rest are not
/// checked, without a single polling wait.
fn check_silent_primary(rows: &[Row], reports: &[(String, Option<RunReport>)]) {
    let name = "primary-never-starts";
    let row = rows.iter().find(|r| r.name == name).expect(name);
    assert_eq!(
        cells(row),
        ["FAILED", "FAILED", "skipped", "skipped", "skipped"],
        "{row:#?}"
    );
    assert!(
        row.first_failure()
            .unwrap_or_default()
            .contains("provisioned: "),
        "{row:#?}"
    );
    assert!(
        row.cells[1]
            .why
            .contains("PostgreSQL does not answer on node1"),
        "{row:#?}"
    );
    let r = report_of(reports, name);
    let waited: f64 = r.checks.iter().map(|c| c.waited_secs).sum();
    assert_eq!(waited, 0.0, "{name} waited for states that could not come");
    let log = r
        .checks
        .iter()
        .map(|c| c.message.clone())
        .collect::<String>();
    assert!(
        log.contains("replcia"),
        "PostgreSQL's own words are not in the verdicts: {log}"
    );
}

/// Grading again with nothing changed runs no lab and keeps every row. A folder pglab cannot
/// read has no content hash: its verdict (given without a lab, at no cost) is given again.
fn regrade_keeps_unchanged(out: &std::path::Path) {
    let before = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    let mut opts = cohort_options(&cohort(), "", 2, out);
    opts.all = false;
    let g = grade(&opts).unwrap();
    assert_eq!(g.regraded, ["playbook-only"]);
    let row = g.rows.iter().find(|r| r.name == "playbook-only").unwrap();
    assert!(row.lab.is_empty(), "{row:#?}");
    assert_eq!(
        std::fs::read_to_string(out.join("cohort.csv")).unwrap(),
        before
    );
}

/// Each row as the fixtures make it (tests/lab/fixtures.rs names each one's mistake). Groups
/// still run after a failure: a provisioning failure leaves the lab as the submission made
/// it, so later groups are checked on it; a group that needs a state an earlier group failed
/// to reach counts what passes, and is skipped (not failed) where it fails.
fn check_rows(rows: &[Row]) {
    const P: &str = "passed";
    const F: &str = "FAILED";
    const S: &str = "skipped";
    assert_row(rows, "reference", &[P, P, P, P, P], &[]);
    assert_row(
        rows,
        "no-slot",
        &[P, F, P, S, S],
        &["replicate: ", "-C -S node2"],
    );
    assert_row(
        rows,
        "no-barman-hba",
        &[F, P, F, S, S],
        &[
            "provisioned: ",
            "on barman",
            "no pg_hba.conf entry",
            "user \"barman\"",
        ],
    );
    assert_row(
        rows,
        "recovery-without-target",
        &[P, P, P, P, F],
        &["recover: ", "without a recovery target"],
    );
    // The standby's clone failed, but barman is configured all the same (grading runs every
    // provisioning step): the backup works and its row says so.
    for name in ["replicator-without-password", "wrong-pgpass"] {
        assert_row(
            rows,
            name,
            &[F, F, P, S, S],
            &[
                "provisioned: ",
                "\"standby cloned through its own slot\"",
                "on node2",
                "password authentication failed for user \"replicator\"",
            ],
        );
    }
    for name in ["recovery-paused", "recovery-elsewhere"] {
        assert_row(rows, name, &[P, P, P, P, F], &["recover: "]);
    }
    // Its scripts set up no ssh from barman to the primary: everything up to recover works.
    assert_row(
        rows,
        "shell-provisioners",
        &[P, P, P, P, F],
        &["recover: ", "ssh"],
    );
    assert_row(
        rows,
        "no-standby-slot",
        &[P, F, P, S, S],
        &["replicate: ", "-C -S node2"],
    );
    assert_row(
        rows,
        "red-hat-box",
        &[F, S, S, S, S],
        &[
            "provisioned: ",
            "Red Hat family",
            "PGLAB_BACKEND=vagrant",
            "--homework tests/fixtures/students/red-hat-box --box rockylinux/9",
        ],
    );
    check_form_rows(rows);
    assert_row(
        rows,
        "wrong-path-prefix",
        &[P, P, F, P, S],
        &[
            "backup: ",
            "/usr/pgsql-14/bin",
            "/usr/lib/postgresql/<major>/bin",
        ],
    );
}

/// The rows of the fixtures that name a cause from the servers, and of the forms students
/// write.
fn check_form_rows(rows: &[Row]) {
    const P: &str = "passed";
    const F: &str = "FAILED";
    const S: &str = "skipped";
    assert_row(
        rows,
        "barman-no-archiver",
        &[F, P, F, S, S],
        &["provisioned: ", "No archiver enabled for server 'node1'"],
    );
    assert_row(
        rows,
        "md5-passwords",
        &[F, F, S, S, S],
        &[
            "provisioned: ",
            "password authentication failed for user \"replicator\"",
        ],
    );
    assert_row(
        rows,
        "playbook-only",
        &[F, S, S, S, S],
        &[
            "provisioned: ",
            "but no inventory and no Vagrantfile: their plays expect hosts in",
        ],
    );
    assert_row(rows, "inventory-only", &[P, F, S, S, S], &["replicate: "]);
    assert_row(rows, "pip-install", &[P, P, P, P, P], &[]);
    // static-inventory's forms: barman has no ssh to the primary, so recover fails.
    for name in ["inventory-ini-forms", "inventory-yaml"] {
        assert_row(rows, name, &[P, P, P, P, F], &["recover: ", "ssh"]);
    }
}

/// The options of a grading of `dirs` through `replicate`, with a deadline.
fn replicate_only(
    dirs: &[&str],
    deadline: std::time::Duration,
    out: &std::path::Path,
) -> pglab::run::grade::GradeOptions {
    pglab::run::grade::GradeOptions {
        base: pglab::run::RunOptions {
            box_name: String::new(),
            scenarios: vec!["replicate".into()],
            keep_going: true,
            ..Default::default()
        },
        jobs: 1,
        deadline,
        ..cohort_options(dirs, "", 1, out)
    }
}

/// Two stuck submissions, graded with the default deadline of 20 minutes, each found stuck
/// within 3 minutes of its start: synchronous replication switched on before the standby
/// exists (creating the replicator role waits for ever for a synchronous standby), and a
/// session left idle in its transaction holding a lock the next statement needs. Each verdict
/// names the stage, the wait that cannot end and what PostgreSQL was doing (`IPC:SyncRep`,
/// `Lock:relation`); their labs are removed and the slot grades the next submission. Graded
/// again with a deadline shorter than the stuck detector's minute, a stuck submission gets the
/// deadline's verdict instead.
#[test]
#[ignore = "needs root and systemd-nspawn"]
fn a_stuck_submission_is_found_stuck_within_minutes_and_frees_its_slot() {
    let _g = serial();
    let before = lab_ids();
    let out = tempfile::tempdir().unwrap();
    let stuck = [
        "tests/fixtures/sync-standby-first",
        "tests/fixtures/lock-left-open",
        "examples/reference",
    ];
    let g = grade(&replicate_only(
        &stuck,
        std::time::Duration::from_secs(1200),
        out.path(),
    ))
    .unwrap();
    eprintln!("graded in {:.0} s", g.wall.as_secs_f64());
    assert_row(
        &g.rows,
        "sync-standby-first",
        &["FAILED", "skipped"],
        &[
            "stuck in provision after",
            "on node1 a commit has waited",
            "for a synchronous standby (synchronous_standby_names = '*') and none is connected",
            "lab was removed",
            "node1: pg_stat_activity:",
            "IPC:SyncRep",
            "CREATE ROLE replicator",
        ],
    );
    assert_row(
        &g.rows,
        "lock-left-open",
        &["FAILED", "skipped"],
        &[
            "stuck in provision after",
            "on node1 a statement has waited",
            "for a lock held by a session idle in its transaction for",
            "(its last statement: LOCK TABLE pglab_setup IN ACCESS EXCLUSIVE MODE;)",
            "never finishes: DROP TABLE pglab_setup",
            "lab was removed",
            "idle in transaction",
            "Lock:relation",
        ],
    );
    for name in ["sync-standby-first", "lock-left-open"] {
        let row = g.rows.iter().find(|r| r.name == name).unwrap();
        assert!(
            row.seconds > 60.0 && row.seconds < 180.0,
            "{name} found stuck after {} s",
            row.seconds
        );
    }
    assert_row(&g.rows, "reference", &["passed", "passed"], &[]);
    let out = tempfile::tempdir().unwrap();
    let short = std::time::Duration::from_secs(40);
    let g = grade(&replicate_only(&stuck[..1], short, out.path())).unwrap();
    assert_row(
        &g.rows,
        "sync-standby-first",
        &["FAILED", "skipped"],
        &[
            "still running after the deadline of 40 s (in provision)",
            "lab was removed",
        ],
    );
    assert_eq!(new_lab_id(&before), None, "a lab was left");
}

/// `pglab ARGS` as a process; its exit code and what it printed on stderr.
fn pglab_exit(args: &[String]) -> (i32, String) {
    let out = pglab_bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code().unwrap_or(-1), err)
}

/// Runs `pglab ARGS` and sends SIGTERM once its progress says some but not all of its
/// submissions are graded; returns the exit code.
fn sigterm_midway(args: &[String]) -> Option<i32> {
    use std::io::BufRead;
    let mut child = pglab_bin()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut sent = false;
    // Read to the end (a full pipe would block pglab's last words and its exit).
    for line in err.lines().map_while(Result::ok) {
        eprintln!("  | {line}");
        let Some((done, rest)) = line.split_once('/') else {
            continue;
        };
        let total = rest.split(' ').next().unwrap_or_default();
        let (Ok(done), Ok(total)) = (done.parse::<usize>(), total.parse::<usize>()) else {
            continue;
        };
        if !sent && done >= 1 && done < total && rest.contains(" graded, ") {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            sent = true;
        }
    }
    assert!(
        sent,
        "the part ended before one of its submissions was graded"
    );
    child.wait().unwrap().code()
}

/// The cohort above as 3 parts, each a `pglab grade --shard K/3` process (the commands of
/// `pglab ci github`), one after another; the largest part is stopped with SIGTERM mid-way
/// and graded again with `--previous` (its finished rows kept, the stopped ones graded), and
/// the merged cohort.md/.csv are the single grading's snapshots. A missing or a twice-given
/// part is refused, naming it.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn a_cohort_graded_in_three_parts_merges_into_the_single_grading() {
    use pglab::run::ci::{merge_args, shard_args};
    let _g = serial();
    let dirs: Vec<String> = cohort().iter().map(|d| d.display().to_string()).collect();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let names: Vec<&str> = dirs.iter().map(|d| d.rsplit('/').next().unwrap()).collect();
    let size = |k: usize| {
        names
            .iter()
            .filter(|n| pglab::run::shard::part_of(n, 3) == k)
            .count()
    };
    let stopped = (1..=3).max_by_key(|&k| (size(k), k)).unwrap();
    assert!(size(stopped) >= 2, "no part of 3 has two submissions");
    let work = tempfile::tempdir().unwrap();
    let part = |k: usize| work.path().join(format!("part-{k}")).display().to_string();
    let args = |k: usize, out: &str, previous: Option<&str>| {
        let mut a = shard_args(&dirs, &k.to_string(), 3, out, previous);
        a.extend(["--scenarios", "recover", "--jobs", "2"].map(String::from));
        a
    };
    let first = part(stopped) + "-stopped";
    assert_eq!(sigterm_midway(&args(stopped, &first, None)), Some(143));
    let rows = pglab::report::cohort::load_rows(std::path::Path::new(&first));
    let finished: Vec<&Row> = rows.iter().filter(|r| !r.grader_failed).collect();
    let stopped_rows: Vec<&Row> = rows.iter().filter(|r| r.grader_failed).collect();
    assert!(
        !finished.is_empty() && !stopped_rows.is_empty(),
        "{rows:#?}"
    );
    for r in &stopped_rows {
        assert!(
            r.first_failure().unwrap().contains("pglab was interrupted"),
            "{r:#?}"
        );
    }
    assert_eq!(lab_ids(), Vec::<String>::new(), "a stopped part left a lab");
    for k in 1..=3 {
        let previous = (k == stopped).then_some(first.as_str());
        let (code, err) = pglab_exit(&args(k, &part(k), previous));
        assert_eq!(code, 0, "part {k}: {err}");
    }
    let again = pglab::report::cohort::load_rows(std::path::Path::new(&part(stopped)));
    for f in &finished {
        let kept = again.iter().find(|r| r.name == f.name).unwrap();
        assert_eq!(kept.graded_at, f.graded_at, "{} was graded again", f.name);
    }
    assert!(again.iter().all(|r| !r.grader_failed), "{again:#?}");
    let merged = work.path().join("merged").display().to_string();
    let parts: Vec<String> = (1..=3).map(part).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let (code, err) = pglab_exit(&merge_args(&parts, &merged));
    assert_eq!(code, 0, "{err}");
    let read = |f: &str| std::fs::read_to_string(std::path::Path::new(&merged).join(f)).unwrap();
    insta::assert_snapshot!("cohort-md", read("cohort.md"));
    insta::assert_snapshot!("cohort-csv", read("cohort.csv"));
    let other = work.path().join("other").display().to_string();
    let missing = [parts[0], parts[2]];
    let (code, err) = pglab_exit(&merge_args(&missing, &other));
    assert_eq!(code, 1);
    assert!(
        err.contains("shard 2/3 is missing: its submissions are "),
        "{err}"
    );
    let twice = [parts[0], parts[0], parts[1], parts[2]];
    let (code, err) = pglab_exit(&merge_args(&twice, &other));
    assert!(
        code == 1 && err.contains("shard 1/3 is given twice"),
        "{err}"
    );
}

/// `pglab grade REPO --classroom` (what a student repository's workflow runs on every push):
/// the reporter's JSON on stdout, a test per check group worth its rubric points, and the
/// same JSON in base64 as the step's `result` output.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn one_repository_graded_for_github_classroom() {
    use base64::Engine as _;
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("github_output");
    let reference = pglab::sys::paths::repo_root().join("examples/reference");
    let out = pglab_bin()
        .args(["grade", reference.to_str().unwrap(), "--classroom"])
        .args(["--scenarios", "replicate", "--out"])
        .arg(work.path().join("grades"))
        .env("GITHUB_OUTPUT", &output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "pass", "{json:#}");
    assert_eq!(json["max_score"], 30.0, "{json:#}");
    let tests = json["tests"].as_array().unwrap();
    let names: Vec<&str> = tests.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["provisioned", "replicate"]);
    assert_eq!(tests[1]["score"], 20.0);
    let line = std::fs::read_to_string(&output).unwrap();
    let b64 = line.trim().strip_prefix("result=").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&decoded).unwrap(),
        json
    );
    assert_eq!(lab_ids(), Vec::<String>::new(), "a lab was left");
}

/// A git repository of `files` from `from`, committed at `date` (author and committer).
fn git_repo_at(dir: &std::path::Path, from: &std::path::Path, date: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    git_commit(dir, date, "the homework");
}

fn git_commit(dir: &std::path::Path, date: &str, message: &str) {
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["commit", "-qm", message],
    ] {
        let st = std::process::Command::new("git")
            .args(["-c", "user.name=student", "-c", "user.email=s@x", "-C"])
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }
}

/// `--due`: alice committed the reference before the due time and broke it after; she is
/// graded at her commit before it (her working tree, broken, is left as it is), the row
/// names that commit and the later one. bob's only commit came after: that is his verdict.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn a_repository_is_graded_at_its_last_commit_before_the_due_time() {
    let _g = serial();
    let cohort = tempfile::tempdir().unwrap();
    let reference = pglab::sys::paths::repo_root().join("examples/reference");
    let alice = cohort.path().join("alice");
    git_repo_at(&alice, &reference, "2026-11-30T18:00:00+03:00");
    let graded = pglab::sys::gitref::head_commit(&alice);
    std::fs::write(alice.join("30-standby.sh"), "exit 1\n").unwrap();
    git_commit(&alice, "2026-12-02T09:00:00+03:00", "too late");
    git_repo_at(
        &cohort.path().join("bob"),
        &reference,
        "2026-12-02T10:00:00+03:00",
    );
    let out = tempfile::tempdir().unwrap();
    let opts = pglab::run::grade::GradeOptions {
        due: Some(pglab::provision::due::parse_due("2026-12-01T23:59+03:00").unwrap()),
        base: pglab::run::RunOptions {
            box_name: String::new(),
            scenarios: vec!["replicate".into()],
            keep_going: true,
            ..Default::default()
        },
        ..cohort_options(&[] as &[&str], "", 1, out.path())
    };
    let opts = pglab::run::grade::GradeOptions {
        dirs: vec![cohort.path().to_path_buf()],
        ..opts
    };
    let g = grade(&opts).unwrap();
    assert_row(&g.rows, "alice", &["passed", "passed"], &[]);
    let a = g.rows.iter().find(|r| r.name == "alice").unwrap();
    assert_eq!((a.commit.as_str(), a.later_commits), (graded.as_str(), 1));
    assert!(a.commit_date.starts_with("2026-11-30T18:00:00"), "{a:#?}");
    assert_eq!(
        std::fs::read_to_string(alice.join("30-standby.sh")).unwrap(),
        "exit 1\n"
    );
    assert_row(
        &g.rows,
        "bob",
        &["FAILED", "skipped"],
        &[
            "no commit before the due time 2026-12-01T20:59:00Z",
            "its first commit: 2026-12-02T10:00:00+03:00",
        ],
    );
    assert_eq!(lab_ids(), Vec::<String>::new(), "a lab was left");
}
