//! Where pglab keeps its state. Both roots can be moved with environment variables.

use std::path::PathBuf;

/// Labs live under `<state>/labs/<id>`: lab.json, secrets, overlays, logs.
pub fn state_root() -> PathBuf {
    std::env::var_os("PGLAB_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/lib/pglab".into())
}

pub fn labs_dir() -> PathBuf {
    state_root().join("labs")
}

/// Built boxes live under `<cache>/boxes/<name>-<hash>`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("PGLAB_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/pglab".into())
}

/// The repository's own directory (boxes/, scenarios/, examples/ are found relative to it).
pub fn repo_root() -> PathBuf {
    if let Some(p) = std::env::var_os("PGLAB_REPO") {
        return p.into();
    }
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if built_in.join("scenarios").is_dir() {
        return built_in;
    }
    std::env::current_dir().unwrap_or(built_in)
}

/// `p` as a user would type it here: relative to the current directory when under it (so a
/// message reads the same in any clone of the repository), else as it is.
pub fn shown(p: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| p.display().to_string())
}
