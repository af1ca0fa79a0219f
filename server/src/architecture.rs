//! The rooms of the server and the direction of their imports, checked on the source text
//! (see ARCHITECTURE.md): a room may import the rooms below it and, from `lib.rs`,
//! `AppState`; never a room beside or above it. Modules import each other without cycles.
//!
//! Test code (`#[cfg(test)] mod tests` at the end of a file) and comments are not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each room and its rank: a room may import only rooms of a lower rank.
const ROOMS: &[(&str, u8)] = &[
    ("model", 0),
    ("egress", 0),
    ("store", 1),
    ("live", 2),
    ("access", 2),
    ("sources", 2),
    ("conversation", 3),
    ("demo", 3),
    ("ws", 4),
    ("http", 4),
];

fn rank(room: &str) -> Option<u8> {
    ROOMS
        .iter()
        .find(|(r, _)| *r == room)
        .map(|(_, rank)| *rank)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without its trailing test module and without comments.
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at]);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::a::b::…` paths named in `code`, as their segments.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `nexus_crate::` and the like
        }
        let rest = &code[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let segments: Vec<String> = rest[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !segments.is_empty() {
            paths.push(segments);
        }
    }
    paths
}

/// The module of a file: `ws/agent.rs` → `ws::agent`, `ws/mod.rs` → `ws`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

struct Tree {
    /// Module → the code of its file.
    modules: BTreeMap<String, String>,
}

impl Tree {
    fn read() -> Self {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let modules = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).expect("read source");
                (module_of(&src, f), code(&text))
            })
            .collect();
        Self { modules }
    }

    /// The longest module that `segments` starts with.
    fn resolve(&self, segments: &[String]) -> Option<String> {
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| self.modules.contains_key(m))
    }

    /// Module → the modules it names (itself and its own children left out).
    fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, code) in &self.modules {
            let targets = edges.entry(module.clone()).or_default();
            for path in crate_paths(code) {
                if let Some(target) = self.resolve(&path)
                    && &target != module
                {
                    targets.insert(target);
                }
            }
            // `use super::x` in a child, `use x::…` in a room's mod.rs for its children.
            let parent = module.rsplit_once("::").map(|(p, _)| p.to_owned());
            for line in code.lines().map(str::trim_start) {
                let Some(rest) = line.strip_prefix("use ") else {
                    continue;
                };
                let head = rest.split("::").next().unwrap_or_default();
                let named = match (head, &parent) {
                    ("super", Some(parent)) => {
                        let child = rest.split("::").nth(1).unwrap_or_default();
                        format!("{parent}::{child}")
                    }
                    (child, _) => format!("{module}::{child}"),
                };
                let named = named.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_');
                if self.modules.contains_key(named) && named != module {
                    targets.insert(named.to_owned());
                }
            }
        }
        edges
    }
}

fn room(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

#[test]
fn rooms_import_only_the_rooms_below_them() {
    let tree = Tree::read();
    let mut wrong = Vec::new();
    for (module, targets) in tree.edges() {
        let from = room(&module);
        let Some(from_rank) = rank(from) else {
            continue; // lib.rs, main.rs and this file stand above every room
        };
        for target in targets {
            let to = room(&target);
            if to == from {
                continue;
            }
            match rank(to) {
                Some(to_rank) if to_rank < from_rank => {}
                _ => wrong.push(format!("{module} imports {target}")),
            }
        }
    }
    assert!(
        tree.modules.contains_key("store::sqlite"),
        "the tree was read"
    );
    assert!(
        wrong.is_empty(),
        "imports that run up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_store_and_the_records_never_reach_app_state() {
    let tree = Tree::read();
    let reaching: Vec<&String> = tree
        .modules
        .iter()
        .filter(|(m, _)| matches!(room(m), "model" | "store"))
        .filter(|(_, code)| code.contains("AppState"))
        .map(|(m, _)| m)
        .collect();
    assert!(reaching.is_empty(), "{reaching:?} use AppState");
}

#[test]
fn modules_import_each_other_without_cycles() {
    let edges = Tree::read().edges();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        module: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            cycles.push(cycle.join(" -> "));
            return;
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        for next in edges.get(module).into_iter().flatten() {
            // lib.rs is where every room meets (AppState): it is not part of a cycle.
            if next.is_empty() || rank(room(next)).is_none() {
                continue;
            }
            visit(next, edges, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for module in edges.keys().filter(|m| rank(room(m)).is_some()) {
        visit(module, &edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_an_import_that_runs_up() {
    // The checks above pass on an empty graph too: make sure a wrong import is seen.
    let code = code("use crate::http::error::AppError;\n// crate::ws::x\n");
    assert_eq!(crate_paths(&code), vec![vec!["http", "error", "AppError"]]);
    let tree = Tree::read();
    assert_eq!(
        tree.resolve(&["http".into(), "error".into(), "AppError".into()]),
        Some("http::error".into())
    );
    assert!(rank("store") < rank("http"));
}
