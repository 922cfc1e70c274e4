//! `stepwise plugin new` as an author uses it: every language and kind is
//! written, tested and built with its own commands, and runs under
//! `stepwise plugin run` as generated. Building needs cargo, Node.js with
//! npm, and Python 3 with pip, as `host/tests/examples.rs` does.

mod support;

use std::path::Path;
use std::process::Command;

use support::run_in as run;

use serde_json::Value;

fn stepwise(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_stepwise"))
        .args(args)
        .current_dir(cwd)
        .env("STEPWISE_CACHE_DIR", "off")
        .output()
        .expect("the binary runs");
    (
        output.status.code().expect("it exits"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_language_and_kind_builds_and_runs_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("plugin-sdk");
    let sdk = sdk.to_str().unwrap();
    for (lang, test) in
        [("rust", &["cargo", "test"][..]), ("js", &["npm", "test"]), ("python", &["python3", "-m", "unittest"])]
    {
        for kind in ["action", "predicate"] {
            let name = format!("my-{lang}-{kind}");
            let (code, out, err) = stepwise(
                &["plugin", "new", &name, "--lang", lang, "--kind", kind, "--dir", ".", "--sdk", sdk],
                dir.path(),
            );
            assert_eq!(code, 0, "{name}: {err}");
            assert!(out.contains("./build.sh"), "{out}");
            let project = dir.path().join(&name);
            // The Rust unit tests compile the SDK natively: once is enough.
            if lang != "rust" || kind == "action" {
                run(&project, test);
            }
            run(&project, &["./build.sh"]);

            let wasm = format!("{name}.wasm");
            let mut args = vec!["plugin", "run", &wasm, "--config", "fixtures/config.json"];
            args.extend(["--contact", "fixtures/contact.json", "--json"]);
            if kind == "action" {
                args.extend(["--grant", "render-template", "--grant", "log"]);
            }
            let (code, out, err) = stepwise(&args, &project);
            assert_eq!(code, 0, "{name}: {err}\n{out}");
            let report: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(report["plugin"], format!("{name} 0.1.0"), "{report}");
            match kind {
                "action" => {
                    assert_eq!(report["answer"]["result"], "done", "{name}: {report}");
                    assert_eq!(report["report"]["logs"][0]["message"], "Hello Ada", "{name}: {report}");
                }
                _ => assert_eq!(report["answer"], serde_json::json!({"Ok": true}), "{name}: {report}"),
            }
            // Its config is checked at the field, as the server checks it.
            let bad = project.join("fixtures/bad.json");
            std::fs::write(
                &bad,
                if kind == "action" { r#"{"message": "Hi {{contact.nope}}"}"# } else { r#"{"domains": []}"# },
            )
            .unwrap();
            let (code, out, _) = stepwise(
                &["plugin", "run", &wasm, "--config", "fixtures/bad.json", "--mode", "validate", "--json"],
                &project,
            );
            assert_eq!(code, 3, "{name}: {out}");
            let report: Value = serde_json::from_str(&out).unwrap();
            let field = if kind == "action" { "/message" } else { "/domains" };
            assert_eq!(report["answer"][0]["field"], field, "{name}: {report}");
        }
    }
    let (code, _, err) = stepwise(&["plugin", "new", "My_Plugin", "--lang", "rust"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("`My_Plugin` cannot be a plugin id"), "{err}");
}
