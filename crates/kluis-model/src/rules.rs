//! Derivation rules: national origin (Socio-economic Monitoring precedence), Statbel origin and
//! migration background. Pure functions of a person's nationality history for one reference year.
//! The code "unknown" (XU) counts as missing everywhere.

use serde::{Deserialize, Serialize};

use crate::codelists::Country;
use crate::groups::{MigrationBackground, OriginGroup, StatbelOrigin};

/// What the rules read about a person in one reference year.
#[derive(Debug, Clone, Copy, Default)]
pub struct Background<'a> {
    /// Nationality on 1 January of the reference year.
    pub current_nationality: Option<&'a Country>,
    /// First nationality known in the National Register.
    pub first_nationality: Option<&'a Country>,
    pub father_first_nationality: Option<&'a Country>,
    pub mother_first_nationality: Option<&'a Country>,
    pub country_of_birth: Option<&'a Country>,
    /// Year of first registration in the National Register.
    pub registration_year: Option<i32>,
    /// Year Belgian nationality was acquired.
    pub naturalisation_year: Option<i32>,
}

/// A person's national origin: the country it comes from (when foreign) and its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    pub country: Option<&'a Country>,
    pub group: OriginGroup,
}

/// Thresholds of the migration-background categories, in years. [dec] DOMAIN.md §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationThresholds {
    /// Non-Belgians registered fewer years ago than this are newcomers.
    pub newcomer_years: i32,
    /// Naturalised fewer years ago than this: the first band.
    pub naturalised_recent_years: i32,
    /// Naturalised at least this many years ago: the last band.
    pub naturalised_long_years: i32,
}

impl Default for MigrationThresholds {
    fn default() -> Self {
        MigrationThresholds {
            newcomer_years: 5,
            naturalised_recent_years: 5,
            naturalised_long_years: 10,
        }
    }
}

/// A known value: present and not the "unknown" code.
fn known(country: Option<&Country>) -> Option<&Country> {
    country.filter(|c| !c.is_unknown())
}

/// Born in Belgium (Some(true)), abroad (Some(false)) or unknown (None).
fn born_in_belgium(b: &Background) -> Option<bool> {
    known(b.country_of_birth).map(Country::is_belgian)
}

impl<'a> Background<'a> {
    /// National origin, SEM precedence: the first of father's first, mother's first, own first and
    /// current nationality that is known and not Belgian gives the origin country and group
    /// (stateless gives group `UNKNOWN`). With none foreign: all four known → `BE`; else own first
    /// or current known → `BE_UNDETERMINED`; else `UNKNOWN`.
    pub fn origin(&self) -> Origin<'a> {
        let walk = [
            known(self.father_first_nationality),
            known(self.mother_first_nationality),
            known(self.first_nationality),
            known(self.current_nationality),
        ];
        if let Some(foreign) = walk.iter().flatten().find(|c| !c.is_belgian()) {
            return Origin {
                country: Some(foreign),
                group: foreign.origin_group,
            };
        }
        let group = if walk.iter().all(Option::is_some) {
            OriginGroup::Be
        } else if walk[2].is_some() || walk[3].is_some() {
            OriginGroup::BeUndetermined
        } else {
            OriginGroup::Unknown
        };
        Origin {
            country: None,
            group,
        }
    }

    /// Statbel origin: current nationality first, then own and parents' first nationality.
    pub fn statbel_origin(&self) -> StatbelOrigin {
        let Some(current) = known(self.current_nationality) else {
            return StatbelOrigin::Unknown;
        };
        if !current.is_belgian() {
            return StatbelOrigin::NonBelgian;
        }
        let foreign_background = [
            self.first_nationality,
            self.father_first_nationality,
            self.mother_first_nationality,
        ]
        .into_iter()
        .any(|n| known(n).is_some_and(|c| !c.is_belgian()));
        if foreign_background {
            StatbelOrigin::BeForeignBackground
        } else {
            StatbelOrigin::BeBelgianBackground
        }
    }

    /// Migration background in `reference_year`. A needed input that is missing, or a reference
    /// year before the registration or naturalisation year it is measured from (inconsistent
    /// data), gives `UNKNOWN`.
    pub fn migration_background(
        &self,
        reference_year: i32,
        thresholds: &MigrationThresholds,
    ) -> MigrationBackground {
        use MigrationBackground as M;
        let origin = self.origin().group;
        let Some(current) = known(self.current_nationality) else {
            return M::Unknown;
        };
        if origin == OriginGroup::Unknown {
            return M::Unknown;
        }
        let years_since =
            |year: Option<i32>| year.map(|y| reference_year - y).filter(|years| *years >= 0);
        let first = known(self.first_nationality);

        if !current.is_belgian() {
            return match born_in_belgium(self) {
                Some(true) => M::NonBeBornBe,
                Some(false) => match years_since(self.registration_year) {
                    Some(y) if y < thresholds.newcomer_years => M::NonBeBornAbroadLt5,
                    Some(_) => M::NonBeBornAbroadGe5,
                    None => M::Unknown,
                },
                None => M::Unknown,
            };
        }
        let naturalised = match first {
            Some(f) => !f.is_belgian(),
            None => self.naturalisation_year.is_some(),
        };
        if naturalised {
            return match born_in_belgium(self) {
                Some(true) => M::BeNaturalisedBornBe,
                Some(false) => match years_since(self.naturalisation_year) {
                    Some(y) if y < thresholds.naturalised_recent_years => {
                        M::BeNaturalisedBornAbroadLt5
                    }
                    Some(y) if y < thresholds.naturalised_long_years => {
                        M::BeNaturalisedBornAbroad5To9
                    }
                    Some(_) => M::BeNaturalisedBornAbroadGe10,
                    None => M::Unknown,
                },
                None => M::Unknown,
            };
        }
        if first.is_some_and(Country::is_belgian) {
            return match origin {
                OriginGroup::Be => M::BeNoBackground,
                OriginGroup::BeUndetermined => M::BeUndetermined,
                _ => match born_in_belgium(self) {
                    Some(true) => M::BeBirthBornBe,
                    Some(false) => M::BeBirthBornAbroad,
                    None => M::Unknown,
                },
            };
        }
        M::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codelists::country;
    use MigrationBackground as M;
    use proptest::prelude::*;

    fn c(code: &str) -> Option<&'static Country> {
        Some(country(code).expect("test country"))
    }

    /// Builds a background from short codes: "" = missing.
    fn bg(
        current: &str,
        first: &str,
        father: &str,
        mother: &str,
        born: &str,
        registered: Option<i32>,
        naturalised: Option<i32>,
    ) -> Background<'static> {
        let opt = |s: &str| if s.is_empty() { None } else { c(s) };
        Background {
            current_nationality: opt(current),
            first_nationality: opt(first),
            father_first_nationality: opt(father),
            mother_first_nationality: opt(mother),
            country_of_birth: opt(born),
            registration_year: registered,
            naturalisation_year: naturalised,
        }
    }

    #[test]
    fn origin_follows_sem_precedence() {
        // Father first, then mother, own first, current.
        let o = bg("BE", "TR", "MA", "IT", "BE", Some(1990), None).origin();
        assert_eq!(
            (o.country.unwrap().alpha2.as_str(), o.group),
            ("MA", OriginGroup::Maghreb)
        );
        let o = bg("BE", "TR", "BE", "IT", "BE", Some(1990), None).origin();
        assert_eq!(o.country.unwrap().alpha2, "IT");
        let o = bg("BE", "TR", "BE", "BE", "TR", Some(1990), Some(2000)).origin();
        assert_eq!(o.group, OriginGroup::Candidate);
        let o = bg("PL", "BE", "BE", "BE", "BE", Some(1990), None).origin();
        assert_eq!(o.group, OriginGroup::Eu13);
        // Missing father: skip to the mother.
        let o = bg("BE", "BE", "", "CD", "BE", Some(1990), None).origin();
        assert_eq!(o.group, OriginGroup::OtherAfrica);
        // "Unknown" counts as missing.
        let o = bg("BE", "BE", "XU", "DZ", "BE", Some(1990), None).origin();
        assert_eq!(o.country.unwrap().alpha2, "DZ");
    }

    #[test]
    fn origin_without_foreign_nationality() {
        assert_eq!(
            bg("BE", "BE", "BE", "BE", "BE", Some(1990), None)
                .origin()
                .group,
            OriginGroup::Be
        );
        assert_eq!(
            bg("BE", "BE", "", "BE", "BE", None, None).origin().group,
            OriginGroup::BeUndetermined
        );
        assert_eq!(
            bg("BE", "", "BE", "BE", "", None, None).origin().group,
            OriginGroup::BeUndetermined
        );
        assert_eq!(
            bg("", "BE", "XU", "", "", None, None).origin().group,
            OriginGroup::BeUndetermined
        );
        assert_eq!(
            bg("", "", "BE", "BE", "BE", None, None).origin().group,
            OriginGroup::Unknown
        );
        assert_eq!(
            bg("XU", "XU", "", "", "", None, None).origin().group,
            OriginGroup::Unknown
        );
        // Stateless is foreign, with group UNKNOWN.
        let o = bg("XA", "XA", "", "", "SY", Some(2015), None).origin();
        assert_eq!(
            (o.country.unwrap().alpha2.as_str(), o.group),
            ("XA", OriginGroup::Unknown)
        );
        assert_eq!(o.country.unwrap().alpha2, "XA");
    }

    #[test]
    fn statbel_origin_every_branch() {
        assert_eq!(
            bg("", "MA", "MA", "MA", "MA", None, None).statbel_origin(),
            StatbelOrigin::Unknown
        );
        assert_eq!(
            bg("XU", "MA", "", "", "", None, None).statbel_origin(),
            StatbelOrigin::Unknown
        );
        assert_eq!(
            bg("FR", "BE", "BE", "BE", "BE", None, None).statbel_origin(),
            StatbelOrigin::NonBelgian
        );
        assert_eq!(
            bg("BE", "MA", "", "", "MA", None, Some(2000)).statbel_origin(),
            StatbelOrigin::BeForeignBackground
        );
        assert_eq!(
            bg("BE", "BE", "IT", "", "BE", None, None).statbel_origin(),
            StatbelOrigin::BeForeignBackground
        );
        assert_eq!(
            bg("BE", "BE", "BE", "NL", "BE", None, None).statbel_origin(),
            StatbelOrigin::BeForeignBackground
        );
        assert_eq!(
            bg("BE", "BE", "BE", "BE", "BE", None, None).statbel_origin(),
            StatbelOrigin::BeBelgianBackground
        );
        // Missing parents do not make a foreign background.
        assert_eq!(
            bg("BE", "BE", "", "", "BE", None, None).statbel_origin(),
            StatbelOrigin::BeBelgianBackground
        );
    }

    #[test]
    fn migration_background_every_branch() {
        let t = MigrationThresholds::default();
        let mb = |b: Background, year| b.migration_background(year, &t);
        // Unknown current nationality or unknown origin.
        assert_eq!(
            mb(bg("", "MA", "MA", "MA", "MA", Some(2000), None), 2020),
            M::Unknown
        );
        assert_eq!(
            mb(bg("XA", "XA", "", "", "SY", Some(2015), None), 2020),
            M::Unknown
        );
        // Non-Belgians.
        assert_eq!(
            mb(bg("MA", "MA", "MA", "MA", "BE", Some(1995), None), 2020),
            M::NonBeBornBe
        );
        assert_eq!(
            mb(bg("MA", "MA", "MA", "MA", "MA", Some(2016), None), 2020),
            M::NonBeBornAbroadLt5
        );
        assert_eq!(
            mb(bg("MA", "MA", "MA", "MA", "MA", Some(2015), None), 2020),
            M::NonBeBornAbroadGe5
        );
        assert_eq!(
            mb(bg("MA", "MA", "MA", "MA", "MA", None, None), 2020),
            M::Unknown
        );
        assert_eq!(
            mb(bg("MA", "MA", "MA", "MA", "", Some(2015), None), 2020),
            M::Unknown
        );
        assert_eq!(
            mb(bg("MA", "MA", "MA", "MA", "MA", Some(2021), None), 2020),
            M::Unknown
        );
        // Naturalised.
        assert_eq!(
            mb(
                bg("BE", "MA", "MA", "MA", "BE", Some(1990), Some(2008)),
                2020
            ),
            M::BeNaturalisedBornBe
        );
        assert_eq!(
            mb(
                bg("BE", "MA", "MA", "MA", "MA", Some(2000), Some(2016)),
                2020
            ),
            M::BeNaturalisedBornAbroadLt5
        );
        assert_eq!(
            mb(
                bg("BE", "MA", "MA", "MA", "MA", Some(2000), Some(2015)),
                2020
            ),
            M::BeNaturalisedBornAbroad5To9
        );
        assert_eq!(
            mb(
                bg("BE", "MA", "MA", "MA", "MA", Some(2000), Some(2011)),
                2020
            ),
            M::BeNaturalisedBornAbroad5To9
        );
        assert_eq!(
            mb(
                bg("BE", "MA", "MA", "MA", "MA", Some(2000), Some(2010)),
                2020
            ),
            M::BeNaturalisedBornAbroadGe10
        );
        assert_eq!(
            mb(bg("BE", "MA", "MA", "MA", "MA", Some(2000), None), 2020),
            M::Unknown
        );
        assert_eq!(
            mb(bg("BE", "MA", "MA", "MA", "", Some(2000), Some(2010)), 2020),
            M::Unknown
        );
        // Own first missing, but a naturalisation year: naturalised.
        assert_eq!(
            mb(bg("BE", "", "TR", "TR", "TR", Some(2000), Some(2005)), 2020),
            M::BeNaturalisedBornAbroadGe10
        );
        // Belgian by birth.
        assert_eq!(
            mb(bg("BE", "BE", "BE", "BE", "BE", Some(1980), None), 2020),
            M::BeNoBackground
        );
        assert_eq!(
            mb(bg("BE", "BE", "IT", "BE", "BE", Some(1980), None), 2020),
            M::BeBirthBornBe
        );
        assert_eq!(
            mb(bg("BE", "BE", "IT", "BE", "CD", Some(1985), None), 2020),
            M::BeBirthBornAbroad
        );
        assert_eq!(
            mb(bg("BE", "BE", "IT", "BE", "", Some(1985), None), 2020),
            M::Unknown
        );
        assert_eq!(
            mb(bg("BE", "BE", "", "BE", "BE", Some(1980), None), 2020),
            M::BeUndetermined
        );
        // Own first missing and no naturalisation year: nothing fits.
        assert_eq!(
            mb(bg("BE", "", "BE", "BE", "BE", Some(1980), None), 2020),
            M::Unknown
        );
    }

    #[test]
    fn thresholds_are_configurable() {
        let t = MigrationThresholds {
            newcomer_years: 3,
            naturalised_recent_years: 2,
            naturalised_long_years: 4,
        };
        let b = bg("MA", "MA", "MA", "MA", "MA", Some(2016), None);
        assert_eq!(b.migration_background(2020, &t), M::NonBeBornAbroadGe5);
        let n = bg("BE", "MA", "MA", "MA", "MA", Some(2000), Some(2017));
        assert_eq!(
            n.migration_background(2020, &t),
            M::BeNaturalisedBornAbroad5To9
        );
    }

    fn arb_country() -> impl Strategy<Value = Option<&'static Country>> {
        let all = crate::codelists::countries();
        prop_oneof![
            1 => Just(None),
            6 => (0..all.len()).prop_map(move |i| Some(&all[i])),
        ]
    }

    fn arb_background() -> impl Strategy<Value = Background<'static>> {
        (
            arb_country(),
            arb_country(),
            arb_country(),
            arb_country(),
            arb_country(),
            proptest::option::of(1950i32..2022),
            proptest::option::of(1950i32..2022),
        )
            .prop_map(|(cur, first, fa, mo, born, reg, nat)| Background {
                current_nationality: cur,
                first_nationality: first,
                father_first_nationality: fa,
                mother_first_nationality: mo,
                country_of_birth: born,
                registration_year: reg,
                naturalisation_year: nat,
            })
    }

    proptest! {
        #[test]
        fn all_belgian_inputs_give_belgian_without_background(
            born in prop_oneof![Just("BE"), Just("")], reg in proptest::option::of(1950i32..2022),
            year in 2010i32..2022
        ) {
            let b = bg("BE", "BE", "BE", "BE", born, reg, None);
            prop_assert_eq!(b.origin().group, OriginGroup::Be);
            prop_assert_eq!(b.statbel_origin(), StatbelOrigin::BeBelgianBackground);
            prop_assert_eq!(b.migration_background(year, &MigrationThresholds::default()), M::BeNoBackground);
        }

        #[test]
        fn any_foreign_parent_never_gives_no_background(
            mut b in arb_background(), parent in arb_country(), father in any::<bool>(), year in 2010i32..2022
        ) {
            prop_assume!(parent.is_some_and(|p| !p.is_belgian() && !p.is_unknown()));
            if father { b.father_first_nationality = parent } else { b.mother_first_nationality = parent }
            let t = MigrationThresholds::default();
            prop_assert_ne!(b.migration_background(year, &t), M::BeNoBackground);
            prop_assert_ne!(b.origin().group, OriginGroup::Be);
            prop_assert_ne!(b.statbel_origin(), StatbelOrigin::BeBelgianBackground);
        }

        #[test]
        fn a_foreign_origin_has_its_country(b in arb_background()) {
            let o = b.origin();
            prop_assert_eq!(o.country.is_some(), o.group.is_foreign() || o.country.is_some_and(|c| c.alpha2 == "XA"));
            if let Some(c) = o.country { prop_assert_eq!(c.origin_group, o.group); }
        }
    }
}
