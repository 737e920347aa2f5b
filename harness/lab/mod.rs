//! A lab: its id, its record on disk (`<state>/labs/<id>/lab.json`), its secrets and its
//! backend. Owns the lifecycle: create → up → (use) → down, with cleanup on every exit path.

mod leftovers;
pub use leftovers::leftovers;

use crate::backend::boxes;
use crate::backend::vagrant::vagrantfile::Provider;
use crate::backend::vagrant::{self, Vagrant};
use crate::backend::{nspawn::Nspawn, Backend, HostState};
use crate::model::names;
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
    /// Written as `nspawn`, `vagrant-libvirt` or `vagrant-virtualbox`.
    pub backend: BackendChoice,
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

impl LabRecord {
    /// A new lab's record, owned by this process.
    fn new(opts: &UpOptions, box_root: PathBuf, vagrant_box: Option<String>) -> LabRecord {
        LabRecord {
            id: new_id(),
            backend: opts.backend,
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
        }
    }
}

/// Which backend brings the hosts up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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

    pub fn is_vagrant(&self) -> bool {
        matches!(self, BackendChoice::Vagrant(_))
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.record_name())
    }
}

impl From<BackendChoice> for String {
    fn from(b: BackendChoice) -> String {
        b.record_name()
    }
}

impl TryFrom<String> for BackendChoice {
    type Error = String;
    fn try_from(name: String) -> std::result::Result<Self, String> {
        match name.as_str() {
            "nspawn" => Ok(BackendChoice::Nspawn),
            "vagrant-libvirt" => Ok(BackendChoice::Vagrant(Provider::Libvirt)),
            "vagrant-virtualbox" => Ok(BackendChoice::Vagrant(Provider::Virtualbox)),
            other => Err(format!("backend {other:?}, which this pglab does not know")),
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
    Ok(match rec.backend {
        BackendChoice::Nspawn => Box::new(Nspawn::new(&rec.id, dir, &rec.box_root, &rec.topology)),
        BackendChoice::Vagrant(provider) => Box::new(Vagrant::new(
            &rec.id,
            dir,
            &rec.topology,
            provider,
            rec.vagrant_box.as_deref().unwrap_or(&rec.box_name),
            (provider == Provider::Libvirt).then_some(rec.box_root.as_path()),
        )),
    })
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
            BackendChoice::Vagrant(provider) => vagrant_box(started, provider, &opts.box_name)?,
        };
        let record = LabRecord::new(&opts, box_root, vagrant_box);
        let id = record.id.clone();
        let mut lab = Lab::create(record)?;
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

    /// The lab's directory (registered for removal on an interrupt), its secrets and record.
    fn create(record: LabRecord) -> Result<Lab> {
        let dir = paths::labs_dir().join(&record.id);
        {
            let _g = cleanup::creating()?;
            std::fs::create_dir_all(dir.join("logs")).with_context(|| {
                format!(
                    "cannot create lab directory {} (set PGLAB_STATE_DIR)",
                    dir.display()
                )
            })?;
            own_lab(&record.id);
        }
        let secrets = Secrets::generate();
        secrets.save(&dir.join("secrets.env"))?;
        let backend = open_backend(&record, &dir)?;
        let lab = Lab {
            record,
            dir,
            secrets,
            backend,
            destroy_on_drop: true,
        };
        lab.save()?;
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

    /// Writes `lab.json` whole or not at all (a temporary file renamed over it): another
    /// pglab's `gc` or `status` never reads half a record.
    fn save(&self) -> Result<()> {
        let p = self.dir.join("lab.json");
        let tmp = self.dir.join(".lab.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.record)?)
            .and_then(|_| std::fs::rename(&tmp, &p))
            .with_context(|| format!("cannot write {}", p.display()))
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
        Ok(r) => r.backend.is_vagrant(),
        Err(_) => {
            dir.join("vagrant").exists()
                || !crate::backend::vagrant::libvirt::domains_matching(
                    &crate::model::names::host_prefix(id),
                )
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

/// A Vagrant lab's box: (its directory, its name for Vagrant), after the pre-flight checks.
fn vagrant_box(
    started: Instant,
    provider: Provider,
    box_name: &str,
) -> Result<(PathBuf, Option<String>)> {
    vagrant::preflight(provider)?;
    one_vagrant_lab_at_a_time()?;
    if provider == Provider::Libvirt {
        let b = crate::backend::vagrant::libvirt_box::LibvirtBox::load(box_name)?;
        if !b.is_built() {
            crate::sys::progress::say(
                started,
                "box",
                &format!("building the libvirt box {} (once)", b.vagrant_name()),
            );
        }
        b.ensure()?;
        Ok((b.dir(), Some(b.vagrant_name())))
    } else {
        // The course's own box, from Vagrant Cloud, on the user's machine.
        let name = if box_name.contains('/') {
            box_name.to_string()
        } else {
            "ubuntu/jammy64".into()
        };
        Ok((PathBuf::new(), Some(name)))
    }
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
        .find(|r| r.backend.is_vagrant() && !is_stale(r))
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
    // A record that cannot be read is not an orphan's: that lab is left alone, and said so.
    let (mut orphan_ids, unreadable) = orphan_dirs(&paths::labs_dir(), &known);
    for (id, why) in unreadable {
        eprintln!(
            "pglab: lab {id}: {why}; not removing it: look at {}; if the lab is stale, remove its lab.json and run `pglab gc` again",
            paths::labs_dir().join(&id).display()
        );
    }
    for ns in procfs::netns_matching("pglab") {
        if let Some(id) = names::lab_id_of(&ns) {
            if !known.contains(id) && !paths::labs_dir().join(id).exists() {
                orphan_ids.insert(id.to_string());
            }
        }
    }
    for d in crate::backend::vagrant::libvirt::domains_matching(names::PREFIX) {
        if let Some(id) = names::lab_id_of(&d) {
            if !known.contains(id) && !paths::labs_dir().join(id).exists() {
                orphan_ids.insert(id.to_string());
            }
        }
    }
    for id in orphan_ids {
        destroy(&id)?;
        removed.push((id, "no lab record".into()));
    }
    if crate::backend::vagrant::libvirt::domains_matching(names::PREFIX).is_empty() {
        crate::backend::vagrant::libvirt::stop_daemons_if_idle()?;
    }
    for p in boxes::remove_stale_builds() {
        removed.push((p.display().to_string(), "half-built box".into()));
    }
    Ok(removed)
}

/// Lab directories under `labs` that have no record (and are not being created): their ids.
/// Directories whose record exists but cannot be read come back apart, with the reason.
fn orphan_dirs(
    labs: &std::path::Path,
    known: &std::collections::HashSet<String>,
) -> (std::collections::BTreeSet<String>, Vec<(String, String)>) {
    let mut orphans = std::collections::BTreeSet::new();
    let mut unreadable = Vec::new();
    for e in std::fs::read_dir(labs).into_iter().flatten().flatten() {
        let id = e.file_name().to_string_lossy().to_string();
        if known.contains(&id) {
            continue;
        }
        let record = e.path().join("lab.json");
        if record.exists() {
            let why = match std::fs::read_to_string(&record) {
                Ok(text) => match serde_json::from_str::<LabRecord>(&text) {
                    Ok(_) => "its record appeared while gc looked".to_string(),
                    Err(err) => format!("{} is not a lab record ({err})", record.display()),
                },
                Err(err) => format!("cannot read {} ({err})", record.display()),
            };
            unreadable.push((id, why));
        } else if !is_being_created(&e.path()) {
            orphans.insert(id);
        }
    }
    (orphans, unreadable)
}

/// A lab directory younger than a few seconds without lab.json may be one being created now.
fn is_being_created(dir: &std::path::Path) -> bool {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(10))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_leaves_a_lab_whose_record_it_cannot_read() {
        let labs = tempfile::tempdir().unwrap();
        let damaged = labs.path().join("aaaaaa");
        std::fs::create_dir_all(&damaged).unwrap();
        std::fs::write(damaged.join("lab.json"), "{\"id\": \"aaa").unwrap();
        let no_record = labs.path().join("bbbbbb");
        std::fs::create_dir_all(&no_record).unwrap();
        // Older than a lab being created: a directory without a record is an orphan.
        let old = nix::sys::time::TimeVal::new(1_000_000_000, 0);
        nix::sys::stat::utimes(&no_record, &old, &old).unwrap();
        let known = std::collections::HashSet::from(["cccccc".to_string()]);
        std::fs::create_dir_all(labs.path().join("cccccc")).unwrap();
        let (orphans, unreadable) = orphan_dirs(labs.path(), &known);
        assert_eq!(orphans.into_iter().collect::<Vec<_>>(), ["bbbbbb"]);
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        assert_eq!(unreadable[0].0, "aaaaaa");
        assert!(
            unreadable[0].1.contains("is not a lab record"),
            "{unreadable:?}"
        );
    }

    #[test]
    fn the_backend_is_written_in_the_record_as_before() {
        for (b, name) in [
            (BackendChoice::Nspawn, "\"nspawn\""),
            (
                BackendChoice::Vagrant(Provider::Libvirt),
                "\"vagrant-libvirt\"",
            ),
            (
                BackendChoice::Vagrant(Provider::Virtualbox),
                "\"vagrant-virtualbox\"",
            ),
        ] {
            assert_eq!(serde_json::to_string(&b).unwrap(), name);
            assert_eq!(serde_json::from_str::<BackendChoice>(name).unwrap(), b);
        }
        let e = serde_json::from_str::<BackendChoice>("\"docker\"").unwrap_err();
        assert!(
            e.to_string().contains("which this pglab does not know"),
            "{e}"
        );
    }
}
