//! Builds guest components for `wasm32-wasip2` from a build script. Shared
//! by the built-ins (built-in plugins) and the tests (misbehaving guests).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are compiled for.
pub const TARGET: &str = "wasm32-wasip2";

/// The workspace root: the nearest directory above the building crate
/// that holds `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .expect("the workspace root holds Cargo.lock")
        .to_owned()
}

/// Builds `packages` (package names) and returns the path of each
/// component, in order. Panics with a clear message when the build fails:
/// a build script has no better way to report.
pub fn build(packages: &[(&str, &Path)]) -> Vec<PathBuf> {
    let root = workspace_root();
    for dir in ["plugin-sdk/src", "plugin-sdk/Cargo.toml", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo::rerun-if-changed={}", root.join(dir).display());
    }
    for (_, dir) in packages {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    ensure_target();
    // A separate target directory: the outer cargo holds the lock on the
    // main one for as long as this build script runs.
    let target_dir = root.join("target").join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--quiet", "--target", TARGET, "--profile", "guest"])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the host build must not leak into the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_PROFILE_DEV_OPT_LEVEL")
        // Nor may a lint run (clippy) turn the guest build into a lint run.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR");
    for (package, _) in packages {
        command.args(["-p", package]);
    }
    let status = command.status().unwrap_or_else(|e| panic!("cannot run cargo to build guests: {e}"));
    assert!(status.success(), "building guest components for {TARGET} failed (see the output above)");
    packages
        .iter()
        .map(|(package, _)| {
            let file = target_dir.join(TARGET).join("guest").join(format!("{}.wasm", package.replace('-', "_")));
            assert!(file.exists(), "guest {package} built but {} is missing", file.display());
            file
        })
        .collect()
}

/// Installs the wasm target with rustup when the toolchain lacks it, so
/// that a fresh clone builds with one command.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists());
    if installed {
        return;
    }
    println!("cargo::warning=installing the {TARGET} target with rustup (needed to build plugins)");
    let status = Command::new("rustup").args(["target", "add", TARGET]).status();
    match status {
        Ok(s) if s.success() => {}
        _ => {
            panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed; install it and build again")
        }
    }
}
