//! Hostile submissions (tests/fixtures/hostile/): a student who wants more than the homework
//! tries to act on the grading host. Each test asserts that the attempt reached nothing of
//! the host (harmless markers under /tmp stay absent), with the attempt's own output as
//! evidence, and that the submission still got its verdict.

use crate::students::{overlaid, run_repo};
use crate::verbs::serial;
use std::path::{Path, PathBuf};

const MARKER: &str = "/tmp/pglab-hostile-controller";

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn markers() -> Vec<PathBuf> {
    let names = [
        "callback",
        "left-behind",
        "local",
        "setsid",
        "pipe",
        "delegated",
    ];
    names
        .iter()
        .map(|n| PathBuf::from(format!("{MARKER}-{n}")))
        .collect()
}

/// The students' vagrant-roles repository with a play on localhost, a delegated task, a pipe
/// lookup and a repository callback plugin (tests/fixtures/hostile/controller-escape),
/// graded with `pglab grade` beside the reference, two labs at a time, into the very
/// folder the playbook tries to forge (`--out` = /tmp/pglab-hostile-controller-out): all
/// of it runs in the controller's sandbox, as nobody, seeing neither the labs' secrets nor
/// the teacher's reports; the homework itself still passes, and so does the reference.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn a_playbook_acts_on_nothing_of_the_grading_host() {
    let _g = serial();
    for m in markers() {
        let _ = std::fs::remove_file(m);
    }
    // The report folder exists while the playbook runs: the target it tries to forge.
    let out = PathBuf::from(format!("{MARKER}-out"));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let repo = overlaid(
        "vagrant-roles",
        &fixture("hostile/controller-escape"),
        "hostile.yml",
        "ansible/provision.yml",
    );
    // Its row is named after its folder.
    let hostile = repo.path().join("controller-escape");
    std::fs::create_dir(&hostile).unwrap();
    for e in std::fs::read_dir(repo.path()).unwrap().flatten() {
        if e.path() != hostile {
            std::fs::rename(e.path(), hostile.join(e.file_name())).unwrap();
        }
    }
    let reference = pglab::sys::paths::repo_root().join("examples/reference");
    let base = pglab::run::RunOptions {
        box_name: String::new(),
        scenarios: vec!["replicate".into()],
        keep_going: true,
        ..Default::default()
    };
    let opts = pglab::run::grade::GradeOptions {
        jobs: 2,
        ..pglab::run::grade::GradeOptions::new(vec![hostile, reference], base, out.clone())
    };
    let g = pglab::run::grade::grade(&opts).unwrap();
    // What the controller saw, in the playbook's own log (copied into the report folder).
    let log = all_text(&out.join("controller-escape/logs/provision"));
    controller_saw_nothing(&log);
    // Processes it left behind would write their markers 2 s later.
    std::thread::sleep(std::time::Duration::from_secs(3));
    for m in markers() {
        assert!(
            !m.exists(),
            "{} was written on the grading host",
            m.display()
        );
    }
    // The cohort is pglab's: both rows, no forgery, and both passed.
    let json = std::fs::read_to_string(out.join("cohort.json")).unwrap();
    assert!(!json.contains("forged"), "{json}");
    let rows = pglab::report::cohort::load_rows(&out);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for r in &g.rows {
        assert!(r.passed(), "{}: {:?}", r.name, r.first_failure());
    }
    assert_eq!(
        super::verbs::lab_ids(),
        Vec::<String>::new(),
        "a lab was left"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// The controller's own words in the playbook's log: it ran as nobody, saw no secret or key,
/// and its callback plugin ran there too.
fn controller_saw_nothing(log: &str) {
    assert!(log.contains("PGLAB-HOSTILE callback uid=65534"), "{log}");
    assert!(log.contains("uid=65534"), "{log}");
    assert!(!log.contains("uid=0(root)"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert!(
        log.contains("secrets.env': No such file or directory"),
        "{log}"
    );
}

/// The students' static-inventory repository (two playbooks) plus a first playbook that
/// replaces what pglab writes into the controller's folder before the second playbook with
/// symlinks to paths of the grading host (tests/fixtures/hostile/controller-plant): pglab
/// writes new files instead of following them, nothing lands on the host, and both
/// playbooks still provision a lab that replicates.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn links_planted_in_the_controller_are_never_written_through() {
    let _g = serial();
    let planted =
        ["secrets", "inventory", "ssh"].map(|n| PathBuf::from(format!("{MARKER}-planted-{n}")));
    for p in &planted {
        let _ = std::fs::remove_file(p);
    }
    let repo = overlaid(
        "static-inventory",
        &fixture("hostile/controller-plant"),
        "plant.yml",
        "ansible/replication.yml",
    );
    let r = run_repo(repo.path(), &["replicate"]);
    let log = std::fs::read_dir(r.log_dir.join("provision"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".all.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    // The links were planted (the probe's own `ls -la /pglab`)...
    assert!(
        log.contains("secrets.yml -> /tmp/pglab-hostile-controller-planted-secrets"),
        "{log}"
    );
    // ...and nothing was written through them.
    for p in &planted {
        assert!(
            !p.exists(),
            "pglab wrote through a planted link: {}",
            p.display()
        );
    }
    crate::common::assert_all_passed(&r);
}

/// Every file under `dir`, read as text (a run's or a grade's logs).
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push_str(&all_text(&p));
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push_str(&t);
        }
    }
    out
}

/// The lines the probes printed (`PROBE <name>: ...`), each once.
fn probe_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|l| {
            l.find("PROBE ")
                .map(|i| l[i..].trim_end_matches(['"', ',']).to_string())
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// Each escape probe ran and was refused: its own output is the evidence.
fn assert_probes_refused(lines: &[String]) {
    let all = lines.join("\n");
    // proc1-root succeeds inside the host (its own init's root): the marker on this
    // machine is the evidence, below.
    for name in [
        "mknod-disk",
        "kernel-setting",
        "module-load",
        "cgroup-escape",
        "proc1-root",
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("PROBE {name}: exit ")))
            .unwrap_or_else(|| panic!("probe {name} did not run:\n{all}"));
        if name != "proc1-root" {
            assert!(
                !line.starts_with(&format!("PROBE {name}: exit 0")),
                "{line}"
            );
        }
    }
    for won in [
        "READ-THE-HOST-DISK",
        "WROTE-A-KERNEL-SETTING",
        "RAISED-ITS-LIMIT",
    ] {
        assert!(!all.contains(won), "{all}");
    }
    assert!(all.contains("Operation not permitted"), "{all}");
    // A step has no more capabilities than the host's own init (nspawn's bounding set drops
    // CAP_SYS_MODULE, bit 16, and more).
    let whoami = lines
        .iter()
        .find(|l| l.starts_with("PROBE whoami:"))
        .expect("whoami");
    let bnd = whoami.split("CapBnd:").nth(1).unwrap_or("").trim();
    let mask = u64::from_str_radix(bnd.split_whitespace().next().unwrap_or(""), 16).unwrap();
    assert_eq!(mask & (1 << 16), 0, "{whoami}");
    assert!(!Path::new("/tmp/pglab-hostile-host-proc1").exists());
}

/// The students' shell-provisioners repository with probes put in front of its primary's
/// script (tests/fixtures/hostile/host-escape), graded beside the reference two labs at a
/// time: every escape from the host is refused, the fork bomb and the memory hog stop at
/// the host's limits and the verdict names them, and the reference graded at the same
/// time passes. In the same cohort, the submission door's hostile fixtures (`check_door`):
/// paths and symlinks that leave the repository, a classmate as a base, a provision.toml
/// that never ends, a Vagrantfile that acts on the machine, a folder name made to break
/// the reports.
#[test]
#[ignore = "needs root and systemd-nspawn"]
fn root_in_a_lab_host_reaches_nothing_of_the_grading_host() {
    let _g = serial();
    let _ = std::fs::remove_file("/tmp/pglab-hostile-host-proc1");
    let dirs = tempfile::tempdir().unwrap();
    let hostile = dirs.path().join("hostile-shell");
    crate::students::lay_over(&crate::students::student("shell-provisioners"), &hostile);
    let probe = std::fs::read_to_string(fixture("hostile/host-escape/probe.sh")).unwrap();
    let exhaust = std::fs::read_to_string(fixture("hostile/host-escape/exhaust.sh")).unwrap();
    let leader = hostile.join("scripts/leader.sh");
    let own = std::fs::read_to_string(&leader).unwrap();
    std::fs::write(&leader, format!("{probe}\n{exhaust}\n{own}")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let repo = pglab::sys::paths::repo_root();
    let base = pglab::run::RunOptions {
        box_name: String::new(),
        scenarios: vec!["replicate".into()],
        keep_going: true,
        ..Default::default()
    };
    let mut cohort = door_cohort(dirs.path());
    cohort.extend([hostile, repo.join("examples/reference")]);
    let opts = pglab::run::grade::GradeOptions {
        jobs: 2,
        deadline: std::time::Duration::from_secs(600),
        ..pglab::run::grade::GradeOptions::new(cohort, base, out.path().into())
    };
    let g = pglab::run::grade::grade(&opts).unwrap();
    check_door(&g.rows, out.path());
    let text = all_text(&out.path().join("hostile-shell"));
    let lines = probe_lines(&text);
    eprintln!("{}", lines.join("\n"));
    assert_probes_refused(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("PROBE fork-bomb: refused after")),
        "{text}"
    );
    // What the probes print when a limit did not hold (their source, quoted in the
    // verdict, has the same words without a number).
    let unbounded = regex::Regex::new(r"NOT STOPPED (at|after) \d").unwrap();
    assert!(!unbounded.is_match(&text), "{text}");
    let row = g.rows.iter().find(|r| r.name == "hostile-shell").unwrap();
    // The host's output made to break the reports reached them with the failed step's
    // output (the row itself names the limits hit, its cause), as text: `check_door` saw
    // every report parse; here neither the escape sequence nor U+FFFF is left raw.
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(junit.contains("PROBE hostile-text: "), "{junit}");
    assert!(!junit.contains(['\u{1b}', '\u{FFFF}']), "{junit:?}");
    let summary = std::fs::read_to_string(out.path().join("hostile-shell/summary.txt")).unwrap();
    assert!(!summary.contains(['\u{1b}', '\r']), "{summary:?}");
    let card = std::fs::read_to_string(out.path().join("hostile-shell/report.md")).unwrap();
    assert!(
        card.contains("leader: ran out of memory (limit 2 GiB)"),
        "{card}"
    );
    assert!(
        card.contains("leader: reached its limit of 2048 processes"),
        "{card}"
    );
    assert_eq!(
        row.cells[0].status,
        pglab::scenario::runner::Status::Failed,
        "{card}"
    );
    let reference = g.rows.iter().find(|r| r.name == "reference").unwrap();
    assert!(
        reference
            .cells
            .iter()
            .all(|c| c.status == pglab::scenario::runner::Status::Passed),
        "{:?}",
        reference.cells
    );
    assert!(!Path::new("/tmp/pglab-hostile-host-proc1").exists());
}

/// A folder name carrying what a spreadsheet evaluates, a Markdown cell break, HTML, a
/// carriage return, a character XML forbids and a terminal escape sequence (no `/`: it is
/// a folder's name).
const HOSTILE_NAME: &str = "=HYPERLINK(\"x\")|<b>x\r\u{FFFF}\u{1b}[31mred";

/// The door's hostile fixtures (tests/fixtures/hostile/door-*), built into `into` beside the
/// classmate `hostile-shell` that one of them takes as its base, one of them again under
/// `HOSTILE_NAME`, and the hostile Vagrantfile.
fn door_cohort(into: &Path) -> Vec<PathBuf> {
    for m in VAGRANTFILE_MARKERS {
        let _ = std::fs::remove_file(format!("/tmp/pglab-hostile-vagrantfile-marker-{m}"));
    }
    let from = fixture("hostile");
    let names = [
        "door-symlinked-script",
        "door-dotdot-path",
        "door-endless-toml",
        "door-base-outside",
        "vagrantfile-escape",
    ];
    let mut dirs: Vec<PathBuf> = names
        .iter()
        .map(|n| pglab::run::fixtures::build(&from, n, &into.join(n)).unwrap())
        .collect();
    let named = into.join(HOSTILE_NAME);
    dirs.push(pglab::run::fixtures::build(&from, "door-symlinked-script", &named).unwrap());
    dirs
}

const VAGRANTFILE_MARKERS: [&str; 4] = ["file", "system", "proc1", "late"];

/// Each door fixture has its row with the door's reason and no lab; no marker of the
/// hostile Vagrantfile is on this machine; nothing of the file a symlink names reached a
/// report; the reports of a cohort holding `HOSTILE_NAME` parse and keep it text.
fn check_door(rows: &[pglab::report::cohort::Row], out: &Path) {
    let reasons = [
        (
            "door-symlinked-script",
            "scripts/common.sh is a symlink to /etc/machine-id, outside the repository",
        ),
        (
            "door-dotdot-path",
            "../../../../../../etc/machine-id leaves the repository (named in Vagrantfile:4)",
        ),
        (
            "door-endless-toml",
            "provision.toml is a symlink to /dev/zero, outside the repository",
        ),
        ("door-base-outside", "outside the submission"),
        (
            HOSTILE_NAME,
            "scripts/common.sh is a symlink to /etc/machine-id, outside the repository",
        ),
    ];
    for (name, reason) in reasons {
        let row = rows.iter().find(|r| r.name == name).unwrap();
        let why = row.first_failure().unwrap_or_default();
        assert!(why.contains(reason), "{name}: {why}");
        assert!(row.lab.is_empty(), "{name} had a lab: {}", row.lab);
    }
    assert!(rows.iter().any(|r| r.name == "vagrantfile-escape"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    for m in VAGRANTFILE_MARKERS {
        let f = format!("/tmp/pglab-hostile-vagrantfile-marker-{m}");
        assert!(
            !Path::new(&f).exists(),
            "{f} was written on the grading host"
        );
    }
    let text = all_text(out);
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap();
    assert!(
        !text.contains(machine_id.trim()),
        "/etc/machine-id reached a report"
    );
    let md = std::fs::read_to_string(out.join("cohort.md")).unwrap();
    // Markdown keeps U+FFFF as a character (JUnit replaces it: XML forbids it).
    assert!(!md.contains(['\r', '\u{1b}']), "{md:?}");
    assert!(!md.contains("<b>"), "{md}");
    let parse = |file: &str, code: &str| {
        let p = std::process::Command::new("python3")
            .args(["-c", code, &out.join(file).display().to_string()])
            .output()
            .unwrap();
        assert!(
            p.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&p.stderr)
        );
    };
    // Every record as wide as the header, and no cell a spreadsheet would evaluate.
    parse(
        "cohort.csv",
        "import csv, sys\nrows = list(csv.reader(open(sys.argv[1], newline='')))\nassert len({len(r) for r in rows}) == 1, rows\nassert not [c for r in rows for c in r if c and c[0] in '=+-@'], rows",
    );
    parse(
        "junit.xml",
        "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])",
    );
    assert_eq!(
        super::verbs::lab_ids(),
        Vec::<String>::new(),
        "a lab was left"
    );
}

/// The students' vagrant-roles repository, which does the whole homework, plus an Ansible
/// play that runs the escape probes and installs programs that would answer pglab's checks
/// (tests/fixtures/hostile/host-shim): the probes are refused, the checks never run the
/// shims (a fixed PATH, no login profile: nothing says PGLAB-SHIM), and the replaced
/// /usr/bin/psql is named in a failed check, so the lab's answers are not believed.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn programs_a_submission_replaced_are_not_believed() {
    let _g = serial();
    let repo = overlaid(
        "vagrant-roles",
        &fixture("hostile/host-shim"),
        "shim.yml",
        "ansible/provision.yml",
    );
    // After the homework's own plays (which use psql themselves), not before them.
    let site = repo.path().join("ansible/provision.yml");
    let text = std::fs::read_to_string(&site).unwrap();
    let homework = text.replacen("- import_playbook: shim.yml\n", "", 1);
    std::fs::write(&site, format!("{homework}\n- import_playbook: shim.yml\n")).unwrap();
    std::fs::copy(
        fixture("hostile/host-escape/probe.sh"),
        repo.path().join("ansible/probe.sh"),
    )
    .unwrap();
    let (topology, box_name) = pglab::run::homework::repo_lab(Some(repo.path()))
        .unwrap()
        .unwrap();
    let opts = pglab::run::RunOptions {
        box_name,
        topology,
        scenarios: vec!["replicate".into()],
        homework: Some(repo.path().to_path_buf()),
        keep_going: true,
        ..Default::default()
    };
    let r = pglab::run::run(&opts).unwrap();
    crate::verbs::assert_nothing_left(&r.lab);
    let lines = probe_lines(&all_text(&r.log_dir.join("provision")));
    eprintln!("{}", lines.join("\n"));
    assert_probes_refused(&lines);
    let failed: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.status == pglab::scenario::runner::Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].step, "the checks' programs are the box's");
    assert!(
        failed[0]
            .message
            .contains("node1: /usr/bin/psql is not the box's"),
        "{}",
        failed[0].message
    );
    for c in &r.checks {
        assert!(!c.message.contains("PGLAB-SHIM"), "{c:#?}");
    }
    // The homework was done: every check of replicate ran and met its expectation (a shim
    // used would have failed it), and none is believed.
    let replicated = r.checks.iter().filter(|c| c.scenario == "replicate");
    assert!(
        replicated.clone().count() > 3
            && replicated.clone().all(|c| {
                c.status == pglab::scenario::runner::Status::Skipped
                    && c.message.starts_with("not believed")
            }),
        "{:#?}",
        r.checks
    );
    assert!(!r.passed);
}

/// The port tests/fixtures/hostile/vagrant-controller tries on the grading host.
const PROBED_PORT: u16 = 47913;

/// On a Vagrant lab that is up: a playbook whose controller task tries to reach a service of
/// the grading host (tests/fixtures/hostile/vagrant-controller). The controller reaches every
/// VM (the playbook's ping passes, twice) and nothing of the grading host: the listener
/// this test opens on every address of the machine is never connected to, and the
/// controller has no route out of the lab's management network.
pub fn a_vagrant_controller_reaches_its_vms_and_nothing_else(lab: &pglab::lab::Lab) {
    use std::io::ErrorKind;
    let listener = std::net::TcpListener::bind(("0.0.0.0", PROBED_PORT)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let sub = pglab::provision::Submission::load(&fixture("hostile/vagrant-controller")).unwrap();
    let log = pglab::report::runlog::RunLog::create(
        &format!("vagrant-controller-{}", lab.id()),
        &lab.secrets,
    )
    .unwrap();
    let provisioned = pglab::provision::provision(lab, &sub, &log, std::time::Instant::now());
    let mut reached = Vec::new();
    loop {
        match listener.accept() {
            Ok((_, from)) => reached.push(from),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("accept: {e}"),
        }
    }
    let text = all_text(&log.dir);
    let probes: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("PGLAB-HOSTILE"))
        .collect();
    assert!(
        reached.is_empty(),
        "the controller connected to the grading host from {reached:?}: {probes:#?}"
    );
    provisioned.expect("the controller reaches the lab's VMs");
    for addr in ["127.0.0.1", "192.168.121.1"] {
        assert!(
            probes
                .iter()
                .any(|l| l.contains(&format!("PGLAB-HOSTILE refused {addr}"))),
            "no refused probe of {addr}: {probes:#?}"
        );
    }
    assert!(
        probes.iter().any(|l| l.contains("PGLAB-HOSTILE addr")),
        "{probes:#?}"
    );
    assert!(
        !probes
            .iter()
            .any(|l| l.contains("PGLAB-HOSTILE route default")),
        "the controller has a default route: {probes:#?}"
    );
}
