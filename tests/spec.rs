//! Bad scenario specs fail before anything runs, with the file, the line and what is wrong;
//! no input makes the parser panic. No root and no lab needed.

use pglab::scenario::spec::{self, parse};
use pglab::topology::Topology;
use std::path::Path;

fn err(text: &str) -> String {
    let topo = Topology::default_lab();
    format!(
        "{:#}",
        parse(text, Path::new("scenarios/bad.toml"), &topo).unwrap_err()
    )
}

const HEAD: &str = "description = \"d\"\nrequires = \"provisioned\"\n";

#[test]
fn shipped_scenarios_are_valid_and_planned_in_order() {
    let topo = Topology::default_lab();
    let all = spec::load_dir(&spec::scenarios_dir(), &topo).unwrap();
    let order: Vec<&str> = spec::default_order(&all)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let pos = |n: &str| {
        order
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} missing from {order:?}"))
    };
    assert!(
        pos("replicate") < pos("backup")
            && pos("backup") < pos("drop")
            && pos("drop") < pos("recover"),
        "{order:?}"
    );
}

#[test]
fn running_one_scenario_alone_runs_what_leads_to_its_state() {
    let topo = Topology::default_lab();
    let all = spec::load_dir(&spec::scenarios_dir(), &topo).unwrap();
    let recover = all.iter().find(|s| s.name == "recover").unwrap();
    let plan: Vec<&str> = spec::plan(&[recover], &all, spec::PROVISIONED)
        .unwrap()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(plan, ["replicate", "backup", "drop", "recover"]);
}

#[test]
fn unreachable_state_is_refused_before_running() {
    let topo = Topology::default_lab();
    let all = spec::load_dir(&spec::scenarios_dir(), &topo).unwrap();
    let text = "description = \"d\"\nrequires = \"on-the-moon\"\n[[step]]\nname = \"x\"\nhost = \"node1\"\nsql = \"select 1\"\n";
    let odd = parse(text, Path::new("scenarios/moon.toml"), &topo).unwrap();
    let e = spec::plan(&[&odd], &all, spec::PROVISIONED)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("moon.toml") && e.contains("needs the lab in state \"on-the-moon\""),
        "{e}"
    );
}

#[test]
fn malformed_toml_names_file_and_line() {
    let e = err(&format!(
        "{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\nsql = 1\n"
    ));
    assert!(e.starts_with("scenarios/bad.toml:5"), "{e}");
}

#[test]
fn unknown_host_names_the_line_and_the_hosts() {
    let e = err(&format!(
        "{HEAD}\n[[step]]\nname = \"x\"\nhost = \"node3\"\nsql = \"select 1\"\n"
    ));
    assert!(
        e.contains("bad.toml:6")
            && e.contains("unknown host \"node3\"")
            && e.contains("node1, node2, barman"),
        "{e}"
    );
}

#[test]
fn unknown_step_kind_is_named() {
    let e = err(&format!(
        "{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\nsqll = \"select 1\"\n"
    ));
    assert!(
        e.contains("bad.toml:") && e.contains("unknown field `sqll`"),
        "{e}"
    );
}

#[test]
fn a_step_needs_exactly_one_kind() {
    let e = err(&format!("{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\n"));
    assert!(
        e.contains("bad.toml:3: step 1 \"x\"") && e.contains("found none"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\nsql = \"a\"\nshell = \"b\"\n"
    ));
    assert!(e.contains("found sql and shell"), "{e}");
}

#[test]
fn missing_field_is_named() {
    let e = err(&format!(
        "{HEAD}[[step]]\nhost = \"node1\"\nsql = \"select 1\"\n"
    ));
    assert!(
        e.contains("bad.toml:") && e.contains("missing field `name`"),
        "{e}"
    );
    let e =
        err("requires = \"provisioned\"\n[[step]]\nname = \"x\"\nhost = \"node1\"\nsql = \"s\"\n");
    assert!(e.contains("missing field `description`"), "{e}");
}

#[test]
fn wait_needs_a_deadline_and_something_to_wait_for() {
    let e = err(&format!("{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\nsql = \"s\"\nexpect = \"t\"\nwait = \"forever\"\n"));
    assert!(
        e.contains("bad.toml:8") && e.contains("not a duration"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\nsql = \"s\"\nwait = \"5s\"\n"
    ));
    assert!(e.contains("`wait` needs something to wait for"), "{e}");
}

#[test]
fn snapshot_name_used_twice() {
    let step = "[[step]]\nname = \"x\"\nhost = \"node1\"\npsql = \"\\\\l\"\nsnapshot = \"same\"\n";
    let e = err(&format!("{HEAD}{step}{step}"));
    assert!(
        e.contains("bad.toml:12") && e.contains("\"same\" is used twice"),
        "{e}"
    );
}

#[test]
fn actions_and_peers() {
    let e = err(&format!(
        "{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\naction = \"explode\"\n"
    ));
    assert!(e.contains("unknown action \"explode\""), "{e}");
    let e = err(&format!(
        "{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\naction = \"cut-link\"\n"
    ));
    assert!(e.contains("needs `peer"), "{e}");
    let e = err(&format!(
        "{HEAD}[[step]]\nname = \"x\"\nhost = \"node1\"\naction = \"cut-link\"\npeer = \"node1\"\n"
    ));
    assert!(e.contains("must be another host"), "{e}");
}

#[test]
fn jobs_spread_every_scenario_once_over_the_labs_in_order() {
    let opts = pglab::run::RunOptions::default();
    let all: Vec<String> = pglab::run::prepare(&opts)
        .unwrap()
        .requested
        .iter()
        .map(|s| s.name.clone())
        .collect();
    for parts in [1, 2, 3, 50] {
        let groups = pglab::run::spread(&opts, parts).unwrap();
        assert_eq!(groups.len(), parts.min(all.len()), "{groups:?}");
        assert!(groups.iter().all(|g| !g.is_empty()), "{groups:?}");
        assert_eq!(groups.concat(), all, "{parts} parts");
    }
    // A group is planned with what it needs first: the group holding `recover` also runs
    // replicate, backup and drop in its lab.
    let groups = pglab::run::spread(&opts, 2).unwrap();
    let with_recover = groups
        .iter()
        .find(|g| g.contains(&"recover".into()))
        .unwrap();
    let planned = pglab::run::prepare(&pglab::run::RunOptions {
        scenarios: with_recover.clone(),
        ..Default::default()
    })
    .unwrap()
    .planned;
    let names: Vec<&str> = planned.iter().map(|s| s.name.as_str()).collect();
    for needed in ["replicate", "backup", "drop", "recover"] {
        assert!(names.contains(&needed), "{names:?}");
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Arbitrary text never panics the parser.
        #[test]
        fn any_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse(&text, Path::new("f.toml"), &Topology::default_lab());
        }

        /// Valid structure with arbitrary values never panics either.
        #[test]
        fn any_values_never_panic(
            host in "[a-z0-9]{0,8}", kind in "(sql|psql|shell|barman|action|bogus)",
            value in "[ -~]{0,30}", wait in "[0-9a-z ]{0,6}", snap in "[a-z{}_-]{0,10}",
        ) {
            let text = format!(
                "description = \"d\"\nrequires = \"provisioned\"\n[[step]]\nname = \"n\"\nhost = {host:?}\n{kind} = {value:?}\nwait = {wait:?}\nexpect = \"x\"\nsnapshot = {snap:?}\n"
            );
            let _ = parse(&text, Path::new("f.toml"), &Topology::default_lab());
        }
    }
}

/// Declared version requirements: parsed, checked with file:line, and compared with the
/// lab's versions (`{{major}}`, `{{barman}}`).
mod needs {
    use super::*;
    use std::collections::BTreeMap;

    const STEP: &str = "[[step]]\nname = \"x\"\nhost = \"node1\"\nsql = \"select 1\"\n";

    fn needs(head: &str) -> spec::Needs {
        let text = format!("{HEAD}{head}{STEP}");
        parse(
            &text,
            Path::new("scenarios/n.toml"),
            &Topology::default_lab(),
        )
        .unwrap()
        .needs
        .unwrap()
    }

    fn vars(major: &str, barman: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("major".to_string(), major.to_string()),
            ("barman".to_string(), barman.to_string()),
        ])
    }

    #[test]
    fn older_versions_get_the_declared_reason() {
        let n = needs("min_major = 14\nmin_barman = \"2.15\"\nneeds_why = \"uses X\"\n");
        assert_eq!(n.min_major, Some(14));
        assert_eq!(n.min_barman, Some((2, 15)));
        assert_eq!(n.unmet(&vars("15", "3.4")), None);
        assert_eq!(n.unmet(&vars("14", "2.15")), None);
        assert_eq!(
            n.unmet(&vars("13", "2.12")).unwrap(),
            "needs PostgreSQL 14 or later (this box has 13) and barman 2.15 or later (this box has 2.12): uses X"
        );
        // 3.4 is newer than 2.15 and older than 3.13: compared as numbers, not text.
        let n = needs("min_barman = \"3.13\"\nneeds_why = \"y\"\n");
        assert!(n.unmet(&vars("17", "3.4")).is_some());
        assert!(n.unmet(&vars("17", "3.13")).is_none());
        // A version pglab could not read: the scenario runs (and says for itself).
        assert!(n.unmet(&vars("17", "")).is_none());
    }

    #[test]
    fn a_requirement_needs_a_reason_and_a_version_and_keeps_the_state() {
        let e = err(&format!("{HEAD}min_major = 14\n{STEP}"));
        assert!(e.contains("bad.toml:3") && e.contains("needs_why"), "{e}");
        let e = err(&format!("{HEAD}needs_why = \"x\"\n{STEP}"));
        assert!(
            e.contains("bad.toml:3") && e.contains("without min_major"),
            "{e}"
        );
        let e = err(&format!(
            "{HEAD}min_barman = \"two\"\nneeds_why = \"x\"\n{STEP}"
        ));
        assert!(e.contains("bad.toml:3") && e.contains("MAJOR.MINOR"), "{e}");
        let e = err(&format!(
            "{HEAD}min_major = \"14\"\nneeds_why = \"x\"\n{STEP}"
        ));
        assert!(e.contains("bad.toml:3"), "{e}");
        let e = err(&format!(
            "{HEAD}provides = \"elsewhere\"\nmin_major = 14\nneeds_why = \"x\"\n{STEP}"
        ));
        assert!(
            e.contains("bad.toml:4") && e.contains("must keep the lab's state"),
            "{e}"
        );
    }
}
