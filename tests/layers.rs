//! The layers of harness/ import only downward (ARCHITECTURE.md): a module may use its own
//! layer and the layers below it, never one above. Read from the source, so that a new
//! `use crate::run::...` in `backend/` fails here with the file and line that added it.
//! Inside the layers, modules form no cycle and no module uses its parent (a parent
//! re-exports its children): checked here from every path in the code, `use` items and
//! in-function `crate::`/`super::` paths alike, with the file and line of each edge.

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

/// The module a file is: `harness/a/b.rs` and `harness/a/b/mod.rs` are `a::b`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") || rel == Path::new("lib.rs") {
        parts.pop();
    }
    parts
}

/// Every path a piece of code names from `crate::` or `super::` (`use` groups expanded), as
/// absolute segments from the crate's root; `module` is the file's own module.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    fn expand(prefix: &str, rest: &str, out: &mut Vec<String>) {
        // `rest` starts after `prefix::`: either `{a, b::{c}}` or a plain path.
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, 0);
            let body = &group[..group.len().saturating_sub(1)];
            for (i, ch) in body.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(prefix, body[start..i].trim(), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(prefix, body[start..].trim(), out);
        } else if let Some(i) = rest.find("::{") {
            let (head, tail) = rest.split_at(i);
            expand(&format!("{prefix}::{head}"), &tail[2..], out);
        } else if !rest.is_empty() {
            out.push(format!("{prefix}::{rest}"));
        }
    }
    let mut paths = Vec::new();
    let path = regex_lite(code);
    for p in path {
        let mut segs: Vec<&str> = p.split("::").map(str::trim).collect();
        let mut abs: Vec<String> = match segs.first() {
            Some(&"crate") => Vec::new(),
            Some(&"super") => module[..module.len().saturating_sub(1)].to_vec(),
            _ => continue,
        };
        segs.remove(0);
        for s in segs {
            match s {
                "super" => {
                    abs.pop();
                }
                "self" | "*" | "" => {}
                s => abs.push(s.split_whitespace().next().unwrap_or(s).to_string()),
            }
        }
        paths.push(abs);
    }
    // `use` groups: `use crate::a::{b, c::d};`
    for u in code.split("use ").skip(1) {
        let Some(end) = u.find(';') else { continue };
        let item: String = u[..end].split_whitespace().collect();
        for root in ["crate", "super"] {
            if let Some(rest) = item.strip_prefix(root) {
                if let Some(i) = rest.find("::{") {
                    let mut out = Vec::new();
                    expand(&format!("{root}{}", &rest[..i]), &rest[i + 2..], &mut out);
                    for o in out {
                        paths.extend(named_paths(&o, module));
                    }
                }
            }
        }
    }
    paths
}

/// `crate::a::b` and `super::super::x` paths in `code` (no groups), as written.
fn regex_lite(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = |w: &str| bytes[i..].iter().take(w.len()).collect::<String>() == w;
        let boundary = i == 0 || !word(bytes[i - 1]);
        if boundary && (starts("crate::") || starts("super::")) {
            let mut j = i;
            while j < bytes.len() && (word(bytes[j]) || bytes[j] == ':') {
                j += 1;
            }
            let p: String = bytes[i..j].iter().collect();
            out.push(p.trim_end_matches(':').to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The longest prefix of `path` that is a module of `modules`.
fn resolve<'m>(path: &[String], modules: &'m [Vec<String>]) -> Option<&'m Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.iter().find(|m| m.as_slice() == &path[..n]))
}

/// Module → (module it uses, file:line) for every file of harness/ (test modules left out).
fn module_edges() -> Vec<(Vec<String>, Vec<String>, String)> {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let mut files = Vec::new();
    rust_files(&harness, &mut files);
    let modules: Vec<Vec<String>> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(&harness).unwrap()))
        .collect();
    let mut edges = Vec::new();
    for (f, m) in files.iter().zip(&modules) {
        if m.first().is_some_and(|x| x == "main") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            for p in named_paths(line, m) {
                if let Some(to) = resolve(&p, &modules) {
                    if to != m {
                        let at = format!(
                            "harness/{}:{}",
                            f.strip_prefix(&harness).unwrap().display(),
                            n + 1
                        );
                        edges.push((m.clone(), to.clone(), at));
                    }
                }
            }
        }
    }
    edges
}

#[test]
fn no_module_uses_its_parent() {
    let wrong: Vec<String> = module_edges()
        .into_iter()
        .filter(|(from, to, _)| !to.is_empty() && to.len() < from.len() && from.starts_with(to))
        .map(|(from, to, at)| {
            format!(
                "{at}: {} uses its parent {}",
                from.join("::"),
                to.join("::")
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "a parent re-exports its children instead:\n{}",
        wrong.join("\n")
    );
}

/// A cycle among `edges`, as the modules on it and the lines that make it.
fn find_cycle(edges: &[(Vec<String>, Vec<String>, String)]) -> Option<Vec<String>> {
    fn visit(
        m: &Vec<String>,
        edges: &[(Vec<String>, Vec<String>, String)],
        path: &mut Vec<(Vec<String>, String)>,
        done: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|(p, _)| p == m) {
            return Some(
                path[i..]
                    .iter()
                    .map(|(p, at)| format!("{} ({at})", p.join("::")))
                    .collect(),
            );
        }
        if done.contains(m) {
            return None;
        }
        for (from, to, at) in edges.iter().filter(|(f, _, _)| f == m) {
            path.push((from.clone(), at.clone()));
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
            path.pop();
        }
        done.push(m.clone());
        None
    }
    let mut done = Vec::new();
    for (from, _, _) in edges {
        if let Some(c) = visit(from, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_form_no_cycle_through_use_items_or_in_function_paths() {
    let edges = module_edges();
    assert!(
        edges.len() > 100,
        "the check sees too few edges: {}",
        edges.len()
    );
    if let Some(c) = find_cycle(&edges) {
        panic!("modules in a cycle (each uses the next):\n{}", c.join("\n"));
    }
}

/// The check sees a loop made with in-function paths only (what cargo-modules cannot see).
#[test]
fn the_cycle_check_sees_in_function_paths() {
    let m = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let module = m("provision::repo");
    let paths = named_paths(
        "    let s = super::submission::Submission::load(d);",
        &module,
    );
    assert_eq!(paths, [m("provision::submission::Submission::load")]);
    let grouped = named_paths("use crate::{lab::Lab, sys::{exec, paths}};", &module);
    assert!(
        grouped.contains(&m("lab::Lab")) && grouped.contains(&m("sys::paths")),
        "{grouped:?}"
    );
    let edges = vec![
        (
            m("provision::repo"),
            m("provision::submission"),
            "repo.rs:1".to_string(),
        ),
        (
            m("provision::submission"),
            m("provision::repo"),
            "submission.rs:2".to_string(),
        ),
    ];
    let c = find_cycle(&edges).expect("a cycle");
    assert_eq!(
        c,
        [
            "provision::repo (repo.rs:1)",
            "provision::submission (submission.rs:2)"
        ]
    );
}
