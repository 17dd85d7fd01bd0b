//! Secondary suppression and its audit: margins, hierarchies, linked tables, cells released before.

mod common;

use common::{cell, count_cell, count_table};
use kluis_sdc::{
    CellStatus, Hierarchy, PublishedCell, Release, Rounding, RuleSet, Statistic, TOTAL, Table,
    TableStatus, apply_primary, audit, protect,
};

fn rules() -> RuleSet {
    RuleSet::default_set()
}

fn no_class() -> RuleSet {
    RuleSet::from_toml_str(
        "name = \"t\"\nversion = 1\n[class_disclosure]\nzeros = false\nfull_share = false\n",
    )
    .unwrap()
}

fn release(tables: &[Table]) -> Release<'_> {
    Release {
        tables,
        hierarchies: &[],
        published: &[],
        withheld: &[],
    }
}

#[test]
fn a_2x2_table_needs_the_whole_rectangle() {
    let t = count_table(&["a", "b"], &["x", "y"], &[&[3, 20], &[25, 40]]);
    let rules = no_class();
    // Suppressing only the primary cell is recomputable from its row margin.
    let primary_only = apply_primary(&t, &rules, &[]).unwrap();
    assert_eq!(
        primary_only[cell(&t, &["a", "x"])].status,
        CellStatus::Primary
    );
    let naive = audit(std::slice::from_ref(&t), &[primary_only], &[], &[], &rules).unwrap();
    assert!(!naive.passed);
    assert_eq!(naive.derivable, 1);

    let report = &protect(release(std::slice::from_ref(&t)), &rules, Rounding::None).unwrap()[0];
    assert!(report.audit.passed, "{}", report.to_text());
    assert_eq!(report.status, TableStatus::Pass);
    for key in [["a", "y"], ["b", "x"], ["b", "y"]] {
        assert_eq!(
            report.cells[cell(&t, &key)].status,
            CellStatus::Secondary,
            "{key:?}"
        );
        assert_eq!(report.cells[cell(&t, &key)].published, None);
    }
    // Margins stay published, with their true totals.
    assert_eq!(report.cells[cell(&t, &["a", TOTAL])].published, Some(23.0));
    assert_eq!(
        report.cells[cell(&t, &[TOTAL, TOTAL])].published,
        Some(88.0)
    );
    assert_eq!(report.secondary.secondary, 3);
}

#[test]
fn a_3x3_table_suppresses_the_cheapest_rectangle() {
    let t = count_table(
        &["a", "b", "c"],
        &["x", "y", "z"],
        &[&[2, 40, 30], &[50, 60, 70], &[35, 80, 7]],
    );
    let rules = no_class();
    let report = &protect(release(std::slice::from_ref(&t)), &rules, Rounding::None).unwrap()[0];
    assert!(report.audit.passed, "{}", report.to_text());
    let suppressed: Vec<Vec<String>> = report
        .cells
        .iter()
        .filter(|c| c.status.is_suppressed())
        .map(|c| vec![c.key["row"].clone(), c.key["col"].clone()])
        .collect();
    // (a,x) = 2 and (c,z) = 7 are primary; the cheapest pattern is the rectangle through both
    // corners: (a,z) = 30 and (c,x) = 35.
    let k = |r: &str, c: &str| vec![r.to_string(), c.to_string()];
    assert_eq!(suppressed.len(), 4, "{}", report.to_text());
    for key in [k("a", "x"), k("c", "z"), k("a", "z"), k("c", "x")] {
        assert!(suppressed.contains(&key), "{key:?} in {}", report.to_text());
    }
    // Each primary interval is wide enough.
    for c in report
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Primary)
    {
        let (lo, hi) = c.interval.unwrap();
        assert!(hi.unwrap() - lo >= rules.protection.required_width(c.value.unwrap()) - 1e-9);
    }
}

#[test]
fn a_single_child_equal_to_its_parent_forces_suppression_up_the_hierarchy() {
    // region: A has one child A1; B has children B1, B2.
    let h = Hierarchy {
        dimension: "region".into(),
        parent: [
            ("A", TOTAL),
            ("A1", "A"),
            ("B", TOTAL),
            ("B1", "B"),
            ("B2", "B"),
        ]
        .into_iter()
        .map(|(c, p)| (c.to_string(), p.to_string()))
        .collect(),
    };
    let cells = [
        ("A", 4),
        ("A1", 4),
        ("B", 90),
        ("B1", 40),
        ("B2", 50),
        (TOTAL, 94),
    ]
    .into_iter()
    .map(|(k, v)| count_cell(&[k], v))
    .collect();
    let t = Table {
        name: "h".into(),
        overlapping: false,
        dimension_ids: Vec::new(),
        cell_links: Vec::new(),
        dimensions: vec!["region".into()],
        statistic: Statistic::Count,
        measure: None,
        cells,
    };
    let rules = no_class();
    let hs = [h];
    let r = &protect(
        Release {
            tables: std::slice::from_ref(&t),
            hierarchies: &hs,
            published: &[],
            withheld: &[],
        },
        &rules,
        Rounding::None,
    )
    .unwrap()[0];
    assert!(r.audit.passed, "{}", r.to_text());
    assert_eq!(r.cells[cell(&t, &["A1"])].status, CellStatus::Primary);
    assert_eq!(
        r.cells[cell(&t, &["A"])].status,
        CellStatus::Primary,
        "A equals A1 and has 4 units too"
    );
    // A's value must not be recoverable as Total − B: B or Total must go too.
    let b = r.cells[cell(&t, &["B"])].status.is_suppressed();
    let total = r.cells[cell(&t, &[TOTAL])].status.is_suppressed();
    assert!(b || total, "{}", r.to_text());
}

#[test]
fn linked_tables_are_protected_together() {
    // Two tables share the margin by `row`: protecting one must not be undone through the other.
    let t1 = count_table(&["a", "b"], &["x", "y"], &[&[3, 20], &[25, 40]]);
    let mut t2 = count_table(&["a", "b"], &["p", "q"], &[&[11, 12], &[30, 35]]);
    t2.name = "t2".into();
    t2.dimensions = vec!["row".into(), "other".into()];
    let rules = no_class();
    let tables = [t1, t2];
    let reports = protect(release(&tables), &rules, Rounding::None).unwrap();
    assert!(reports[0].audit.passed);
    // The row margin (a, Total) is the same quantity in both tables: same status in both.
    let a1 = reports[0].cells[cell(&tables[0], &["a", TOTAL])].status;
    let a2 = reports[1].cells[cell(&tables[1], &["a", TOTAL])].status;
    assert_eq!(a1.is_suppressed(), a2.is_suppressed());
}

#[test]
fn cells_released_before_constrain_the_pattern() {
    let t = count_table(&["a", "b"], &["x", "y"], &[&[3, 20], &[25, 40]]);
    let rules = no_class();
    // Without history the pattern is the 2x2 rectangle; with (b, y) released before, the
    // rectangle no longer protects (a, x): the pattern must reach the margins.
    let published = [PublishedCell {
        measure: None,
        key: [
            ("row".to_string(), "b".to_string()),
            ("col".to_string(), "y".to_string()),
        ]
        .into(),
        value: 40.0,
        link: 0,
    }];
    let r = &protect(
        Release {
            tables: std::slice::from_ref(&t),
            hierarchies: &[],
            published: &published,
            withheld: &[],
        },
        &rules,
        Rounding::None,
    )
    .unwrap()[0];
    assert!(r.audit.passed, "{}", r.to_text());
    assert_eq!(r.cells[cell(&t, &["b", "y"])].status, CellStatus::Ok);
    assert!(
        r.cells[cell(&t, &["a", TOTAL])].status.is_suppressed()
            || r.cells[cell(&t, &[TOTAL, "x"])].status.is_suppressed()
    );
    let (lo, hi) = r.cells[cell(&t, &["a", "x"])].interval.unwrap();
    assert!(hi.unwrap_or(f64::INFINITY) - lo >= 2.0);
}

#[test]
fn a_primary_cell_released_before_cannot_be_protected() {
    let t = count_table(&["a", "b"], &["x", "y"], &[&[3, 20], &[25, 40]]);
    let published = [PublishedCell {
        measure: None,
        key: [
            ("row".to_string(), "a".to_string()),
            ("col".to_string(), "x".to_string()),
        ]
        .into(),
        value: 3.0,
        link: 0,
    }];
    let r = &protect(
        Release {
            tables: std::slice::from_ref(&t),
            hierarchies: &[],
            published: &published,
            withheld: &[],
        },
        &no_class(),
        Rounding::None,
    )
    .unwrap()[0];
    assert_eq!(r.status, TableStatus::Fail);
    assert!(!r.audit.passed);
}

#[test]
fn margins_that_do_not_add_up_are_rejected() {
    let mut t = count_table(&["a", "b"], &["x", "y"], &[&[3, 20], &[25, 40]]);
    let i = cell(&t, &["a", TOTAL]);
    t.cells[i].value = 24.0;
    let err = protect(release(std::slice::from_ref(&t)), &rules(), Rounding::None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row=a, col=Total") && err.contains("sum to 23"),
        "{err}"
    );
}

#[test]
fn rounding_shows_in_published_values() {
    let t = count_table(&["a", "b"], &["x", "y"], &[&[13, 20], &[25, 40]]);
    let r = &protect(
        release(std::slice::from_ref(&t)),
        &no_class(),
        Rounding::Midpoint6,
    )
    .unwrap()[0];
    assert_eq!(r.cells[cell(&t, &["a", "x"])].published, Some(15.0));
    assert_eq!(r.cells[cell(&t, &["a", "x"])].value, Some(13.0));
    assert_eq!(r.rounding, "midpoint6");
}

#[test]
fn report_json_has_the_fixed_shape() {
    let t = count_table(&["a", "b"], &["x", "y"], &[&[3, 20], &[25, 40]]);
    let r = &protect(
        release(std::slice::from_ref(&t)),
        &no_class(),
        Rounding::None,
    )
    .unwrap()[0];
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["status"], "pass");
    assert_eq!(json["rules"]["name"], "t");
    let c = &json["cells"][0];
    assert_eq!(c["key"]["row"], "a");
    assert_eq!(c["key"]["col"], "x");
    assert_eq!(c["value"], 3.0);
    assert!(c["published"].is_null());
    assert_eq!(c["status"], "primary");
    assert_eq!(c["reasons"], serde_json::json!(["threshold"]));
    assert_eq!(c["rows"], 3);
    assert_eq!(c["units"], 3);
    // ACRO results.json fields: per-check flagged positions.
    assert_eq!(json["acro"]["files"][0]["sdc"]["summary"]["threshold"], 1);
    assert_eq!(
        json["acro"]["files"][0]["sdc"]["cells"]["threshold"],
        serde_json::json!([[0, 0]])
    );
    let text = r.to_text();
    assert!(
        text.contains("primary") && text.contains("threshold") && text.contains("secondary"),
        "{text}"
    );
}

/// A 4×3×3 count table with a few small cells, every margin included.
fn cube_3d() -> Table {
    let interior: Vec<u64> = (0..36)
        .map(|i| if i % 7 == 3 { 4 } else { 20 + (i * 13 % 50) })
        .collect();
    common::count_cube(&[4, 3, 3], &interior)
}

#[test]
fn a_3d_table_is_protected_by_hypercubes_the_audit_accepts() {
    let tables = [cube_3d()];
    let r = &protect(
        Release {
            tables: &tables,
            hierarchies: &[],
            published: &[],
            withheld: &[],
        },
        &no_class(),
        Rounding::None,
    )
    .unwrap()[0];
    assert_eq!(
        r.secondary.method,
        kluis_sdc::Method::Hypercube,
        "{}",
        r.to_text()
    );
    assert!(r.audit.passed, "{}", r.to_text());
    assert!(r.secondary.secondary > 0);
    // A cube has at most 8 corners per primary cell: far from suppressing everything.
    let suppressed = r.cells.iter().filter(|c| c.status.is_suppressed()).count();
    assert!(suppressed < r.cells.len() / 2, "{}", r.to_text());
    for c in r.cells.iter().filter(|c| c.status.is_suppressed()) {
        let (lo, hi) = c.interval.expect("every suppressed cell audited");
        let width = hi.unwrap_or(f64::INFINITY) - lo;
        assert!(width > 0.0, "{:?} derivable", c.key);
        if c.status == CellStatus::Primary {
            assert!(width >= rules().protection.required_width(c.value.unwrap()) - 1e-9);
        }
    }
}

#[test]
fn when_the_search_budget_runs_out_the_fallback_is_audited_as_a_cone() {
    // A budget too small for any search: every cell is suppressed, nothing is published, so every
    // positive cell can be anything from 0 up.
    let rules = RuleSet::from_toml_str(
        "name = \"t\"\nversion = 1\n[class_disclosure]\nzeros = false\nfull_share = false\n\
         [secondary]\ntime_limit_secs = 1e-12\n",
    )
    .unwrap();
    let tables = [cube_3d()];
    let r = &protect(
        Release {
            tables: &tables,
            hierarchies: &[],
            published: &[],
            withheld: &[],
        },
        &rules,
        Rounding::None,
    )
    .unwrap()[0];
    assert_eq!(r.secondary.method, kluis_sdc::Method::FallbackAll);
    assert!(r.audit.passed, "{}", r.to_text());
    assert_eq!(r.status, TableStatus::Pass);
    assert!(r.cells.iter().all(|c| c.published.is_none()));
    for c in &r.cells {
        assert_eq!(c.interval, Some((0.0, None)), "{:?}", c.key);
    }
}

#[test]
fn zero_cells_in_a_cone_are_derivable_only_when_pinned() {
    // Everything suppressed and nothing published: the cone. A zero cell whose row is all zeros
    // can still be positive (with its margins), so it is [0, ∞) like the others.
    let t = count_table(&["a", "b"], &["x", "y"], &[&[0, 0], &[15, 12]]);
    let mut verdicts = vec![apply_primary(&t, &no_class(), &[]).unwrap()];
    for v in verdicts[0].iter_mut() {
        v.status = CellStatus::Secondary;
    }
    let tables = [t];
    let a = audit(&tables, &verdicts, &[], &[], &no_class()).unwrap();
    assert!(a.passed);
    assert!(a.cells.iter().all(|c| c.lower == 0.0 && c.upper.is_none()));

    // Publish the row total of `a` (0): its two cells are pinned at 0, derivable; still a cone.
    let row_a = cell(&tables[0], &["a", TOTAL]);
    verdicts[0][row_a].status = CellStatus::Ok;
    let a = audit(&tables, &verdicts, &[], &[], &no_class()).unwrap();
    assert!(!a.passed);
    assert_eq!(a.derivable, 2);
    for c in a.cells.iter().filter(|c| c.derivable) {
        assert_eq!((c.lower, c.upper), (0.0, Some(0.0)));
        assert_eq!(tables[0].cells[c.cell].key[0], "a");
    }
}

/// Two primary cells alone in a row (3 and 1 persons): each is protected by its column, but
/// the row margin minus the row's published cells is their sum, a group of 4 persons. One more
/// cell of the row is withheld, and the sum is then no longer a published difference.
#[test]
fn two_primary_cells_alone_in_a_row_do_not_publish_their_sum() {
    let t = count_table(
        &["a", "b", "c"],
        &["x", "y", "z"],
        &[&[3, 1, 40], &[30, 25, 50], &[35, 45, 60]],
    );
    let rules = no_class();
    let report = &protect(release(std::slice::from_ref(&t)), &rules, Rounding::None).unwrap()[0];
    assert!(report.audit.passed, "{}", report.to_text());
    let status = |key: [&str; 2]| report.cells[cell(&t, &key)].status;
    assert_eq!(status(["a", "x"]), CellStatus::Primary);
    assert_eq!(status(["a", "y"]), CellStatus::Primary);
    // The row's margin stays published, so its third cell must not be: else
    // a.Total − a.z = a.x + a.y = 4.
    assert!(
        report.cells[cell(&t, &["a", TOTAL])].published.is_none()
            || status(["a", "z"]).is_suppressed(),
        "{}",
        report.to_text()
    );
}
