//! No INSZ in any ingest error or reject file, whatever column it turns up in: a property test
//! over valid INSZ numbers (national register and BIS, bare or with separators) put into any
//! column of a persons or person-years file that is bad.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use assert_cmd::Command;
use kluis_model::{Insz, InszKind, PartialDate, insz::BisSex};
use proptest::prelude::*;

/// A small generated warehouse exported to CSV, made once for every case.
fn base() -> &'static (tempfile::TempDir, String, String) {
    static BASE: OnceLock<(tempfile::TempDir, String, String)> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("wh");
        Command::cargo_bin("kluis")
            .unwrap()
            .args(["generate", "--persons", "200", "--seed", "9", "--warehouse"])
            .arg(&wh)
            .assert()
            .success();
        let csv = dir.path().join("csv");
        Command::cargo_bin("kluis")
            .unwrap()
            .args(["warehouse", "export", "--warehouse"])
            .arg(&wh)
            .arg("--out")
            .arg(&csv)
            .assert()
            .success();
        let read = |name: &str| std::fs::read_to_string(csv.join(name)).unwrap();
        let (persons, years) = (read("persons.csv"), read("person_years.csv"));
        (dir, persons, years)
    })
}

/// `text` with the cell at (`row`, `column`) replaced (row 1 = the first data row).
fn with_cell(text: &str, row: usize, column: usize, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let row = row.min(lines.len() - 1).max(1);
    let mut cells: Vec<String> = lines[row].split(',').map(str::to_owned).collect();
    let column = column % cells.len();
    cells[column] = value.to_owned();
    lines[row] = cells.join(",");
    lines.join("\n") + "\n"
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn valid_insz() -> impl Strategy<Value = (Insz, bool)> {
    (
        1920i32..2025,
        0u8..=12,
        1u8..=28,
        1u16..=998,
        prop_oneof![
            Just((InszKind::Rr, BisSex::Known)),
            Just((InszKind::Bis, BisSex::Known)),
            Just((InszKind::Bis, BisSex::Unknown)),
        ],
        any::<bool>(),
    )
        .prop_map(|(year, month, day, serial, (kind, bis_sex), separated)| {
            let day = if month == 0 { 0 } else { day };
            let date = PartialDate { year, month, day };
            (Insz::generate(date, serial, kind, bis_sex), separated)
        })
}

/// The number as written into the file: 11 digits, or `YY.MM.DD-SSS.CC`.
fn written(insz: Insz, separated: bool) -> String {
    let d = insz.to_string();
    if separated {
        format!(
            "{}.{}.{}-{}.{}",
            &d[0..2],
            &d[2..4],
            &d[4..6],
            &d[6..9],
            &d[9..11]
        )
    } else {
        d
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn an_insz_in_any_column_never_reaches_the_errors_or_the_reject_file(
        (insz, separated) in valid_insz(),
        in_persons in any::<bool>(),
        row in 1usize..40,
        column in 0usize..11,
        swap in any::<bool>(),
    ) {
        let (_base, persons, years) = base();
        let dir = tempfile::tempdir().unwrap();
        let number = written(insz, separated);
        // The INSZ in one cell. Another cell is spoiled so the file is surely bad.
        let mut needles = vec![insz.to_string(), number.clone()];
        let (persons, years) = if in_persons {
            let mut text = with_cell(persons, row, column, &number);
            if swap {
                // The row's own INSZ and its sex change places.
                let own = persons.lines().nth(row.min(persons.lines().count() - 1)).unwrap()[..11].to_owned();
                text = with_cell(&text, row, 0, "M");
                text = with_cell(&text, row, 1, &own);
                needles.push(own);
            }
            (with_cell(&text, row + 1, 3, "ZZ"), years.clone())
        } else {
            let text = with_cell(years, row, column, &number);
            (persons.clone(), with_cell(&text, row + 1, 2, "09000"))
        };
        let persons = write(dir.path(), "persons.csv", &persons);
        let years = write(dir.path(), "person_years.csv", &years);
        let rejects = dir.path().join("rejects.csv");
        let output = Command::cargo_bin("kluis")
            .unwrap()
            .args(["ingest", "--persons"])
            .arg(&persons)
            .arg("--person-years")
            .arg(&years)
            .arg("--warehouse")
            .arg(dir.path().join("wh"))
            .arg("--reject-file")
            .arg(&rejects)
            .output()
            .unwrap();
        let rejected = std::fs::read_to_string(&rejects).unwrap_or_default();
        prop_assert!(!rejected.is_empty(), "the file was bad: {}", String::from_utf8_lossy(&output.stderr));
        for (what, text) in [
            ("stdout", String::from_utf8_lossy(&output.stdout).into_owned()),
            ("stderr", String::from_utf8_lossy(&output.stderr).into_owned()),
            ("the reject file", rejected),
        ] {
            for needle in &needles {
                prop_assert!(!text.contains(needle.as_str()), "an INSZ is in {what}:\n{text}");
            }
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&rejects).unwrap().permissions().mode() & 0o777;
        prop_assert_eq!(mode, 0o600, "the reject file is private");
    }
}
