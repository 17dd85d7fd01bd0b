//! End-to-end: the review of a full run's outputs (four eyes, audit, releases directory) and
//! what retention destroys.

mod common;

use common::{Env, REAL_DAY};
use predicates::prelude::*;

const BY_REGION: &str =
    "SELECT region, count(DISTINCT pseudonym) AS persons FROM person_years GROUP BY region";
const BY_SEX: &str = "SELECT sex, count(*) AS person_years FROM person_years GROUP BY sex";

/// Makes victor a researcher too, so the four-eyes rule (not the role) is what stops him.
/// The job of these tests: persons by region and by sex, outputs 0001 and 0002 of a run.
fn careers(env: &Env) -> std::path::PathBuf {
    env.job(
        "careers",
        &[
            ("by_region", "count", BY_REGION),
            ("by_sex", "count", BY_SEX),
        ],
    )
}

fn victor_researches(env: &Env) {
    let path = env.path("demo.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "researcher = [\"rita\"]",
            "researcher = [\"rita\", \"victor\"]",
        )
        .replace("id = \"99/001\"", "id = \"99/002\"");
    std::fs::write(&path, text).unwrap();
    env.kluis("sam", REAL_DAY)
        .args(["project", "create", "--authorisation"])
        .arg(&path)
        .assert()
        .success();
}

#[test]
fn release_needs_another_reviewer_and_release_and_reject_are_audited() {
    let env = Env::new(1500);
    victor_researches(&env);
    let job = careers(&env);
    let text = std::fs::read_to_string(job.join("job.toml"))
        .unwrap()
        .replace("99/001", "99/002");
    std::fs::write(job.join("job.toml"), text).unwrap();
    let mut run = env.kluis("victor", REAL_DAY);
    run.args(["job", "run"])
        .arg(&job)
        .args(["--on", "full", "--project", "99-002", "--warehouse"])
        .arg(env.warehouse())
        .assert()
        .success();
    let before: Vec<_> = std::fs::read_dir(&job)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    // The listing shows no values, and only to someone with a role in the project; a
    // researcher cannot look at unprotected values.
    env.kluis("vera", REAL_DAY)
        .args(["output", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("99-002-0001"))
        .stdout(predicate::str::contains("pending"));
    env.kluis("", REAL_DAY)
        .args(["output", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--as NAME"));
    env.kluis("mallory", REAL_DAY)
        .args(["output", "list", "--project", "99-002"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "mallory has no role in project 99-002",
        ));
    env.kluis("rita", REAL_DAY)
        .args(["output", "show", "99-002-0001"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs the reviewer role"));
    env.kluis("vera", REAL_DAY)
        .args(["output", "show", "99-002-0001"])
        .assert()
        .success()
        .stdout(predicate::str::contains("submitted by victor"));

    // Four eyes: victor reviews, but submitted it.
    env.kluis("victor", REAL_DAY)
        .args(["output", "release", "99-002-0001", "--reason", "looks fine"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("four eyes"));
    // Not a reviewer at all.
    env.kluis("rita", REAL_DAY)
        .args(["output", "release", "99-002-0001", "--reason", "mine"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("needs the reviewer role"));
    let released = env
        .path("state")
        .join("projects")
        .join("99-002")
        .join("released");
    let nothing = |dir: &std::path::Path| {
        std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
    };
    assert!(nothing(&released), "nothing left before a release");

    env.kluis("vera", REAL_DAY)
        .args([
            "output",
            "release",
            "99-002-0001",
            "--reason",
            "checked the report",
        ])
        .assert()
        .success();
    let csv = std::fs::read_to_string(released.join("99-002-0001.csv")).unwrap();
    assert!(csv.starts_with("region,persons,status\n"), "{csv}");
    assert!(csv.contains("\nTotal,"), "{csv}");
    let report = std::fs::read_to_string(released.join("99-002-0001.report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["released_by"], "vera");
    for cell in report["cells"].as_array().unwrap() {
        assert!(
            cell.get("value").is_none() && cell.get("units").is_none(),
            "{cell}"
        );
        if cell["status"] == "primary" || cell["status"] == "secondary" {
            assert!(cell["published"].is_null());
        }
    }
    // Released once only; the ledger has it.
    env.kluis("victor", REAL_DAY)
        .args(["output", "release", "99-002-0001", "--reason", "again"])
        .assert()
        .code(2);
    env.kluis("vera", REAL_DAY)
        .args(["output", "release", "99-002-0001", "--reason", "again"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is released; only a pending output can be released",
        ));
    assert!(
        env.path("state")
            .join("projects/99-002/ledger/99-002-0001.units")
            .is_file()
    );

    // Reject the other; it cannot be released afterwards.
    env.kluis("vera", REAL_DAY)
        .args(["output", "reject", "99-002-0002", "--reason", "not needed"])
        .assert()
        .success();
    env.kluis("victor", REAL_DAY)
        .args(["output", "reject", "99-002-0002", "--reason", ""])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--reason is empty"));
    env.kluis("vera", REAL_DAY)
        .args([
            "output",
            "release",
            "99-002-0002",
            "--reason",
            "changed my mind",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is rejected"));
    assert!(!released.join("99-002-0002.csv").exists());
    let outputs = env.outputs();
    assert_eq!(outputs[1]["status"], "rejected");
    assert_eq!(outputs[1]["decision"]["by"], "vera");

    let audit = env.audit();
    assert!(audit.contains("output release"), "{audit}");
    assert!(audit.contains("output reject"), "{audit}");
    assert!(
        audit.contains("four eyes"),
        "the refusal is audited: {audit}"
    );
    // Unreleased outputs never left the state directory.
    let after: Vec<_> = std::fs::read_dir(&job)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn retention_destroys_pending_outputs_and_the_ledger_but_keeps_released_tables() {
    let env = Env::new(1500);
    env.run_full("rita", &careers(&env)).assert().success();
    env.kluis("vera", REAL_DAY)
        .args(["output", "release", "99-001-0001", "--reason", "fine"])
        .assert()
        .success();
    let dir = env.project_dir();
    assert!(dir.join("ledger").is_dir() && dir.join("outputs/99-001-0002").is_dir());
    env.kluis("sam", REAL_DAY)
        .args([
            "project",
            "destroy",
            "99-001",
            "--reason",
            "the study is finished",
        ])
        .assert()
        .success();
    assert!(!dir.join("ledger").join("99-001-0001.units").exists());
    assert!(
        !dir.join("outputs")
            .join("99-001-0002")
            .join("units.bin")
            .exists()
    );
    assert!(
        !dir.join("outputs")
            .join("99-001-0002")
            .join("report.json")
            .exists()
    );
    assert!(dir.join("released").join("99-001-0001.csv").is_file());
    assert!(
        dir.join("released")
            .join("99-001-0001.report.json")
            .is_file()
    );
}

#[test]
fn a_pending_output_or_ledger_changed_outside_kluis_stops_every_check_against_it() {
    let env = Env::new(1500);
    let job = careers(&env);
    env.run_full("rita", &job).assert().success();
    // A pending output's report (which cells are published) edited after it was checked.
    let report = env.project_dir().join("outputs/99-001-0002/report.json");
    let checked = std::fs::read(&report).unwrap();
    let mut edited = checked.clone();
    edited.push(b' ');
    std::fs::write(&report, &edited).unwrap();
    env.kluis("vera", REAL_DAY)
        .args(["output", "release", "99-001-0001", "--reason", "fine"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "outputs/99-001-0002/report.json, which audit entry",
        ));
    std::fs::write(&report, &checked).unwrap();
    env.kluis("vera", REAL_DAY)
        .args(["output", "release", "99-001-0001", "--reason", "fine"])
        .assert()
        .success();
    // Releasing and rejecting change the output's record, and vouch for it again.
    env.kluis("vera", REAL_DAY)
        .args(["output", "reject", "99-001-0002", "--reason", "not needed"])
        .assert()
        .success();
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .success();
    // Emptying the released output's person sets would let a later table difference it.
    let units = env.project_dir().join("ledger/99-001-0001.units");
    std::fs::write(&units, b"").unwrap();
    let said = "ledger/99-001-0001.units, which audit entry";
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(said))
        .stderr(predicate::str::contains("was changed outside kluis"));
    env.kluis("victor", REAL_DAY)
        .args(["output", "release", "99-001-0002", "--reason", "fine"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(said));
    env.run_full("rita", &job)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(said));
    // Deleted altogether, likewise.
    std::fs::remove_file(&units).unwrap();
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was deleted outside kluis"));
}

/// The provider-wide ledger (`STATE/ledger/`, which outlives projects) and a project's
/// provider-internal numbers (`persons.bin`) decide what other projects may publish: emptied,
/// edited or deleted outside kluis, they would let a second project difference a release.
#[test]
fn the_provider_wide_ledger_or_the_persons_numbers_changed_outside_kluis_stop_every_check() {
    let env = Env::new(1500);
    let job = careers(&env);
    env.run_full("rita", &job).assert().success();
    env.kluis("vera", REAL_DAY)
        .args(["output", "release", "99-001-0001", "--reason", "fine"])
        .assert()
        .success();
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .success();
    let units = env.path("state").join("ledger/99-001-0001.units");
    assert!(units.is_file());
    let kept = std::fs::read(&units).unwrap();
    std::fs::write(&units, b"").unwrap();
    let said = "ledger/99-001-0001.units, which audit entry";
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(said))
        .stderr(predicate::str::contains("provider-wide ledger"));
    env.run_full("rita", &job)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(said));
    env.kluis("vera", REAL_DAY)
        .args(["output", "release", "99-001-0002", "--reason", "fine"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(said));
    std::fs::remove_file(&units).unwrap();
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was deleted outside kluis"));
    std::fs::write(&units, &kept).unwrap();
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .success();
    // The persons' numbers: renumbered, this project's persons would not meet other projects'.
    let persons = env.project_dir().join("persons.bin");
    let mut numbers = std::fs::read(&persons).unwrap();
    numbers.reverse();
    std::fs::write(&persons, &numbers).unwrap();
    env.kluis("vera", REAL_DAY)
        .args(["output", "release", "99-001-0002", "--reason", "fine"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("persons.bin, which audit entry"));
    env.kluis("", REAL_DAY)
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("persons.bin"));
}
