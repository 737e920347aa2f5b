//! Boxes: root file systems built with mmdebstrap from a recipe (`boxes/<name>.toml`) and
//! cached under `<cache>/boxes/<name>-<hash>`, where the hash is of the recipe's content.
//! A box is built under a temporary name and renamed when complete, so a half-built box
//! is never used.

use crate::sys::{exec, mounts, paths, procfs};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The box a lab gets when nobody names one (Debian 12: PostgreSQL 15, barman 3.4).
pub const DEFAULT_BOX: &str = "bookworm";

/// Bumped when the way pglab builds boxes changes, so old boxes are not reused.
const BUILD_FORMAT: &str = "pglab-box-1";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub description: String,
    pub suite: String,
    #[serde(default = "default_variant")]
    pub variant: String,
    pub packages: Vec<String>,
    #[serde(default)]
    pub customize: Vec<String>,
    /// Scripts (paths relative to `boxes/`) run with `sh -e` inside the new root file
    /// system after `customize`; shared by recipes, and part of the cache key.
    #[serde(default)]
    pub scripts: Vec<String>,
    /// Scripts (paths relative to `boxes/`) run with `sh -e SCRIPT ROOT` on the building
    /// machine itself, before `customize`: they may fetch builds from the package registries
    /// (into `PGLAB_CACHE_DIR`, which they are given) and install them into ROOT. Part of
    /// the cache key.
    #[serde(default)]
    pub host_scripts: Vec<String>,
    /// Where apt gets the suite: mmdebstrap's default mirrors, or the host's own Debian
    /// source repeated with this suite (`"host"`, see `apt_sources`).
    #[serde(default)]
    pub sources: Sources,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sources {
    /// mmdebstrap's own choice (deb.debian.org, plus updates and security for a stable suite).
    #[default]
    Default,
    /// The host's configured Debian source, with the recipe's suite (`apt_sources`).
    Host,
}

fn default_variant() -> String {
    "minbase".into()
}

/// A recipe with where it came from and its cache key.
#[derive(Debug, Clone)]
pub struct BoxSpec {
    pub name: String,
    pub recipe: Recipe,
    pub hash: String,
    pub file: PathBuf,
}

pub fn boxes_dir() -> PathBuf {
    paths::repo_root().join("boxes")
}

impl BoxSpec {
    pub fn load(name: &str) -> Result<BoxSpec> {
        // A box is a recipe of boxes/ by its plain name: a submission's `box = "/x/evil"`
        // would otherwise name a recipe whose host scripts run on this machine as root.
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            bail!(
                "box {name:?} is not the name of a recipe in {} (names: letters, digits, '-', '_', '.')",
                boxes_dir().display()
            );
        }
        let file = boxes_dir().join(format!("{name}.toml"));
        if !file.exists() {
            let known = list_recipes().unwrap_or_default().join(", ");
            bail!(
                "no box recipe {name:?}: {} does not exist (known boxes: {known})",
                file.display()
            );
        }
        Self::from_file(name, &file)
    }

    pub fn from_file(name: &str, file: &Path) -> Result<BoxSpec> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read box recipe {}", file.display()))?;
        let recipe: Recipe = toml::from_str(&text)
            .with_context(|| format!("box recipe {} is not valid", file.display()))?;
        if recipe.packages.is_empty() {
            bail!("box recipe {}: packages is empty", file.display());
        }
        let mut h = Sha256::new();
        h.update(BUILD_FORMAT);
        h.update(text.as_bytes());
        for script in recipe.host_scripts.iter().chain(&recipe.scripts) {
            let path = boxes_dir().join(script);
            let body = std::fs::read(&path).with_context(|| {
                format!(
                    "box recipe {}: cannot read its script {}",
                    file.display(),
                    path.display()
                )
            })?;
            h.update(&body);
        }
        let hash = hex::encode(h.finalize())[..12].to_string();
        Ok(BoxSpec {
            name: name.into(),
            recipe,
            hash,
            file: file.into(),
        })
    }

    pub fn dir(&self) -> PathBuf {
        paths::cache_root()
            .join("boxes")
            .join(format!("{}-{}", self.name, self.hash))
    }

    /// The root file system the hosts' overlays use as their lower layer.
    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    pub fn is_built(&self) -> bool {
        self.dir().join("built.json").exists()
    }

    /// The mmdebstrap command line for this recipe, writing into `target`.
    pub fn mmdebstrap_argv(&self, target: &Path, extra_packages: &[String]) -> Result<Vec<String>> {
        let packages: Vec<&str> = self
            .recipe
            .packages
            .iter()
            .chain(extra_packages)
            .map(String::as_str)
            .collect();
        let mut argv = vec![
            "mmdebstrap".to_string(),
            format!("--variant={}", self.recipe.variant),
            format!("--include={}", packages.join(",")),
        ];
        for script in &self.recipe.host_scripts {
            let path = boxes_dir().join(script);
            argv.push(format!(
                "--customize-hook=sh -e {} \"$1\"",
                crate::backend::api::shell_quote(&path.to_string_lossy())
            ));
        }
        // Commands get /dev/null as stdin, and a script is bash's argument rather than its
        // stdin: a command in it that reads stdin must not eat the rest of it (issue 17).
        for c in &self.recipe.customize {
            argv.push(format!(
                "--customize-hook=chroot \"$1\" sh -c {} </dev/null",
                crate::backend::api::shell_quote(c)
            ));
        }
        for script in &self.recipe.scripts {
            let path = boxes_dir().join(script);
            argv.push(format!(
                "--customize-hook=chroot \"$1\" sh -ec \"$(cat {})\" {} </dev/null",
                crate::backend::api::shell_quote(&path.to_string_lossy()),
                crate::backend::api::shell_quote(script)
            ));
        }
        argv.push(self.recipe.suite.clone());
        argv.push(target.to_string_lossy().into());
        if self.recipe.sources == Sources::Host {
            let codename = crate::sys::apt_sources::host_codename()?;
            let mirrors = crate::sys::apt_sources::mirrors_for(
                &self.recipe.suite,
                Path::new("/etc/apt"),
                &codename,
            )
            .with_context(|| format!("box recipe {}", self.file.display()))?;
            argv.extend(mirrors);
        }
        Ok(argv)
    }

    /// Returns the box's root file system, building it first if it is not in the cache.
    pub fn ensure(&self) -> Result<PathBuf> {
        if !self.is_built() {
            // Shared by every run that needs the box: never cancelled with the one building it.
            crate::sys::cancel::with(None, || self.build())?;
        }
        Ok(self.rootfs())
    }

    pub fn build(&self) -> Result<()> {
        build_cached(&self.name, &self.hash, &self.dir(), |tmp| {
            let argv = self.mmdebstrap_argv(&tmp.join("rootfs"), &[])?;
            self.run_build_step(tmp, &argv, "mmdebstrap")?;
            std::fs::copy(&self.file, tmp.join("recipe.toml"))?;
            Ok(())
        })
    }

    /// Runs one build command with its output in `tmp/build.log` and its last line on a
    /// spinner; a failure names the recipe, the command and the tail of the log.
    pub(crate) fn run_build_step(&self, tmp: &Path, argv: &[String], what: &str) -> Result<()> {
        let log_path = tmp.join("build.log");
        let bar = crate::sys::progress::spinner(&format!("box {}: {what}", self.name));
        // host_scripts keep what they fetch there (a rebuild does not fetch again).
        let setup = exec::Setup {
            env: vec![(
                "PGLAB_CACHE_DIR".into(),
                paths::cache_root().display().to_string(),
            )],
            ..Default::default()
        };
        let mut log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let (code, this_step) = exec::stream(argv, &setup, |line| {
            bar.set_message(format!(
                "box {}: {}",
                self.name,
                line.chars().take(90).collect::<String>()
            ))
        })?;
        log.push_str(&this_step);
        std::fs::write(&log_path, &log)?;
        bar.finish_and_clear();
        match code {
            0 => Ok(()),
            _ => Err(exec::failure(
                &format!("building box {} failed ({what})", self.name),
                &format!("recipe {}, log {}", self.file.display(), log_path.display()),
                &argv.join(" "),
                &this_step,
                "check the package names in the recipe and that apt works on this machine (`apt-get update`)",
            )),
        }
    }
}

/// Builds `final_dir` through `.tmp-NAME-HASH-PID` (removed on failure and by gc when its
/// process is gone) and a rename, so a half-built box is never used.
pub(crate) fn build_cached(
    name: &str,
    hash: &str,
    final_dir: &Path,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = paths::cache_root().join("boxes");
    std::fs::create_dir_all(&parent).with_context(|| {
        format!(
            "cannot create the box cache {} (set PGLAB_CACHE_DIR to a writable place)",
            parent.display()
        )
    })?;
    // One build of a box at a time, across threads (labs started side by side by `grade
    // --jobs 2` on a machine without the box: measured, both built into the same temporary
    // folder and both failed) and processes; whoever waited finds it built.
    // The lock files live beside the box cache, not in it: the cache holds boxes only.
    let locks = paths::cache_root().join("locks");
    std::fs::create_dir_all(&locks)?;
    let lock = std::fs::File::create(locks.join(format!("box-{name}-{hash}")))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("cannot lock the build of box {name}: {e}"))?;
    if final_dir.join("built.json").exists() {
        return Ok(());
    }
    check_free_space(&parent, 2 << 30)?;
    let tmp = parent.join(format!(".tmp-{name}-{hash}-{}", std::process::id()));
    mounts::own_temp_dir(&tmp);
    let started = Instant::now();
    let result = std::fs::create_dir_all(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|_| build(&tmp));
    if result.is_err() {
        let _ = mounts::remove_tree(&tmp);
        mounts::disown_temp_dir(&tmp);
        return result;
    }
    let secs = started.elapsed().as_secs_f64();
    std::fs::write(
        tmp.join("built.json"),
        serde_json::json!({ "name": name, "hash": hash, "seconds": secs }).to_string(),
    )?;
    if final_dir.exists() {
        // Another run finished the same box first: theirs is as good as ours.
        let _ = mounts::remove_tree(&tmp);
    } else {
        std::fs::rename(&tmp, final_dir)
            .with_context(|| format!("cannot move the finished box to {}", final_dir.display()))?;
    }
    mounts::disown_temp_dir(&tmp);
    eprintln!(
        "pglab: box {name} built in {secs:.0}s ({})",
        final_dir.display()
    );
    Ok(())
}

fn check_free_space(dir: &Path, need: u64) -> Result<()> {
    if let Ok(st) = nix::sys::statvfs::statvfs(dir) {
        let free = st.blocks_available() * st.fragment_size();
        if free < need {
            bail!(
                "the box cache {} has {} MiB free; a box needs about {} MiB. Free space there or set PGLAB_CACHE_DIR",
                dir.display(),
                free >> 20,
                need >> 20
            );
        }
    }
    Ok(())
}

/// Names of the recipes in `boxes/`.
pub fn list_recipes() -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(boxes_dir())?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".toml")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Removes half-built boxes left by runs that were killed.
pub fn remove_stale_builds() -> Vec<PathBuf> {
    let parent = paths::cache_root().join("boxes");
    let mut removed = Vec::new();
    for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(".tmp-") else {
            continue;
        };
        let pid: Option<u32> = rest.rsplit('-').next().and_then(|p| p.parse().ok());
        if pid.map(|p| !procfs::pid_alive(p)).unwrap_or(true)
            && mounts::remove_tree(&e.path()).is_ok()
        {
            removed.push(e.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_recipes_parse() {
        let names = list_recipes().unwrap();
        assert!(names.contains(&"bookworm".to_string()) && names.contains(&"trixie".to_string()));
        for n in names {
            BoxSpec::load(&n).unwrap();
        }
    }

    #[test]
    fn hash_follows_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.toml");
        std::fs::write(&p, "description='x'\nsuite='bookworm'\npackages=['a']\n").unwrap();
        let a = BoxSpec::from_file("x", &p).unwrap();
        let a2 = BoxSpec::from_file("x", &p).unwrap();
        std::fs::write(
            &p,
            "description='x'\nsuite='bookworm'\npackages=['a','b']\n",
        )
        .unwrap();
        let b = BoxSpec::from_file("x", &p).unwrap();
        assert_eq!(a.hash, a2.hash);
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.dir(), b.dir());
    }

    #[test]
    fn missing_recipe_names_the_known_ones() {
        let e = BoxSpec::load("nosuchbox").unwrap_err().to_string();
        assert!(
            e.contains("no box recipe \"nosuchbox\"") && e.contains("bookworm"),
            "{e}"
        );
    }

    /// The error a recipe with this text gets.
    fn recipe_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.toml");
        std::fs::write(&p, text).unwrap();
        format!("{:#}", BoxSpec::from_file("x", &p).unwrap_err())
    }

    #[test]
    fn unknown_recipe_field_is_rejected() {
        let e = recipe_error("description='x'\nsuite='bookworm'\npackages=['a']\npakages=[]\n");
        assert!(e.contains("pakages"), "{e}");
    }

    #[test]
    fn mmdebstrap_command_line() {
        let b = BoxSpec::load("bookworm").unwrap();
        let argv = b.mmdebstrap_argv(Path::new("/tmp/x"), &[]).unwrap();
        assert_eq!(argv[0], "mmdebstrap");
        assert!(argv.iter().any(|a| a.starts_with("--include=systemd,")));
        assert_eq!(&argv[argv.len() - 2..], ["bookworm", "/tmp/x"]);
        assert!(
            argv.iter()
                .any(|a| a.contains("sh -ec ") && a.contains("pg-ctlcluster-fast-start.sh")),
            "{argv:?}"
        );
    }

    /// A recipe's script and customize commands, run as mmdebstrap runs a hook
    /// (`sh -c HOOK exec ROOT`; here without the chroot): a command that reads stdin gets
    /// end-of-file and the lines after it run.
    #[test]
    fn box_hooks_give_commands_no_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = dir.path().join("reads-stdin.sh");
        let tail = format!(
            "cat >> {o}\necho \"script's last line\" >> {o}\n",
            o = out.display()
        );
        std::fs::write(&script, &tail).unwrap();
        let recipe = dir.path().join("r.toml");
        let text = format!(
            "description='x'\nsuite='bookworm'\npackages=['a']\ncustomize=['cat >> {o}; echo customize >> {o}']\nscripts=[{s:?}]\n",
            o = out.display(),
            s = script.display().to_string()
        );
        std::fs::write(&recipe, text).unwrap();
        let b = BoxSpec::from_file("x", &recipe).unwrap();
        for hook in b
            .mmdebstrap_argv(dir.path(), &[])
            .unwrap()
            .iter()
            .filter_map(|a| a.strip_prefix("--customize-hook="))
        {
            let hook = hook.replace("chroot \"$1\" ", "");
            let argv: Vec<String> = ["sh", "-c", &hook, "exec", "/"].map(String::from).into();
            let o = exec::run(
                &argv,
                Some(b"stdin of the hook\n"),
                std::time::Duration::from_secs(10),
            )
            .unwrap();
            assert!(o.ok(), "{hook}: {o:?}");
        }
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "customize\nscript's last line\n"
        );
    }

    #[test]
    fn host_scripts_run_on_the_host_before_the_chroot_ones() {
        let b = BoxSpec::load("pg14-barman2").unwrap();
        let argv = b.mmdebstrap_argv(Path::new("/tmp/x"), &[]).unwrap();
        let host = argv
            .iter()
            .position(|a| a.starts_with("--customize-hook=sh -e ") && a.contains("pg14-barman2.sh"))
            .unwrap_or_else(|| panic!("no host hook in {argv:?}"));
        let chroot = argv
            .iter()
            .position(|a| a.contains("chroot \"$1\""))
            .unwrap();
        assert!(host < chroot, "{argv:?}");
        let e = recipe_error(
            "description='x'\nsuite='bookworm'\npackages=['a']\nhost_scripts=['nope.sh']\n",
        );
        assert!(e.contains("nope.sh"), "{e}");
    }

    #[test]
    fn a_script_is_part_of_the_cache_key_and_must_exist() {
        let e = recipe_error(
            "description='x'\nsuite='bookworm'\npackages=['a']\nscripts=['no-such-script.sh']\n",
        );
        assert!(e.contains("no-such-script.sh"), "{e}");
    }
}
