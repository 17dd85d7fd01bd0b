//! For random tables, the audit confirms that no suppressed cell is derivable and that every
//! primary interval is wide enough, without the safe fallback.

mod common;

use common::count_cube;
use kluis_sdc::{CellStatus, Method, Release, Rounding, RuleSet, protect};
use proptest::prelude::*;

fn table_strategy() -> impl Strategy<Value = (Vec<usize>, Vec<u64>)> {
    prop_oneof![
        (2usize..5, 2usize..5).prop_map(|(a, b)| vec![a, b]),
        (2usize..4, 2usize..4, 2usize..4).prop_map(|(a, b, c)| vec![a, b, c]),
    ]
    .prop_flat_map(|sizes| {
        let n: usize = sizes.iter().product();
        (
            Just(sizes),
            proptest::collection::vec(prop_oneof![3 => 0u64..12, 2 => 12u64..80], n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn suppression_is_always_safe((sizes, interior) in table_strategy(), zeros in any::<bool>()) {
        let t = count_cube(&sizes, &interior);
        let rules = RuleSet::from_toml_str(&format!(
            "name = \"prop\"\nversion = 1\n[class_disclosure]\nzeros = {zeros}\nfull_share = false\n"
        )).unwrap();
        let tables = [t];
        let r = &protect(Release { tables: &tables, hierarchies: &[], published: &[], withheld: &[] }, &rules, Rounding::None).unwrap()[0];
        prop_assert!(r.audit.passed, "{}", r.to_text());
        prop_assert_ne!(r.secondary.method, Method::FallbackAll, "{}", r.to_text());
        for c in &r.cells {
            if let Some((lo, hi)) = c.interval {
                let width = hi.unwrap_or(f64::INFINITY) - lo;
                prop_assert!(width > 1e-6, "derivable: {:?}", c.key);
                if c.status == CellStatus::Primary {
                    prop_assert!(width >= rules.protection.required_width(c.value.unwrap()) - 1e-6);
                }
            }
            prop_assert_eq!(c.published.is_none(), c.status.is_suppressed());
        }
    }
}
