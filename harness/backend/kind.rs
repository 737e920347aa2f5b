//! The kinds of backend, each owning its lifecycle: what it checks and builds before a lab
//! (its box), how a lab is opened from its record, torn down by discovery, what it leaves
//! behind, which of its resources outlive a lab record, and the boxes it keeps. `lab/` asks a
//! `Kind` and names no backend: a new backend is a folder beside `nspawn/` and `vagrant/`
//! plus a variant here.

use super::api::Backend;
use super::boxes;
use super::nspawn;
use super::vagrant::vagrantfile::Provider;
use super::vagrant::{self, Vagrant};
use crate::model::names;
use crate::model::topology::Topology;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which backend brings a lab's hosts up. Written in a lab's record as `nspawn`,
/// `vagrant-libvirt` or `vagrant-virtualbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Kind {
    Nspawn,
    Vagrant(Provider),
}

/// What a kind prepared before a lab: the box's folder here, and the box's name for the
/// backend when it has its own (Vagrant's box name).
pub struct Prepared {
    pub box_root: PathBuf,
    pub backend_box: Option<String>,
}

/// What a lab of some kind is opened from (its record's parts).
pub struct Opening<'a> {
    pub id: &'a str,
    pub dir: &'a Path,
    pub box_root: &'a Path,
    pub box_name: &'a str,
    pub backend_box: Option<&'a str>,
    pub topology: &'a Topology,
}

impl Kind {
    /// PGLAB_BACKEND=nspawn|vagrant (default nspawn) and, for Vagrant,
    /// PGLAB_PROVIDER=libvirt|virtualbox (default libvirt).
    pub fn from_env() -> Result<Kind> {
        let backend = std::env::var("PGLAB_BACKEND").unwrap_or_else(|_| "nspawn".into());
        let provider = std::env::var("PGLAB_PROVIDER").unwrap_or_else(|_| "libvirt".into());
        Ok(match (backend.as_str(), provider.as_str()) {
            ("nspawn", _) => Kind::Nspawn,
            ("vagrant", "libvirt") => Kind::Vagrant(Provider::Libvirt),
            ("vagrant", "virtualbox") => Kind::Vagrant(Provider::Virtualbox),
            ("vagrant", p) => bail!("PGLAB_PROVIDER={p:?}: pglab knows libvirt and virtualbox"),
            (b, _) => bail!("PGLAB_BACKEND={b:?}: pglab knows nspawn and vagrant"),
        })
    }

    pub fn record_name(&self) -> String {
        match self {
            Kind::Nspawn => "nspawn".into(),
            Kind::Vagrant(p) => format!("vagrant-{}", vagrant::provider_name(*p)),
        }
    }

    pub fn is_vagrant(&self) -> bool {
        matches!(self, Kind::Vagrant(_))
    }

    /// Why a second lab of this kind cannot run beside one on this machine, when it cannot:
    /// a Vagrant lab's private network holds the topology's addresses on the machine itself
    /// (a libvirt bridge or a VirtualBox host-only adapter), so two would collide.
    pub fn one_at_a_time(&self) -> Option<&'static str> {
        self.is_vagrant().then_some(
            "its private network uses the lab's addresses on this machine, so a second one would collide",
        )
    }

    /// The pre-flight checks and the box (built once, saying so first: it takes a minute).
    pub fn prepare(&self, started: Instant, box_name: &str) -> Result<Prepared> {
        match self {
            Kind::Nspawn => {
                // A bad PGLAB_LAB_STORAGE is refused before anything is made.
                nspawn::lab_storage()?;
                Ok(Prepared {
                    box_root: nspawn_box(started, box_name)?,
                    backend_box: None,
                })
            }
            Kind::Vagrant(provider) => vagrant_box(started, *provider, box_name),
        }
    }

    /// The backend of a lab of this kind.
    pub fn open(&self, o: &Opening) -> Box<dyn Backend> {
        match *self {
            Kind::Nspawn => Box::new(nspawn::Nspawn::new(o.id, o.dir, o.box_root, o.topology)),
            Kind::Vagrant(provider) => Box::new(Vagrant::new(
                o.id,
                o.dir,
                o.topology,
                provider,
                o.backend_box.unwrap_or(o.box_name),
                (provider == Provider::Libvirt).then_some(o.box_root),
            )),
        }
    }

    /// Which kind made lab `id` whose record is gone (a lab killed while it was being made):
    /// what a Vagrant lab leaves, its folder or libvirt domains (asking libvirt costs a
    /// quarter of a second, so only then), else nspawn.
    pub fn discover(id: &str, dir: &Path) -> Kind {
        let vagrant = dir.join("vagrant").exists()
            || !vagrant::libvirt::domains_matching(&names::host_prefix(id)).is_empty();
        if vagrant {
            Kind::Vagrant(Provider::Libvirt)
        } else {
            Kind::Nspawn
        }
    }

    /// Removes every resource of lab `id` of this kind, found by name. Idempotent.
    pub fn teardown(&self, id: &str, dir: &Path, hosts: &[&str]) -> Result<()> {
        match self {
            Kind::Nspawn => nspawn::teardown(id, dir, hosts),
            Kind::Vagrant(_) => vagrant::teardown(id, dir),
        }
    }
}

/// What every kind still holds of lab `id` on this machine, one line each.
pub fn leftovers(id: &str) -> Vec<String> {
    let mut found = nspawn::leftovers(id);
    found.extend(vagrant::leftovers(id));
    found
}

/// The names of every kind's resources on this machine that carry a lab's name (network
/// namespaces, libvirt domains): `gc` removes those whose lab has no record.
pub fn resources_named() -> Vec<String> {
    // `netns_matching` takes the name before a `-`: "pglab" finds `pglab-<id>...`.
    let mut found = crate::sys::procfs::netns_matching(names::PREFIX.trim_end_matches('-'));
    found.extend(vagrant::libvirt::domains_matching(names::PREFIX));
    found
}

/// After `gc`, with `labs` the kinds of the labs still on record: a kind's machine-wide
/// services that no lab needs any more are stopped (libvirt's daemons that pglab started).
/// A Vagrant lab that is coming up has a record but no domain yet: its daemons stay
/// (measured: a `pglab up` of an nspawn lab during another process's `vagrant up` stopped
/// libvirtd under it, "virDomainDefineXML failed: Cannot write data: Broken pipe").
pub fn after_gc(labs: &[Kind]) -> Result<()> {
    if !labs.iter().any(Kind::is_vagrant)
        && vagrant::libvirt::domains_matching(names::PREFIX).is_empty()
    {
        vagrant::libvirt::stop_daemons_if_idle()?;
    }
    Ok(())
}

/// The names the boxes of `recipe` have today, for every kind: cache folders
/// (`NAME-HASH`) and Vagrant box names (`pglab/NAME-HASH`).
pub fn box_names(recipe: &str) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(spec) = boxes::BoxSpec::load(recipe) {
        names.extend(folder_name(&spec.dir()));
    }
    if let Ok(vm) = vagrant::libvirt_box::LibvirtBox::load(recipe) {
        names.extend(folder_name(&vm.dir()));
        names.push(vm.vagrant_name());
    }
    names
}

fn folder_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Boxes pglab made that a kind keeps outside pglab's cache (Vagrant's `pglab/...` boxes).
pub fn kept_boxes() -> Vec<String> {
    vagrant::pglab_boxes()
}

/// How such a box is named to the user: `Vagrant box pglab/bookworm-1a2b`.
pub fn kept_box_label(name: &str) -> String {
    format!("Vagrant box {name}")
}

/// Removes such a box (`kept_boxes`).
pub fn remove_kept_box(name: &str) -> Result<()> {
    vagrant::remove_box(name)
}

/// Builds the nspawn box if it is not cached, saying so first (it takes a minute).
fn nspawn_box(started: Instant, name: &str) -> Result<PathBuf> {
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

/// A Vagrant lab's box after the pre-flight checks: its folder and its name for Vagrant.
fn vagrant_box(started: Instant, provider: Provider, box_name: &str) -> Result<Prepared> {
    vagrant::preflight(provider)?;
    if provider == Provider::Libvirt {
        let b = vagrant::libvirt_box::LibvirtBox::load(box_name)?;
        if !b.is_built() {
            crate::sys::progress::say(
                started,
                "box",
                &format!("building the libvirt box {} (once)", b.vagrant_name()),
            );
        }
        b.ensure()?;
        Ok(Prepared {
            box_root: b.dir(),
            backend_box: Some(b.vagrant_name()),
        })
    } else {
        // The course's own box, from Vagrant Cloud, on the user's machine.
        let name = if box_name.contains('/') {
            box_name.to_string()
        } else {
            "ubuntu/jammy64".into()
        };
        Ok(Prepared {
            box_root: PathBuf::new(),
            backend_box: Some(name),
        })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.record_name())
    }
}

impl From<Kind> for String {
    fn from(b: Kind) -> String {
        b.record_name()
    }
}

impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(name: String) -> std::result::Result<Self, String> {
        match name.as_str() {
            "nspawn" => Ok(Kind::Nspawn),
            "vagrant-libvirt" => Ok(Kind::Vagrant(Provider::Libvirt)),
            "vagrant-virtualbox" => Ok(Kind::Vagrant(Provider::Virtualbox)),
            other => Err(format!("backend {other:?}, which this pglab does not know")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_written_in_the_record_as_before() {
        for (k, name) in [
            (Kind::Nspawn, "\"nspawn\""),
            (Kind::Vagrant(Provider::Libvirt), "\"vagrant-libvirt\""),
            (
                Kind::Vagrant(Provider::Virtualbox),
                "\"vagrant-virtualbox\"",
            ),
        ] {
            assert_eq!(serde_json::to_string(&k).unwrap(), name);
            assert_eq!(serde_json::from_str::<Kind>(name).unwrap(), k);
        }
        let e = serde_json::from_str::<Kind>("\"docker\"").unwrap_err();
        assert!(
            e.to_string().contains("which this pglab does not know"),
            "{e}"
        );
        assert!(Kind::Nspawn.one_at_a_time().is_none());
        assert!(Kind::Vagrant(Provider::Virtualbox)
            .one_at_a_time()
            .is_some());
    }
}
