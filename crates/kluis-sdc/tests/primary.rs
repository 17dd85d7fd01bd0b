//! Primary rules at their boundaries, units versus rows, null measures, negative contributions.

mod common;

use common::{cell, count_table, sum_cell_table};
use kluis_sdc::microdata::Aggregator;
use kluis_sdc::{CellStatus, Reason, RuleSet, Statistic, apply_primary};

fn reasons(t: &kluis_sdc::Table, rules: &RuleSet) -> Vec<Vec<Reason>> {
    apply_primary(t, rules, &[])
        .unwrap()
        .into_iter()
        .map(|v| v.reasons)
        .collect()
}

fn no_dominance() -> RuleSet {
    RuleSet::from_toml_str("name = \"p-only\"\nversion = 1\n[dominance]\nenabled = false\n")
        .unwrap()
}

#[test]
fn threshold_counts_units_exactly_at_the_boundary() {
    let rules = RuleSet::default_set();
    // 10 equal contributors: at the threshold, passes; 9: fails.
    assert_eq!(reasons(&sum_cell_table(&[1.0; 10]), &rules), vec![vec![]]);
    assert_eq!(
        reasons(&sum_cell_table(&[1.0; 9]), &rules),
        vec![vec![Reason::Threshold]]
    );
}

#[test]
fn dominance_fails_exactly_at_k() {
    let rules = RuleSet::default_set();
    // top two = 45 + 45 = 90 of 100: exactly k = 0.90, fails. The other eight share 10.
    let mut at_k = vec![45.0, 45.0];
    at_k.extend([1.25; 8]);
    let r = &reasons(&sum_cell_table(&at_k), &rules)[0];
    assert!(r.contains(&Reason::Dominance), "{r:?}");
    // Just under k: 44.99 + 44.99 of 100.
    let mut under = vec![44.99, 44.99];
    under.extend([(100.0 - 89.98) / 8.0; 8]);
    let r = &reasons(&sum_cell_table(&under), &rules)[0];
    assert!(!r.contains(&Reason::Dominance), "{r:?}");
}

#[test]
fn p_percent_passes_exactly_at_p_and_fails_below() {
    let rules = no_dominance();
    // largest 100, second 50, the other ten share 10: (160 − 100 − 50) / 100 = 0.10 = p, passes.
    let mut at_p = vec![100.0, 50.0];
    at_p.extend([1.0; 10]);
    assert_eq!(reasons(&sum_cell_table(&at_p), &rules), vec![vec![]]);
    let mut below = vec![100.0, 50.0];
    below.extend([0.999; 10]);
    assert_eq!(
        reasons(&sum_cell_table(&below), &rules),
        vec![vec![Reason::PPercent]]
    );
}

#[test]
fn fifteen_rows_from_three_persons_fail_a_threshold_of_ten() {
    let mut agg = Aggregator::new(
        "t",
        vec!["sex".into()],
        Statistic::Sum,
        Some("income".into()),
    )
    .unwrap();
    for row in 0..15u64 {
        let person = format!("person-{}", row % 3);
        agg.push(
            person.as_bytes(),
            &[b"F"],
            Some(100.0 + row as f64),
            row + 1,
        )
        .unwrap();
    }
    let t = agg.finish(2).unwrap();
    let f = cell(&t, &["F"]);
    assert_eq!((t.cells[f].rows, t.cells[f].units), (15, 3));
    // Per-unit totals: each person's five rows are one contributor.
    let c = t.cells[f].contributions.unwrap();
    assert_eq!(
        c.top1,
        (0..15)
            .filter(|r| r % 3 == 2)
            .map(|r| 100.0 + r as f64)
            .sum::<f64>()
    );
    let v = &apply_primary(&t, &RuleSet::default_set(), &[]).unwrap()[f];
    assert_eq!(v.status, CellStatus::Primary);
    assert!(v.reasons.contains(&Reason::Threshold));
}

#[test]
fn threshold_counts_only_units_with_a_non_null_measure() {
    let mut agg = Aggregator::new(
        "t",
        vec!["sex".into()],
        Statistic::Mean,
        Some("income".into()),
    )
    .unwrap();
    for p in 0..12u64 {
        let value = if p < 5 { None } else { Some(1000.0 + p as f64) };
        agg.push(format!("u{p}").as_bytes(), &[b"M"], value, p + 1)
            .unwrap();
    }
    let t = agg.finish(1).unwrap();
    let m = cell(&t, &["M"]);
    let c = &t.cells[m];
    assert_eq!((c.units, c.nonnull_units), (12, 7));
    let expected_mean = (5..12).map(|p| 1000.0 + p as f64).sum::<f64>() / 7.0;
    assert!((c.value - expected_mean).abs() < 1e-9);
    let v = &apply_primary(&t, &RuleSet::default_set(), &[]).unwrap()[m];
    assert!(v.reasons.contains(&Reason::Threshold), "{v:?}");
}

#[test]
fn negative_contributions_send_the_cell_to_review_with_dominance_on_absolute_values() {
    let rules = RuleSet::default_set();
    // Twelve units, one negative: −5 is the largest in absolute value but no share dominates.
    let mut values = vec![-5.0];
    values.extend([4.0; 11]);
    let r = &apply_primary(&sum_cell_table(&values), &rules, &[]).unwrap()[0];
    assert_eq!(r.status, CellStatus::Review);
    assert_eq!(r.reasons, vec![Reason::NegativeValues]);
    // A dominant negative contributor: dominance is computed on |−100|.
    let mut dominant = vec![-100.0];
    dominant.extend([1.0; 11]);
    let r = &apply_primary(&sum_cell_table(&dominant), &rules, &[]).unwrap()[0];
    assert_eq!(r.status, CellStatus::Primary);
    assert!(r.reasons.contains(&Reason::Dominance) && r.reasons.contains(&Reason::NegativeValues));
}

#[test]
fn zeros_and_full_shares_are_class_disclosure_when_configured() {
    let t = count_table(
        &["a", "b", "c"],
        &["x", "y"],
        &[&[20, 0], &[15, 30], &[10, 12]],
    );
    let rules = RuleSet::default_set();
    let v = apply_primary(&t, &rules, &[]).unwrap();
    // (a, y) = 0 in a non-empty row: a zero; (a, x) holds all of row a: a 100% share.
    assert_eq!(
        v[cell(&t, &["a", "y"])].reasons,
        vec![Reason::ClassDisclosure]
    );
    assert_eq!(
        v[cell(&t, &["a", "x"])].reasons,
        vec![Reason::ClassDisclosure]
    );
    assert_eq!(v[cell(&t, &["b", "y"])].status, CellStatus::Ok);
    let off = RuleSet::from_toml_str(
        "name = \"no-class\"\nversion = 1\n[class_disclosure]\nzeros = false\nfull_share = false\n",
    )
    .unwrap();
    let v = apply_primary(&t, &off, &[]).unwrap();
    assert!(v.iter().all(|v| v.status == CellStatus::Ok), "{v:?}");
}

#[test]
fn min_and_max_never_pass_on_their_own() {
    let mut agg = Aggregator::new(
        "t",
        vec!["sex".into()],
        Statistic::Max,
        Some("income".into()),
    )
    .unwrap();
    for p in 0..30u64 {
        agg.push(
            format!("u{p}").as_bytes(),
            &[if p % 2 == 0 { b"F" } else { b"M" }],
            Some(p as f64),
            p + 1,
        )
        .unwrap();
    }
    let t = agg.finish(2).unwrap();
    assert_eq!(t.cells[cell(&t, &["Total"])].value, 29.0);
    for v in apply_primary(&t, &RuleSet::default_set(), &[]).unwrap() {
        assert_eq!(v.status, CellStatus::Review);
        assert!(v.reasons.contains(&Reason::ExtremeValue));
    }
}

#[test]
fn a_custom_threshold_of_five_changes_the_verdict() {
    let five = RuleSet::from_toml_str("name = \"five\"\nversion = 1\n[threshold]\nmin_units = 5\n")
        .unwrap();
    let mut v = vec![10.0; 6];
    v[0] = 11.0;
    assert_eq!(reasons(&sum_cell_table(&v), &five), vec![vec![]]);
    assert_eq!(
        reasons(&sum_cell_table(&v), &RuleSet::default_set()),
        vec![vec![Reason::Threshold]]
    );
}
