//! Vagrant boxes for libvirt, built here from the same box recipes as the nspawn root file
//! systems (no download: Vagrant Cloud's `ubuntu/jammy64` exists for VirtualBox only).
//! Recipe + `boxes/vagrant-libvirt.toml` (packages a VM needs: kernel, udev, kmod) →
//! mmdebstrap → `boxes/vagrant-libvirt.sh` (vagrant user, network, image, box archive) →
//! `vagrant box add`. The kernel and initrd are kept next to the box for direct kernel boot.

use crate::backend::boxes::BoxSpec;
use crate::sys::paths;
use anyhow::{Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VmLayer {
    packages: Vec<String>,
    disk_gib: u32,
}

/// Where Vagrant keeps its insecure key pair (Debian's vagrant package).
const VAGRANT_KEYS: &[&str] = &[
    "/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys",
    "/opt/vagrant/embedded/gems/gems/vagrant-2.3.4/keys",
];

#[derive(Debug, Clone)]
pub struct LibvirtBox {
    pub base: BoxSpec,
    pub hash: String,
    layer: VmLayer,
}

impl LibvirtBox {
    pub fn load(name: &str) -> Result<LibvirtBox> {
        let base = BoxSpec::load(name)?;
        let dir = crate::backend::boxes::boxes_dir();
        let layer_file = dir.join("layers/vagrant-libvirt.toml");
        let layer_text = std::fs::read_to_string(&layer_file)
            .with_context(|| format!("cannot read {}", layer_file.display()))?;
        let script = std::fs::read_to_string(dir.join("layers/vagrant-libvirt.sh"))?;
        let layer: VmLayer = toml::from_str(&layer_text)
            .with_context(|| format!("{} is not valid", layer_file.display()))?;
        let mut h = Sha256::new();
        for part in [base.hash.as_str(), &layer_text, &script] {
            h.update(part.as_bytes());
        }
        Ok(LibvirtBox {
            hash: hex::encode(h.finalize())[..12].to_string(),
            base,
            layer,
        })
    }

    /// The name the box has in `vagrant box list`.
    pub fn vagrant_name(&self) -> String {
        format!("pglab/{}-{}", self.base.name, self.hash)
    }

    pub fn dir(&self) -> PathBuf {
        paths::cache_root()
            .join("boxes")
            .join(format!("{}-libvirt-{}", self.base.name, self.hash))
    }

    /// Built and known to Vagrant (a box removed with `vagrant box remove` is re-added).
    pub fn is_built(&self) -> bool {
        self.dir().join("built.json").exists() && self.is_added()
    }

    fn is_added(&self) -> bool {
        crate::sys::exec::run(
            &["vagrant".into(), "box".into(), "list".into()],
            None,
            std::time::Duration::from_secs(60),
        )
        .map(|o| {
            o.stdout
                .lines()
                .any(|l| l.starts_with(&self.vagrant_name()))
        })
        .unwrap_or(false)
    }

    pub fn ensure(&self) -> Result<()> {
        if self.is_built() {
            return Ok(());
        }
        if self.dir().join("built.json").exists() {
            std::fs::remove_dir_all(self.dir())?;
        }
        // Shared by every run that needs the box: never cancelled with the one building it.
        crate::sys::cancel::with(None, || self.build())
    }

    pub fn build(&self) -> Result<()> {
        let name = format!("{}-libvirt", self.base.name);
        crate::backend::boxes::build_cached(&name, &self.hash, &self.dir(), |tmp| {
            let rootfs = tmp.join("rootfs");
            let argv = self.base.mmdebstrap_argv(&rootfs, &self.layer.packages)?;
            self.base.run_build_step(tmp, &argv, "mmdebstrap (VM)")?;
            let script = crate::backend::boxes::boxes_dir().join("layers/vagrant-libvirt.sh");
            let argv: Vec<String> = vec![
                "bash".into(),
                script.to_string_lossy().into(),
                rootfs.to_string_lossy().into(),
                tmp.to_string_lossy().into(),
                self.layer.disk_gib.to_string(),
                insecure_public_key()?.to_string_lossy().into(),
            ];
            self.base.run_build_step(tmp, &argv, "image")?;
            crate::sys::mounts::remove_tree(&rootfs)?;
            let box_file = tmp.join("pglab.box");
            let argv: Vec<String> = vec![
                "vagrant".into(),
                "box".into(),
                "add".into(),
                "--force".into(),
                "--name".into(),
                self.vagrant_name(),
                box_file.to_string_lossy().into(),
            ];
            self.base.run_build_step(tmp, &argv, "vagrant box add")?;
            std::fs::remove_file(&box_file)?;
            Ok(())
        })
    }
}

fn insecure_public_key() -> Result<PathBuf> {
    VAGRANT_KEYS
        .iter()
        .map(|d| Path::new(d).join("vagrant.pub"))
        .find(|p| p.exists())
        .with_context(|| {
            format!(
                "Vagrant's insecure public key was not found (looked in {}); is vagrant installed? (`pglab doctor`)",
                VAGRANT_KEYS.join(", ")
            )
        })
}
