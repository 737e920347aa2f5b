//! `pglab ci github|k8s`: the files that grade a cohort on many machines with an engine that
//! already schedules, retries and keeps artifacts. Each machine grades one part
//! (`pglab grade --shard K/N`), and one job merges the parts (`pglab grade merge`). The
//! commands here are the ones the lab test runs (`shard_args`, `merge_args`).

/// `pglab grade SUBMISSIONS... --shard K/N --out OUT [--previous PREVIOUS]`: one part.
pub fn shard_args(
    submissions: &[&str],
    k: &str,
    n: usize,
    out: &str,
    previous: Option<&str>,
) -> Vec<String> {
    let mut a = vec!["grade".to_string()];
    a.extend(submissions.iter().map(|s| s.to_string()));
    a.extend(["--shard".to_string(), format!("{k}/{n}")]);
    a.extend(["--out".to_string(), out.to_string()]);
    if let Some(p) = previous {
        a.extend(["--previous".to_string(), p.to_string()]);
    }
    a
}

/// `pglab grade merge PART... --out OUT`.
pub fn merge_args(parts: &[&str], out: &str) -> Vec<String> {
    let mut a = vec!["grade".to_string(), "merge".to_string()];
    a.extend(parts.iter().map(|p| p.to_string()));
    a.extend(["--out".to_string(), out.to_string()]);
    a
}

/// What `pglab ci github` is asked for.
pub struct Github {
    pub shards: usize,
    /// The shard jobs' runner label (the build and merge jobs run on ubuntu-24.04).
    pub runs_on: String,
    /// At most this many shard jobs at once (None: all).
    pub max_parallel: Option<usize>,
    /// `--jobs` of each shard's `pglab grade`.
    pub jobs: usize,
}

/// A GitHub Actions workflow: `prepare` builds pglab once and takes the submissions listed in
/// `roster.txt` (`NAME URL` per line) at one moment, for every shard alike; `grade` is a
/// matrix of N jobs, one part each (boxes cached by the recipes' hash; the grades of an
/// earlier run, when given, kept for unchanged submissions); `merge` publishes the cohort.
pub fn github_workflow(g: &Github) -> String {
    let shards: Vec<String> = (1..=g.shards).map(|k| k.to_string()).collect();
    let max_parallel = g
        .max_parallel
        .map(|m| format!("\n      max-parallel: {m}"))
        .unwrap_or_default();
    let grade = shard_args(
        &["submissions"],
        "${{ matrix.shard }}",
        g.shards,
        "part",
        Some("previous"),
    );
    let merge = merge_args(&["parts/*"], "grades");
    fill(
        GRADE_WORKFLOW,
        &[
            ("@SHARDS@", g.shards.to_string()),
            ("@RUNS_ON@", g.runs_on.clone()),
            ("@MAX_PARALLEL@", max_parallel),
            ("@SHARD_LIST@", shards.join(", ")),
            ("@GRADE@", grade.join(" ")),
            ("@MERGE@", merge.join(" ")),
            ("@JOBS@", g.jobs.to_string()),
        ],
    )
}

/// The templates (data, in `ci/templates/`), with `@NAME@` where a value goes: GitHub's own
/// `${{ }}` expressions stay as they are.
const GRADE_WORKFLOW: &str = include_str!("../../ci/templates/pglab-grade.yml");
const CLASSROOM_WORKFLOW: &str = include_str!("../../ci/templates/classroom.yml");

fn fill(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |t, (k, v)| t.replace(k, v))
}

/// A student repository's workflow for GitHub Classroom (`.github/workflows/classroom.yml`
/// of the assignment's template): on every push pglab grades the repository alone with
/// `--classroom`, and GitHub Classroom's reporter puts "Points X/Y" on the commit.
/// `pglab` is `OWNER/REPO` of the course's copy of pglab, `git_ref` its branch or tag.
pub fn classroom_workflow(pglab: &str, git_ref: &str) -> String {
    fill(
        CLASSROOM_WORKFLOW,
        &[
            ("@PGLAB@", pglab.to_string()),
            ("@REF@", git_ref.to_string()),
        ],
    )
}

/// What `pglab ci k8s` is asked for.
pub struct Kubernetes {
    pub shards: usize,
    pub image: String,
    /// At most this many pods at once (None: all).
    pub parallelism: Option<usize>,
    /// The node pool's label value (`pglab.io/pool`): privileged pods belong on their own nodes.
    pub pool: String,
    pub jobs: usize,
}

const K8S_VOLUMES: &str = r#"          volumeMounts:
            - name: submissions
              mountPath: /submissions
              readOnly: true
            - name: results
              mountPath: /results
            - name: state
              mountPath: /var/lib/pglab
            - name: cache
              mountPath: /var/cache/pglab
      volumes:
        - name: submissions
          persistentVolumeClaim:
            claimName: pglab-submissions
            readOnly: true
        - name: results
          persistentVolumeClaim:
            claimName: pglab-results
        - name: state
          emptyDir: {}
        - name: cache
          hostPath:
            path: /var/cache/pglab
            type: DirectoryOrCreate
"#;

/// A pod of the grading: pglab with `cmd`, on the dedicated pool, with the claims.
fn pod_spec(k: &Kubernetes, cmd: &[String], privileged: bool, env: &str) -> String {
    let cmd: Vec<String> = cmd.iter().map(|c| format!("\"{c}\"")).collect();
    let security = if privileged {
        "          securityContext:\n            privileged: true\n"
    } else {
        ""
    };
    format!(
        r#"      restartPolicy: Never
      nodeSelector:
        pglab.io/pool: {pool}
      tolerations:
        - key: pglab.io/pool
          operator: Equal
          value: {pool}
          effect: NoSchedule
      containers:
        - name: pglab
          image: {image}
          command: ["pglab", {cmd}]
{env}{security}{K8S_VOLUMES}"#,
        pool = k.pool,
        image = k.image,
        cmd = cmd.join(", "),
    )
}

/// A Kubernetes Indexed Job (one pod per part; a failed index retried on its own, keeping
/// what its part already graded in its --out) and the merge Job to apply once it completed.
/// Pods are privileged (systemd-nspawn makes namespaces, cgroups and bridges) and kept to a
/// dedicated node pool.
pub fn k8s_manifests(k: &Kubernetes) -> (String, String) {
    let part = shard_args(
        &["/submissions"],
        "auto",
        k.shards,
        "/results/part-$(JOB_COMPLETION_INDEX)",
        None,
    );
    let parts: Vec<String> = (0..k.shards)
        .map(|i| format!("/results/part-{i}"))
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let merge = merge_args(&parts, "/results/grades");
    let env = format!(
        "          env:\n            - name: PGLAB_SHARD_TOTAL\n              value: \"{}\"\n",
        k.shards
    );
    let mut grade_cmd = part;
    grade_cmd.extend(["--jobs".into(), k.jobs.to_string()]);
    let header = format!(
        "# Written by `pglab ci k8s --shards {n}`: part K of {n} in pod K-1 (JOB_COMPLETION_INDEX).\n# Needs the claims pglab-submissions (the repositories, one folder each) and pglab-results.",
        n = k.shards
    );
    let spec = format!(
        "  completionMode: Indexed\n  completions: {n}\n  parallelism: {par}\n  backoffLimitPerIndex: 2\n",
        n = k.shards,
        par = k.parallelism.unwrap_or(k.shards)
    );
    let grade = job(
        &header,
        "pglab-grade",
        &spec,
        &pod_spec(k, &grade_cmd, true, &env),
    );
    let header = format!(
        "# Written by `pglab ci k8s --shards {}`: apply once job/pglab-grade completed.",
        k.shards
    );
    let merge = job(
        &header,
        "pglab-merge",
        "  backoffLimit: 0\n",
        &pod_spec(k, &merge, false, ""),
    );
    (grade, merge)
}

/// A Job of pglab's: `spec` lines, then the pod's template.
fn job(header: &str, name: &str, spec: &str, pod: &str) -> String {
    format!(
        r#"{header}
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: pglab
spec:
{spec}  template:
    metadata:
      labels:
        app.kubernetes.io/name: pglab
    spec:
{pod}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_are_the_ones_a_shard_and_the_merge_run() {
        assert_eq!(
            shard_args(&["subs"], "2", 3, "part-2", Some("prev")).join(" "),
            "grade subs --shard 2/3 --out part-2 --previous prev"
        );
        assert_eq!(
            merge_args(&["a", "b"], "grades").join(" "),
            "grade merge a b --out grades"
        );
        let w = github_workflow(&Github {
            shards: 4,
            runs_on: "ubuntu-24.04".into(),
            max_parallel: Some(2),
            jobs: 2,
        });
        assert!(w.contains("shard: [1, 2, 3, 4]"), "{w}");
        assert!(w.contains("max-parallel: 2"), "{w}");
        assert!(w.contains(
            "pglab grade submissions --shard ${{ matrix.shard }}/4 --out part --previous previous --jobs 2"
        ));
        let (grade, merge) = k8s_manifests(&Kubernetes {
            shards: 3,
            image: "registry.example/pglab:1".into(),
            parallelism: None,
            pool: "grading".into(),
            jobs: 2,
        });
        assert!(grade.contains("completions: 3") && grade.contains("privileged: true"));
        assert!(merge.contains("\"/results/part-2\"") && !merge.contains("privileged"));
    }
}
