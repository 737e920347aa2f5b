//! The pinned Ansible as a tool: its virtual environment, the environment it runs with in the
//! controller, and `ansible-inventory` reading a student's inventory. Nothing here knows a
//! submission (so that reading a repository may use it).

use super::controller::Controller;
use crate::sys::exec::{failure, run_with, scaled, Setup};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The homework's Ansible: the community package 9.4.0 (ansible-core 2.16 with the
/// collections students use: community.postgresql, ansible.posix, community.general).
/// Measured here: venv 4.1 s + `pip install ansible==9.4.0` 29.3 s, 471 MB.
pub const ANSIBLE_CORE: &str = "ansible==9.4.0";

/// The virtual environment with the pinned Ansible (`sys::venv`), created once.
pub fn ensure_installed() -> Result<PathBuf> {
    let name = format!("ansible-{}", ANSIBLE_CORE.trim_start_matches("ansible=="));
    Ok(crate::sys::venv::ensure(&name, &[ANSIBLE_CORE])?.join("bin/ansible-playbook"))
}

/// The environment of ansible-playbook in the controller, and nothing else.
pub fn ansible_env() -> Vec<(String, String)> {
    [
        ("ANSIBLE_HOST_KEY_CHECKING", "False"),
        ("ANSIBLE_NOCOLOR", "1"),
        ("ANSIBLE_RETRY_FILES_ENABLED", "0"),
        ("ANSIBLE_PIPELINING", "1"),
        ("ANSIBLE_STDOUT_CALLBACK", "default"),
        ("ANSIBLE_LOCAL_TEMP", "/pglab/tmp"),
        // One ssh connection per host for the whole run (each task over it, as Ansible's
        // ControlPersist is meant to be used): the masters live in the controller's pid
        // namespace and die with it when ansible-playbook ends, so nothing lingers.
        (
            "ANSIBLE_SSH_ARGS",
            "-o ControlMaster=auto -o ControlPersist=120s",
        ),
        ("ANSIBLE_SSH_CONTROL_PATH_DIR", "/pglab/tmp/cp"),
        // Facts once per host and run (each play of a playbook gathered them again).
        ("ANSIBLE_GATHERING", "smart"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The student's inventory as Ansible reads it (`ansible-inventory --list --export`, in the
/// controller, from `cwd`: the repository's `ansible.cfg` and vars plugins apply). One that
/// Ansible cannot parse is a verdict naming it, with Ansible's own words.
pub fn list_inventory(ctl: &Controller, cwd: &Path, inventory: &Path) -> Result<serde_json::Value> {
    let bin = venv_dir()?.join("bin/ansible-inventory");
    let program = [
        bin.to_string_lossy().into_owned(),
        "-i".into(),
        ctl.inside(inventory).to_string_lossy().into(),
        "--list".into(),
        "--export".into(),
    ];
    let argv = ctl.command(&program, &ctl.inside(cwd), &ansible_env());
    let setup = Setup {
        own_group: true,
        ..Default::default()
    };
    let out = run_with(&argv, None, scaled(Duration::from_secs(120)), &setup)?;
    let shown = format!(
        "ansible-inventory -i {} --list --export",
        inventory.display()
    );
    let unparsed =
        out.stderr.contains("Unable to parse") || out.stderr.contains("No inventory was parsed");
    match serde_json::from_str(&out.stdout) {
        Ok(v) if out.ok() && !unparsed => Ok(v),
        _ => Err(failure(
            &format!("the inventory {} could not be parsed", inventory.display()),
            &format!("submission {}", ctl.repository().display()),
            &shown,
            &out.combined(),
            "Ansible's words above name the line; without an inventory every play would be skipped",
        )),
    }
}

/// The pinned Ansible's virtual environment (installed when missing): bound read-only into
/// the controller at the same path (its scripts name it).
pub fn venv_dir() -> Result<PathBuf> {
    let playbook = ensure_installed()?;
    Ok(playbook
        .parent()
        .and_then(Path::parent)
        .expect("venv/bin/ansible-playbook")
        .to_path_buf())
}
