//! Rebuilds the store when a migration changes: `sqlx::migrate!` embeds
//! them at compile time and cannot tell cargo so on stable Rust.

fn main() {
    println!("cargo::rerun-if-changed=migrations");
}
