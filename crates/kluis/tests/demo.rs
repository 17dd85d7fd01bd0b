//! `kluis demo` on a small population: each step's outcome, read back from what it wrote.

use std::path::Path;

use assert_cmd::Command;

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_demo_does_every_step_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("demo");
    let output = Command::cargo_bin("kluis")
        .unwrap()
        .args(["demo", "--home"])
        .arg(&home)
        .args(["--persons", "20000"])
        .env_remove("KLUIS_HOME")
        .env_remove("KLUIS_ACTOR")
        .env_remove("KLUIS_TODAY")
        .env_remove("KLUIS_WAREHOUSE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // 1. A calibrated warehouse, with the calibration summary rather than all of it.
    assert!(stdout.contains("$ kluis generate --persons 20000"));
    assert!(stdout.contains("checks pass"), "{stdout}");
    let calibration: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.join("warehouse/calibration.json")).unwrap(),
    )
    .unwrap();
    let checks = calibration["checks"].as_array().unwrap().len();
    let shown = stdout
        .lines()
        .filter(|l| l.trim_end().ends_with(" ok") || l.trim_end().ends_with("FAIL"))
        .count();
    assert!(
        shown > 0 && shown < checks,
        "a summary: {shown} of {checks} checks shown"
    );

    // 2. The project exists, with its key in the state directory.
    let project = home.join("state/projects/99-001");
    assert!(project.is_dir());

    // 3. The extract was written, risk-judged and verified.
    let extract = home.join("extract");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(extract.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["authorisation"], "99/001");
    let risk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(extract.join("risk.json")).unwrap()).unwrap();
    assert_eq!(
        risk["person_years"]["below_k"], 0,
        "suppression to k was applied"
    );
    assert!(stdout.contains("risk.json:"));
    assert!(stdout.contains("$ kluis extract verify"));

    // 4. The job ran on the sample, with its forecast.
    let sample = home.join("jobs/diversity/results/sample");
    for output in [
        "foreign_origin_share",
        "federal_statuut_by_origin",
        "federal_education_by_origin",
    ] {
        assert!(
            sample.join(format!("{output}.csv")).is_file(),
            "{output} on the sample"
        );
    }
    assert!(stdout.contains("would probably fail"));

    // 5 and 6. On the full population: cells withheld with their reasons, then released by a
    // reviewer other than the submitter.
    assert!(stdout.contains("Why cells are withheld:"));
    assert!(stdout.contains("threshold") && stdout.contains("fewer than 10 persons"));
    assert!(stdout.contains("audit passed"));
    let released = project.join("released");
    let mut tables: Vec<_> = std::fs::read_dir(&released)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    tables.sort();
    assert_eq!(
        tables.len(),
        3,
        "every output of the job released: {tables:?}"
    );
    let mut withheld = 0;
    for table in &tables {
        let rows = csv_rows(table);
        assert!(
            rows.iter().any(|r| r.get(r.len() - 1) == Some("ok")),
            "{} publishes some cells: {:?}",
            table.display(),
            rows.iter().take(3).collect::<Vec<_>>()
        );
        withheld += rows
            .iter()
            .filter(|r| r.get(r.len() - 1) == Some("withheld"))
            .inspect(|r| assert_eq!(r.get(r.len() - 2), Some(""), "withheld means empty"))
            .count();
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(table.with_extension("report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(report["released_by"], "vera");
    }
    assert!(withheld > 0, "a small population has cells to withhold");

    // 7. The report page holds the released tables and their charts.
    let page = std::fs::read_to_string(home.join("report.html")).unwrap();
    assert!(page.contains("99/001") && page.contains("foreign_origin_share"));
    assert!(page.contains("<svg"), "the report draws the series");

    // 8. The audit log verifies and records the steps.
    assert!(stdout.contains("audit log intact"));
    let actions: Vec<String> = std::fs::read_to_string(home.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].to_string())
        .collect();
    for action in [
        "project.create",
        "extract",
        "job run",
        "output release",
        "report",
    ] {
        assert!(
            actions.iter().any(|a| a.contains(action)),
            "the audit log records `{action}`: {actions:?}"
        );
    }

    // 9. The real authorisation is refused: its retention date has passed.
    assert!(
        stdout.contains("refused") && stdout.contains("23/224"),
        "{stdout}"
    );
    assert!(!home.join("state/projects/23-224").exists());

    // The demo prints where everything is, and no INSZ (11 digits) anywhere.
    assert!(stdout.contains("Where everything is"));
    assert!(stdout.contains(&released.display().to_string()) || stdout.contains("released tables"));
    // Hashes and key ids (hex words of 16 or 64 digits) are left out: a random one holds 11
    // decimal digits in a row about once in ten runs.
    let insz_like = stdout
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| {
            !(matches!(word.len(), 16 | 64) && word.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .flat_map(|word| word.split(|c: char| !c.is_ascii_digit()))
        .any(|run| run.len() == 11);
    assert!(!insz_like, "no INSZ-like number in the narration");
}

#[test]
fn the_demo_refuses_a_home_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    Command::cargo_bin("kluis")
        .unwrap()
        .args(["demo", "--home"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("is not empty"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing touched"
    );
}
