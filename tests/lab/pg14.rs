//! Lab tests of the box with the course's versions, pg14-barman2: PostgreSQL 14 and barman
//! 2.19 packaged at box build time from real builds in the registries (boxes/pg14-barman2.toml,
//! boxes/scripts/pg14-barman2.sh), laid out and managed as Debian/Ubuntu's packaging does.
//! It runs one lab at a time like the rest.

use super::common;
use super::verbs::*;
use pglab::lab::Lab;
use pglab::run::RunOptions;

/// The homework's four scenarios pass on pg14-barman2 with the reference; the hosts have
/// PostgreSQL 14 where Debian/Ubuntu put it, managed by postgresql-common, barman 2.19 as a
/// distribution installs it, and `apt-get install` of the jammy package names changes nothing.
#[test]
#[ignore = "needs root, systemd-nspawn, mmdebstrap and PyPI (builds the pg14-barman2 box)"]
fn homework_scenarios_pass_on_postgresql_14_and_barman_2_19() {
    let _g = serial();
    let (report, _down, lab) = run_kept(RunOptions {
        box_name: "pg14-barman2".into(),
        scenarios: vec!["recover".into()],
        ..Default::default()
    });
    let ran = common::scenarios_run(&report);
    for name in ["replicate", "backup", "drop", "recover"] {
        assert!(ran.contains(name), "scenario {name} did not run: {ran:?}");
    }
    postgresql_14_is_laid_out_as_on_debian(&lab);
    barman_2_19_is_installed_as_a_distribution_would(&lab);
    jammy_package_names_are_installed_packages(&lab);
    the_homeworks_own_postgresql_conf_starts(&lab);
    down_and_check(lab);
}

/// The homework's own postgresql.conf (tests/fixtures/homework-conf, copied from the
/// homework: lc_messages and friends 'en_US.UTF-8', timezone 'UTC+3', include_dir 'conf.d')
/// starts PostgreSQL 14 on the jammy stand-in, as it does on Ubuntu's jammy64: the box has
/// jammy's en_US.UTF-8 (boxes/scripts/locales.sh). On barman's host, whose PostgreSQL the
/// homework does not use.
fn the_homeworks_own_postgresql_conf_starts(lab: &Lab) {
    let conf = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/homework-conf/postgresql.conf"),
    )
    .unwrap();
    lab.backend()
        .copy_in(
            "barman",
            &conf,
            "/etc/postgresql/14/main/postgresql.conf",
            "postgres",
            "644",
        )
        .unwrap();
    let out = sh(
        lab,
        "barman",
        "systemctl restart postgresql@14-main && systemctl is-active postgresql@14-main",
    );
    assert!(
        out.ok(),
        "the homework's postgresql.conf does not start PostgreSQL 14: {out:?}"
    );
    prints(
        lab,
        "barman",
        "runuser -u postgres -- psql -Atc 'show lc_messages'",
        "en_US.UTF-8",
    );
}

/// Asserts that `script` run as root on `host` prints exactly `expected` (trimmed).
fn prints(lab: &Lab, host: &str, script: &str, expected: &str) {
    let out = sh(lab, host, script);
    assert_eq!(out.stdout.trim(), expected, "on {host}: {script}\n{out:?}");
}

fn postgresql_14_is_laid_out_as_on_debian(lab: &Lab) {
    prints(lab, "node1", "ls /usr/lib/postgresql", "14");
    // postgresql-common's view: one cluster 14/main, online, in Debian's directories.
    prints(
        lab,
        "node1",
        "pg_lsclusters -h | awk '{print $1, $2, $4, $6}'",
        "14 main online /var/lib/postgresql/14/main",
    );
    prints(
        lab,
        "node1",
        "systemctl is-active postgresql@14-main",
        "active",
    );
    prints(
        lab,
        "node1",
        "test -f /etc/postgresql/14/main/postgresql.conf && echo yes",
        "yes",
    );
    // PostgreSQL 14's own psql (through Debian's pg_wrapper) against a PostgreSQL 14 server.
    prints(lab, "node1", "psql -V", "psql (PostgreSQL) 14.23");
    prints(
        lab,
        "node1",
        "runuser -u postgres -- psql -XAtc 'SHOW server_version'",
        "14.23",
    );
    // node2 is a PostgreSQL 14 standby streaming through the walreceiver module.
    prints(
        lab,
        "node2",
        "runuser -u postgres -- psql -XAtc 'SELECT status FROM pg_stat_wal_receiver'",
        "streaming",
    );
}

fn barman_2_19_is_installed_as_a_distribution_would(lab: &Lab) {
    prints(
        lab,
        "barman",
        "barman -v 2>&1 | head -1 | cut -d' ' -f1",
        "2.19",
    );
    prints(
        lab,
        "barman",
        "getent passwd barman | cut -d: -f6",
        "/var/lib/barman",
    );
    prints(
        lab,
        "barman",
        "test -f /etc/barman.conf && test -d /etc/barman.d && echo yes",
        "yes",
    );
    prints(
        lab,
        "barman",
        "grep -c '/usr/bin/barman -q cron' /etc/cron.d/barman",
        "1",
    );
    // barman-cli's commands come from the same barman 2.19 release.
    prints(
        lab,
        "node1",
        "barman-wal-restore --version 2>&1 | head -1",
        "barman-wal-restore 2.19",
    );
}

fn jammy_package_names_are_installed_packages(lab: &Lab) {
    // What a jammy playbook runs: every name is already installed, nothing else comes in.
    let out = sh(
        lab,
        "node1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         postgresql postgresql-contrib barman barman-cli 2>&1",
    );
    assert_eq!(out.code, 0, "{out:?}");
    for name in ["postgresql", "postgresql-contrib", "barman", "barman-cli"] {
        assert!(
            out.stdout
                .contains(&format!("{name} is already the newest version")),
            "apt-get install {name}: {}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("0 newly installed"), "{}", out.stdout);
    prints(
        lab,
        "node1",
        "dpkg-query -W -f '${Package}=${Version}\\n' postgresql postgresql-contrib barman barman-cli",
        "barman=2.19-1pglab1\nbarman-cli=2.19-1pglab1\npostgresql=14+238pglab1\npostgresql-contrib=14+238pglab1",
    );
    // The box's apt knows the local repository; after reading it, ours are the candidates.
    prints(
        lab,
        "node1",
        "apt-get update -qq -o Dir::Etc::sourcelist=sources.list.d/pglab-local.list \
         -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 && \
         apt-cache policy postgresql barman | awk '/Candidate/ {print $2}'",
        "14+238pglab1\n2.19-1pglab1",
    );
}
