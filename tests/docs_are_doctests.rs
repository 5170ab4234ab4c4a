//! Every guide in `docs/` is compiled and run as a doctest: `src/lib.rs`
//! includes each one, and no Rust example in them opts out of running.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn guides() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .map(|entry| {
            entry
                .expect("a docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_guide_in_docs_is_included_as_a_doctest() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("src/lib.rs is readable");
    let guides = guides();
    assert!(!guides.is_empty(), "docs/ holds no guide");
    let missing: Vec<&String> = guides
        .iter()
        .filter(|name| !lib.contains(&format!("#[doc = include_str!(\"../docs/{name}\")]")))
        .collect();
    assert!(
        missing.is_empty(),
        "not compiled as doctests by src/lib.rs: {missing:?}"
    );
    assert!(lib.contains("#[doc = include_str!(\"../README.md\")]"));
}

#[test]
fn no_example_in_the_guides_opts_out_of_running() {
    let mut skipped = Vec::new();
    for name in guides()
        .iter()
        .map(|n| format!("docs/{n}"))
        .chain(["README.md".to_owned()])
    {
        let text = std::fs::read_to_string(root().join(&name)).expect("a guide is readable");
        for (i, line) in text.lines().enumerate() {
            let fence = line.trim_start();
            let Some(info) = fence.strip_prefix("```") else {
                continue;
            };
            if info.split(',').any(|attr| {
                matches!(
                    attr.trim(),
                    "ignore" | "no_run" | "compile_fail" | "should_panic"
                )
            }) {
                skipped.push(format!("{name}:{}", i + 1));
            }
        }
    }
    assert!(skipped.is_empty(), "examples that do not run: {skipped:?}");
}
