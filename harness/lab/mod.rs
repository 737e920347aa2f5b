//! A lab: its id, its record on disk (`<state>/labs/<id>/lab.json`), its secrets and its
//! backend. Owns the lifecycle: create → up → (use) → down, with cleanup on every exit path.

pub mod apt_proxy;
mod leftovers;
pub use leftovers::leftovers;

use crate::backend::boxes;
use crate::backend::vagrant::vagrantfile::Provider;
use crate::backend::vagrant::{self, Vagrant};
use crate::backend::{nspawn::Nspawn, Backend, HostState};
use crate::model::secrets::Secrets;
use crate::model::topology::Topology;
use crate::sys::exec::CmdOutput;
use crate::sys::{cleanup, paths, procfs};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What is written to `lab.json`: enough to find and remove the lab from another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRecord {
    pub id: String,
    pub backend: String,
    pub box_name: String,
    pub box_root: PathBuf,
    pub topology: Topology,
    /// The pglab process that created the lab; when it is gone and the lab is not kept,
    /// the lab is stale.
    pub owner_pid: u32,
    pub owner_start: u64,
    pub kept: bool,
    pub created_unix: u64,
    /// Vagrant labs: the box's name for Vagrant.
    #[serde(default)]
    pub vagrant_box: Option<String>,
}

/// Where a lab stands between scenarios (`<lab>/state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    /// None until provisioned; then the `provides` of the last scenario that passed.
    pub state: Option<String>,
    /// Values saved by steps, for later steps and scenarios.
    pub vars: std::collections::BTreeMap<String, String>,
}

/// Which backend brings the hosts up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Nspawn,
    Vagrant(Provider),
}

impl BackendChoice {
    /// PGLAB_BACKEND=nspawn|vagrant (default nspawn) and, for Vagrant,
    /// PGLAB_PROVIDER=libvirt|virtualbox (default libvirt).
    pub fn from_env() -> Result<BackendChoice> {
        let backend = std::env::var("PGLAB_BACKEND").unwrap_or_else(|_| "nspawn".into());
        let provider = std::env::var("PGLAB_PROVIDER").unwrap_or_else(|_| "libvirt".into());
        Ok(match (backend.as_str(), provider.as_str()) {
            ("nspawn", _) => BackendChoice::Nspawn,
            ("vagrant", "libvirt") => BackendChoice::Vagrant(Provider::Libvirt),
            ("vagrant", "virtualbox") => BackendChoice::Vagrant(Provider::Virtualbox),
            ("vagrant", p) => bail!("PGLAB_PROVIDER={p:?}: pglab knows libvirt and virtualbox"),
            (b, _) => bail!("PGLAB_BACKEND={b:?}: pglab knows nspawn and vagrant"),
        })
    }

    pub fn record_name(&self) -> String {
        match self {
            BackendChoice::Nspawn => "nspawn".into(),
            BackendChoice::Vagrant(p) => format!("vagrant-{}", vagrant::provider_name(*p)),
        }
    }
}

pub struct UpOptions {
    pub box_name: String,
    pub topology: Topology,
    pub backend: BackendChoice,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            box_name: "bookworm".into(),
            topology: Topology::default_lab(),
            backend: BackendChoice::Nspawn,
        }
    }
}

pub struct Lab {
    pub record: LabRecord,
    pub dir: PathBuf,
    pub secrets: Secrets,
    backend: Box<dyn Backend>,
    /// Destroy on drop (failure, panic); cleared by `keep`.
    destroy_on_drop: bool,
}

fn new_id() -> String {
    use rand::Rng;
    format!("{:06x}", rand::thread_rng().gen_range(0..0x100_0000u32))
}

fn open_backend(rec: &LabRecord, dir: &std::path::Path) -> Result<Box<dyn Backend>> {
    match rec.backend.as_str() {
        "nspawn" => Ok(Box::new(Nspawn::new(
            &rec.id,
            dir,
            &rec.box_root,
            &rec.topology,
        ))),
        "vagrant-libvirt" | "vagrant-virtualbox" => Ok(Box::new(Vagrant::new(
            &rec.id,
            dir,
            &rec.topology,
            if rec.backend == "vagrant-libvirt" {
                Provider::Libvirt
            } else {
                Provider::Virtualbox
            },
            rec.vagrant_box.as_deref().unwrap_or(&rec.box_name),
            (rec.backend == "vagrant-libvirt").then_some(rec.box_root.as_path()),
        ))),
        other => bail!(
            "lab {} uses backend {other:?}, which this pglab does not know",
            rec.id
        ),
    }
}

impl Lab {
    /// Builds the box if needed, creates a new lab and brings all hosts up.
    pub fn up(opts: UpOptions) -> Result<Lab> {
        let started = Instant::now();
        crate::sys::doctor::require_root("bring a lab up")?;
        for (id, _) in gc(false)? {
            eprintln!("pglab: removed stale lab {id}");
        }
        let (box_root, vagrant_box) = match opts.backend {
            BackendChoice::Nspawn => {
                // A bad PGLAB_LAB_STORAGE is refused before anything is made.
                crate::backend::nspawn::lab_storage()?;
                (ensure_box(started, &opts.box_name)?, None)
            }
            BackendChoice::Vagrant(provider) => {
                vagrant::preflight(provider)?;
                one_vagrant_lab_at_a_time()?;
                if provider == Provider::Libvirt {
                    let b = crate::backend::vagrant::libvirt_box::LibvirtBox::load(&opts.box_name)?;
                    if !b.is_built() {
                        crate::sys::progress::say(
                            started,
                            "box",
                            &format!("building the libvirt box {} (once)", b.vagrant_name()),
                        );
                    }
                    b.ensure()?;
                    (b.dir(), Some(b.vagrant_name()))
                } else {
                    // The course's own box, from Vagrant Cloud, on the user's machine.
                    let name = if opts.box_name.contains('/') {
                        opts.box_name.clone()
                    } else {
                        "ubuntu/jammy64".into()
                    };
                    (PathBuf::new(), Some(name))
                }
            }
        };
        let id = new_id();
        let dir = paths::labs_dir().join(&id);
        let record = LabRecord {
            id: id.clone(),
            backend: opts.backend.record_name(),
            vagrant_box,
            box_name: opts.box_name.clone(),
            box_root,
            topology: opts.topology.clone(),
            owner_pid: std::process::id(),
            owner_start: procfs::pid_start_time(std::process::id()).unwrap_or(0),
            kept: false,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        {
            let _g = cleanup::creating()?;
            std::fs::create_dir_all(dir.join("logs")).with_context(|| {
                format!(
                    "cannot create lab directory {} (set PGLAB_STATE_DIR)",
                    dir.display()
                )
            })?;
            own_lab(&id);
        }
        let secrets = Secrets::generate();
        secrets.save(&dir.join("secrets.env"))?;
        let backend = open_backend(&record, &dir)?;
        let mut lab = Lab {
            record,
            dir,
            secrets,
            backend,
            destroy_on_drop: true,
        };
        lab.save()?;
        crate::sys::progress::say(
            started,
            "up",
            &format!(
                "lab {id}: starting {} on {}",
                lab.record.topology.names().join(", "),
                lab.backend.kind()
            ),
        );
        lab.backend.up()?;
        crate::sys::progress::say(started, "up", &format!("lab {id}: all hosts booted"));
        Ok(lab)
    }

    /// Opens an existing lab (by id, or the only one there is).
    pub fn attach(id: Option<&str>) -> Result<Lab> {
        let id = match id {
            Some(id) => id.to_string(),
            None => {
                let all = list()?;
                match all.as_slice() {
                    [one] => one.id.clone(),
                    [] => bail!("no lab is up; start one with `pglab up`"),
                    many => bail!(
                        "{} labs are up ({}); name one with --lab ID",
                        many.len(),
                        many.iter()
                            .map(|r| r.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
        };
        let dir = paths::labs_dir().join(&id);
        let record = read_record(&id)?;
        let secrets = Secrets::load(&dir.join("secrets.env"))?;
        let backend = open_backend(&record, &dir)?;
        Ok(Lab {
            record,
            dir,
            secrets,
            backend,
            destroy_on_drop: false,
        })
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub fn topology(&self) -> &Topology {
        &self.record.topology
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    fn save(&self) -> Result<()> {
        let p = self.dir.join("lab.json");
        std::fs::write(&p, serde_json::to_string_pretty(&self.record)?)
            .with_context(|| format!("cannot write {}", p.display()))
    }

    pub fn load_state(&self) -> LabState {
        std::fs::read_to_string(self.dir.join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save_state(&self, st: &LabState) -> Result<()> {
        std::fs::write(
            self.dir.join("state.json"),
            serde_json::to_string_pretty(st)?,
        )?;
        Ok(())
    }

    /// Leaves the lab up when this process ends, on purpose.
    pub fn keep(&mut self) -> Result<()> {
        self.record.kept = true;
        self.destroy_on_drop = false;
        disown_lab(&self.record.id);
        self.save()
    }

    pub fn exec(
        &self,
        host: &str,
        user: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<CmdOutput> {
        self.backend.exec(host, user, script, timeout)
    }

    pub fn status(&self) -> Vec<(String, HostState)> {
        self.record
            .topology
            .hosts
            .iter()
            .map(|h| (h.name.clone(), self.backend.host_state(&h.name)))
            .collect()
    }

    pub fn how_to_enter(&self) -> String {
        let mut s = format!("lab {} is up (kept). Hosts:\n", self.id());
        for h in &self.record.topology.hosts {
            s.push_str(&format!(
                "  {:<8} {:<15} {}\n",
                h.name,
                h.address.to_string(),
                self.backend.how_to_enter(&h.name)
            ));
        }
        s.push_str(&format!("Remove it with: pglab down --lab {}", self.id()));
        s
    }

    pub fn down(mut self) -> Result<()> {
        self.destroy_on_drop = false;
        let r = self.backend.down();
        disown_lab(&self.record.id);
        r
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.destroy_on_drop {
            if let Err(e) = self.backend.down() {
                eprintln!("pglab: removing lab {}: {e:#}", self.record.id);
            }
            disown_lab(&self.record.id);
        }
    }
}

pub fn read_record(id: &str) -> Result<LabRecord> {
    let p = paths::labs_dir().join(id).join("lab.json");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("no lab {id} ({} not readable)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a lab record", p.display()))
}

/// Every lab with a record on this machine.
pub fn list() -> Result<Vec<LabRecord>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(paths::labs_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(r) = read_record(&e.file_name().to_string_lossy()) {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.created_unix);
    Ok(out)
}

/// Removes lab `id` (record or not) by discovery.
pub fn destroy(id: &str) -> Result<()> {
    let dir = paths::labs_dir().join(id);
    // The record says which backend; without one (a lab killed while it was being made),
    // look for what a Vagrant lab leaves: its directory or libvirt domains (asking libvirt
    // costs a quarter of a second, so only then).
    let is_vagrant = match read_record(id) {
        Ok(r) => r.backend.starts_with("vagrant"),
        Err(_) => {
            dir.join("vagrant").exists()
                || !crate::backend::vagrant::libvirt::domains_matching(&format!("pglab-{id}-"))
                    .is_empty()
        }
    };
    if is_vagrant {
        return vagrant::teardown(id, &dir);
    }
    let hosts: Vec<String> = match read_record(id) {
        Ok(r) => r.topology.hosts.iter().map(|h| h.name.clone()).collect(),
        Err(_) => std::fs::read_dir(dir.join("hosts"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect(),
    };
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    crate::backend::nspawn::teardown(id, &dir, &hosts)
}

/// Registers lab `id` with the signal handler: on SIGINT/SIGTERM it is destroyed.
fn own_lab(id: &str) {
    let lab = id.to_string();
    cleanup::own(owned_key(id), move || {
        if let Err(e) = destroy(&lab) {
            eprintln!("pglab: removing lab {lab}: {e:#}");
        }
    });
}

fn disown_lab(id: &str) {
    cleanup::disown(&owned_key(id));
}

fn owned_key(id: &str) -> String {
    format!("lab {id}")
}

/// Builds the nspawn box if it is not cached, saying so first (it takes a minute).
fn ensure_box(started: Instant, name: &str) -> Result<PathBuf> {
    let spec = boxes::BoxSpec::load(name)?;
    if !spec.is_built() {
        crate::sys::progress::say(
            started,
            "box",
            &format!(
                "building {} (once; cached under {})",
                spec.name,
                spec.dir().display()
            ),
        );
    }
    spec.ensure()
}

/// A Vagrant lab's private network holds the topology's addresses on this machine itself
/// (a libvirt bridge or a VirtualBox host-only adapter), so two would collide.
fn one_vagrant_lab_at_a_time() -> Result<()> {
    if let Some(other) = list()?
        .into_iter()
        .find(|r| r.backend.starts_with("vagrant") && !is_stale(r))
    {
        bail!(
            "Vagrant lab {} is up (its private network uses the lab's addresses on this machine, so a second one would collide): remove it with `pglab down --lab {}` or wait for its run to end",
            other.id,
            other.id
        );
    }
    Ok(())
}

fn is_stale(r: &LabRecord) -> bool {
    let owner_alive = procfs::pid_alive(r.owner_pid)
        && procfs::pid_start_time(r.owner_pid) == Some(r.owner_start);
    !r.kept && !owner_alive
}

/// Finds and removes stale labs (owner gone, not kept; with `all`, every lab), and
/// resources whose lab has no record left. Returns what was removed and why.
pub fn gc(all: bool) -> Result<Vec<(String, String)>> {
    let mut removed = Vec::new();
    let mut known = std::collections::HashSet::new();
    for r in list()? {
        known.insert(r.id.clone());
        if all || is_stale(&r) {
            destroy(&r.id)?;
            removed.push((
                r.id.clone(),
                if all {
                    "--all".into()
                } else {
                    format!("its pglab process {} is gone", r.owner_pid)
                },
            ));
        }
    }
    // Orphans: directories without a record, namespaces and processes without a directory.
    let mut orphan_ids = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(paths::labs_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let id = e.file_name().to_string_lossy().to_string();
        if !known.contains(&id) && !is_being_created(&e.path()) {
            orphan_ids.insert(id);
        }
    }
    for ns in procfs::netns_matching("pglab") {
        if let Some(id) = ns
            .strip_prefix("pglab-")
            .map(|r| r.split('-').next().unwrap_or(r).to_string())
        {
            if !known.contains(&id) && !paths::labs_dir().join(&id).exists() {
                orphan_ids.insert(id);
            }
        }
    }
    for d in crate::backend::vagrant::libvirt::domains_matching("pglab-") {
        if let Some(id) = d.strip_prefix("pglab-").and_then(|r| r.split('-').next()) {
            if !known.contains(id) && !paths::labs_dir().join(id).exists() {
                orphan_ids.insert(id.to_string());
            }
        }
    }
    for id in orphan_ids {
        destroy(&id)?;
        removed.push((id, "no lab record".into()));
    }
    if crate::backend::vagrant::libvirt::domains_matching("pglab-").is_empty() {
        crate::backend::vagrant::libvirt::stop_daemons_if_idle()?;
    }
    for p in boxes::remove_stale_builds() {
        removed.push((p.display().to_string(), "half-built box".into()));
    }
    Ok(removed)
}

/// A lab directory younger than a few seconds without lab.json may be one being created now.
fn is_being_created(dir: &std::path::Path) -> bool {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(10))
        .unwrap_or(false)
}
