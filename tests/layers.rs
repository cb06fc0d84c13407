//! The layering of `docs/architecture.md`, checked against the code: every module names only the
//! modules its row of the page's "What may import what" table lists. Run with `--nocapture` to see
//! every edge between modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The table's rows: module -> the modules it may import.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let page = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md")).unwrap();
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in page.lines() {
        if line.starts_with("| module | may import |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("| ---") {
            continue;
        }
        let Some(row) = line.strip_prefix('|') else {
            break;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let may: BTreeSet<String> = (cells[1].split(','))
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(String::from)
            .collect();
        rows.insert(cells[0].to_string(), may);
    }
    assert!(
        rows.len() > 10,
        "no import table found in docs/architecture.md"
    );
    rows
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a source file belongs to: `src/<module>/…` or `src/<module>.rs`, `bin`, `examples`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(ROOT).unwrap();
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
    match parts[0] {
        "examples" => "examples".into(),
        _ => parts[1].trim_end_matches(".rs").to_string(),
    }
}

/// The crate modules a line of code names (`crate::x` in the library, `wgpt::x` in the binary and
/// examples); the crate root's re-exports count as the modules they come from, macros as nothing.
fn named(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["crate::", "wgpt::"] {
        for (i, _) in code.match_indices(prefix) {
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if rest[name.len()..].starts_with('!') {
                continue;
            }
            out.push(match name.as_str() {
                "Error" | "Result" => "error".into(),
                "Gpu" | "Tensor" | "Dispatch" => "gpu".into(),
                _ => name,
            });
        }
    }
    out
}

/// Every edge `module -> module it names` in the source, the binary and the examples.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    rust_files(&Path::new(ROOT).join("examples"), &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&file);
        if module == "lib" {
            continue;
        }
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let code = line.split("//").next().unwrap_or("");
            for target in named(code) {
                if target != module {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    edges
}

#[test]
fn every_import_runs_down_the_layers_of_the_architecture_page() {
    let allowed = allowed();
    let mut wrong = Vec::new();
    for (module, targets) in edges() {
        let may = allowed
            .get(&module)
            .unwrap_or_else(|| panic!("module {module} has no row in docs/architecture.md"));
        println!(
            "{module:<10} -> {}",
            Vec::from_iter(targets.clone()).join(", ")
        );
        for target in targets.difference(may) {
            wrong.push(format!("{module} imports {target}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports docs/architecture.md does not allow: {}",
        wrong.join("; ")
    );
}

#[test]
fn the_edge_finder_sees_paths_and_skips_macros_and_longer_names() {
    assert_eq!(named("use crate::gpu::{Gpu, Tensor};"), ["gpu"]);
    assert_eq!(
        named("let x = crate::kernels::attention::check(d);"),
        ["kernels"]
    );
    assert_eq!(
        named("pub const S: Shader = crate::shader!(\"x\");"),
        Vec::<String>::new()
    );
    assert_eq!(named("fn f() -> wgpt::Result<()> {"), ["error"]);
    assert_eq!(named("use other_crate::model;"), Vec::<String>::new());
}
