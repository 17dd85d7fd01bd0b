//! End-to-end: state directory, authorisation check, projects, roles, audit and retention.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

const DEMO: &str = "../../examples/demo-authorisation.toml";
const A23_224: &str = "../../authorisations/23-224.toml";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        env.kluis("sam", NOW).arg("init").assert().success();
        env
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `kluis` acting as `actor` on `today` (a later day rehearsed with KLUIS_TODAY, or the real
    /// day when empty), with nothing inherited from the caller's environment that could point
    /// elsewhere.
    fn kluis(&self, actor: &str, today: &str) -> Command {
        let mut cmd = Command::cargo_bin("kluis").unwrap();
        cmd.env_remove("KLUIS_ACTOR")
            .env_remove("KLUIS_TODAY")
            .env("KLUIS_HOME", self.home());
        if !today.is_empty() {
            cmd.env("KLUIS_TODAY", today);
        }
        if !actor.is_empty() {
            cmd.env("KLUIS_ACTOR", actor);
        }
        cmd
    }
}

/// The real day: no KLUIS_TODAY.
const NOW: &str = "";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[test]
fn authorisation_check_accepts_the_shipped_files_and_lists_every_problem() {
    let env = Env::new();
    env.kluis("", NOW)
        .args(["authorisation", "check", A23_224])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "authorisation 23/224 (project 23-224)",
        ))
        .stdout(predicate::str::contains(
            "retention date 2024-12-31 has passed",
        ));
    env.kluis("", NOW)
        .args(["authorisation", "check", DEMO])
        .assert()
        .success();

    let bad = env.dir.path().join("bad.toml");
    let text = std::fs::read_to_string(DEMO)
        .unwrap()
        .replacen("nace = \"section\"", "nace = \"year\"", 1)
        .replacen("until = 2031-12-31", "until = 2020-01-01", 1);
    std::fs::write(&bad, text).unwrap();
    env.kluis("", NOW)
        .args(["authorisation", "check"])
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2 problems"))
        .stderr(predicate::str::contains("bad.toml:24: retention.until"))
        .stderr(predicate::str::contains("`year` is not a coding of nace"));
}

#[test]
fn the_whole_life_of_a_project() {
    let env = Env::new();
    // Only a steward named in the authorisation may register it.
    env.kluis("rita", "2030-01-01")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs the steward role"));
    env.kluis("", "2030-01-01")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--as NAME"));
    env.kluis("sam", "2030-01-01")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .success()
        .stdout(predicate::str::contains("registered project 99-001"));

    let out = env
        .kluis("", "2030-01-01")
        .args(["project", "show", "99-001", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"]["status"], "active");
    assert_eq!(shown["state"]["until"], "2031-12-31");
    assert_eq!(shown["authorisation"]["roles"]["reviewer"][1], "victor");
    let key_id = shown["key_id"].as_str().unwrap().to_owned();

    // A file in the project directory stands in for an extract; one in released/ for a table.
    let project_dir = env.home().join("projects/99-001");
    std::fs::write(project_dir.join("extract.parquet"), b"microdata").unwrap();
    std::fs::write(project_dir.join("released/t1.csv"), b"table").unwrap();

    env.kluis("", "2032-01-05")
        .args(["project", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("99-001       expired"));
    // A later day can be rehearsed, by the steward, and only to see what would go.
    env.kluis("sam", "2032-01-05")
        .args(["retention", "enforce", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "would destroy project 99-001 (retention date 2031-12-31 passed)",
        ))
        .stdout(predicate::str::contains("extract.parquet"));
    env.kluis("sam", "2032-01-05")
        .args(["retention", "enforce"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("rehearsed day"));
    assert!(project_dir.join("extract.parquet").exists());
    // The steward destroys it when it is no longer needed.
    env.kluis("sam", NOW)
        .args([
            "project",
            "destroy",
            "99-001",
            "--reason",
            "study finished early",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "destroyed project 99-001 before its retention date 2031-12-31: key {key_id}"
        )));
    assert!(!project_dir.join("extract.parquet").exists());
    assert!(project_dir.join("released/t1.csv").exists());
    env.kluis("sam", "2032-01-05")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2031-12-31"));
    // The destroyed project's files are shredded, its released tables kept.

    let out = env
        .kluis("", "2032-01-05")
        .args(["audit", "show", "--project", "99-001", "--json"])
        .output()
        .unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "refused",
            "project.create",
            "refused",
            "project.destroy",
            "refused"
        ]
    );

    env.kluis("", "2032-01-05")
        .args(["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("audit log intact: 6 entries"));
    let export = env.dir.path().join("audit.jsonl");
    env.kluis("", "2032-01-05")
        .args(["audit", "export"])
        .arg(&export)
        .assert()
        .success();
    let exported = std::fs::read_to_string(&export).unwrap();
    assert_eq!(exported.lines().count(), 6);
    kluis_audit_free_check(&exported);
}

/// The export is verifiable line by line: each line is one entry with its hash chain.
fn kluis_audit_free_check(exported: &str) {
    let mut previous = "0".repeat(64);
    for line in exported.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["prev_hash"], previous.as_str());
        previous = entry["hash"].as_str().unwrap().to_owned();
    }
}

#[test]
fn authorisation_23_224_is_refused_naming_its_retention_date() {
    let env = Env::new();
    env.kluis("ksz-steward", NOW)
        .args(["project", "create", "--authorisation", A23_224])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "retention date of project 23-224, 2024-12-31, has passed",
        ));
}

#[test]
fn audit_verify_names_the_entry_someone_edited_in_the_database() {
    let env = Env::new();
    env.kluis("sam", "2030-01-01")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .success();
    env.kluis("rita", "2030-01-01")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .code(2);
    env.kluis("", "2030-01-01")
        .args(["audit", "verify"])
        .assert()
        .success();
    let conn = rusqlite::Connection::open(env.home().join("kluis.db")).unwrap();
    conn.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    drop(conn);
    env.kluis("", "2030-01-01")
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("entry 2 is missing"));
}

#[test]
fn no_project_key_in_any_file_of_the_state_directory_or_the_export() {
    let env = Env::new();
    env.kluis("sam", "2030-01-01")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .success();
    let export = env.dir.path().join("audit.jsonl");
    env.kluis("", "2030-01-01")
        .args(["audit", "export"])
        .arg(&export)
        .assert()
        .success();
    for args in [
        &["project", "show", "99-001", "--json"][..],
        &["audit", "show", "--json"][..],
    ] {
        let out = env.kluis("", "2030-01-01").args(args).output().unwrap();
        std::fs::write(env.dir.path().join(format!("{}.out", args[0])), out.stdout).unwrap();
    }

    // Recover the key the way kluis does, only to search for it.
    let master: [u8; 32] = std::fs::read(env.home().join("master.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let master = kluis_pseudo::MasterKey::from_bytes(master);
    let conn = rusqlite::Connection::open(env.home().join("kluis.db")).unwrap();
    let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = conn
        .query_row("SELECT nonce, ciphertext FROM keys", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let sealed = kluis_pseudo::SealedKey {
        nonce: nonce.try_into().unwrap(),
        ciphertext,
    };
    let key = master.open("kluis project key 99-001#1", &sealed).unwrap();
    let raw = key.expose_secret().to_vec();
    let needles = [
        raw.clone(),
        hex::encode(&raw).into_bytes(),
        hex::encode_upper(&raw).into_bytes(),
    ];

    let files = files_under(env.dir.path());
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "the project key is in {}",
                file.display()
            );
        }
    }
}

#[test]
fn init_refuses_an_existing_state_directory() {
    let env = Env::new();
    env.kluis("sam", NOW)
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already a kluis state directory"));
}

#[test]
fn the_clock_cannot_be_turned_back_to_reopen_an_expired_project() {
    let env = Env::new();
    env.kluis("", "2020-01-01")
        .args(["authorisation", "check", A23_224])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "KLUIS_TODAY=2020-01-01 is in the past",
        ));
}

#[test]
fn a_closed_pipe_ends_kluis_quietly() {
    // `kluis ... | head` once head has gone: the reading end is closed before kluis writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("kluis"))
        .args(["codelist", "show", "countries"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}
