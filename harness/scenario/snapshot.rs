//! Comparing outputs with insta snapshots in `snapshots/`. A mismatch prints insta's diff and,
//! outside CI, leaves `NAME.snap.new` for `cargo insta review`; CI never updates silently
//! (insta's own rule: with `CI` set, INSTA_UPDATE defaults to `no`).

use anyhow::{anyhow, Result};
use std::path::PathBuf;

pub fn snapshots_dir() -> PathBuf {
    crate::sys::paths::repo_root().join("snapshots")
}

/// Asserts `value` against snapshot `name`; `description` says which step produced it.
pub fn check(name: &str, value: &str, description: &str) -> Result<()> {
    if std::env::var_os("INSTA_WORKSPACE_ROOT").is_none() {
        // insta would otherwise look for a cargo workspace at run time.
        std::env::set_var("INSTA_WORKSPACE_ROOT", crate::sys::paths::repo_root());
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshots_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(description);
    let value = value.to_string();
    let name = name.to_string();
    // insta reports a mismatch by panicking after printing its diff: the diff is what the
    // user needs, the panic message and backtrace are not.
    // The panic hook is global: labs running at once take turns.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!(name.as_str(), value.as_str()));
    }));
    std::panic::set_hook(hook);
    result.map_err(|p| {
        let msg = crate::sys::fanout::panic_message(p.as_ref());
        anyhow!(
            "output differs from snapshot {name} ({}): {msg}; the diff is printed above; review with `cargo insta review` (or accept with INSTA_UPDATE=always)",
            snapshots_dir().join(format!("{name}.snap")).display()
        )
    })
}
