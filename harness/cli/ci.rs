use crate::run::ci::{classroom_workflow, github_workflow, k8s_manifests, Github, Kubernetes};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum CiCmd {
    /// A GitHub Actions workflow: build pglab once, grade N parts on N runners, merge them.
    Github {
        /// How many parts (shard jobs).
        #[arg(long)]
        shards: usize,
        /// The shard jobs' runner label.
        #[arg(long, default_value = "ubuntu-24.04")]
        runs_on: String,
        /// At most this many shard jobs at once.
        #[arg(long)]
        max_parallel: Option<usize>,
        /// Labs at once on each runner (`pglab grade --jobs`).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        #[arg(long, default_value = ".github/workflows/pglab-grade.yml")]
        out: PathBuf,
    },
    /// A student repository's workflow for GitHub Classroom: pglab grades every push alone
    /// and the autograding reporter shows the points on the commit.
    Classroom {
        /// The course's copy of pglab on GitHub (OWNER/REPO).
        #[arg(long)]
        pglab: String,
        /// Its branch or tag.
        #[arg(long, default_value = "main")]
        r#ref: String,
        #[arg(long, default_value = ".github/workflows/classroom.yml")]
        out: PathBuf,
    },
    /// A Kubernetes Indexed Job grading N parts (privileged pods, nspawn labs) and the merge
    /// Job to apply after it.
    K8s {
        #[arg(long)]
        shards: usize,
        /// An image with pglab and its repository (PGLAB_REPO), run privileged.
        #[arg(long)]
        image: String,
        /// At most this many pods at once.
        #[arg(long)]
        parallelism: Option<usize>,
        /// The dedicated node pool's `pglab.io/pool` label (and taint) value.
        #[arg(long, default_value = "grading")]
        pool: String,
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// The folder the two manifests go into.
        #[arg(long, default_value = "k8s")]
        out: PathBuf,
    },
}

fn put(path: &Path, text: &str) -> Result<()> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `pglab ci github|k8s`: writes the files, and says what to do with them.
pub fn ci(cmd: CiCmd) -> Result<i32> {
    match cmd {
        CiCmd::Github {
            shards,
            runs_on,
            max_parallel,
            jobs,
            out,
        } => {
            anyhow::ensure!(shards >= 1, "--shards must be at least 1");
            let g = Github {
                shards,
                runs_on,
                max_parallel,
                jobs,
            };
            put(&out, &github_workflow(&g))?;
            println!("next: commit it with roster.txt (NAME URL per line), then run the workflow \"pglab-grade\" (Actions tab, or `gh workflow run pglab-grade`)");
        }
        CiCmd::Classroom { pglab, r#ref, out } => {
            put(&out, &classroom_workflow(&pglab, &r#ref))?;
            println!("next: commit it to the assignment's template repository; students' pushes then show \"Points X/Y\"");
        }
        CiCmd::K8s {
            shards,
            image,
            parallelism,
            pool,
            jobs,
            out,
        } => {
            anyhow::ensure!(shards >= 1, "--shards must be at least 1");
            let k = Kubernetes {
                shards,
                image,
                parallelism,
                pool,
                jobs,
            };
            let (grade, merge) = k8s_manifests(&k);
            put(&out.join("grade-job.yaml"), &grade)?;
            put(&out.join("merge-job.yaml"), &merge)?;
            println!(
                "next: kubectl apply -f {0}/grade-job.yaml && kubectl wait --for=condition=complete job/pglab-grade --timeout=6h && kubectl apply -f {0}/merge-job.yaml",
                out.display()
            );
        }
    }
    Ok(0)
}
