//! The architecture rules that a reviewer would otherwise check by eye:
//!
//! - no import cycle between the modules of any crate: at every level of a
//!   crate's module tree, the sibling modules' references (`use` trees and
//!   paths through `crate::` and `super::`) form a graph without cycles (a
//!   module referring to its parent or its children is the tree itself,
//!   not a cycle);
//! - crates depend one way: `ophion-core` <- receiver, store, ai <- bin;
//! - no source file of `ophion-bin/src` is over 600 lines.
//!
//! It reads the sources as text: no extra tool to install in CI.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const CRATES: [&str; 6] = [
    "ophion-core",
    "ophion-receiver",
    "ophion-store",
    "ophion-ai",
    "ophion-agent",
    "ophion-bin",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `lib.rs` is the
/// root (empty path); binaries under `src/bin` are left out.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    Some(parts)
}

/// The text without comments and string literals (so a doc link or an SQL
/// text never counts as a reference).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r'
            && matches!(b.get(i + 1), Some(b'#') | Some(b'"'))
            && (i == 0 || !(b[i - 1] as char).is_alphanumeric())
        {
            // Raw string r"..." or r#"..."#.
            let mut hashes = 0;
            let mut j = i + 1;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3; // a char literal such as '"'
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every path a file names through `crate::`, `super::` or `self::`,
/// including those inside `use` trees (`use super::{a, b::{c, d}}`),
/// resolved to absolute module paths (as long as they go).
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut paths: Vec<Vec<String>> = Vec::new();
    // Expand use trees into flat paths.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0
            || !rest.as_bytes()[at - 1].is_ascii_alphanumeric() && rest.as_bytes()[at - 1] != b'_';
        let tail = &rest[at + 4..];
        let Some(end) = tail.find(';') else { break };
        if before_ok {
            expand(
                &tail[..end].replace(char::is_whitespace, ""),
                String::new(),
                &mut |p| {
                    paths.push(p.split("::").map(str::to_owned).collect());
                },
            );
        }
        rest = &tail[end..];
    }
    // Paths in expressions and types.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            if i > 0
                && (bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':')
            {
                continue;
            }
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] == b':')
            {
                j += 1;
            }
            paths.push(
                code[i..j]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    // `super` of a `foo.rs` or `foo/mod.rs` module is its parent either way;
    // `self` is the module itself.
    paths
        .into_iter()
        .filter_map(|p| {
            let mut base: Vec<String> = match p.first().map(String::as_str) {
                Some("crate") => Vec::new(),
                Some("super") | Some("self") => module.to_vec(),
                _ => return None,
            };
            let mut it = p.iter().peekable();
            if p[0] == "crate" {
                it.next();
            }
            while let Some(seg) = it.peek() {
                match seg.as_str() {
                    "super" => {
                        base.pop()?;
                        it.next();
                    }
                    "self" => {
                        it.next();
                    }
                    _ => break,
                }
            }
            base.extend(it.cloned());
            Some(base)
        })
        .collect()
}

/// Calls `f` with every path of a use tree such as `a::{b, c::{d, e}}`.
fn expand(tree: &str, prefix: String, f: &mut dyn FnMut(&str)) {
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_owned()
        } else {
            format!("{p}::{s}")
        }
    };
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let prefix = join(&prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], prefix.clone(), f);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], prefix, f);
    } else if !tree.is_empty() {
        let leaf = tree.split(" as ").next().unwrap_or(tree).trim();
        f(&join(&prefix, &leaf.replace(' ', "")));
    }
}

/// The longest prefix of `path` that is a module of the crate.
fn resolve(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, graph, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// Sibling-level module graphs of one crate: parent module -> (child ->
/// children it refers to).
fn sibling_graphs(krate: &str) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let src = root().join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut parsed = Vec::new();
    for f in files {
        let Some(m) = module_of(&src, &f) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).expect("read source");
        modules.insert(m.clone());
        parsed.push((m, code_only(&text)));
    }
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (m, code) in &parsed {
        for r in references(m, code) {
            let r = resolve(&modules, &r);
            let common = m.iter().zip(&r).take_while(|(a, b)| a == b).count();
            // A module and its ancestors or descendants: the tree itself.
            if common == m.len() || common == r.len() {
                continue;
            }
            graphs
                .entry(m[..common].to_vec())
                .or_default()
                .entry(m[common].clone())
                .or_default()
                .insert(r[common].clone());
        }
    }
    graphs
}

#[test]
fn no_module_cycles_in_any_crate() {
    let mut checked = 0;
    for krate in CRATES {
        for (parent, graph) in sibling_graphs(krate) {
            checked += graph.len();
            if let Some(cycle) = find_cycle(&graph) {
                panic!(
                    "{krate}: modules under `{}` import each other in a circle: {}",
                    if parent.is_empty() {
                        "crate".to_owned()
                    } else {
                        parent.join("::")
                    },
                    cycle.join(" -> ")
                );
            }
        }
    }
    assert!(
        checked > 20,
        "the scan found the crates' modules ({checked})"
    );
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let code = code_only(
        "use super::b::Thing; // use super::c;\nfn f() { let s = \"crate::d\"; crate::e::go(); }",
    );
    let refs = references(&["x".into(), "a".into()], &code);
    assert!(refs.contains(&vec!["x".into(), "b".into(), "Thing".into()]));
    assert!(refs.contains(&vec!["e".into(), "go".into()]));
    assert!(
        !refs
            .iter()
            .any(|r| r.contains(&"c".to_owned()) || r.contains(&"d".to_owned()))
    );
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
    let mut tree = Vec::new();
    expand("super::{a, b::{c, d as e}}", String::new(), &mut |p| {
        tree.push(p.to_owned())
    });
    assert_eq!(tree, ["super::a", "super::b::c", "super::b::d"]);
}

#[test]
fn crates_depend_one_way() {
    let allowed: [(&str, &[&str]); 6] = [
        ("ophion-core", &[]),
        ("ophion-receiver", &["ophion-core"]),
        ("ophion-store", &["ophion-core"]),
        ("ophion-ai", &["ophion-core"]),
        // The agent embeds the receiver; it never touches the store.
        ("ophion-agent", &["ophion-core", "ophion-receiver"]),
        (
            "ophion-bin",
            &[
                "ophion-core",
                "ophion-receiver",
                "ophion-store",
                "ophion-ai",
                "ophion-agent",
            ],
        ),
    ];
    for (krate, may) in allowed {
        let manifest =
            std::fs::read_to_string(root().join(krate).join("Cargo.toml")).expect("manifest");
        let deps = manifest
            .split("[dev-dependencies]")
            .next()
            .unwrap_or_default();
        for other in CRATES {
            let named = deps.lines().any(|l| {
                l.trim_start().starts_with(&format!("{other}."))
                    || l.trim_start().starts_with(&format!("{other} "))
            });
            if other != krate && named {
                assert!(may.contains(&other), "{krate} must not depend on {other}");
            }
        }
    }
}

#[test]
fn no_file_in_ophion_bin_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("ophion-bin/src"), &mut files);
    assert!(files.len() > 20);
    for f in files {
        let lines = std::fs::read_to_string(&f).expect("read").lines().count();
        assert!(
            lines <= 600,
            "{} has {lines} lines; split it by concern",
            f.display()
        );
    }
}
