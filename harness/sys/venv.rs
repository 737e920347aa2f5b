//! Tools pglab takes from PyPI (Ansible for the controller, proxpi for the labs' PyPI): each
//! in a virtual environment of the system's Python with pinned packages, created once. A
//! venv's scripts name its directory, so it is built in place and marked complete at the end;
//! an unmarked one (an interrupted install) is removed and built again.

use crate::sys::exec::{failure, run};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// Where the system's Python is (Debian's python3, not a pyenv or a vendor's one on PATH):
/// the venvs run in sandboxes that see /usr and the venv only.
const SYSTEM_PYTHON_DIR: &str = "/usr/bin";

/// The venv `<cache>/<name>` with `packages` (pinned `name==version`), installed when missing.
pub fn ensure(name: &str, packages: &[&str]) -> Result<PathBuf> {
    // Shared by every run (one installs, the others wait for it): never cancelled with the
    // run that happens to install it.
    super::cancel::with(None, || ensure_now(name, packages))
}

fn ensure_now(name: &str, packages: &[&str]) -> Result<PathBuf> {
    // Labs running side by side (`run --jobs`) install it once, not at the same time.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = crate::sys::paths::cache_root().join(name);
    let done = venv.join(".pglab-complete");
    let wanted = packages.join(" ");
    // A venv of pyenv's Python under /root, or of other packages, is built again.
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap_or_default();
    let on_usr = cfg
        .lines()
        .any(|l| l.replace(' ', "") == format!("home={SYSTEM_PYTHON_DIR}"));
    if on_usr && std::fs::read_to_string(&done).is_ok_and(|d| d == wanted) {
        return Ok(venv);
    }
    if venv.exists() {
        crate::sys::mounts::remove_tree(&venv)?;
    }
    crate::sys::doctor::ensure_python_venv()?;
    crate::sys::mounts::own_temp_dir(&venv);
    let bar = crate::sys::progress::spinner(&format!("installing {wanted} from PyPI (once)"));
    let mut pip = vec![
        venv.join("bin/pip").to_string_lossy().into_owned(),
        "install".into(),
        "-q".into(),
    ];
    pip.extend(packages.iter().map(|p| p.to_string()));
    let python = format!("{SYSTEM_PYTHON_DIR}/python3");
    let mut result = Ok(());
    for argv in [
        vec![
            python,
            "-m".into(),
            "venv".into(),
            venv.to_string_lossy().into(),
        ],
        pip,
    ] {
        let out = run(&argv, None, Duration::from_secs(600))?;
        if !out.ok() {
            result = Err(failure(
                &format!("installing {wanted} failed"),
                "this machine",
                &argv.join(" "),
                &out.combined(),
                "needs python3 with venv (apt-get install python3-venv) and access to PyPI",
            ));
            break;
        }
    }
    bar.finish_and_clear();
    if result.is_ok() {
        std::fs::write(&done, &wanted)?;
    } else {
        let _ = crate::sys::mounts::remove_tree(&venv);
    }
    crate::sys::mounts::disown_temp_dir(&venv);
    result.map(|_| venv)
}
