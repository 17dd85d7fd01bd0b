//! docs/GUIDE.md cannot rot: every `sh` block of it runs here, in order, in a fresh directory,
//! with this build's `kluis` first on the PATH. A line starting with `!` must be refused.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The contents of the guide's ```sh blocks, in order.
fn shell_blocks(guide: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in guide.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block in the guide");
    blocks
}

#[test]
fn every_command_of_the_guide_runs() {
    let guide = std::fs::read_to_string(repository().join("docs/GUIDE.md")).unwrap();
    let blocks = shell_blocks(&guide);
    // The guide covers each part of a steward's, reviewer's and researcher's work.
    let script = blocks.concat();
    for command in [
        "kluis init",
        "kluis generate",
        "kluis ingest",
        "kluis authorisation check",
        "kluis project create",
        "kluis extract --project",
        "kluis extract verify",
        "kluis risk",
        "kluis sdc table",
        "kluis job check",
        "kluis job run",
        "kluis output show",
        "kluis output release",
        "kluis output reject",
        "kluis report",
        "kluis audit verify",
        "kluis retention enforce",
    ] {
        assert!(
            script.contains(command),
            "the guide no longer shows `{command}`"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    for shared in ["examples", "authorisations"] {
        std::os::unix::fs::symlink(repository().join(shared), dir.path().join(shared)).unwrap();
    }
    let kluis = assert_cmd::cargo::cargo_bin("kluis");
    let path = format!(
        "{}:{}",
        kluis.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euxo pipefail\n{script}"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("KLUIS_HOME")
        .env_remove("KLUIS_ACTOR")
        .env_remove("KLUIS_TODAY")
        .env_remove("KLUIS_WAREHOUSE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the guide's commands failed:\n{stderr}"
    );

    // What the guide says happened, happened.
    let file = |name: &str| dir.path().join(name);
    assert!(file("extract/manifest.json").exists() && file("extract/risk.json").exists());
    assert!(file("loaded/warehouse.json").exists());
    let rejected = std::fs::read_to_string(file("rejected.csv")).unwrap();
    assert!(rejected.contains("ZZ"), "{rejected}");
    assert!(
        stderr.contains("re-identification limits"),
        "the first extract was refused"
    );
    assert!(
        stderr.contains("retention date"),
        "23/224 was refused for its retention date"
    );
    let report = std::fs::read_to_string(file("report.html")).unwrap();
    assert!(
        report.contains("id=\"t-99-001-0001\"") && report.contains("<svg class=\"chart\""),
        "the report shows the released tables with a chart"
    );
    let audit = std::fs::read_to_string(file("audit.jsonl")).unwrap();
    assert!(audit.contains("trial on a synthetic population"));
}
