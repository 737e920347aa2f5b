use crate::backend::Kind;
use crate::model::topology::Topology;
use crate::report::cohort::Row;
use crate::run::grade::{grade as grade_cohort, GradeOptions};
use crate::run::{Destroy, RunOptions};
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GradeArgs {
    #[command(subcommand)]
    cmd: Option<GradeCmd>,
    /// Submissions, or folders whose subfolders are submissions.
    dirs: Vec<PathBuf>,
    /// Scenarios every submission runs (default: all); the ones they depend on run first.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// How many labs at once.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Where the cohort report goes: cohort.md, cohort.csv, junit.xml, cohort.json and one
    /// folder per submission.
    #[arg(long, default_value = "grades")]
    out: PathBuf,
    /// Grade every submission again, even those whose content did not change.
    #[arg(long)]
    all: bool,
    /// A submission still running after this gets a verdict and its lab is removed.
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    deadline: Duration,
    /// The box of every submission (default: the one a repository's Vagrantfile maps to,
    /// else bookworm).
    #[arg(long = "box")]
    box_name: Option<String>,
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Points per check group (default: the homework's rubric.toml).
    #[arg(long)]
    rubric: Option<PathBuf>,
    /// Grade only part K of N of the cohort (every part computes the whole roster and keeps
    /// the names that fall in it), or `auto`: the index the CI engine gives the job.
    #[arg(long, value_parser = crate::run::shard::Shard::parse)]
    shard: Option<crate::run::shard::Shard>,
    /// How --shard splits the cohort: `name` (default: by the hash of each submission's name;
    /// adding a student moves nobody) or `time=FILE` (balanced by the times in an earlier
    /// grading's cohort.json; every part must be given the same file).
    #[arg(long, value_parser = parse_shard_by, requires = "shard")]
    shard_by: Option<ShardBy>,
    /// The last grades (a folder with cohort.json, e.g. the last merged cohort), read only:
    /// an unchanged submission graded by this same grader keeps its row and report folder
    /// from there, so --out may start empty (default: --out itself).
    #[arg(long)]
    previous: Option<PathBuf>,
    /// The students (CSV with a header: GitHub Classroom's roster export, or name, email,
    /// lms_id, sis_id, section and github_username or folder): writes cohort-moodle.csv and
    /// cohort-canvas.csv, and lists submissions nobody owns and students without one.
    #[arg(long)]
    roster: Option<PathBuf>,
    /// The assignment's name in the LMS files.
    #[arg(long, default_value = "PostgreSQL replication (pglab)")]
    assignment: String,
    /// One submission, for GitHub Classroom: prints its result as the autograding reporter
    /// reads it (and, on GitHub Actions, sets the step's `result` output to it, base64).
    #[arg(long)]
    classroom: bool,
    /// The due time (e.g. 2026-12-01T23:59+03:00): each git repository is graded at its last
    /// commit before it (taken out into a snapshot; the working tree is not touched), and
    /// its row records that commit, its date and how many commits came later.
    #[arg(long, value_parser = crate::provision::due::parse_due)]
    due: Option<i64>,
    /// The course's template: files and text submissions took from it do not make them alike
    /// (the report's "Submissions alike").
    #[arg(long = "base")]
    copies_base: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub enum ShardBy {
    Name,
    Time(PathBuf),
}

fn parse_shard_by(s: &str) -> Result<ShardBy> {
    match s.split_once('=') {
        None if s == "name" => Ok(ShardBy::Name),
        Some(("time", f)) if !f.is_empty() => Ok(ShardBy::Time(f.into())),
        _ => anyhow::bail!("--shard-by {s:?}: expected name or time=PATH/cohort.json"),
    }
}

#[derive(clap::Subcommand)]
pub enum GradeCmd {
    /// Merges the parts of a cohort graded with --shard into one cohort report.
    Merge {
        /// The parts' --out folders.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        #[arg(long, default_value = "grades")]
        out: PathBuf,
        /// The students: writes the LMS files of the merged cohort (see `pglab grade --roster`).
        #[arg(long)]
        roster: Option<PathBuf>,
        #[arg(long, default_value = "PostgreSQL replication (pglab)")]
        assignment: String,
    },
}

/// `pglab grade`: the cohort, `--jobs` labs at once, then the table.
pub fn grade(a: GradeArgs) -> Result<i32> {
    if let Some(GradeCmd::Merge {
        parts,
        out,
        roster,
        assignment,
    }) = a.cmd
    {
        let g = crate::run::grade::merge(&parts, &out)?;
        print!("{}", g.markdown());
        if let Some(r) = &roster {
            crate::run::grade::write_gradebook(&g.rows, r, &assignment, &out)?;
        }
        println!("merged {} parts into {}", parts.len(), out.display());
        return Ok(own_failures(&g.rows));
    }
    if a.dirs.is_empty() {
        anyhow::bail!("pglab grade needs submissions (or `pglab grade merge PART...`)");
    }
    if a.classroom && a.dirs.len() != 1 {
        anyhow::bail!(
            "--classroom grades one submission (the repository the workflow checked out)"
        );
    }
    crate::sys::doctor::require_root("grade submissions")?;
    let classroom_mode = a.classroom;
    let opts = options(a)?;
    let g = grade_cohort(&opts)?;
    let table = g.markdown();
    if classroom_mode {
        eprint!("{table}");
        classroom(&g.rows, opts.rubric.as_deref())?;
        return Ok(0);
    }
    print!("{table}");
    let kept = g.rows.len() - g.regraded.len();
    println!(
        "\n{} graded in {:.0} s ({kept} unchanged, kept); report in {}",
        g.regraded.len(),
        g.wall.as_secs_f64(),
        opts.out.display()
    );
    Ok(own_failures(&g.rows))
}

fn options(a: GradeArgs) -> Result<GradeOptions> {
    Ok(GradeOptions {
        dirs: a.dirs,
        base: RunOptions {
            box_name: a.box_name.unwrap_or_default(),
            topology: Topology::load_or_default(a.topology.as_deref())?,
            scenarios: a.scenarios,
            homework: None,
            destroy: Destroy::Always,
            isolate: false,
            backend: Kind::from_env()?,
            keep_going: true,
        },
        jobs: a.jobs,
        out: a.out,
        all: a.all,
        deadline: a.deadline,
        rubric: a.rubric,
        shard: a.shard,
        shard_by: match a.shard_by {
            Some(ShardBy::Time(f)) => Some(f),
            _ => None,
        },
        previous: a.previous,
        roster: a.roster,
        assignment: a.assignment,
        due: a.due,
        copies_base: a.copies_base,
    })
}

/// A CI engine's "re-run failed jobs" must retry pglab's failures, not re-grade students:
/// 0 when every submission got a verdict (whatever the grades), 3 when pglab itself failed
/// on some (those rows say so), 2 for usage (clap's).
fn own_failures(rows: &[crate::report::cohort::Row]) -> i32 {
    let own: Vec<&str> = rows
        .iter()
        .filter(|r| r.grader_failed)
        .map(|r| r.name.as_str())
        .collect();
    if own.is_empty() {
        return 0;
    }
    eprintln!("pglab itself failed on: {}", own.join(", "));
    3
}

/// `--classroom`: the reporter's JSON on stdout, and base64 in `$GITHUB_OUTPUT` (`result`).
fn classroom(rows: &[Row], rubric: Option<&Path>) -> Result<()> {
    use base64::Engine as _;
    let rubric = match rubric {
        Some(f) => crate::report::rubric::Rubric::load(f)?,
        None => crate::report::rubric::Rubric::default_for_homework()?,
    };
    let row = rows.first().context("no submission was graded")?;
    let json = crate::report::gradebook::classroom_json(row, &rubric).to_string();
    println!("{json}");
    if let Some(f) = std::env::var_os("GITHUB_OUTPUT") {
        use std::io::Write as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&json);
        let mut o = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&f)?;
        writeln!(o, "result={b64}")?;
    }
    Ok(())
}
