//! End-to-end: `kluis report` writes one self-contained HTML page of a project's released tables
//! (withheld cells marked with their reasons, charts with gaps), its authorisation and retention
//! date and its audit summary; the page renders in headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, REAL_DAY};
use predicates::prelude::*;

/// The share of employees of foreign origin by year, employer group and age class: fine enough
/// for a test population to have cells that must be withheld.
const SHARE_FOREIGN: &str = "SELECT year, employer_type, age, \
     avg(CASE WHEN origin IN ('BE', 'BE_UNDETERMINED', 'UNKNOWN') THEN 0.0 ELSE 1.0 END) AS share_foreign \
     FROM person_years GROUP BY year, employer_type, age";
/// No year: a table without a chart.
const BY_SEX: &str =
    "SELECT sex, count(DISTINCT pseudonym) AS persons FROM person_years GROUP BY sex";

/// Runs the job on the full view as rita and releases both outputs as vera.
fn release_a_job(env: &Env) {
    let job = env.job(
        "diversity",
        &[
            ("share_foreign", "share", SHARE_FOREIGN),
            ("by_sex", "count", BY_SEX),
        ],
    );
    env.run_full("rita", &job).assert().success();
    for id in ["99-001-0001", "99-001-0002"] {
        env.kluis("vera", REAL_DAY)
            .args(["output", "release", id, "--reason", "checked the report"])
            .assert()
            .success();
    }
}

fn report(env: &Env, actor: &str, today: &str, out: &Path) -> assert_cmd::assert::Assert {
    env.kluis(actor, today)
        .args(["report", "--project", "99-001", "--out"])
        .arg(out)
        .assert()
}

/// The longest whole number in `text` (the digits after a decimal point are a fraction, not a
/// number someone could be identified by), and the longest run of hex digits.
fn longest_runs(text: &str) -> (usize, usize) {
    let whole = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .flat_map(|number| number.split('.').next())
        .map(str::len)
        .max()
        .unwrap_or(0);
    let hex = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    (whole, hex)
}

#[test]
fn the_report_holds_the_project_its_released_tables_with_withheld_cells_charts_and_the_audit_trail()
{
    let env = Env::new(1500);
    let page = env.path("out").join("report.html");
    std::fs::create_dir(env.path("out")).unwrap();

    // Before any release: a page that says so.
    report(&env, "rita", REAL_DAY, &page)
        .success()
        .stdout(predicate::str::contains("0 released tables"));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("No table of this project has been released yet"));
    assert!(!html.contains("<svg"));

    release_a_job(&env);
    let made = report(&env, "vera", REAL_DAY, &page);
    let stdout = String::from_utf8_lossy(&made.get_output().stdout).to_string();
    made.success()
        .stdout(predicate::str::contains("2 released tables"))
        .stdout(predicate::str::contains("audit log verifies"));
    let html = std::fs::read_to_string(&page).unwrap();

    // The project, its authorisation and retention date.
    assert!(html.contains("Careers and Origin (demo)"));
    assert!(html.contains("<strong>99/001</strong>"));
    assert!(html.contains("Demo University"));
    assert!(html.contains("<strong class=\"retention\">2031-12-31</strong>"));

    // The released tables, as released.
    assert!(html.contains("<article class=\"released\" id=\"t-99-001-0001\">"));
    assert!(html.contains("<code>share_foreign</code>"));
    assert!(html.contains("<article class=\"released\" id=\"t-99-001-0002\">"));
    let csv = std::fs::read_to_string(env.project_dir().join("released/99-001-0001.csv")).unwrap();
    let rows = csv.lines().count() - 1;
    let share = html
        .split("id=\"t-99-001-0001\"")
        .nth(1)
        .unwrap()
        .split("</article>")
        .next()
        .unwrap();
    assert_eq!(share.matches("<tr").count(), rows + 1, "one row per cell");

    // Every withheld cell of the CSV is shaded on the page with its reasons.
    let withheld = csv.lines().filter(|l| l.ends_with(",withheld")).count();
    assert!(
        withheld > 0,
        "the test population gives withheld cells: {csv}"
    );
    assert_eq!(
        share.matches("<td class=\"num withheld\"").count(),
        withheld,
        "{share}"
    );
    let released: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.project_dir().join("released/99-001-0001.report.json"))
            .unwrap(),
    )
    .unwrap();
    let held = released["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "primary")
        .expect("a primary cell");
    let reason = held["reasons"][0].as_str().unwrap();
    assert!(
        share.contains(&format!(
            "<td class=\"status held\">withheld: <a href=\"#why-{}\">{reason}</a>",
            reason.replace('_', "-")
        )),
        "{reason}: {share}"
    );
    assert!(html.contains(&format!("<dt id=\"why-{}\">", reason.replace('_', "-"))));

    // Charts for share_foreign only (by_sex has no year): by employer group (3 values, fewer
    // than the age classes), then by age class, each with its gaps explained.
    let ages: std::collections::BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2))
        .filter(|age| *age != "Total")
        .collect();
    // A chart has at most 10 lines: the age classes get one when they fit.
    let charts = if ages.len() <= 10 { 2 } else { 1 };
    assert_eq!(html.matches("<svg class=\"chart\"").count(), charts);
    assert_eq!(share.matches("<svg class=\"chart\"").count(), charts);
    assert!(share.contains("share_foreign by year and employer_type; age at <code>Total</code>"));
    assert!(
        stdout.contains(&format!(
            "{charts} {};",
            if charts == 1 { "chart" } else { "charts" }
        )),
        "the command counts the charts it drew"
    );
    assert!(share.contains("Gaps are withheld values"));

    // The audit trail summary, verified.
    assert!(html.contains("<code>output release</code></td><td class=\"num\">2</td><td>vera</td>"));
    assert!(html.contains("<span class=\"verified\">verifies</span>"));

    // Released material only: no INSZ-like numbers (11 digits), no keys or hashes.
    let (digits, hex) = longest_runs(&html);
    assert!(digits < 11, "a run of {digits} digits");
    assert!(hex < 32, "a run of {hex} hex digits");
    assert!(!html.to_lowercase().contains("insz"));
    // Self-contained.
    for external in ["<link", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "{external}");
    }
    // No temporary file left beside it.
    let left: Vec<_> = std::fs::read_dir(env.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("report.html")]);

    // Making it is audited; someone without a role is refused, and that is audited too.
    let audit = env.audit();
    assert_eq!(audit.matches(" report ").count(), 2, "{audit}");
    report(&env, "mallory", REAL_DAY, &env.path("mallory.html"))
        .code(2)
        .stderr(predicate::str::contains(
            "a report needs a role in the project",
        ));
    assert!(!env.path("mallory.html").exists());
    assert!(env.audit().contains("\"attempted\":\"report\""));
    report(&env, "rita", REAL_DAY, &env.path("missing/report.html"))
        .code(2)
        .stderr(predicate::str::contains("does not exist"));

    // A released file that does not parse is named.
    let bad_csv = env.project_dir().join("released/99-001-0002.csv");
    let text = std::fs::read_to_string(&bad_csv).unwrap();
    std::fs::write(&bad_csv, text.replacen(",ok", "x,ok", 1)).unwrap();
    report(&env, "rita", REAL_DAY, &page)
        .code(1)
        .stderr(predicate::str::contains("99-001-0002.csv: row 2"));
    std::fs::write(&bad_csv, text).unwrap();

    // Released tables outlive the project: the page can still be made once it is destroyed.
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
    report(&env, "rita", "2032-01-05", &page)
        .success()
        .stdout(predicate::str::contains("2 released tables"));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<span class=\"badge destroyed\">destroyed</span>"));
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// The DOM Chromium ends with after loading `page` (its scripts run), or a panic saying why not.
fn chromium_dom(page: &Path, profile: &Path) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `bash scripts/setup-test-env.sh` to install Chromium for this test"
    );
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let stdout = profile.join("dom.html");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish rendering {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "Chromium failed on {url}: {status}");
    std::fs::read_to_string(stdout).unwrap()
}

#[test]
fn the_report_renders_in_chromium_with_its_charts() {
    let env = Env::new(1500);
    release_a_job(&env);
    let page: PathBuf = env.path("report.html");
    report(&env, "sam", REAL_DAY, &page).success();
    let html = std::fs::read_to_string(&page).unwrap();
    let charts = html.matches("<svg class=\"chart\"").count();
    assert!(charts >= 1, "the released share has a year dimension");

    let profile = tempfile::tempdir().unwrap();
    let dom = chromium_dom(&page, profile.path());
    assert!(
        dom.contains(&format!("data-rendered-charts=\"{charts}\"")),
        "Chromium laid out {} of {charts} charts with a size:\n{}",
        dom.split("data-rendered-charts=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("none (the page's script did not run)"),
        &dom[..dom.len().min(2000)]
    );
    // It parsed the whole page: the last section and the tables are in the DOM.
    assert!(dom.contains("id=\"audit\""));
    assert_eq!(
        dom.matches("<table class=\"released\"").count(),
        html.matches("<table class=\"released\"").count()
    );
}
