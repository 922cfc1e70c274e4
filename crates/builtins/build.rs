//! Build script of the built-ins: compiles the built-in plugins to
//! components and generates the table that embeds them.

#[path = "build/guests.rs"]
mod guests;

use std::fmt::Write as _;

/// The built-in plugins, by directory under `plugins/`.
const BUILTIN: &[&str] = &[
    "task",
    "webhook",
    "email",
    "sms",
    "call",
    "contact-reminder",
    "assign-user",
    "change-contact-type",
    "field-compare",
    "has-channel",
    "is-one-of",
    "time-window",
];

fn main() {
    let root = guests::workspace_root();
    let packages: Vec<(String, std::path::PathBuf)> =
        BUILTIN.iter().map(|name| (format!("stepwise-plugin-{name}"), root.join("plugins").join(name))).collect();
    let refs: Vec<(&str, &std::path::Path)> = packages.iter().map(|(p, d)| (p.as_str(), d.as_path())).collect();
    let files = guests::build(&refs);

    let mut out = String::from(
        "/// The built-in plugins: directory name and component bytes.\npub const BUILTIN: &[(&str, &[u8])] = &[\n",
    );
    for (name, file) in BUILTIN.iter().zip(&files) {
        writeln!(out, "    ({name:?}, include_bytes!({:?})),", file.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("builtin_plugins.rs"), out).unwrap();
}
