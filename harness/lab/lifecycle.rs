//! A lab's lifecycle: create → up → (use) → down, with cleanup on every exit path (`Lab`).

use super::destroy::destroy;
use super::gc::{self as gc_mod, gc};
use super::record::{list, read_record, LabRecord, UpOptions};
use crate::backend::kind::Opening;
use crate::backend::{Backend, HostState};
use crate::model::secrets::Secrets;
use crate::model::topology::Topology;
use crate::sys::exec::CmdOutput;
use crate::sys::{cleanup, paths};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Lab {
    pub record: LabRecord,
    pub dir: PathBuf,
    pub secrets: Secrets,
    backend: Box<dyn Backend>,
    /// Destroy on drop (failure, panic); cleared by `keep`.
    destroy_on_drop: bool,
}

fn open_backend(rec: &LabRecord, dir: &std::path::Path) -> Result<Box<dyn Backend>> {
    Ok(rec.backend.open(&Opening {
        id: &rec.id,
        dir,
        box_root: &rec.box_root,
        box_name: &rec.box_name,
        backend_box: rec.backend_box.as_deref(),
        topology: &rec.topology,
    }))
}

impl Lab {
    /// Builds the box if needed, creates a new lab and brings all hosts up.
    pub fn up(opts: UpOptions) -> Result<Lab> {
        let started = Instant::now();
        crate::sys::doctor::require_root("bring a lab up")?;
        for (id, _) in gc(false)? {
            eprintln!("pglab: removed stale lab {id}");
        }
        one_at_a_time(opts.backend)?;
        let prepared = opts.backend.prepare(started, &opts.box_name)?;
        let record = LabRecord::new(&opts, prepared.box_root, prepared.backend_box);
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

    /// A lab on `backend` (the fake one of unit tests) with the default topology, in `dir`:
    /// nothing is created on the machine and nothing is destroyed on drop.
    #[cfg(test)]
    pub fn fake(backend: Box<dyn Backend>, dir: &std::path::Path) -> Lab {
        let opts = UpOptions::default();
        let record = LabRecord::new(&opts, PathBuf::new(), None);
        Lab {
            record,
            dir: dir.to_path_buf(),
            secrets: Secrets::generate(),
            backend,
            destroy_on_drop: false,
        }
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

    /// The hosts' roles as provisioning made them (a submission whose machine names say no
    /// role); names and addresses do not change. The record is written again.
    pub fn assign_roles(&mut self, roles: &[(String, crate::model::topology::Role)]) -> Result<()> {
        for h in &mut self.record.topology.hosts {
            if let Some((_, r)) = roles.iter().find(|(n, _)| *n == h.name) {
                h.roles = vec![*r];
            }
        }
        self.record.topology.validate()?;
        self.save()
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
        crate::sys::progress::stage(crate::sys::progress::RunStage::Down);
        // Removing a lab is never cancelled: a run asked to stop removes its lab on its way
        // out (its own commands are refused once it is cancelled, these must run).
        let r = crate::sys::cancel::with(None, || self.backend.down());
        disown_lab(&self.record.id);
        r
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.destroy_on_drop {
            // Whoever oversees the run sees it going down (its deadline watcher leaves it be).
            crate::sys::progress::stage(crate::sys::progress::RunStage::Down);
            // Never cancelled (see `down`).
            if let Err(e) = crate::sys::cancel::with(None, || self.backend.down()) {
                eprintln!("pglab: removing lab {}: {e:#}", self.record.id);
            }
            disown_lab(&self.record.id);
        }
    }
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

/// A kind that runs one lab at a time on a machine (`Kind::one_at_a_time`) refuses a second.
fn one_at_a_time(kind: crate::backend::Kind) -> Result<()> {
    let Some(why) = kind.one_at_a_time() else {
        return Ok(());
    };
    if let Some(other) = list()?
        .into_iter()
        .find(|r| r.backend.one_at_a_time().is_some() && !gc_mod::is_stale(r))
    {
        bail!(
            "{} lab {} is up ({why}): remove it with `pglab down --lab {}` or wait for its run to end",
            other.backend,
            other.id,
            other.id
        );
    }
    Ok(())
}
