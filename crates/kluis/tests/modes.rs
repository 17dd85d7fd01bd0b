//! Files holding person data are 0600 and their directories 0700 whatever the umask: checked
//! here under the common umask 022, which would otherwise leave them readable by everyone.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Env, REAL_DAY};

/// Every file and directory under `root` (itself included) with its mode.
fn modes(root: &Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push((
            path.clone(),
            meta.is_dir(),
            meta.permissions().mode() & 0o777,
        ));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    out
}

fn assert_private(root: &Path) {
    let all = modes(root);
    assert!(all.len() > 1, "{} is empty", root.display());
    for (path, is_dir, mode) in all {
        let wanted = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{} is {mode:o}", path.display());
    }
}

#[test]
fn person_data_is_private_under_umask_022() {
    // SAFETY: the test binary's own process; nextest runs each test in a process of its own.
    unsafe {
        libc::umask(0o022);
    }
    let env = Env::new(1500);
    let job = env.job(
        "careers",
        &[(
            "by_region",
            "count",
            "SELECT region, count(*) AS n FROM person_years GROUP BY region",
        )],
    );
    env.run_full("rita", &job).assert().success();
    let csv = env.path("csv");
    env.kluis("", REAL_DAY)
        .args(["warehouse", "export", "--warehouse"])
        .arg(env.warehouse())
        .arg("--out")
        .arg(&csv)
        .assert()
        .success();
    let persons = std::fs::read_to_string(csv.join("persons.csv")).unwrap();
    let spoiled = persons.replacen(",BE,", ",ZZ,", 1);
    std::fs::write(env.path("bad-persons.csv"), spoiled).unwrap();
    let rejects = env.path("rejects.csv");
    env.kluis("", REAL_DAY)
        .args(["ingest", "--persons"])
        .arg(env.path("bad-persons.csv"))
        .arg("--person-years")
        .arg(csv.join("person_years.csv"))
        .arg("--warehouse")
        .arg(env.path("loaded"))
        .arg("--reject-file")
        .arg(&rejects)
        .assert()
        .success();

    // The generated and the ingested warehouse, the CSV export, the extract in the clear.
    for dir in [env.warehouse(), env.path("loaded"), csv, env.extract()] {
        assert_private(&dir);
    }
    assert_eq!(
        std::fs::metadata(&rejects).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The state directory: keys, database, head file, the pseudonym map, pending outputs.
    let project = env.project_dir();
    assert!(project.join("outputs/99-001-0001/units.bin").exists());
    assert!(project.join("pseudonyms.map").exists());
    assert_private(&env.path("state"));
}
