//! A lab comes up, its hosts see each other, it goes down and leaves nothing; bad
//! environments fail early and clearly; two labs do not collide.

use super::common;
use super::verbs::*;
use pglab::lab::{Lab, UpOptions};
use pglab::run::{run, RunOptions};
use std::process::Command;
use std::time::Duration;

/// The hosts' writable layers are on tmpfs by default and on disk with
/// `PGLAB_LAB_STORAGE=disk`; PostgreSQL writes there either way and nothing is left.
#[test]
#[ignore = "needs root and systemd-nspawn"]
fn lab_storage_is_tmpfs_by_default_or_disk_when_asked() {
    let _g = serial();
    for (storage, fstype) in [("", "tmpfs"), ("disk", "")] {
        std::env::set_var("PGLAB_LAB_STORAGE", storage);
        let lab = Lab::up(UpOptions::default());
        std::env::remove_var("PGLAB_LAB_STORAGE");
        let lab = lab.unwrap();
        let dir = pglab::sys::paths::labs_dir().join(lab.id());
        let hosts_fs = Command::new("findmnt")
            .args(["-n", "-o", "FSTYPE", "--mountpoint"])
            .arg(dir.join("hosts"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&hosts_fs.stdout).trim(),
            fstype,
            "PGLAB_LAB_STORAGE={storage:?}"
        );
        let created = psql(&lab, "node1", "CREATE DATABASE s");
        assert!(created.ok(), "{}", created.combined());
        let o = psql(
            &lab,
            "node1",
            "SELECT count(*) FROM pg_database WHERE datname = 's'",
        );
        assert_eq!(o.stdout.lines().last(), Some("1"), "{}", o.combined());
        down_and_check(lab);
    }
    std::env::set_var("PGLAB_LAB_STORAGE", "floppy");
    let e = Lab::up(UpOptions::default()).err();
    std::env::remove_var("PGLAB_LAB_STORAGE");
    let e = format!("{:#}", e.expect("a bad PGLAB_LAB_STORAGE is refused"));
    assert!(e.contains("PGLAB_LAB_STORAGE=\"floppy\""), "{e}");
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn three_hosts_come_up_see_each_other_and_leave_nothing() {
    let _g = serial();
    let lab = Lab::up(UpOptions::default()).unwrap();
    let id = lab.id().to_string();
    let topo = lab.topology().clone();
    for h in &topo.hosts {
        assert_eq!(sh(&lab, &h.name, "hostname").stdout.trim(), h.name);
        let pg = sh(
            &lab,
            &h.name,
            "systemctl is-active postgresql@$(ls /usr/lib/postgresql | sort -n | tail -1)-main",
        );
        assert_eq!(pg.stdout.trim(), "active", "PostgreSQL on {}", h.name);
        for other in topo.hosts.iter().filter(|o| o.name != h.name) {
            let o = can_reach(&lab, &h.name, &other.address.to_string(), 22, 5);
            assert!(
                o.ok(),
                "{} cannot reach {} ({}) on port 22: {}",
                h.name,
                other.name,
                other.address,
                o.combined()
            );
        }
    }
    // node2 reaches node1's PostgreSQL once it listens on its address.
    sh(&lab, "node1", "echo \"listen_addresses = '*'\" > /etc/postgresql/$(ls /usr/lib/postgresql | sort -n | tail -1)/main/conf.d/listen.conf && systemctl restart postgresql");
    let o = sh(&lab, "node2", "for i in $(seq 50); do timeout 2 bash -c 'echo > /dev/tcp/192.168.56.11/5432' && exit 0; sleep 0.1; done; exit 1");
    assert!(o.ok(), "node2 cannot reach node1:5432: {}", o.combined());
    // Users run as themselves, stdout/stderr/exit code kept apart.
    let o = lab
        .exec(
            "node1",
            "postgres",
            "id -un; echo oops >&2; exit 7",
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        ("postgres\n", "oops\n", 7)
    );
    // Files in and out.
    lab.backend()
        .copy_in("barman", b"hello\n", "/tmp/x", "barman", "600")
        .unwrap();
    assert_eq!(
        lab.backend().copy_out("barman", "/tmp/x").unwrap(),
        "hello\n"
    );
    assert_eq!(
        sh(&lab, "barman", "stat -c '%U %a' /tmp/x").stdout.trim(),
        "barman 600"
    );
    // A host stops and starts again with its disk.
    lab.backend().stop_host("node2").unwrap();
    assert_eq!(
        lab.backend().host_state("node2"),
        pglab::backend::HostState::Stopped
    );
    lab.backend().start_host("node2").unwrap();
    assert_eq!(sh(&lab, "node2", "hostname").stdout.trim(), "node2");
    // A cut link drops traffic both ways between two hosts only.
    lab.backend().cut_link("node1", "node2").unwrap();
    assert!(!can_reach(&lab, "node2", "192.168.56.11", 22, 2).ok());
    assert!(can_reach(&lab, "barman", "192.168.56.11", 22, 2).ok());
    lab.backend().heal_link("node1", "node2").unwrap();
    assert!(can_reach(&lab, "node2", "192.168.56.11", 22, 2).ok());
    lab.down().unwrap();
    assert_nothing_left(&id);
}

#[test]
#[ignore = "needs root"]
fn bad_environment_gets_one_clear_error_and_leaves_nothing() {
    let _g = serial();
    let before = lab_ids();
    // Not root.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_pglab"),
            "up",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("must run as root") && text.contains("sudo"),
        "{text}"
    );
    // A box cache that cannot be created.
    let (code, text) = pglab_output(
        &["box", "build", "trixie"],
        &[("PGLAB_CACHE_DIR", "/proc/pglab-cache")],
    );
    assert_eq!(code, 1);
    assert!(
        text.contains("cannot create the box cache /proc/pglab-cache/boxes")
            && text.contains("PGLAB_CACHE_DIR"),
        "{text}"
    );
    // A missing box recipe.
    let (code, text) = pglab_output(&["run", "--box", "nosuchbox"], &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("no box recipe \"nosuchbox\"")
            && text.contains("known boxes: bookworm, trixie"),
        "{text}"
    );
    // Missing tools, and no apt to install them: the exact command to run.
    let (code, text) = pglab_output(&["up"], &[("PATH", "/nonexistent")]);
    assert_eq!(code, 1);
    assert!(
        text.contains("[MISSING] systemd-nspawn")
            && text.contains("apt-get install -y systemd-container"),
        "{text}"
    );
    // An unknown scenario is refused before any lab exists.
    let (code, text) = pglab_output(&["run", "nosuchscenario"], &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("no scenario \"nosuchscenario\"; known:"),
        "{text}"
    );
    assert_eq!(lab_ids(), before, "a lab was created");
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn two_labs_at_once_do_not_collide() {
    let _g = serial();
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    run(&RunOptions {
                        scenarios: vec!["replicate".into()],
                        ..Default::default()
                    })
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(reports[0].lab, reports[1].lab);
    for r in &reports {
        common::assert_all_passed(r);
        assert_nothing_left(&r.lab);
    }
}
