//! `stepwise plugin new`: a ready plugin project, a step or a criterion in
//! Rust, JavaScript or Python, that builds with one command (`./build.sh`)
//! and runs under `stepwise plugin run` as written. The templates are in
//! `host/scaffold/`; the WIT is the contract this binary serves.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A crate on the plugin SDK.
    Rust,
    /// An ES module built with componentize-js (npm).
    Js,
    /// A module built with componentize-py (PyPI).
    Python,
}

/// What a new plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A step type.
    Action,
    /// A criteria predicate.
    Predicate,
}

/// The contract the projects build against: the newest WIT this binary
/// serves.
const WIT: [(&str, &str); 3] = [
    ("host.wit", include_str!("../../wit/stepwise-plugin@0.2.0/host.wit")),
    ("plugin.wit", include_str!("../../wit/stepwise-plugin@0.2.0/plugin.wit")),
    ("types.wit", include_str!("../../wit/stepwise-plugin@0.2.0/types.wit")),
];

const README: &str = include_str!("../scaffold/README.md");
const CONTACT: &str = include_str!("../fixtures/contact.json");

/// A project's files, by path, before its placeholders are filled in.
fn templates(lang: Lang, kind: Kind) -> Vec<(&'static str, &'static str)> {
    use Kind::{Action, Predicate};
    match (lang, kind) {
        (Lang::Rust, _) => vec![
            ("Cargo.toml", include_str!("../scaffold/rust/Cargo.toml")),
            ("build.sh", include_str!("../scaffold/rust/build.sh")),
            (
                "src/lib.rs",
                match kind {
                    Action => include_str!("../scaffold/rust/action.rs"),
                    Predicate => include_str!("../scaffold/rust/predicate.rs"),
                },
            ),
        ],
        (Lang::Js, Action) => vec![
            ("package.json", include_str!("../scaffold/js/package.json")),
            ("build.sh", include_str!("../scaffold/js/build.sh")),
            ("src/plugin.js", include_str!("../scaffold/js/action.js")),
            ("src/logic.js", include_str!("../scaffold/js/action-logic.js")),
            ("test/logic.test.js", include_str!("../scaffold/js/action-logic.test.js")),
        ],
        (Lang::Js, Predicate) => vec![
            ("package.json", include_str!("../scaffold/js/package.json")),
            ("build.sh", include_str!("../scaffold/js/build.sh")),
            ("src/plugin.js", include_str!("../scaffold/js/predicate.js")),
            ("src/logic.js", include_str!("../scaffold/js/predicate-logic.js")),
            ("test/logic.test.js", include_str!("../scaffold/js/predicate-logic.test.js")),
        ],
        (Lang::Python, Action) => vec![
            ("requirements.txt", include_str!("../scaffold/python/requirements.txt")),
            ("build.sh", include_str!("../scaffold/python/build.sh")),
            ("app.py", include_str!("../scaffold/python/action.py")),
            ("logic.py", include_str!("../scaffold/python/action_logic.py")),
            ("tests/__init__.py", ""),
            ("tests/test_logic.py", include_str!("../scaffold/python/action_test.py")),
        ],
        (Lang::Python, Predicate) => vec![
            ("requirements.txt", include_str!("../scaffold/python/requirements.txt")),
            ("build.sh", include_str!("../scaffold/python/build.sh")),
            ("app.py", include_str!("../scaffold/python/predicate.py")),
            ("logic.py", include_str!("../scaffold/python/predicate_logic.py")),
            ("tests/__init__.py", ""),
            ("tests/test_logic.py", include_str!("../scaffold/python/predicate_test.py")),
        ],
    }
}

/// A plugin id: lowercase letters, digits and single dashes, starting with
/// a letter, at most 64 characters.
///
/// # Errors
///
/// Naming what is wrong with `name`.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let why = if name.is_empty() || name.len() > 64 {
        "is 1 to 64 characters"
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "starts with a lowercase letter"
    } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        "has only lowercase letters, digits and dashes"
    } else if name.ends_with('-') || name.contains("--") {
        "does not end with a dash or have two in a row"
    } else {
        return Ok(());
    };
    bail!("`{name}` cannot be a plugin id: an id {why} (such as `chat-notify`)")
}

/// Writes a new project `name` under `parent`: the plugin, its test, its
/// build script, the WIT and fixtures for `stepwise plugin run`. `sdk` is
/// where a Rust project takes the SDK from: a path, or a git URL. Returns
/// the project's directory.
///
/// # Errors
///
/// A name that is not a plugin id, a directory that exists and is not
/// empty, or a file that cannot be written.
pub fn create(parent: &Path, name: &str, lang: Lang, kind: Kind, sdk: &str) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} exists and is not empty: choose another name, or another --dir", dir.display());
    }
    let sdk = if sdk.contains("://") {
        format!("git = {sdk:?}")
    } else {
        let path = std::path::absolute(sdk).with_context(|| format!("--sdk {sdk}"))?;
        format!("path = {:?}", path.display().to_string())
    };
    let title = {
        let words = name.replace('-', " ");
        let mut chars = words.chars();
        chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
    };
    let (world, kind_name, config, grants) = match kind {
        Kind::Action => (
            "action-plugin",
            "step",
            r#"{"message": "Hello {{contact.first_name}}"}"#,
            "--grant render-template --grant log",
        ),
        Kind::Predicate => ("predicate-plugin", "criterion", r#"{"domains": ["example.com"]}"#, ""),
    };
    let (lang_name, test) = match lang {
        Lang::Rust => ("Rust", "cargo test"),
        Lang::Js => ("JavaScript", "npm test"),
        Lang::Python => ("Python", "python3 -m unittest"),
    };
    let fill = |text: &str| {
        text.replace("@ID@", name)
            .replace("@CRATE@", &name.replace('-', "_"))
            .replace("@TITLE@", &title)
            .replace("@WORLD@", world)
            .replace("@SDK@", &sdk)
            .replace("@KIND_NAME@", kind_name)
            .replace("@LANG_NAME@", lang_name)
            .replace("@TEST@", test)
            .replace("@GRANTS@", grants)
    };
    let mut files: Vec<(String, String)> =
        templates(lang, kind).into_iter().map(|(path, text)| (path.to_owned(), fill(text))).collect();
    files.push(("README.md".into(), fill(README)));
    files.push(("fixtures/config.json".into(), format!("{config}\n")));
    files.push(("fixtures/contact.json".into(), CONTACT.to_owned()));
    files.push((".gitignore".into(), "target/\nnode_modules/\n.venv/\n__pycache__/\n*.wasm\n".into()));
    if lang != Lang::Rust {
        files.extend(WIT.iter().map(|(file, text)| (format!("wit/{file}"), (*text).to_owned())));
    }
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    executable(&dir.join("build.sh"))?;
    Ok(dir)
}

#[cfg(unix)]
fn executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Kind, Lang, check_name, create};

    #[test]
    fn a_plugin_id_is_named_by_its_rules() {
        check_name("chat-notify").unwrap();
        check_name("a1").unwrap();
        for (name, rule) in [
            ("", "1 to 64 characters"),
            ("Chat", "starts with a lowercase letter"),
            ("1chat", "starts with a lowercase letter"),
            ("chat_notify", "only lowercase letters, digits and dashes"),
            ("chat-", "does not end with a dash"),
            ("chat--notify", "two in a row"),
        ] {
            let error = check_name(name).unwrap_err().to_string();
            assert!(error.contains(rule) && error.contains(&format!("`{name}`")), "{name}: {error}");
        }
    }

    #[test]
    fn a_project_is_written_with_its_placeholders_filled_and_never_over_another() {
        let dir = tempfile::tempdir().unwrap();
        for (lang, kind) in [(Lang::Rust, Kind::Predicate), (Lang::Js, Kind::Action), (Lang::Python, Kind::Predicate)] {
            let name = format!("{lang:?}-{kind:?}").to_lowercase();
            let project = create(dir.path(), &name, lang, kind, "../plugin-sdk").unwrap();
            for entry in walk(&project) {
                let text = std::fs::read_to_string(&entry).unwrap();
                for placeholder in ["@ID@", "@TITLE@", "@WORLD@", "@SDK@", "@CRATE@", "@GRANTS@", "@TEST@"] {
                    assert!(!text.contains(placeholder), "{placeholder} left in {}", entry.display());
                }
            }
            let again = create(dir.path(), &name, lang, kind, "../plugin-sdk").unwrap_err().to_string();
            assert!(again.contains("exists and is not empty"), "{again}");
        }
        let cargo = std::fs::read_to_string(dir.path().join("rust-predicate/Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"rust-predicate\"") && cargo.contains("stepwise-plugin-sdk = { path = \""));
        let git = create(dir.path(), "from-git", Lang::Rust, Kind::Action, "https://example.com/stepwise").unwrap();
        let cargo = std::fs::read_to_string(git.join("Cargo.toml")).unwrap();
        assert!(cargo.contains(r#"stepwise-plugin-sdk = { git = "https://example.com/stepwise" }"#), "{cargo}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
        }
        files
    }
}
