//! House rules that hold for every file: each Rust file opens with a
//! `//!` comment saying what it is for. (`cargo fmt --check` and the crate
//! graph, `.ci/crate-graph`, run in `.ci/run`.)

use std::path::{Path, PathBuf};

/// The workspace root, above this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests sits below the workspace root").to_owned()
}

/// Every `.rs` file below `dir`, outside build output.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_comment_saying_what_it_is_for() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 100, "found only {} files below {}", files.len(), root.display());
    let bare: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().starts_with("//!"))
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(bare.is_empty(), "files without an opening `//!` comment: {bare:?}");
}
