//! An attacker with access to the machine, against the trust anchors: wiping or replacing the
//! audit log, editing what decides what may happen, rule sets from the working directory,
//! destruction without the steward or on a rehearsed day. Each attempt is caught by
//! `audit verify` and, where it matters, by the command that would act on it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

/// Absolute: the commands run in a temporary working directory.
const DEMO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/demo-authorisation.toml"
);

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A state directory with project 99-001 registered by its steward.
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        env.kluis("sam").arg("init").assert().success();
        env.kluis("sam")
            .args(["project", "create", "--authorisation", DEMO])
            .assert()
            .success();
        env
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn kluis(&self, actor: &str) -> Command {
        let mut cmd = Command::cargo_bin("kluis").unwrap();
        cmd.env_remove("KLUIS_ACTOR")
            .env_remove("KLUIS_TODAY")
            .env_remove("KLUIS_WAREHOUSE")
            .env("KLUIS_HOME", self.home())
            .current_dir(self.dir.path());
        if !actor.is_empty() {
            cmd.env("KLUIS_ACTOR", actor);
        }
        cmd
    }

    fn sql(&self, statements: &str) {
        let conn = rusqlite::Connection::open(self.home().join("kluis.db")).unwrap();
        conn.execute_batch(statements).unwrap();
    }

    /// `audit verify` fails with exit 1, saying `what`.
    fn verify_fails(&self, what: &str) {
        self.verify_fails_with(&[], what);
    }

    /// `audit verify ARGS` (an overseer's `--expect-head HASH` or `--checkpoint FILE`) fails
    /// with exit 1, saying `what`.
    fn verify_fails_with(&self, args: &[&OsStr], what: &str) {
        self.kluis("")
            .args(["audit", "verify"])
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(what));
    }

    /// `kluis audit verify-export EXPORT ARGS` as the oversight body runs it: no state
    /// directory, no key.
    fn verify_export_alone(&self, export: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
        Command::cargo_bin("kluis")
            .unwrap()
            .env_remove("KLUIS_HOME")
            .env("HOME", self.dir.path().join("nowhere"))
            .env_remove("XDG_DATA_HOME")
            .args(["audit", "verify-export"])
            .arg(export)
            .args(args)
            .assert()
    }

    fn head_hash(&self) -> String {
        let out = self.kluis("").args(["audit", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let at = text.find("head hash ").unwrap() + "head hash ".len();
        text[at..at + 64].to_owned()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn wiping_the_log_rows_is_caught() {
    let env = Env::new();
    env.sql("DELETE FROM audit; DELETE FROM audit_head;");
    env.verify_fails("the head file beside the master key records entry 2, but the log is empty");
    // Without the head file too, the log is still not allowed to be empty.
    std::fs::remove_file(env.home().join("audit.head")).unwrap();
    env.verify_fails("the audit log is empty");
    env.verify_fails("1 registered projects, 1 sealed project keys, 1 project directories");
}

#[test]
fn dropping_the_log_tables_is_caught_by_every_command() {
    let env = Env::new();
    env.sql("DROP TABLE audit; DROP TABLE audit_head;");
    env.verify_fails("kluis.db has no table audit, no table audit_head");
    env.kluis("")
        .args(["project", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tampering detected"));
}

#[test]
fn deleting_the_database_is_caught_and_no_empty_one_is_made() {
    let env = Env::new();
    std::fs::remove_file(env.home().join("kluis.db")).unwrap();
    env.verify_fails("kluis.db is missing beside the master key");
    env.kluis("")
        .args(["project", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was deleted"));
    assert!(!env.home().join("kluis.db").exists());
}

#[test]
fn a_new_state_directory_is_not_started_over_the_remains_of_one() {
    let env = Env::new();
    for file in ["kluis.db", "master.key"] {
        std::fs::remove_file(env.home().join(file)).unwrap();
    }
    env.kluis("mallory")
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "holds audit.head, projects/99-001 of an earlier state directory",
        ));
    // Without the head file, the project directory still gives it away.
    std::fs::remove_file(env.home().join("audit.head")).unwrap();
    env.kluis("mallory")
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("holds projects/99-001"));
    assert!(!env.home().join("master.key").exists());
}

#[test]
fn an_edited_authorisation_stops_every_command_on_it() {
    let env = Env::new();
    // Add a reviewer and move the retention date, and make the stored sha256 fit.
    let conn = rusqlite::Connection::open(env.home().join("kluis.db")).unwrap();
    let text: String = conn
        .query_row("SELECT authorisation FROM projects", [], |r| r.get(0))
        .unwrap();
    let edited = text
        .replace(
            "reviewer = [\"vera\", \"victor\"]",
            "reviewer = [\"vera\", \"victor\", \"mallory\"]",
        )
        .replace("until = 2031-12-31", "until = 2099-12-31");
    assert_ne!(edited, text);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(edited.as_bytes()))
    };
    conn.execute(
        "UPDATE projects SET authorisation = ?1, authorisation_sha256 = ?2",
        rusqlite::params![edited, sha],
    )
    .unwrap();
    drop(conn);
    env.verify_fails("the stored record of project 99-001 was changed outside kluis");
    for args in [
        &["project", "show", "99-001"][..],
        &["output", "list", "--project", "99-001"][..],
        &["report", "--project", "99-001", "--out", "r.html"][..],
    ] {
        env.kluis("mallory")
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("tampering detected"));
    }
}

#[test]
fn an_unknown_rule_set_name_and_a_file_in_the_working_directory_are_refused() {
    let env = Env::new();
    let strict = std::fs::read_to_string(DEMO)
        .unwrap()
        .replace("id = \"99/001\"", "id = \"99/002\"")
        .replace("rules = \"default\"", "rules = \"strict\"");
    std::fs::write(env.dir.path().join("strict-auth.toml"), &strict).unwrap();
    // A file named like the rule set, in the working directory, that turns every rule off.
    let lax = "name = \"strict\"\nversion = 1\n[threshold]\nmin_units = 1\n[dominance]\nenabled = false\nn = 2\nk = 0.9\n[p_percent]\nenabled = false\np = 0.1\n";
    std::fs::write(env.dir.path().join("strict"), lax).unwrap();
    for args in [
        &["authorisation", "check", "strict-auth.toml"][..],
        &["project", "create", "--authorisation", "strict-auth.toml"][..],
    ] {
        env.kluis("sam")
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "names the rule set `strict`, which is not built in",
            ));
    }
    env.kluis("")
        .args(["project", "show", "99-002"])
        .assert()
        .code(2);

    // Given explicitly by the steward, it is sealed into the project: changing the file later,
    // or the sealed copy in the database, changes nothing but a refusal.
    let rules = env.dir.path().join("strict.toml");
    std::fs::write(
        &rules,
        "name = \"strict\"\nversion = 1\n[threshold]\nmin_units = 20\n",
    )
    .unwrap();
    env.kluis("sam")
        .args(["authorisation", "check", "strict-auth.toml", "--rules"])
        .arg(&rules)
        .assert()
        .success();
    env.kluis("sam")
        .args([
            "project",
            "create",
            "--authorisation",
            "strict-auth.toml",
            "--rules",
        ])
        .arg(&rules)
        .assert()
        .success();
    std::fs::write(&rules, lax).unwrap();
    env.kluis("")
        .args(["project", "show", "99-002"])
        .assert()
        .success()
        .stdout(predicate::str::contains("strict (sealed from"));
    env.kluis("").args(["audit", "verify"]).assert().success();
    env.sql("UPDATE projects SET rules = replace(rules, 'min_units = 20', 'min_units = 1') WHERE id = '99-002'");
    env.verify_fails("the stored record of project 99-002 was changed outside kluis");
    std::fs::create_dir_all(env.dir.path().join("job")).unwrap();
    std::fs::write(
        env.dir.path().join("job/job.toml"),
        "name = \"j\"\nproject = \"99/002\"\n\n[[output]]\nname = \"n\"\nsql = \"n.sql\"\nstatistic = \"count\"\n",
    )
    .unwrap();
    std::fs::write(
        env.dir.path().join("job/n.sql"),
        "SELECT sex, count(*) AS n FROM person_years GROUP BY sex",
    )
    .unwrap();
    env.kluis("rita")
        .args([
            "job",
            "run",
            "job",
            "--on",
            "full",
            "--project",
            "99-002",
            "--warehouse",
            "nowhere",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the stored record of project 99-002 was changed",
        ));
}

#[test]
fn a_rollback_of_the_whole_state_directory_is_caught_against_a_checkpoint() {
    let env = Env::new();
    let old = env.dir.path().join("old-state");
    copy_tree(&env.home(), &old);
    let checkpoint = env.dir.path().join("checkpoint.json");
    env.kluis("sam")
        .args(["audit", "checkpoint"])
        .arg(&checkpoint)
        .assert()
        .success()
        .stdout(predicate::str::contains("checkpoint of entry 3"));
    env.kluis("sam")
        .args([
            "project",
            "destroy",
            "99-001",
            "--reason",
            "no longer needed",
        ])
        .assert()
        .success();
    let head = env.head_hash();
    env.kluis("")
        .args(["audit", "verify", "--expect-head", &head, "--checkpoint"])
        .arg(&checkpoint)
        .assert()
        .success()
        .stdout(predicate::str::contains("holds checkpoint"));

    // The older copy, head file and all, is a consistent state of its own...
    std::fs::remove_dir_all(env.home()).unwrap();
    std::fs::rename(&old, env.home()).unwrap();
    env.kluis("").args(["audit", "verify"]).assert().success();
    // ...but not the one the overseer last saw.
    env.verify_fails_with(
        &["--expect-head".as_ref(), head.as_ref()],
        "rolled back to an older copy or replaced",
    );
    env.verify_fails_with(&["--checkpoint".as_ref(), checkpoint.as_ref()], "(entry 3)");

    // The oversight body can check the same on an export, with no state directory or key.
    let export = env.dir.path().join("audit.jsonl");
    env.kluis("")
        .args(["audit", "export"])
        .arg(&export)
        .assert()
        .success();
    env.verify_export_alone(&export, &["--expect-head", &head])
        .code(1)
        .stderr(predicate::str::contains(
            "rolled back to an older copy or replaced",
        ));
    let first_head = {
        let text = std::fs::read_to_string(&export).unwrap();
        let entry: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        entry["hash"].as_str().unwrap().to_owned()
    };
    env.verify_export_alone(&export, &["--expect-head", &first_head])
        .success()
        .stdout(predicate::str::contains(
            "audit export chain intact: 2 entries",
        ))
        .stdout(predicate::str::contains("as entry 2"));

    // A checkpoint edited to point elsewhere is not this state directory's.
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    std::fs::write(&checkpoint, text.replacen("\"seq\": 3", "\"seq\": 2", 1)).unwrap();
    env.verify_fails_with(
        &["--checkpoint".as_ref(), checkpoint.as_ref()],
        "not sealed by this state directory",
    );
}

#[test]
fn a_state_directory_deleted_and_started_again_fails_the_overseers_checkpoint() {
    let env = Env::new();
    let checkpoint = env.dir.path().join("checkpoint.json");
    env.kluis("sam")
        .args(["audit", "checkpoint"])
        .arg(&checkpoint)
        .assert()
        .success();
    let head = env.head_hash();
    // Everything goes, and a new state directory takes its place: it verifies on its own...
    std::fs::remove_dir_all(env.home()).unwrap();
    env.kluis("mallory").arg("init").assert().success();
    env.kluis("").args(["audit", "verify"]).assert().success();
    // ...but holds neither what the oversight body was given nor a checkpoint it can open.
    env.verify_fails_with(
        &["--expect-head".as_ref(), head.as_ref()],
        "rolled back to an older copy or replaced",
    );
    env.verify_fails_with(
        &["--checkpoint".as_ref(), checkpoint.as_ref()],
        "not sealed by this state directory",
    );
}

#[test]
fn an_older_database_under_a_newer_head_file_is_caught() {
    let env = Env::new();
    let copy = env.dir.path().join("old.db");
    std::fs::copy(env.home().join("kluis.db"), &copy).unwrap();
    env.kluis("rita")
        .args(["project", "create", "--authorisation", DEMO])
        .assert()
        .code(2);
    std::fs::copy(&copy, env.home().join("kluis.db")).unwrap();
    env.verify_fails("records entry 3, but the log ends at entry 2");
}

#[test]
fn a_destroyed_project_brought_back_from_an_older_copy_is_caught_by_every_command() {
    let env = Env::new();
    let copy = env.dir.path().join("old.db");
    std::fs::copy(env.home().join("kluis.db"), &copy).unwrap();
    env.kluis("sam")
        .args(["project", "destroy", "99-001", "--reason", "finished"])
        .assert()
        .success();
    // Its sealed row and its key, as they were before, put back from the copy.
    env.sql(&format!(
        "ATTACH '{}' AS old;
         DELETE FROM projects; INSERT INTO projects SELECT * FROM old.projects;
         DELETE FROM keys; INSERT INTO keys SELECT * FROM old.keys;",
        copy.display()
    ));
    env.verify_fails("records the destruction of project 99-001 generation 1, but it is registered as not destroyed");
    for args in [
        &["project", "show", "99-001"][..],
        &["report", "--project", "99-001", "--out", "r.html"][..],
    ] {
        env.kluis("sam")
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("brought back from an older copy"));
    }
}

#[test]
fn a_project_deleted_from_the_database_is_caught() {
    let env = Env::new();
    env.sql("DELETE FROM keys; DELETE FROM projects;");
    std::fs::remove_dir_all(env.home().join("projects/99-001")).unwrap();
    env.verify_fails(
        "the audit log registered project 99-001, but the state holds no project 99-001",
    );
}

#[test]
fn destruction_needs_the_steward_and_the_real_day() {
    let env = Env::new();
    // Registered (through the library) on a day before its retention date of 2026-06-30, which
    // has really passed.
    let short = std::fs::read_to_string(DEMO)
        .unwrap()
        .replace("id = \"99/001\"", "id = \"99/003\"")
        .replace("until = 2031-12-31", "until = 2026-06-30");
    // And another, due too, whose steward is tom.
    let toms = short
        .replace("id = \"99/003\"", "id = \"99/004\"")
        .replace("steward = [\"sam\"]", "steward = [\"tom\"]");
    let state = kluis_project::State::open(&env.home()).unwrap();
    for (text, steward) in [(&short, "sam"), (&toms, "tom")] {
        let authorisation = kluis_project::Authorisation::parse(text, "short.toml").unwrap();
        state
            .create_project(
                &authorisation,
                text,
                "short.toml",
                steward,
                "2026-02-01".parse().unwrap(),
            )
            .unwrap();
    }
    drop(state);
    let map = env.home().join("projects/99-003/pseudonyms.map");
    std::fs::write(&map, b"stand-in for the encrypted map").unwrap();
    let toms_map = env.home().join("projects/99-004/pseudonyms.map");
    std::fs::write(&toms_map, b"stand-in for the encrypted map").unwrap();

    // A steward-less enforcement, a rehearsed later day, and an early destruction by anyone but
    // the steward are refused, and nothing goes.
    let mut refused = vec![
        env.kluis("nobody").args(["retention", "enforce"]).assert(),
        env.kluis("rita").args(["retention", "enforce"]).assert(),
        env.kluis("sam")
            .env("KLUIS_TODAY", "2032-01-05")
            .args(["retention", "enforce"])
            .assert(),
        env.kluis("nobody")
            .env("KLUIS_TODAY", "2032-01-05")
            .args(["project", "destroy", "99-001", "--reason", "x"])
            .assert(),
    ];
    for assert in refused.drain(..) {
        assert.code(2);
    }
    env.kluis("sam")
        .env("KLUIS_TODAY", "2032-01-05")
        .args(["retention", "enforce"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("rehearsed day"));
    assert!(map.exists());
    env.kluis("")
        .args(["project", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("99-001       active"))
        .stdout(predicate::str::contains("99-003       expired"));

    // A dry run may rehearse; the steward destroys on the real day.
    env.kluis("sam")
        .env("KLUIS_TODAY", "2032-01-05")
        .args(["retention", "enforce", "--dry-run"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("would destroy project 99-001"))
        .stdout(predicate::str::contains("would destroy project 99-003"))
        .stderr(predicate::str::contains(
            "left for its steward to destroy: 99-004",
        ));
    assert!(map.exists());
    assert!(toms_map.exists());
    // Each steward destroys their own; tom's project is left for him, and said so.
    env.kluis("sam")
        .args(["retention", "enforce"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("destroyed project 99-003"))
        .stderr(predicate::str::contains(
            "sam is not a steward of this project, left for its steward to destroy: 99-004 (retention date 2026-06-30 passed; steward tom)",
        ));
    assert!(!map.exists());
    assert!(toms_map.exists());
    env.kluis("tom")
        .args(["retention", "enforce"])
        .assert()
        .success()
        .stdout(predicate::str::contains("destroyed project 99-004"));
    assert!(!toms_map.exists());
    env.kluis("")
        .args(["project", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("99-001       active"))
        .stdout(predicate::str::contains("99-003       destroyed"))
        .stdout(predicate::str::contains("99-004       destroyed"));
    env.kluis("").args(["audit", "verify"]).assert().success();
}
