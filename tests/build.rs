//! Build script of the test crate: compiles every guest under
//! `tests/guests/` to a component, one constant each, and generates
//! `foreach_guest!` so that a test can insist each guest has a test. It
//! also compiles the add-on examples under `plugins/`, which the host does
//! not embed, and names each one's component file, so that tests upload
//! them as an operator would.

#[path = "../crates/builtins/build/guests.rs"]
mod guests;

use std::fmt::Write as _;

/// The add-on examples, by directory under `plugins/`: never built into the
/// host (`crates/builtins/build.rs` embeds only its `BUILTIN` list).
const ADD_ONS: &[&str] = &["proposal-paid"];

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
    let mut packages: Vec<(String, std::path::PathBuf)> =
        names.iter().map(|n| (format!("stepwise-test-guest-{n}"), dir.join(n))).collect();
    packages.extend(ADD_ONS.iter().map(|n| (format!("stepwise-plugin-{n}"), root.join("plugins").join(n))));
    let refs: Vec<(&str, &std::path::Path)> = packages.iter().map(|(p, d)| (p.as_str(), d.as_path())).collect();
    // One cargo run builds guests and add-ons alike.
    let mut files = guests::build(&refs);
    let add_on_files = files.split_off(names.len());

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

    let mut out = String::new();
    for (name, file) in ADD_ONS.iter().zip(&add_on_files) {
        let constant = name.to_uppercase().replace('-', "_");
        writeln!(out, "/// The component file of the `{name}` add-on, built from `plugins/{name}`.").unwrap();
        writeln!(out, "pub const {constant}: &str = {:?};", file.display().to_string()).unwrap();
    }
    std::fs::write(out_dir.join("add_ons.rs"), out).unwrap();
}
