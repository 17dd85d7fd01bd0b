use super::*;
use serde_json::json;

fn key() -> AnchorKey {
    AnchorKey::new([7; 32])
}

/// A log of five entries in an in-memory database.
fn log() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    create_schema(&conn).unwrap();
    for (i, action) in ["init", "project.create", "extract", "job.submit", "release"]
        .into_iter()
        .enumerate()
    {
        append(
            &conn,
            &key(),
            NewEntry {
                actor: if i % 2 == 0 { "sam" } else { "rita" },
                role: "steward",
                action,
                project: (i > 0).then_some("99-001"),
                details: json!({"rows": i * 10, "file": format!("f{i}.parquet")}),
            },
        )
        .unwrap();
    }
    conn
}

fn tamper(conn: &Connection) -> Tamper {
    match verify(conn, &key()) {
        Err(AuditError::Tampered(tamper)) => tamper,
        other => panic!("expected tampering to be detected, got {other:?}"),
    }
}

/// Recomputes hash and prev_hash of every entry from `from` on, as an attacker who knows the
/// format but not the anchor key would, and points the head at the new last hash (keeping the
/// old head seal, which they cannot recompute).
fn rechain_from(conn: &Connection, from: u64) {
    let all = rows(conn, None).unwrap();
    let mut prev = GENESIS;
    for row in all {
        let e = &row.entry;
        if e.seq >= from {
            let hash = Fields {
                seq: e.seq,
                time: &e.time,
                actor: &e.actor,
                role: &e.role,
                action: &e.action,
                project: e.project.as_deref(),
                details: &row.details_text,
                prev_hash: &prev,
            }
            .hash();
            conn.execute(
                "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
                params![hex::encode(prev), hex::encode(hash), e.seq as i64],
            )
            .unwrap();
            prev = hash;
        } else {
            prev = parse_hash(&e.hash).unwrap();
        }
    }
    conn.execute(
        "UPDATE audit_head SET hash = ?1",
        params![hex::encode(prev)],
    )
    .unwrap();
}

#[test]
fn an_untouched_log_verifies_and_reports_its_head() {
    let conn = log();
    let verified = verify(&conn, &key()).unwrap();
    assert_eq!(verified.entries, 5);
    assert_eq!(verified.head_hash, entries(&conn, None).unwrap()[4].hash);
}

#[test]
fn entries_chain_to_their_predecessor() {
    let all = entries(&log(), None).unwrap();
    assert_eq!(all[0].prev_hash, hex::encode(GENESIS));
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    assert!(all[0].time.ends_with('Z'));
}

#[test]
fn filtering_by_project_keeps_only_that_project() {
    let conn = log();
    let project = entries(&conn, Some("99-001")).unwrap();
    assert_eq!(project.len(), 4);
    assert!(
        project
            .iter()
            .all(|e| e.project.as_deref() == Some("99-001"))
    );
}

#[test]
fn an_altered_field_is_caught_at_that_entry() {
    let conn = log();
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
        .unwrap();
    assert_eq!(tamper(&conn), Tamper::Altered { seq: 3 });
}

#[test]
fn altered_details_are_caught() {
    let conn = log();
    conn.execute(
        r#"UPDATE audit SET details = '{"rows":0}' WHERE seq = 2"#,
        [],
    )
    .unwrap();
    assert_eq!(tamper(&conn), Tamper::Altered { seq: 2 });
}

#[test]
fn an_alteration_with_recomputed_hashes_is_caught_by_the_seal() {
    let conn = log();
    conn.execute("UPDATE audit SET action = 'nothing' WHERE seq = 4", [])
        .unwrap();
    rechain_from(&conn, 4);
    assert_eq!(tamper(&conn), Tamper::BadSeal { seq: 4 });
}

#[test]
fn a_deleted_entry_is_caught() {
    let conn = log();
    conn.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    assert_eq!(
        tamper(&conn),
        Tamper::Missing {
            expected: 2,
            found: 3
        }
    );
}

#[test]
fn a_deletion_with_renumbering_is_caught() {
    let conn = log();
    conn.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    conn.execute("UPDATE audit SET seq = seq - 1 WHERE seq > 2", [])
        .unwrap();
    assert_eq!(tamper(&conn), Tamper::Altered { seq: 2 });
}

#[test]
fn an_inserted_entry_is_caught() {
    let conn = log();
    // Make room at 3 (in reverse so the primary key never collides), then insert a copy.
    for seq in (3..=5).rev() {
        conn.execute("UPDATE audit SET seq = seq + 1 WHERE seq = ?1", [seq])
            .unwrap();
    }
    conn.execute(
        "INSERT INTO audit SELECT 3, time, 'mallory', role, action, project, details, prev_hash, hash, seal
         FROM audit WHERE seq = 2",
        [],
    )
    .unwrap();
    assert_eq!(tamper(&conn), Tamper::Altered { seq: 3 });
    // Even with the whole chain recomputed from the insertion on, the seal gives it away.
    rechain_from(&conn, 3);
    assert_eq!(tamper(&conn), Tamper::BadSeal { seq: 3 });
}

#[test]
fn reordered_entries_are_caught() {
    let conn = log();
    conn.execute("UPDATE audit SET seq = 100 WHERE seq = 2", [])
        .unwrap();
    conn.execute("UPDATE audit SET seq = 2 WHERE seq = 3", [])
        .unwrap();
    conn.execute("UPDATE audit SET seq = 3 WHERE seq = 100", [])
        .unwrap();
    assert_eq!(tamper(&conn), Tamper::Altered { seq: 2 });
}

#[test]
fn entries_deleted_from_the_end_are_caught_by_the_head() {
    let conn = log();
    conn.execute("DELETE FROM audit WHERE seq >= 4", [])
        .unwrap();
    assert_eq!(tamper(&conn), Tamper::TailDeleted { first: 4, last: 5 });
}

#[test]
fn moving_the_head_back_after_deleting_the_tail_is_caught() {
    let conn = log();
    conn.execute("DELETE FROM audit WHERE seq >= 4", [])
        .unwrap();
    conn.execute(
        "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit WHERE seq = 3)",
        [],
    )
    .unwrap();
    assert_eq!(tamper(&conn), Tamper::BadHead);
}

#[test]
fn deleting_the_head_record_is_caught() {
    let conn = log();
    conn.execute("DELETE FROM audit_head", []).unwrap();
    assert_eq!(tamper(&conn), Tamper::BadHead);
}

#[test]
fn a_consistently_rewritten_chain_is_caught() {
    let conn = log();
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1", [])
        .unwrap();
    rechain_from(&conn, 1);
    assert_eq!(tamper(&conn), Tamper::BadSeal { seq: 1 });
}

#[test]
fn a_log_sealed_under_another_key_does_not_verify() {
    let conn = log();
    let other = AnchorKey::new([8; 32]);
    assert!(matches!(
        verify(&conn, &other),
        Err(AuditError::Tampered(Tamper::BadSeal { seq: 1 }))
    ));
}

#[test]
fn an_appended_entry_outside_kluis_is_caught() {
    let conn = log();
    conn.execute(
        "INSERT INTO audit SELECT 6, time, actor, role, action, project, details, hash, hash, seal
         FROM audit WHERE seq = 5",
        [],
    )
    .unwrap();
    rechain_from(&conn, 6);
    // rechain_from moved the head hash too; put it back so only the extra entry differs.
    conn.execute(
        "UPDATE audit_head SET hash = (SELECT hash FROM audit WHERE seq = 5)",
        [],
    )
    .unwrap();
    assert_eq!(tamper(&conn), Tamper::BadSeal { seq: 6 });
}

#[test]
fn an_empty_log_verifies() {
    let conn = Connection::open_in_memory().unwrap();
    create_schema(&conn).unwrap();
    assert_eq!(verify(&conn, &key()).unwrap().entries, 0);
}

#[test]
fn an_export_verifies_without_the_key_and_catches_edits() {
    let conn = log();
    let mut out = Vec::new();
    assert_eq!(export_jsonl(&conn, &mut out).unwrap(), 5);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 5);
    let verified = verify_export(text.as_bytes()).unwrap();
    assert_eq!(verified, verify(&conn, &key()).unwrap());
    // An overseer's earlier head is found in a later export, and not in one cut back before it.
    let third = entries(&conn, None).unwrap()[2].hash.clone();
    assert_eq!(
        verify_export_expecting(text.as_bytes(), &third.to_uppercase())
            .unwrap()
            .1,
        3
    );
    let older: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    assert!(matches!(
        verify_export_expecting(older.as_bytes(), &third),
        Err(AuditError::Tampered(Tamper::ExpectedHeadMissing {
            seq: None,
            ..
        }))
    ));

    let edited = text.replacen("\"rows\":20", "\"rows\":21", 1);
    assert!(matches!(
        verify_export(edited.as_bytes()),
        Err(AuditError::Tampered(Tamper::Altered { seq: 3 }))
    ));
    let dropped: String = text
        .lines()
        .filter(|l| !l.contains("\"seq\":2,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(matches!(
        verify_export(dropped.as_bytes()),
        Err(AuditError::Tampered(Tamper::Missing {
            expected: 2,
            found: 3
        }))
    ));
}

#[test]
fn the_tamper_message_names_the_entry() {
    let conn = log();
    conn.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    let message = verify(&conn, &key()).unwrap_err().to_string();
    assert!(message.contains("entry 2 is missing"), "{message}");
}

/// A log of five entries with its head file, in a temporary directory.
fn anchored_log() -> (tempfile::TempDir, Connection, anchor::HeadFile) {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("log.db")).unwrap();
    create_schema(&conn).unwrap();
    let head = anchor::HeadFile::new(dir.path().join("audit.head"));
    for action in ["init", "project.create", "extract", "job.submit", "release"] {
        append_anchored(&conn, &key(), &head, entry(action)).unwrap();
    }
    (dir, conn, head)
}

fn entry(action: &str) -> NewEntry<'_> {
    NewEntry {
        actor: "sam",
        role: "steward",
        action,
        project: Some("99-001"),
        details: json!({}),
    }
}

fn anchored_tamper(conn: &Connection, head: &anchor::HeadFile) -> Tamper {
    match verify_anchored(conn, &key(), head) {
        Err(AuditError::Tampered(tamper)) => tamper,
        other => panic!("expected tampering to be detected, got {other:?}"),
    }
}

#[test]
fn an_anchored_log_verifies_and_its_head_file_is_private() {
    let (_dir, conn, head) = anchored_log();
    assert_eq!(verify_anchored(&conn, &key(), &head).unwrap().entries, 5);
    assert_eq!(head.marks(&key()).unwrap().len(), 5);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(head.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_wiped_log_is_caught_by_the_head_file() {
    let (_dir, conn, head) = anchored_log();
    conn.execute_batch("DELETE FROM audit; DELETE FROM audit_head;")
        .unwrap();
    // The database alone says nothing is wrong: that is what the head file is for.
    assert_eq!(verify(&conn, &key()).unwrap().entries, 0);
    assert_eq!(
        anchored_tamper(&conn, &head),
        Tamper::BehindHeadFile { marked: 5, last: 0 }
    );
}

#[test]
fn an_older_copy_of_the_database_is_caught_by_the_head_file() {
    let (dir, conn, head) = anchored_log();
    let copy = dir.path().join("old.db");
    conn.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    append_anchored(&conn, &key(), &head, entry("release")).unwrap();
    drop(conn);
    std::fs::rename(&copy, dir.path().join("log.db")).unwrap();
    let old = Connection::open(dir.path().join("log.db")).unwrap();
    assert_eq!(
        anchored_tamper(&old, &head),
        Tamper::BehindHeadFile { marked: 6, last: 5 }
    );
}

#[test]
fn another_log_of_the_same_length_is_caught_by_the_head_file() {
    let (dir, _conn, head) = anchored_log();
    // A fresh log under the same key (someone with the key re-creating it is out of reach; this
    // is a log built by kluis elsewhere and copied in).
    let other = Connection::open(dir.path().join("other.db")).unwrap();
    create_schema(&other).unwrap();
    for action in ["init", "a", "b", "c", "d"] {
        append(&other, &key(), entry(action)).unwrap();
    }
    assert_eq!(
        anchored_tamper(&other, &head),
        Tamper::NotTheMarkedEntry { seq: 1 }
    );
}

#[test]
fn an_edited_or_cut_head_file_is_caught() {
    let (_dir, conn, head) = anchored_log();
    let text = std::fs::read_to_string(head.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Cutting the last mark is what a crash after the commit leaves: accepted.
    std::fs::write(head.path(), lines[..4].join("\n") + "\n").unwrap();
    assert!(verify_anchored(&conn, &key(), &head).is_ok());
    std::fs::write(head.path(), lines[..3].join("\n") + "\n").unwrap();
    assert_eq!(
        anchored_tamper(&conn, &head),
        Tamper::HeadFileTruncated { marked: 3, last: 5 }
    );
    std::fs::remove_file(head.path()).unwrap();
    assert_eq!(
        anchored_tamper(&conn, &head),
        Tamper::HeadFileTruncated { marked: 0, last: 5 }
    );
    let forged = lines[4].replacen("5 ", "7 ", 1);
    std::fs::write(head.path(), text.clone() + &forged + "\n").unwrap();
    assert_eq!(
        anchored_tamper(&conn, &head),
        Tamper::BadHeadFile { line: 6 }
    );
}

#[test]
fn a_head_file_missing_one_mark_is_a_crash_and_missing_two_in_a_row_is_tampering() {
    let (_dir, conn, head) = anchored_log();
    let text = std::fs::read_to_string(head.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let without = |dropped: &[usize]| {
        let kept: Vec<&str> = (0..lines.len())
            .filter(|i| !dropped.contains(i))
            .map(|i| lines[i])
            .collect();
        kept.join("\n") + "\n"
    };
    // A crash between an entry's commit and its mark can leave any one mark out.
    for dropped in [&[0][..], &[2], &[1, 3], &[4]] {
        std::fs::write(head.path(), without(dropped)).unwrap();
        assert!(verify_anchored(&conn, &key(), &head).is_ok(), "{dropped:?}");
    }
    std::fs::write(head.path(), without(&[1, 2])).unwrap();
    assert_eq!(
        anchored_tamper(&conn, &head),
        Tamper::HeadFileGap { after: 1, next: 4 }
    );
    // Deleted, then started again by the next append: it no longer reaches back to the start.
    std::fs::remove_file(head.path()).unwrap();
    append_anchored(&conn, &key(), &head, entry("job.submit")).unwrap();
    assert_eq!(
        anchored_tamper(&conn, &head),
        Tamper::HeadFileGap { after: 0, next: 6 }
    );
}

#[test]
fn a_checkpoint_catches_a_rollback_and_cannot_be_forged() {
    let (dir, conn, head) = anchored_log();
    let copy = dir.path().join("old.db");
    conn.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let old_head = std::fs::read(head.path()).unwrap();
    let last = append_anchored(&conn, &key(), &head, entry("release")).unwrap();
    let checkpoint = anchor::Checkpoint::of(&key(), &last).unwrap();
    check_checkpoint(&conn, &key(), &checkpoint).unwrap();
    assert_eq!(expect_head(&conn, &last.hash).unwrap(), 6);

    // The whole state rolled back, head file included: only the checkpoint knows.
    drop(conn);
    std::fs::rename(&copy, dir.path().join("log.db")).unwrap();
    std::fs::write(head.path(), old_head).unwrap();
    let old = Connection::open(dir.path().join("log.db")).unwrap();
    assert!(verify_anchored(&old, &key(), &head).is_ok());
    assert!(matches!(
        check_checkpoint(&old, &key(), &checkpoint),
        Err(AuditError::Tampered(Tamper::ExpectedHeadMissing {
            seq: Some(6),
            ..
        }))
    ));
    assert!(matches!(
        expect_head(&old, &last.hash),
        Err(AuditError::Tampered(Tamper::ExpectedHeadMissing {
            seq: None,
            ..
        }))
    ));

    // A checkpoint pointing at an older entry, or sealed by another key, is refused.
    let mut edited = checkpoint.clone();
    edited.seq = 5;
    assert_eq!(edited.check_seal(&key()), Err(Tamper::BadCheckpoint));
    assert_eq!(
        checkpoint.check_seal(&AnchorKey::new([9; 32])),
        Err(Tamper::BadCheckpoint)
    );
}

#[test]
fn an_export_of_entries_with_any_floats_verifies() {
    // Risk figures, shares and timings go into details as floats: an export must hold them so
    // that the overseer's check recomputes the very hashes kluis computed.
    let conn = log();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..200 {
        let floats: Vec<f64> = (0..20)
            .map(|_| (next() >> 11) as f64 / (1u64 << 53) as f64 * 1000.0)
            .collect();
        append(
            &conn,
            &key(),
            NewEntry {
                actor: "sam",
                role: "steward",
                action: "risk",
                project: Some("99-001"),
                details: json!({ "shares": floats }),
            },
        )
        .unwrap();
    }
    let mut out = Vec::new();
    export_jsonl(&conn, &mut out).unwrap();
    let verified = verify_export(out.as_slice()).unwrap();
    assert_eq!(verified, verify(&conn, &key()).unwrap());
}
