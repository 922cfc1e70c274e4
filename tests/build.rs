//! Build script of the test crate: compiles every guest under
//! `tests/guests/` to a component, one constant each, and generates
//! `foreach_guest!` so that a test can insist each guest has a test.

#[path = "../host/build/guests.rs"]
mod guests;

use std::fmt::Write as _;

fn main() {
    let root = guests::workspace_root();
    let dir = root.join("tests").join("guests");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/guests exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let packages: Vec<(String, std::path::PathBuf)> =
        names.iter().map(|n| (format!("stepwise-test-guest-{n}"), dir.join(n))).collect();
    let refs: Vec<(&str, &std::path::Path)> = packages.iter().map(|(p, d)| (p.as_str(), d.as_path())).collect();
    let files = guests::build(&refs);

    let mut out = String::new();
    for (name, file) in names.iter().zip(&files) {
        let constant = name.to_uppercase().replace('-', "_");
        writeln!(out, "/// The `{name}` test guest, as component bytes.").unwrap();
        writeln!(out, "pub const {constant}: &[u8] = include_bytes!({:?});", file.display().to_string()).unwrap();
    }
    out.push_str("/// Calls `$mac!(name)` for every test guest.\n#[macro_export]\nmacro_rules! foreach_guest {\n    ($mac:ident) => {\n");
    for name in &names {
        writeln!(out, "        $mac!({});", name.replace('-', "_")).unwrap();
    }
    out.push_str("    };\n}\n");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("guests.rs"), out).unwrap();
}
