//! Students' repositories as they come (tests/fixtures/students/, written for pglab): each
//! gets its verdict from a real lab, and the verdict names the real cause.

use crate::verbs::{assert_nothing_left, serial};
use pglab::run::{run, RunOptions, RunReport};
use pglab::scenario::runner::{Status, StepOutcome};
use std::path::{Path, PathBuf};

/// The students' fixture `name` as a whole repository: tests/fixtures/students/NAME, or
/// NAME.patch over its base, built once per test run under cargo's tmp folder for tests.
pub fn student(name: &str) -> PathBuf {
    let whole = pglab::run::fixtures::students_dir().join(name);
    if whole.is_dir() {
        return whole;
    }
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let to = Path::new(env!("CARGO_TARGET_TMPDIR")).join("students");
        if to.exists() {
            std::fs::remove_dir_all(&to).unwrap();
        }
        pglab::run::fixtures::build_all(&pglab::run::fixtures::students_dir(), &to).unwrap();
        to
    });
    built.join(name)
}

/// `pglab run --homework tests/fixtures/students/NAME SCENARIOS...`: the lab takes the
/// repository's topology and box.
fn run_student(name: &str, scenarios: &[&str]) -> RunReport {
    run_repo(&student(name), scenarios)
}

/// Copies the files of `from` over `to` (folders merged, files replaced).
pub fn lay_over(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            lay_over(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A student's repository made of `base` (a folder of tests/fixtures/students) with an
/// overlay's files laid over it and `first` (a playbook of the overlay) imported before the
/// repository's own playbook `site`: a fixture that is a repository plus one change.
pub fn overlaid(base: &str, overlay: &Path, first: &str, site: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    lay_over(&student(base), repo.path());
    lay_over(overlay, repo.path());
    // The overlay's README describes the fixture; the repository keeps its own (it may
    // say the playbooks' order).
    std::fs::copy(
        student(base).join("README.md"),
        repo.path().join("README.md"),
    )
    .unwrap();
    let site = repo.path().join(site);
    let text = std::fs::read_to_string(&site).unwrap();
    // One YAML document: the overlay's import goes after the document marker, if any.
    let body = text.strip_prefix("---\n").unwrap_or(&text);
    std::fs::write(&site, format!("---\n- import_playbook: {first}\n{body}")).unwrap();
    repo
}

/// `pglab run --homework REPO SCENARIOS...` of a repository made by `overlaid`.
pub fn run_repo(dir: &Path, scenarios: &[&str]) -> RunReport {
    let (topology, box_name) = pglab::run::homework::repo_lab(Some(dir))
        .unwrap()
        .expect("a repository with a Vagrantfile");
    let opts = RunOptions {
        box_name,
        topology,
        scenarios: scenarios.iter().map(|s| s.to_string()).collect(),
        homework: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let report = run(&opts).unwrap();
    assert_nothing_left(&report.lab);
    report
}

fn failed(r: &RunReport) -> Vec<&StepOutcome> {
    r.checks
        .iter()
        .filter(|c| c.status == Status::Failed)
        .collect()
}

fn assert_passed(r: &RunReport) {
    assert!(r.passed && failed(r).is_empty(), "{:#?}", failed(r));
}

/// Provisioning failed, and its verdict holds every needle.
fn provisioning_fails_with(r: &RunReport, needles: &[&str]) {
    let f = failed(r);
    assert!(!r.passed);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].scenario, "provision", "{f:#?}");
    for n in needles {
        assert!(f[0].message.contains(n), "{n:?} not in: {}", f[0].message);
    }
}

#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn vagrant_ansible_provisioner_with_roles_passes_the_homework() {
    let _g = serial();
    let r = run_student("vagrant-roles", &["access", "recover"]);
    assert_passed(&r);
    let ran: Vec<&str> = r.checks.iter().map(|c| c.scenario.as_str()).collect();
    for s in ["access", "replicate", "backup", "drop", "recover"] {
        assert!(ran.contains(&s), "{s} did not run: {ran:?}");
    }
}

/// The course's own form: `ubuntu/jammy64` (→ the pg14-barman2 box: PostgreSQL 14, barman
/// 2.19), `/etc/postgresql/14/main` hard-coded, and the homework's packages installed by the
/// playbook with `apt update_cache` (python3-pexpect is not in the box: it comes from
/// Debian's archive through the lab's proxy).
#[test]
#[ignore = "needs root, systemd-nspawn, PyPI (ansible 9.4.0), approx and Debian's archive"]
fn jammy_repository_on_the_course_versions_installs_through_the_proxy_and_recovers() {
    let _g = serial();
    let r = run_student("jammy-course", &["recover"]);
    assert_eq!(r.box_name, "pg14-barman2");
    assert_passed(&r);
    let ran: Vec<&str> = r.checks.iter().map(|c| c.scenario.as_str()).collect();
    for s in ["replicate", "backup", "drop", "recover"] {
        assert!(ran.contains(&s), "{s} did not run: {ran:?}");
    }
}

/// Machine names that say no role (vault, pg-b, pg-a, defined in that order): the lab starts
/// with provisional roles in definition order (vault primary: wrong), and after provisioning
/// takes them from what runs where. The scenarios then find the standby's slot `standby`,
/// barman's server `pg` and its slot `pgbarman`, and the hosts' addresses (access, a fault
/// scenario and recover).
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn machines_named_otherwise_get_their_roles_from_what_runs_where() {
    let _g = serial();
    let r = run_student("unnamed-roles", &["access", "primary-restart", "recover"]);
    assert_passed(&r);
    let host_of = |scenario: &str, step: &str| {
        r.checks
            .iter()
            .find(|c| c.scenario == scenario && c.step.starts_with(step))
            .map(|c| c.host.clone())
            .unwrap_or_else(|| panic!("no step {step:?} in {scenario}"))
    };
    assert_eq!(host_of("replicate", "node2 has otus"), "pg-b");
    assert_eq!(host_of("recover", "stop node1"), "pg-a");
    assert_eq!(host_of("backup", "backup, waiting"), "vault");
}

#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn static_inventory_master_slave_backup_outside_56_replicates_and_backs_up() {
    let _g = serial();
    // 10.44.0.0/24, hosts master/slave/backup, groups [master] [slave] [backup]
    // [servers:children], two playbooks in README's order, slot `replica_slot`, barman
    // server `[master]`: the scenarios find the standby's own slot and barman's server.
    let r = run_student("static-inventory", &["replicate", "backup"]);
    assert_passed(&r);
}

/// The same repository without its Vagrantfile (the student ran the playbooks by hand
/// against VMs of their own): the lab's hosts, addresses and roles come from the inventory
/// the README's `ansible-playbook -i` names, as Ansible reads it, and it passes the same.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn an_inventory_only_repository_is_graded_through_its_inventory() {
    let _g = serial();
    let repo = tempfile::tempdir().unwrap();
    lay_over(&student("static-inventory"), repo.path());
    std::fs::remove_file(repo.path().join("Vagrantfile")).unwrap();
    let plan = pglab::provision::inventory_repo::load_any(repo.path()).unwrap();
    let decided = plan.decisions().join("\n");
    assert!(
        decided.contains("hosts from the inventory hosts.ini (no Vagrantfile): "),
        "{decided}"
    );
    let r = run_repo(repo.path(), &["replicate", "backup"]);
    assert_passed(&r);
}

#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn a_template_never_committed_is_named_with_its_task() {
    // Ansible names a role's task "ROLE : NAME".
    let _g = serial();
    let r = run_student("missing-template", &["replicate"]);
    provisioning_fails_with(
        &r,
        &[
            "Ansible task \"common : postgresql.conf for replication\" failed",
            "postgresql.conf.j2",
        ],
    );
}

#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn listen_addresses_copied_from_node1_is_named_by_postgresql_on_node2() {
    let _g = serial();
    let r = run_student("listen-addresses-copied", &["replicate"]);
    // The task that failed (restarting PostgreSQL on node2) and PostgreSQL's own words.
    provisioning_fails_with(
        &r,
        &["host node2", "node2: PostgreSQL's log:", "192.168.56.11"],
    );
}

#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn an_expect_waiting_for_a_prompt_that_never_comes_is_stopped_and_named() {
    let _g = serial();
    let r = run_student("expect-prompt", &["replicate"]);
    provisioning_fails_with(
        &r,
        &[
            "clone from node1, answering the password prompt",
            "host node2",
            "timeout",
            "Password",
        ],
    );
}

/// No lab needed: the verdict comes before one is made.
#[test]
fn a_red_hat_box_gets_a_verdict_naming_the_vagrant_backend() {
    let e = pglab::run::homework::repo_lab(Some(&student("red-hat-box")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("box rockylinux/9 is of the Red Hat family")
            && e.contains("PGLAB_BACKEND=vagrant PGLAB_PROVIDER=virtualbox pglab run --homework")
            && e.contains("--box rockylinux/9"),
        "{e}"
    );
}

/// One lab: its hosts' apt through pglab's proxy; returns the seconds `apt-get update &&
/// apt-get install` took on node1.
fn install_through_the_proxy() -> f64 {
    use pglab::lab::{Lab, UpOptions};
    let lab = Lab::up(UpOptions {
        box_name: "bookworm".into(),
        topology: pglab::model::topology::Topology::default_lab(),
        backend: pglab::backend::Kind::Nspawn,
    })
    .unwrap();
    let proxy = pglab::lab::apt_proxy::start_for(&lab)
        .unwrap()
        .expect("nspawn lab");
    let t = std::time::Instant::now();
    let out = lab
        .exec(
            "node1",
            "root",
            "set -e; apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq python3-psycopg2 acl; jq --version",
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(out.ok(), "{}", out.combined());
    // Nothing but the proxy: the Debian mirror itself (its address, resolved here) is not
    // reachable from a host.
    use std::net::ToSocketAddrs;
    let mirror = ("deb.debian.org", 80)
        .to_socket_addrs()
        .unwrap()
        .find(|a| a.is_ipv4())
        .expect("deb.debian.org has an IPv4 address");
    let direct = lab
        .exec(
            "node1",
            "root",
            &format!(
                "timeout 5 bash -c 'echo > /dev/tcp/{}/80' 2>&1 && echo reached || echo unreachable",
                mirror.ip()
            ),
            std::time::Duration::from_secs(30),
        )
        .unwrap();
    assert!(
        direct.stdout.contains("unreachable"),
        "{}",
        direct.combined()
    );
    drop(proxy);
    let id = lab.id().to_string();
    lab.down().unwrap();
    assert_nothing_left(&id);
    secs
}

#[test]
#[ignore = "needs root, systemd-nspawn, approx and Debian's archive"]
fn apt_installs_through_the_labs_proxy_and_a_second_lab_from_its_cache() {
    let _g = serial();
    let first = install_through_the_proxy();
    // jq comes from the main or the security archive, whichever has the newer version.
    let cache = pglab::sys::paths::cache_root().join("apt/cache");
    let found = std::process::Command::new("find")
        .arg(&cache)
        .args(["-name", "jq_*.deb"])
        .output()
        .unwrap();
    assert!(
        !found.stdout.is_empty(),
        "jq is not in approx's cache {}",
        cache.display()
    );
    let second = install_through_the_proxy();
    eprintln!("apt-get update + install jq through the proxy: first lab {first:.1} s, second lab (from the cache) {second:.1} s");
}
