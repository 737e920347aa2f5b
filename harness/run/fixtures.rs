//! The students' fixtures (`tests/fixtures/students/`) as whole repositories. Some are kept
//! whole; the others are a base repository plus what the student changed: `NAME.patch`, a
//! `git diff` whose prose head names its base (`base: vagrant-roles`), so that each
//! fixture's mistake is its diff. pglab grades every one as it comes, as a whole repository:
//! the tests and the bench build them here first, into a folder of their own.

use crate::sys::exec;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder that holds the students' fixtures.
pub fn students_dir() -> PathBuf {
    crate::sys::paths::repo_root().join("tests/fixtures/students")
}

/// The base a patch names in its prose head (`base: NAME`, before its first `diff --git`).
fn base_of(patch: &str) -> Option<&str> {
    patch
        .lines()
        .take_while(|l| !l.starts_with("diff --git "))
        .find_map(|l| l.strip_prefix("base:"))
        .map(str::trim)
        .filter(|b| !b.is_empty())
}

/// Builds the fixture `name` (a folder of `from`, or `NAME.patch` over its base) as a whole
/// repository at `to`, which must not exist yet. Returns `to`.
pub fn build(from: &Path, name: &str, to: &Path) -> Result<PathBuf> {
    let whole = from.join(name);
    if whole.is_dir() {
        copy(&whole, to)?;
        return Ok(to.to_path_buf());
    }
    let patch = from.join(format!("{name}.patch"));
    let text = std::fs::read_to_string(&patch)
        .with_context(|| format!("no fixture {name} in {}", from.display()))?;
    let Some(base) = base_of(&text) else {
        bail!(
            "{}: its head names no base (a line `base: NAME` before the diff)",
            patch.display()
        );
    };
    if base.ends_with(".patch") || !from.join(base).is_dir() {
        bail!(
            "{}: its base {base} is not a whole repository in {}",
            patch.display(),
            from.display()
        );
    }
    copy(&from.join(base), to)?;
    apply(&patch, to)?;
    Ok(to.to_path_buf())
}

/// Every fixture of `from` (its folders and its patches) built into `to`, one folder each,
/// by name: a cohort folder that `pglab grade` takes as it is.
pub fn build_all(from: &Path, to: &Path) -> Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let e = e?;
        let file = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_dir() {
            names.push(file);
        } else if let Some(n) = file.strip_suffix(".patch") {
            names.push(n.to_string());
        }
    }
    names.sort();
    std::fs::create_dir_all(to)?;
    names.iter().map(|n| build(from, n, &to.join(n))).collect()
}

/// A plain copy of a fixture folder (files, folders and inner symlinks as they are).
fn copy(from: &Path, to: &Path) -> Result<()> {
    let out = exec::run(
        &["cp", "-a", "--no-target-directory"]
            .iter()
            .map(|s| s.to_string())
            .chain([from.display().to_string(), to.display().to_string()])
            .collect::<Vec<_>>(),
        None,
        Duration::from_secs(60),
    )?;
    if !out.ok() {
        bail!(
            "cannot copy {} to {}: {}",
            from.display(),
            to.display(),
            out.stderr.trim()
        );
    }
    Ok(())
}

/// `git apply PATCH` in `dir`, which no repository above it may claim (git would apply the
/// paths relative to that repository's root).
fn apply(patch: &Path, dir: &Path) -> Result<()> {
    let argv: Vec<String> = vec!["git".into(), "apply".into(), patch.display().to_string()];
    let setup = exec::Setup {
        cwd: Some(dir.to_path_buf()),
        env: vec![(
            "GIT_CEILING_DIRECTORIES".into(),
            dir.parent().unwrap_or(dir).display().to_string(),
        )],
        ..Default::default()
    };
    let out = exec::run_with(&argv, None, Duration::from_secs(60), &setup)?;
    if !out.ok() {
        return Err(exec::failure(
            "a fixture's patch does not apply to its base",
            &patch.display().to_string(),
            &argv.join(" "),
            &out.combined(),
            "write the patch again: `git diff` of the base and the fixture, from the base's folder",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_names_its_base_before_its_diff() {
        assert_eq!(
            base_of("base: vagrant-roles\n\nwhy\n\ndiff --git a/x b/x\n"),
            Some("vagrant-roles")
        );
        assert_eq!(base_of("why\ndiff --git a/x b/x\n+base: no\n"), None);
    }

    /// Every patch applies to its base, and each changes something: its mistake is there.
    #[test]
    fn every_students_fixture_builds_as_a_whole_repository() {
        let to = tempfile::tempdir().unwrap();
        let built = build_all(&students_dir(), to.path()).unwrap();
        let names: Vec<String> = built
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"no-standby-slot".to_string()), "{names:?}");
        let base = students_dir().join("vagrant-roles");
        for p in &built {
            let whole = [
                "Vagrantfile",
                "vagrantfile",
                "ansible.cfg",
                "site.yml",
                "ansible",
            ];
            assert!(
                whole.iter().any(|f| p.join(f).exists()),
                "{} is not a whole repository",
                p.display()
            );
        }
        let slot = to
            .path()
            .join("no-standby-slot/ansible/roles/postgres_standby/tasks/main.yml");
        let same = base.join("ansible/roles/postgres_standby/tasks/main.yml");
        assert_ne!(
            std::fs::read(slot).unwrap(),
            std::fs::read(same).unwrap(),
            "the patch changed nothing"
        );
        let missing = to
            .path()
            .join("missing-template/ansible/roles/common/templates/replication.conf.j2");
        assert!(!missing.exists(), "a file the patch deletes is gone");
    }

    /// The door's hostile fixtures build on a student's repository from their own folder:
    /// a file replaced by a symlink leading out, and a new one, are links after the build.
    #[test]
    fn the_doors_hostile_fixtures_build_with_their_links() {
        let from = crate::sys::paths::repo_root().join("tests/fixtures/hostile");
        let to = tempfile::tempdir().unwrap();
        let link = |name: &str, file: &str| {
            let d = build(&from, name, &to.path().join(name)).unwrap();
            std::fs::read_link(d.join(file)).unwrap()
        };
        assert_eq!(
            link("door-symlinked-script", "scripts/common.sh"),
            Path::new("/etc/machine-id")
        );
        assert_eq!(
            link("door-endless-toml", "provision.toml"),
            Path::new("/dev/zero")
        );
        let d = build(&from, "door-dotdot-path", &to.path().join("dotdot")).unwrap();
        let vf = std::fs::read_to_string(d.join("Vagrantfile")).unwrap();
        assert!(vf.contains("../../../../../../etc/machine-id"), "{vf}");
    }
}
