//! The layers of harness/ import only downward (ARCHITECTURE.md): a module may use its own
//! layer and the layers below it, never one above. Read from the source, so that a new
//! `use crate::run::...` in `backend/` fails here with the file and line that added it.
//! (Cycles inside a layer are what `cargo modules dependencies --acyclic` checks.)

use std::path::{Path, PathBuf};

/// Bottom to top.
const LAYERS: &[&str] = &[
    "sys",
    "model",
    "backend",
    "lab",
    "report",
    "provision",
    "scenario",
    "run",
    "cli",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a line of Rust names through `crate::` (or `pglab::` in main.rs),
/// including `use crate::{a::x, b};`.
fn named_layers(line: &str, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    let pat = format!("{root}::");
    let mut rest = line;
    while let Some(i) = rest.find(&pat) {
        rest = &rest[i + pat.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.push(name.to_string());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

#[test]
fn every_layer_imports_only_itself_and_the_layers_below() {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let mut files = Vec::new();
    rust_files(&harness, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&harness).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let (own, root) = match first.as_ref() {
            "lib.rs" => continue,
            "main.rs" => (LAYERS.len(), "pglab"),
            dir => (
                rank(dir).unwrap_or_else(|| {
                    panic!("harness/{dir} is in no layer: add it to LAYERS and ARCHITECTURE.md")
                }),
                "crate",
            ),
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in named_layers(line, root) {
                match rank(&used) {
                    Some(r) if r <= own => {}
                    Some(_) => wrong.push(format!(
                        "harness/{}:{}: {} uses {used}, a higher layer",
                        rel.display(),
                        n + 1,
                        first
                    )),
                    None => wrong.push(format!(
                        "harness/{}:{}: uses {root}::{used}, which is in no layer",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_cleanup_registry_depends_on_nothing() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/sys/cleanup.rs"),
    )
    .unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap();
    assert!(
        !code.contains("crate::") && !code.contains("super::"),
        "sys/cleanup.rs must not import anything of pglab: owners register closures instead"
    );
}

#[test]
fn the_check_sees_grouped_and_plain_imports() {
    assert_eq!(
        named_layers("use crate::{lab::Lab, sys::exec};", "crate"),
        ["lab", "sys"]
    );
    assert_eq!(named_layers("    crate::run::run(opts)", "crate"), ["run"]);
}
