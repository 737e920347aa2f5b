use anyhow::Result;
use clap::{Parser, Subcommand};
use pglab::backend::boxes;
use pglab::lab;
use pglab::lab::{Lab, UpOptions};
use pglab::sys::{cleanup, doctor, mounts};
use std::path::PathBuf;
use std::time::Duration;

/// pglab: PostgreSQL replication and backup labs, provisioned and proven.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the homework end to end: box, up, provision, scenarios, down.
    Run {
        /// Scenarios to run (default: all); the ones they depend on run first.
        scenarios: Vec<String>,
        /// Box recipes, comma-separated: one lab and one full run each (a version matrix).
        #[arg(long = "box", default_value = "bookworm", value_delimiter = ',')]
        boxes: Vec<String>,
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Provision with this submission instead of the reference solution.
        #[arg(long)]
        homework: Option<PathBuf>,
        /// Leave the lab up afterwards (same as --destroy never).
        #[arg(long)]
        keep: bool,
        /// When to remove the lab.
        #[arg(long, value_enum, default_value = "always")]
        destroy: pglab::run::Destroy,
        /// Write the report as JSON (one object per box).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the report as JUnit XML.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// How many labs run at once: the boxes of the matrix, and with more jobs than boxes
        /// each box's scenarios spread over several labs.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Start each scenario from a saved copy of the state it requires (states are
        /// saved when first reached) instead of from where the previous one left the lab.
        #[arg(long)]
        isolate: bool,
    },
    /// Brings a lab up and leaves it running; prints how to get in.
    Up {
        /// Box recipe (boxes/NAME.toml).
        #[arg(long = "box", default_value = "bookworm")]
        box_name: String,
        /// Topology file (default: the built-in lab.toml).
        #[arg(long)]
        topology: Option<PathBuf>,
    },
    /// Runs a command on a host of a lab: `pglab exec node1 -- psql -c 'select 1'`.
    Exec {
        #[arg(long)]
        lab: Option<String>,
        /// User to run as on the host.
        #[arg(long, short, default_value = "root")]
        user: String,
        host: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Provisions a lab that is up with a submission (default: the reference solution).
    Provision {
        #[arg(long)]
        lab: Option<String>,
        /// A submission directory (provision.toml + scripts).
        #[arg(long)]
        homework: Option<PathBuf>,
    },
    /// Lists labs and the state of their hosts.
    Status,
    /// Removes a lab (or every lab with --all).
    Down {
        #[arg(long)]
        lab: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Finds and removes stale labs left by killed runs (with --all, every lab).
    Gc {
        #[arg(long)]
        all: bool,
    },
    /// Lists what the host needs and whether it is there; --install installs what is missing.
    Doctor {
        #[arg(long)]
        install: bool,
    },
    /// Times phases over several runs and prints min / median / max.
    Bench {
        #[arg(value_enum, default_value = "run")]
        what: pglab::run::bench::What,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Labs at once, for `parallel`.
        #[arg(long, default_value_t = 3)]
        labs: usize,
        #[arg(long = "box", default_value = "bookworm")]
        box_name: String,
    },
    /// Renders the lab's Vagrantfile from Vagrantfile.tera (what `PGLAB_BACKEND=vagrant` brings up).
    Vagrantfile {
        #[arg(long, value_enum, default_value = "virtualbox")]
        provider: pglab::backend::vagrant::vagrantfile::Provider,
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Write it here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Box recipes: build or list.
    #[command(subcommand)]
    Box(BoxCmd),
}

#[derive(Subcommand)]
enum BoxCmd {
    /// Builds a box (no-op when the recipe is unchanged and the box is cached).
    Build {
        #[arg(default_value = "bookworm")]
        name: String,
        /// Rebuild even if cached.
        #[arg(long)]
        force: bool,
        /// Build the Vagrant box for libvirt from the recipe (kernel, image, `vagrant box add`).
        #[arg(long)]
        libvirt: bool,
    },
    /// Lists the recipes and whether each is built.
    List,
}

fn main() {
    cleanup::install_signal_handlers();
    let cli = Cli::parse();
    let result = run(cli);
    if cleanup::aborting() {
        // A signal arrived: its handler is removing what this run made and will exit with
        // 128+signal; whatever failed here because of it is not the error to report.
        loop {
            std::thread::park();
        }
    }
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pglab: error: {e:#}");
            1
        }
    };
    cleanup::remove_owned();
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Run {
            scenarios,
            boxes,
            topology,
            homework,
            keep,
            destroy,
            json,
            junit,
            isolate,
            jobs,
        } => {
            let topology = pglab::model::topology::Topology::load_or_default(topology.as_deref())?;
            let destroy = if keep {
                pglab::run::Destroy::Never
            } else {
                destroy
            };
            let backend = pglab::lab::BackendChoice::from_env()?;
            let opts_for = |box_name: &str| pglab::run::RunOptions {
                box_name: box_name.to_string(),
                topology: topology.clone(),
                scenarios: scenarios.clone(),
                homework: homework.clone(),
                destroy,
                isolate,
                backend,
            };
            // Work items: one lab per box; with more jobs than boxes, each box's scenarios
            // are spread over several labs.
            let jobs = jobs.max(1);
            let parts = (jobs / boxes.len().max(1)).max(1);
            let mut items: Vec<(String, pglab::run::RunOptions)> = Vec::new();
            for b in &boxes {
                let groups = if parts > 1 {
                    pglab::run::spread(&opts_for(b), parts)?
                } else {
                    vec![scenarios.clone()]
                };
                let n = groups.len();
                for (i, g) in groups.into_iter().enumerate() {
                    let label = if n > 1 {
                        format!("{b}#{}", i + 1)
                    } else {
                        b.clone()
                    };
                    items.push((
                        label,
                        pglab::run::RunOptions {
                            scenarios: g,
                            ..opts_for(b)
                        },
                    ));
                }
            }
            let mut reports = Vec::new();
            for group in items.chunks(jobs) {
                let results: Vec<Result<pglab::run::RunReport>> = std::thread::scope(|s| {
                    let handles: Vec<_> = group
                        .iter()
                        .map(|(label, opts)| {
                            s.spawn(move || {
                                if group.len() > 1 {
                                    pglab::sys::progress::set_label(label);
                                }
                                pglab::run::run(opts)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err(anyhow::anyhow!("a lab's thread panicked")))
                        })
                        .collect()
                });
                for r in results {
                    let report = r?;
                    print!("{}", pglab::report::summary::summary(&report));
                    reports.push(report);
                }
            }
            if reports.len() > 1 {
                println!("\nlabs:");
                for r in &reports {
                    let total = r.phases.last().map(|p| p.1).unwrap_or(0.0);
                    println!(
                        "  {:<10} {}  ({total:.0}s, lab {})",
                        r.box_name,
                        if r.passed { "passed" } else { "FAILED" },
                        r.lab
                    );
                }
            }
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&reports)?)?;
            }
            if let Some(p) = junit {
                std::fs::write(&p, pglab::report::junit::render(&reports))?;
            }
            Ok(if reports.iter().all(|r| r.passed) {
                0
            } else {
                1
            })
        }
        Cmd::Up { box_name, topology } => {
            let topology = pglab::model::topology::Topology::load_or_default(topology.as_deref())?;
            let mut lab = Lab::up(UpOptions {
                box_name,
                topology,
                backend: pglab::lab::BackendChoice::from_env()?,
            })?;
            lab.keep()?;
            println!("{}", lab.how_to_enter());
            Ok(0)
        }
        Cmd::Exec {
            lab,
            user,
            host,
            command,
        } => {
            let lab = Lab::attach(lab.as_deref())?;
            let script = command
                .iter()
                .map(|a| pglab::backend::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ");
            let out = lab.exec(&host, &user, &script, Duration::from_secs(3600))?;
            print!("{}", out.stdout);
            eprint!("{}", out.stderr);
            Ok(out.code)
        }
        Cmd::Provision { lab, homework } => {
            let lab = Lab::attach(lab.as_deref())?;
            let sub = pglab::provision::Submission::load(
                &homework.unwrap_or_else(pglab::provision::reference_dir),
            )?;
            let log = pglab::report::runlog::RunLog::create(
                &format!("provision-{}-{}", lab.id(), std::process::id()),
                &lab.secrets,
            )?;
            let report = pglab::provision::provision(&lab, &sub, &log, std::time::Instant::now())?;
            println!(
                "provisioned lab {} in {:.1}s ({} changes); logs in {}",
                lab.id(),
                report.duration.as_secs_f64(),
                report.changes.len(),
                log.dir.display()
            );
            for c in report.changes {
                println!("  changed: {c}");
            }
            Ok(0)
        }
        Cmd::Status => {
            let labs = lab::list()?;
            if labs.is_empty() {
                println!("no labs");
            }
            for r in labs {
                let l = Lab::attach(Some(&r.id))?;
                let hosts: Vec<String> = l
                    .status()
                    .iter()
                    .map(|(h, s)| format!("{h}={s:?}").to_lowercase())
                    .collect();
                println!(
                    "lab {}  backend={} box={} {} owner={}  {}",
                    r.id,
                    r.backend,
                    r.box_name,
                    if r.kept { "kept" } else { "running" },
                    r.owner_pid,
                    hosts.join(" ")
                );
            }
            Ok(0)
        }
        Cmd::Down { lab, all } => {
            doctor::require_root("remove a lab")?;
            if all {
                for r in lab::list()? {
                    lab::destroy(&r.id)?;
                    println!("removed lab {}", r.id);
                }
            } else {
                let l = Lab::attach(lab.as_deref())?;
                let id = l.id().to_string();
                l.down()?;
                println!("removed lab {id}");
            }
            Ok(0)
        }
        Cmd::Gc { all } => {
            doctor::require_root("remove labs")?;
            let removed = lab::gc(all)?;
            if removed.is_empty() {
                println!("nothing stale");
            }
            for (what, why) in removed {
                println!("removed {what} ({why})");
            }
            Ok(0)
        }
        Cmd::Doctor { install } => {
            if install {
                doctor::ensure(true)?;
            }
            let needs = doctor::needs();
            println!("nspawn backend (the default):");
            print!("{}", doctor::report(&needs));
            println!("Vagrant backend with libvirt (PGLAB_BACKEND=vagrant; apt-get install --no-install-recommends PACKAGES):");
            print!("{}", doctor::report(&doctor::vagrant_needs()));
            println!("Vagrant with VirtualBox: VirtualBox and Vagrant from their vendors (your own machine).");
            Ok(if needs.iter().all(|n| n.present) {
                0
            } else {
                1
            })
        }
        Cmd::Bench {
            what,
            runs,
            box_name,
            labs,
        } => {
            doctor::require_root("run benchmarks")?;
            print!("{}", pglab::run::bench::bench(what, runs, &box_name, labs)?);
            Ok(0)
        }
        Cmd::Box(BoxCmd::Build {
            name,
            force,
            libvirt: true,
        }) => {
            doctor::require_root("build a box")?;
            let b = pglab::backend::vagrant::libvirt_box::LibvirtBox::load(&name)?;
            if force && b.dir().exists() {
                mounts::remove_tree(&b.dir())?;
            }
            if b.is_built() {
                println!("box {} is cached: {}", b.vagrant_name(), b.dir().display());
            } else {
                b.ensure()?;
            }
            Ok(0)
        }
        Cmd::Box(BoxCmd::Build { name, force, .. }) => {
            doctor::require_root("build a box")?;
            let spec = boxes::BoxSpec::load(&name)?;
            if force && spec.is_built() {
                mounts::remove_tree(&spec.dir())?;
            }
            if spec.is_built() {
                println!("box {name} is cached: {}", spec.dir().display());
            } else {
                spec.build()?;
            }
            Ok(0)
        }
        Cmd::Vagrantfile {
            provider,
            topology,
            out,
        } => {
            let topology = pglab::model::topology::Topology::load_or_default(topology.as_deref())?;
            let opts = pglab::backend::vagrant::vagrantfile::VagrantOptions::for_provider(provider);
            let text = pglab::backend::vagrant::vagrantfile::render(&topology, "manual", &opts)?;
            match out {
                Some(p) => std::fs::write(&p, text)?,
                None => print!("{text}"),
            }
            Ok(0)
        }
        Cmd::Box(BoxCmd::List) => {
            for name in boxes::list_recipes()? {
                let spec = boxes::BoxSpec::load(&name)?;
                println!(
                    "{name:<10} {:<48} {}",
                    spec.recipe.description,
                    if spec.is_built() {
                        format!("built {}", spec.dir().display())
                    } else {
                        "not built".into()
                    }
                );
            }
            Ok(0)
        }
    }
}
