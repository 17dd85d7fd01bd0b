//! The state directory, projects, roles, the key store and retention, through the public API.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kluis_project::{Authorisation, Role, State, StateError, Status};
use kluis_pseudo::PseudonymMap;
use serde_json::json;

const DEMO: &str = include_str!("../../../examples/demo-authorisation.toml");
const A23_224: &str = include_str!("../../../authorisations/23-224.toml");

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn demo() -> Authorisation {
    Authorisation::parse(DEMO, "demo-authorisation.toml").unwrap()
}

/// The demo with a retention date that has really passed (2026-06-30): destruction is judged on
/// the system clock, so only such a project can be destroyed by retention in a test.
fn short_demo() -> (Authorisation, String) {
    let text = DEMO.replacen("until = 2031-12-31", "until = 2026-06-30", 1);
    (
        Authorisation::parse(&text, "demo-short.toml").unwrap(),
        text,
    )
}

/// The short demo with an extension decision moving its retention date to 2099-12-31.
fn short_demo_extended() -> (Authorisation, String) {
    let (_, short) = short_demo();
    let text = short.replacen(
        "reference = \"Demo deliberation 99/001, §9\"",
        "reference = \"Demo deliberation 99/001, §9\"\n\n[[retention.extensions]]\nuntil = 2099-12-31\ndate = 2026-06-01\nreference = \"Demo decision 26/042\"",
        1,
    );
    (
        Authorisation::parse(&text, "demo-extended.toml").unwrap(),
        text,
    )
}

fn fresh() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("state");
    State::init(&home, "sam").unwrap();
    (dir, home)
}

fn population() -> Vec<u64> {
    (0..500u64)
        .map(|i| 80_010_100_000 + i * 1_000 + i % 97)
        .collect()
}

fn every_file(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
#[cfg(unix)]
fn init_makes_a_private_state_directory_and_refuses_to_overwrite_it() {
    let (_dir, home) = fresh();
    assert_eq!(mode(&home.join("master.key")), 0o600);
    assert_eq!(
        std::fs::metadata(home.join("master.key")).unwrap().len(),
        32
    );
    assert_eq!(mode(&home.join("kluis.db")), 0o600);
    assert_eq!(mode(&home), 0o700);
    let before = std::fs::read(home.join("master.key")).unwrap();
    assert!(matches!(
        State::init(&home, "sam"),
        Err(StateError::AlreadyInitialised { .. })
    ));
    assert_eq!(std::fs::read(home.join("master.key")).unwrap(), before);

    let state = State::open(&home).unwrap();
    let log = state.audit_entries(None).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].actor.as_str()),
        ("init", "sam")
    );
}

#[test]
#[cfg(unix)]
fn a_master_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, home) = fresh();
    std::fs::set_permissions(
        home.join("master.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let error = State::open(&home).unwrap_err();
    assert!(
        matches!(error, StateError::MasterKeyExposed { mode: 0o644, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("chmod 600"));
}

#[test]
fn opening_an_uninitialised_directory_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let error = State::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("kluis init"), "{error}");
}

#[test]
fn a_steward_registers_a_project_and_anyone_else_is_refused_and_audited() {
    let (_dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let today = day("2026-03-01");

    let error = state
        .create_project(&demo(), DEMO, "demo.toml", "rita", today)
        .unwrap_err();
    assert!(matches!(error, StateError::Refused { .. }));
    assert!(error.to_string().contains("steward role"), "{error}");

    let project = state
        .create_project(&demo(), DEMO, "demo.toml", "sam", today)
        .unwrap();
    assert_eq!(project.id(), "99-001");
    assert_eq!(project.record().generation, 1);
    assert_eq!(
        project.status(today),
        Status::Active {
            until: day("2031-12-31")
        }
    );
    assert!(project.released_dir().is_dir());

    // Found by its project id or by its authorisation's id; anything else names the projects.
    assert_eq!(state.project("99/001").unwrap().id(), "99-001");
    let unknown = state.project("99/002").unwrap_err().to_string();
    assert!(
        unknown.contains("99/002") && unknown.contains("99-001"),
        "{unknown}"
    );

    let again = state
        .create_project(&demo(), DEMO, "demo.toml", "sam", today)
        .unwrap_err();
    assert!(matches!(again, StateError::ProjectExists { .. }), "{again}");

    let log = state.audit_entries(Some("99-001")).unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["refused", "project.create", "refused"]);
    assert_eq!(log[0].actor, "rita");
    assert_eq!(log[0].details["attempted"], "project.create");
    assert_eq!(log[1].details["sha256"].as_str().unwrap().len(), 64);
    state.verify_audit().unwrap();
}

#[test]
fn authorisation_23_224_is_refused_because_its_retention_date_passed() {
    let (_dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let a = Authorisation::parse(A23_224, "23-224.toml").unwrap();
    let error = state
        .create_project(&a, A23_224, "23-224.toml", "ksz-steward", day("2026-03-01"))
        .unwrap_err();
    assert!(matches!(error, StateError::Expired { .. }));
    assert!(error.to_string().contains("2024-12-31"), "{error}");
    let log = state.audit_entries(Some("23-224")).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "refused");
    assert!(
        log[0].details["reason"]
            .as_str()
            .unwrap()
            .contains("2024-12-31")
    );
}

#[test]
fn actions_need_the_role_the_authorisation_gives() {
    let (_dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let today = day("2026-03-01");
    let project = state
        .create_project(&demo(), DEMO, "demo.toml", "sam", today)
        .unwrap();

    let grant = project
        .authorise("sam", Role::Steward, "extract", today)
        .unwrap();
    assert_eq!((grant.actor(), grant.role()), ("sam", Role::Steward));
    grant.record(json!({"rows": 12})).unwrap();
    project
        .authorise("rita", Role::Researcher, "job.submit", today)
        .unwrap();

    for (actor, role) in [
        ("rita", Role::Steward),
        ("sam", Role::Reviewer),
        ("mallory", Role::Researcher),
    ] {
        let error = project
            .authorise(actor, role, "extract", today)
            .unwrap_err();
        assert!(matches!(error, StateError::Refused { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains(&format!("needs the {role} role")),
            "{error}"
        );
    }
    let refusals: Vec<_> = state
        .audit_entries(Some("99-001"))
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "refused")
        .collect();
    assert_eq!(refusals.len(), 3);
    assert_eq!(refusals[2].actor, "mallory");
}

#[test]
fn releasing_needs_a_reviewer_who_did_not_submit_the_output() {
    let (_dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let today = day("2026-03-01");
    let project = state
        .create_project(&demo(), DEMO, "demo.toml", "sam", today)
        .unwrap();

    let own = project
        .authorise_release("vera", "vera", "release", today)
        .unwrap_err();
    assert!(own.to_string().contains("four eyes"), "{own}");
    let not_reviewer = project
        .authorise_release("rita", "victor", "release", today)
        .unwrap_err();
    assert!(
        not_reviewer.to_string().contains("reviewer role"),
        "{not_reviewer}"
    );
    let grant = project
        .authorise_release("vera", "rita", "release", today)
        .unwrap();
    assert_eq!(grant.role(), Role::Reviewer);
    // A reviewer who submitted something is still a valid reviewer of someone else's output.
    project
        .authorise_release("victor", "vera", "release", today)
        .unwrap();

    let refused = state
        .audit_entries(Some("99-001"))
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "refused")
        .count();
    assert_eq!(refused, 2);
}

#[test]
fn an_expired_project_refuses_everything_naming_its_date() {
    let (_dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let project = state
        .create_project(&demo(), DEMO, "demo.toml", "sam", day("2030-01-01"))
        .unwrap();
    let later = day("2032-01-01");
    assert_eq!(
        project.status(later),
        Status::Expired {
            until: day("2031-12-31")
        }
    );
    for (actor, role) in [
        ("sam", Role::Steward),
        ("rita", Role::Researcher),
        ("vera", Role::Reviewer),
    ] {
        let error = project
            .authorise(actor, role, "extract", later)
            .unwrap_err();
        assert!(matches!(error, StateError::Expired { .. }), "{error}");
        assert!(error.to_string().contains("2031-12-31"), "{error}");
    }
    // The last day itself is still inside the retention period.
    project
        .authorise("sam", Role::Steward, "extract", day("2031-12-31"))
        .unwrap();
}

#[test]
fn the_key_appears_in_no_file_and_the_master_key_only_in_its_own() {
    let (dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let today = day("2026-03-01");
    let project = state
        .create_project(&demo(), DEMO, "demo.toml", "sam", today)
        .unwrap();
    let grant = project
        .authorise("sam", Role::Steward, "extract", today)
        .unwrap();
    let map = grant
        .with_key(|key| PseudonymMap::build(key, population()))
        .unwrap()
        .unwrap();
    grant.save_pseudonym_map(&map).unwrap();
    grant.record(json!({"persons": map.len()})).unwrap();
    let export = dir.path().join("audit.jsonl");
    state.export_audit(&export).unwrap();

    let key = grant.with_key(|key| *key.expose_secret()).unwrap();
    let master = std::fs::read(home.join("master.key")).unwrap();
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, secret) in [
        ("project key", key.to_vec()),
        ("master key", master.clone()),
    ] {
        needles.push((format!("{name} (raw)"), secret.clone()));
        needles.push((format!("{name} (hex)"), hex::encode(&secret).into_bytes()));
        needles.push((
            format!("{name} (HEX)"),
            hex::encode_upper(&secret).into_bytes(),
        ));
    }
    let files = every_file(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for (name, needle) in &needles {
            if file.ends_with("master.key") && name.starts_with("master key (raw)") {
                continue;
            }
            assert!(
                !contains(&bytes, needle),
                "{name} found in {}",
                file.display()
            );
        }
    }
}

#[test]
fn retention_destroys_the_project_and_a_new_registration_gets_a_new_key() {
    let (dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let start = day("2026-02-01");
    let (short, short_text) = short_demo();
    let project = state
        .create_project(&short, &short_text, "demo-short.toml", "sam", start)
        .unwrap();
    let grant = project
        .authorise("sam", Role::Steward, "extract", start)
        .unwrap();
    let map = grant
        .with_key(|key| PseudonymMap::build(key, population()))
        .unwrap()
        .unwrap();
    grant.save_pseudonym_map(&map).unwrap();
    let old_pseudonym = grant
        .with_key(|key| key.pseudonym_hmac("80010100000"))
        .unwrap();
    let old_key_id = grant.with_key(|key| key.key_id()).unwrap();
    std::fs::create_dir_all(project.dir().join("extracts/e1")).unwrap();
    std::fs::write(
        project.dir().join("extracts/e1/persons.parquet"),
        b"microdata",
    )
    .unwrap();
    std::fs::write(
        project.released_dir().join("table1.csv"),
        b"anonymous table",
    )
    .unwrap();
    // A copy of the encrypted map taken before retention (a backup, say).
    let stolen = dir.path().join("old-map-copy");
    std::fs::copy(project.pseudonym_map_path(), &stolen).unwrap();
    let project_dir = project.dir();

    // Nothing is due before the retention date.
    assert!(
        state
            .enforce_retention("sam", day("2026-06-30"), false)
            .unwrap()
            .destroyed
            .is_empty()
    );

    // Only a steward of the project may destroy it, and a rehearsed later day never destroys:
    // both are refused and audited, and nothing goes.
    let after = kluis_project::real_today();
    let later = after + chrono::Days::new(30);
    for (actor, on) in [("cron", after), ("rita", after), ("sam", later)] {
        let error = state.enforce_retention(actor, on, false).unwrap_err();
        assert!(matches!(error, StateError::Refused { .. }), "{error}");
        assert!(project_dir.join("pseudonyms.map").exists());
    }
    assert!(matches!(
        state.destroy_project("rita", "99-001", "done").unwrap_err(),
        StateError::Refused { .. }
    ));
    assert!(project_dir.join("pseudonyms.map").exists());
    assert_eq!(
        state
            .audit_entries(Some("99-001"))
            .unwrap()
            .iter()
            .filter(|e| e.action == "refused")
            .count(),
        4
    );

    let planned = state
        .enforce_retention("sam", after, true)
        .unwrap()
        .destroyed;
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].retention_until, day("2026-06-30"));
    assert_eq!(
        planned[0].files,
        [
            PathBuf::from("extracts/e1/persons.parquet"),
            PathBuf::from("pseudonyms.map")
        ]
    );
    assert_eq!(planned[0].released_kept, 1);
    assert!(
        project_dir.join("pseudonyms.map").exists(),
        "a dry run destroys nothing"
    );

    let done = state
        .enforce_retention("sam", after, false)
        .unwrap()
        .destroyed;
    assert_eq!(done, planned);
    assert!(!project_dir.join("pseudonyms.map").exists());
    assert!(!project_dir.join("extracts").exists());
    assert_eq!(
        std::fs::read(project_dir.join("released/table1.csv")).unwrap(),
        b"anonymous table"
    );

    let destroyed = state.project("99-001").unwrap();
    assert_eq!(
        destroyed.status(after),
        Status::Destroyed {
            until: day("2026-06-30"),
            on: after
        }
    );
    let error = destroyed
        .authorise("sam", Role::Steward, "extract", after)
        .unwrap_err();
    assert!(
        error.to_string().contains(&format!("destroyed on {after}")),
        "{error}"
    );
    assert!(error.to_string().contains("2026-06-30"), "{error}");
    // Enforcing again finds nothing more to do.
    assert!(
        state
            .enforce_retention("sam", after, false)
            .unwrap()
            .destroyed
            .is_empty()
    );

    let log = state.audit_entries(Some("99-001")).unwrap();
    let destroy = log
        .iter()
        .find(|e| e.action == "retention.destroy")
        .unwrap();
    assert_eq!(destroy.details["key_id"], old_key_id.as_str());
    assert_eq!(destroy.details["files"][1], "pseudonyms.map");

    // An extension decision lets the steward register the project again: a new key, so new
    // pseudonyms, and the old map cannot be opened with it.
    let (extended, text) = short_demo_extended();
    let reborn = state
        .create_project(&extended, &text, "demo-extended.toml", "sam", after)
        .unwrap();
    assert_eq!(reborn.record().generation, 2);
    let grant = reborn
        .authorise("sam", Role::Steward, "extract", after)
        .unwrap();
    assert_ne!(grant.with_key(|key| key.key_id()).unwrap(), old_key_id);
    assert_eq!(
        reborn.record().key_id,
        grant.with_key(|key| key.key_id()).unwrap()
    );
    assert_ne!(
        grant
            .with_key(|key| key.pseudonym_hmac("80010100000"))
            .unwrap(),
        old_pseudonym
    );
    assert!(
        grant
            .with_key(|key| PseudonymMap::load(key, &stolen))
            .unwrap()
            .is_err()
    );
    let new_map = grant
        .with_key(|key| PseudonymMap::build(key, population()))
        .unwrap()
        .unwrap();
    let kept = map
        .iter()
        .zip(new_map.iter())
        .filter(|(a, b)| a.1 == b.1)
        .count();
    assert!(kept < 10, "{kept} persons kept their sequence number");

    state.verify_audit().unwrap();
}

#[test]
fn editing_the_database_directly_is_caught_by_audit_verify() {
    let (_dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let today = day("2026-03-01");
    state
        .create_project(&demo(), DEMO, "demo.toml", "sam", today)
        .unwrap();
    state.verify_audit().unwrap();
    drop(state);
    let conn = rusqlite::Connection::open(home.join("kluis.db")).unwrap();
    conn.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    let error = State::open(&home).unwrap().verify_audit().unwrap_err();
    assert!(error.to_string().contains("entry 2 was altered"), "{error}");
}

#[test]
fn an_edited_project_record_stops_every_use_of_it() {
    let (_dir, home) = fresh();
    let state = State::open(&home).unwrap();
    let today = day("2026-03-01");
    state
        .create_project(&demo(), DEMO, "demo.toml", "sam", today)
        .unwrap();
    drop(state);
    // Each column on its own: the seal covers them all.
    for edit in [
        "UPDATE projects SET created_by = 'mallory'",
        "UPDATE projects SET generation = 2",
        "UPDATE projects SET destroyed_on = '2026-03-02'",
        "UPDATE projects SET rules = 'name = \"x\"'",
    ] {
        let copy = tempfile::tempdir().unwrap();
        let home_copy = copy.path().join("state");
        std::fs::create_dir(&home_copy).unwrap();
        for file in ["master.key", "kluis.db", "audit.head"] {
            std::fs::copy(home.join(file), home_copy.join(file)).unwrap();
        }
        std::fs::create_dir_all(home_copy.join("projects/99-001")).unwrap();
        rusqlite::Connection::open(home_copy.join("kluis.db"))
            .unwrap()
            .execute_batch(edit)
            .unwrap();
        let state = State::open(&home_copy).unwrap();
        for error in [
            state.project("99-001").unwrap_err(),
            state.verify_audit().unwrap_err(),
        ] {
            assert!(
                matches!(error, StateError::Tampered { .. }),
                "{edit}: {error}"
            );
            assert!(error.to_string().contains("project 99-001"), "{error}");
        }
    }
    // Untouched, it verifies.
    State::open(&home).unwrap().verify_audit().unwrap();
}
