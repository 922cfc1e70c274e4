//! Compiled artifacts are cached on disk by component digest and engine
//! compatibility; a damaged or foreign file is never trusted.

use stepwise::plugins::{Runtime, RuntimeConfig, inspect};
use stepwise_tests::{ada, guests, invocation, test_limits};

fn cached_runtime(dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig { limits: test_limits(), cache_dir: Some(dir.to_owned()), ..RuntimeConfig::default() })
        .unwrap()
}

fn artifacts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_compiled_component_is_reused_across_runtimes() {
    let dir = tempfile::tempdir().unwrap();
    let digest = inspect(guests::TRIVIAL).unwrap().digest;
    cached_runtime(dir.path()).load(guests::TRIVIAL).await.unwrap();
    let files = artifacts(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].file_name().unwrap().to_string_lossy().starts_with(&digest));
    let written = std::fs::metadata(&files[0]).unwrap().modified().unwrap();

    let runtime = cached_runtime(dir.path());
    let plugin = runtime.load(guests::TRIVIAL).await.unwrap();
    runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap();
    assert_eq!(artifacts(dir.path()), files, "no second artifact");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().modified().unwrap(), written, "not rewritten");
}

#[tokio::test]
async fn a_damaged_artifact_is_discarded_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    cached_runtime(dir.path()).load(guests::TRIVIAL).await.unwrap();
    let file = artifacts(dir.path()).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let runtime = cached_runtime(dir.path());
    let plugin = runtime.load(guests::TRIVIAL).await.unwrap();
    runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap();
    assert_ne!(std::fs::read(&file).unwrap(), bytes, "the damaged file was replaced");
}

#[tokio::test]
async fn a_file_the_host_did_not_write_is_never_deserialized() {
    let dir = tempfile::tempdir().unwrap();
    let digest = inspect(guests::TRIVIAL).unwrap().digest;
    // Prime the cache to learn the file name, then put foreign bytes there.
    cached_runtime(dir.path()).load(guests::TRIVIAL).await.unwrap();
    let file = artifacts(dir.path()).remove(0);
    assert!(file.to_string_lossy().contains(&digest));
    std::fs::write(&file, b"\x7fELF not an artifact of ours").unwrap();
    let runtime = cached_runtime(dir.path());
    let plugin = runtime.load(guests::TRIVIAL).await.unwrap();
    runtime.execute(&plugin, invocation(ada(), &[]), "{}").await.unwrap();
}
