use crate::backend::boxes::{list_recipes, BoxSpec};
use crate::backend::vagrant::libvirt_box::LibvirtBox;
use crate::lab::old_boxes;
use crate::sys::{doctor, mounts};
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BoxCmd {
    /// Builds a box (no-op when the recipe is unchanged and the box is cached).
    Build {
        #[arg(default_value = crate::backend::boxes::DEFAULT_BOX)]
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
    /// Removes cached boxes (and `pglab/...` Vagrant boxes) of recipes that changed since.
    Prune,
}

/// `pglab box build|list|prune`.
pub fn boxes(c: BoxCmd) -> Result<i32> {
    match c {
        BoxCmd::Build {
            name,
            force,
            libvirt: true,
        } => build_libvirt(&name, force),
        BoxCmd::Build { name, force, .. } => build(&name, force),
        BoxCmd::List => list(),
        BoxCmd::Prune => prune(),
    }
}

fn prune() -> Result<i32> {
    doctor::require_root("remove old boxes")?;
    let removed = old_boxes::prune()?;
    let total: u64 = removed.iter().map(|s| s.bytes).sum();
    for s in &removed {
        println!("removed {} ({})", s.what, old_boxes::human_bytes(s.bytes));
    }
    println!(
        "{} old boxes removed, {} freed",
        removed.len(),
        old_boxes::human_bytes(total)
    );
    Ok(0)
}

fn build_libvirt(name: &str, force: bool) -> Result<i32> {
    doctor::require_root("build a box")?;
    let b = LibvirtBox::load(name)?;
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

fn build(name: &str, force: bool) -> Result<i32> {
    doctor::require_root("build a box")?;
    let spec = BoxSpec::load(name)?;
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

fn list() -> Result<i32> {
    for name in list_recipes()? {
        let spec = BoxSpec::load(&name)?;
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
