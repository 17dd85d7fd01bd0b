//! Recoding and suppression reach k, choose the least loss, and change nothing else.

use kluis_risk::{
    CodedColumn, CodedTable, Hierarchy, MISSING, MissingPolicy, RecodingOptions, RiskOptions,
    analyse, apply_recoding, code_entropy, enforce_k, information_loss, optimal_recoding,
    suppress_to_k,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded table: age (0..60), region (0..9), sex, and a non-QI column `income`.
fn random_table(rows: usize, seed: u64) -> CodedTable {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut age = Vec::new();
    let mut region = Vec::new();
    let mut sex = Vec::new();
    let mut income = Vec::new();
    for _ in 0..rows {
        // Skewed ages so that some classes are small.
        let a: u32 = if rng.random_bool(0.8) {
            rng.random_range(20..30)
        } else {
            rng.random_range(0..60)
        };
        age.push(a.to_string());
        region.push(format!("R{}", rng.random_range(0..9)));
        sex.push(if rng.random_bool(0.5) { "M" } else { "F" }.to_string());
        income.push(rng.random_range(0..1000).to_string());
    }
    let col = |name: &str, v: &[String]| {
        CodedColumn::from_values(name, v.iter().map(|s| Some(s.as_str())))
    };
    CodedTable::new(vec![
        col("age", &age),
        col("region", &region),
        col("sex", &sex),
        col("income", &income),
    ])
    .unwrap()
}

fn hierarchies(table: &CodedTable) -> Vec<Hierarchy> {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let age_rows: Vec<Vec<String>> = (0..60)
        .map(|a: u32| {
            vec![
                a.to_string(),
                format!("{}-{}", a / 5 * 5, a / 5 * 5 + 4),
                format!("{}s", a / 20 * 20),
                "*".into(),
            ]
        })
        .collect();
    let region_rows: Vec<Vec<String>> = (0..9)
        .map(|r| vec![format!("R{r}"), format!("P{}", r / 3), "*".into()])
        .collect();
    let sex_rows = vec![vec!["M".into(), "*".into()], vec!["F".into(), "*".into()]];
    vec![
        Hierarchy::from_rows(
            "age",
            names(&["age", "age5", "age20", "*"]),
            &age_rows,
            &table.column("age").unwrap().dictionary,
        )
        .unwrap(),
        Hierarchy::from_rows(
            "region",
            names(&["region", "province", "*"]),
            &region_rows,
            &table.column("region").unwrap().dictionary,
        )
        .unwrap(),
        Hierarchy::from_rows(
            "sex",
            names(&["sex", "*"]),
            &sex_rows,
            &table.column("sex").unwrap().dictionary,
        )
        .unwrap(),
    ]
}

const QI: [&str; 3] = ["age", "region", "sex"];

fn below_k(table: &CodedTable, k: u32) -> u64 {
    let options = RiskOptions {
        k,
        ..RiskOptions::default()
    };
    analyse(table, &QI, None, &[], &options)
        .unwrap()
        .records_below_k
}

fn loss(original: &CodedTable, recoded: &CodedTable) -> f64 {
    let before: f64 = QI
        .iter()
        .map(|q| code_entropy(&original.column(q).unwrap().codes))
        .sum();
    let after: f64 = QI
        .iter()
        .map(|q| code_entropy(&recoded.column(q).unwrap().codes))
        .sum();
    (before - after) / before
}

#[test]
fn optimal_recoding_is_the_least_loss_feasible_node_of_a_brute_force_search() {
    for (seed, k, budget) in [(1, 5, 0), (2, 3, 10), (3, 10, 25), (4, 2, 0)] {
        let table = random_table(400, seed);
        let h = hierarchies(&table);
        let options = RecodingOptions {
            k,
            max_suppressed: budget,
        };
        let found = optimal_recoding(&table, &h, &options)
            .unwrap()
            .expect("top node is feasible");
        assert_eq!(found.lattice_nodes, 4 * 3 * 2);
        assert!(found.nodes_evaluated <= found.lattice_nodes);

        let mut best: Option<(f64, u64)> = None;
        for a in 0..4 {
            for r in 0..3 {
                for s in 0..2 {
                    let recoded = apply_recoding(&table, &h, &[a, r, s]).unwrap();
                    let below = below_k(&recoded, k);
                    if below <= budget {
                        let l = loss(&table, &recoded);
                        let better = match best {
                            None => true,
                            Some((bl, bb)) => {
                                l < bl - 1e-12 || ((l - bl).abs() <= 1e-12 && below < bb)
                            }
                        };
                        if better {
                            best = Some((l, below));
                        }
                    }
                }
            }
        }
        let (best_loss, best_below) = best.unwrap();
        assert!(
            (found.loss - best_loss).abs() < 1e-9,
            "seed {seed}: {} vs {best_loss}",
            found.loss
        );
        assert_eq!(found.records_below_k, best_below, "seed {seed}");
        let recoded = apply_recoding(&table, &h, &found.levels).unwrap();
        assert_eq!(below_k(&recoded, k), found.records_below_k);
    }
}

#[test]
fn recoding_changes_only_the_quasi_identifiers_and_keeps_values_consistent() {
    let table = random_table(300, 7);
    let h = hierarchies(&table);
    let recoded = apply_recoding(&table, &h, &[1, 1, 0]).unwrap();
    assert_eq!(
        recoded.column("income").unwrap().codes,
        table.column("income").unwrap().codes
    );
    assert_eq!(
        recoded.column("sex").unwrap().codes,
        table.column("sex").unwrap().codes
    );
    for r in 0..table.rows() {
        let age: u32 = table
            .column("age")
            .unwrap()
            .label(r)
            .unwrap()
            .parse()
            .unwrap();
        let band = format!("{}-{}", age / 5 * 5, age / 5 * 5 + 4);
        assert_eq!(recoded.column("age").unwrap().label(r), Some(band.as_str()));
        let region = table.column("region").unwrap().label(r).unwrap()[1..]
            .parse::<u32>()
            .unwrap();
        assert_eq!(
            recoded.column("region").unwrap().label(r),
            Some(format!("P{}", region / 3).as_str())
        );
    }
}

#[test]
fn suppression_reaches_k_and_touches_only_offending_quasi_identifier_cells() {
    for policy in [MissingPolicy::MatchesAny, MissingPolicy::OwnValue] {
        let table = random_table(500, 11);
        let k = 3;
        let options = RiskOptions {
            k,
            missing: policy,
            threshold: None,
        };
        let before = analyse(&table, &QI, None, &[], &options).unwrap();
        let offending = before.records_breaking_k();
        assert!(!offending.is_empty());
        let mut suppressed = table.clone();
        let report = suppress_to_k(&mut suppressed, &QI, k, policy).unwrap();
        let after = analyse(&suppressed, &QI, None, &[], &options).unwrap();
        assert!(report.k_reached, "{policy:?}: {report:?}");
        assert!(after.k_min >= u64::from(k));
        assert_eq!(report.k_min, after.k_min);
        assert_eq!(
            suppressed.column("income").unwrap().codes,
            table.column("income").unwrap().codes
        );
        let mut cells = 0;
        for r in 0..table.rows() {
            for q in QI {
                let (b, a) = (
                    table.column(q).unwrap().codes[r],
                    suppressed.column(q).unwrap().codes[r],
                );
                if b != a {
                    assert!(offending.contains(&r), "row {r} met k but was changed");
                    assert_eq!(a, MISSING);
                    cells += 1;
                }
            }
        }
        assert_eq!(report.cells, cells);
        assert!(report.records as usize <= offending.len());
    }
}

#[test]
fn suppression_picks_the_column_that_separates_the_offenders() {
    // (a,x) ×3 meets k=3; (b,y), (b,z), (b,w) differ only in the second QI: suppressing it
    // once in each (3 cells) makes them (b,∗) ×3.
    let rows: Vec<Vec<Option<&str>>> = [
        ["a", "x"],
        ["a", "x"],
        ["a", "x"],
        ["b", "y"],
        ["b", "z"],
        ["b", "w"],
    ]
    .iter()
    .map(|r| r.iter().map(|v| Some(*v)).collect())
    .collect();
    for policy in [MissingPolicy::MatchesAny, MissingPolicy::OwnValue] {
        let mut t = CodedTable::from_rows(&["p", "q"], &rows).unwrap();
        let report = suppress_to_k(&mut t, &["p", "q"], 3, policy).unwrap();
        assert_eq!(report.cells, 3);
        assert_eq!(
            report.cells_per_column,
            vec![("p".into(), 0), ("q".into(), 3)]
        );
        assert!(report.k_reached);
        assert_eq!(t.column("q").unwrap().label(3), None);
        assert_eq!(t.column("q").unwrap().label(0), Some("x"));
    }
}

#[test]
fn own_value_suppression_reports_when_k_cannot_be_reached() {
    // Two records, k = 3: even fully suppressed they form a class of two.
    let mut t = CodedTable::from_rows(&["p"], &[vec![Some("a")], vec![Some("b")]]).unwrap();
    let report = suppress_to_k(&mut t, &["p"], 3, MissingPolicy::OwnValue).unwrap();
    assert!(!report.k_reached);
    assert_eq!(report.k_min, 2);
}

#[test]
fn enforcement_reaches_k_and_reports_the_loss() {
    let table = random_table(2000, 5);
    let h = hierarchies(&table);
    let k = 5;
    let done = enforce_k(
        &table,
        &h,
        &RecodingOptions {
            k,
            max_suppressed: 40,
        },
        MissingPolicy::MatchesAny,
    )
    .unwrap();
    let recoding = done.recoding.clone().unwrap();
    assert!(recoding.records_below_k <= 40);
    let options = RiskOptions {
        k,
        missing: MissingPolicy::MatchesAny,
        threshold: None,
    };
    let after = analyse(&done.table, &QI, None, &[], &options).unwrap();
    assert!(after.k_min >= u64::from(k));
    assert!(done.suppression.k_reached);
    assert_eq!(
        done.table.column("income").unwrap().codes,
        table.column("income").unwrap().codes
    );
    assert_eq!(done.loss.cells_suppressed, done.suppression.cells);
    assert_eq!(
        done.loss.levels_coarsened,
        recoding.levels.iter().sum::<usize>() as u64
    );
    for (c, q) in done.loss.columns.iter().zip(QI) {
        assert_eq!(c.column, q);
        // Coarsening never adds entropy; suppressed cells (missing as a value) may.
        if c.cells_suppressed == 0 {
            assert!(c.entropy_after <= c.entropy_before + 1e-12);
        }
        assert!((c.entropy_before - code_entropy(&table.column(q).unwrap().codes)).abs() < 1e-12);
    }
    let again = information_loss(&table, &done.table, &h, &done.levels).unwrap();
    assert_eq!(again, done.loss);
}

#[test]
fn information_loss_of_a_tiny_case() {
    let original = CodedTable::from_rows(
        &["x"],
        &[
            vec![Some("a")],
            vec![Some("b")],
            vec![Some("c")],
            vec![Some("d")],
        ],
    )
    .unwrap();
    let mut released = original.clone();
    released.columns_mut()[0].codes[3] = MISSING;
    released.columns_mut()[0].codes[2] = MISSING;
    let rows: Vec<Vec<String>> = ["a", "b", "c", "d"]
        .iter()
        .map(|v| vec![v.to_string(), "*".into()])
        .collect();
    let h = Hierarchy::from_rows(
        "x",
        vec!["x".into(), "*".into()],
        &rows,
        &original.columns()[0].dictionary,
    )
    .unwrap();
    let loss = information_loss(&original, &released, &[h], &[0]).unwrap();
    assert_eq!(loss.cells_suppressed, 2);
    assert_eq!(loss.records_suppressed, 2);
    // 4 equally likely values: 2 bits; after: a, b, missing×2: 1.5 bits.
    assert!((loss.columns[0].entropy_before - 2.0).abs() < 1e-12);
    assert!((loss.columns[0].entropy_after - 1.5).abs() < 1e-12);
}
