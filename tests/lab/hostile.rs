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
/// lookup and a repository callback plugin (tests/fixtures/hostile/controller-escape): all
/// of it runs in the controller's sandbox, as nobody, seeing neither the labs' secrets nor
/// the teacher's reports; the homework itself still passes.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible 9.4.0)"]
fn a_playbook_acts_on_nothing_of_the_grading_host() {
    let _g = serial();
    for m in markers() {
        let _ = std::fs::remove_file(m);
    }
    let out = PathBuf::from(format!("{MARKER}-out"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("cohort.json"), "the teacher's\n").unwrap();
    let repo = overlaid(
        "vagrant-roles",
        &fixture("hostile/controller-escape"),
        "hostile.yml",
        "ansible/provision.yml",
    );
    let r = run_repo(repo.path(), &["replicate"]);
    // What the controller saw, in the playbook's own log.
    let log = std::fs::read_dir(r.log_dir.join("provision"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".all.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(log.contains("PGLAB-HOSTILE callback uid=65534"), "{log}");
    assert!(log.contains("uid=65534"), "{log}");
    assert!(!log.contains("uid=0(root)"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert!(
        log.contains("secrets.env': No such file or directory"),
        "{log}"
    );
    // Processes it left behind would write their markers 2 s later.
    std::thread::sleep(std::time::Duration::from_secs(3));
    for m in markers() {
        assert!(
            !m.exists(),
            "{} was written on the grading host",
            m.display()
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("cohort.json")).unwrap(),
        "the teacher's\n"
    );
    let _ = std::fs::remove_dir_all(&out);
    crate::common::assert_all_passed(&r);
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
