//! Closed sets of codes that rules branch on. Their codes and labels live in the code lists; a
//! test checks that each enum and its list agree, so a list edit cannot silently drift from code.

use serde::{Deserialize, Serialize};

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $list:literal { $($variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $code)] $variant),+
        }

        impl $name {
            /// Every value, in code-list order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The code list this enum mirrors.
            pub const CODE_LIST: &'static str = $list;

            /// The code as written in data files and reports.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// Parses a code exactly as the code list writes it.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }

            /// The human label from the code list.
            pub fn label(self) -> &'static str {
                let list = crate::codelists::get($list).expect("code list embedded");
                let row = list.row(self.code()).expect("enum and code list agree");
                &row[1]
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

code_enum!(
    /// National origin group of the Socio-economic Monitoring.
    OriginGroup, "origin_groups" {
        Be = "BE",
        Eu14 = "EU14",
        Eu13 = "EU13",
        Candidate = "CANDIDATE",
        OtherEurope = "OTHER_EUROPE",
        Maghreb = "MAGHREB",
        OtherAfrica = "OTHER_AFRICA",
        NearMiddleEast = "NEAR_MIDDLE_EAST",
        OceaniaFarEast = "OCEANIA_FAR_EAST",
        CentralSouthAmerica = "CENTRAL_SOUTH_AMERICA",
        NorthAmerica = "NORTH_AMERICA",
        BeUndetermined = "BE_UNDETERMINED",
        Unknown = "UNKNOWN",
    }
);

impl OriginGroup {
    /// A foreign origin: neither Belgian, undetermined nor unknown.
    pub fn is_foreign(self) -> bool {
        !matches!(
            self,
            OriginGroup::Be | OriginGroup::BeUndetermined | OriginGroup::Unknown
        )
    }
}

code_enum!(
    /// Statbel nationality group.
    StatbelGroup, "statbel_groups" {
        Belgian = "BELGIAN",
        Neighbouring = "NEIGHBOURING",
        OtherEu27 = "OTHER_EU27",
        NonEu27 = "NON_EU27",
        Unknown = "UNKNOWN",
    }
);

code_enum!(
    /// Statbel origin category.
    StatbelOrigin, "statbel_origins" {
        BeBelgianBackground = "BE_BELGIAN_BACKGROUND",
        BeForeignBackground = "BE_FOREIGN_BACKGROUND",
        NonBelgian = "NON_BELGIAN",
        Unknown = "UNKNOWN",
    }
);

code_enum!(
    /// Migration background category.
    MigrationBackground, "migration_backgrounds" {
        BeNoBackground = "BE_NO_BACKGROUND",
        BeBirthBornBe = "BE_BIRTH_BORN_BE",
        BeBirthBornAbroad = "BE_BIRTH_BORN_ABROAD",
        BeNaturalisedBornBe = "BE_NATURALISED_BORN_BE",
        BeNaturalisedBornAbroadLt5 = "BE_NATURALISED_BORN_ABROAD_LT5",
        BeNaturalisedBornAbroad5To9 = "BE_NATURALISED_BORN_ABROAD_5_9",
        BeNaturalisedBornAbroadGe10 = "BE_NATURALISED_BORN_ABROAD_GE10",
        NonBeBornBe = "NON_BE_BORN_BE",
        NonBeBornAbroadLt5 = "NON_BE_BORN_ABROAD_LT5",
        NonBeBornAbroadGe5 = "NON_BE_BORN_ABROAD_GE5",
        BeUndetermined = "BE_UNDETERMINED",
        Unknown = "UNKNOWN",
    }
);

code_enum!(
    /// Employer group of the authorisation's strata.
    EmployerGroup, "employer_groups" {
        Federal = "FEDERAL",
        NonFederalPublic = "NON_FEDERAL_PUBLIC",
        Private = "PRIVATE",
        Unknown = "UNKNOWN",
    }
);

code_enum!(
    /// Education band (low/medium/high) of the Socio-economic Monitoring.
    EducationBand, "education_bands" {
        Low = "LOW",
        Medium = "MEDIUM",
        High = "HIGH",
        Unknown = "UNKNOWN",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_mirrors(list: &str, codes: Vec<&str>) {
        let listed: Vec<&str> = crate::codelists::get(list).unwrap().codes().collect();
        assert_eq!(codes, listed, "enum and code list {list} disagree");
    }

    #[test]
    fn enums_mirror_their_code_lists() {
        assert_mirrors(
            OriginGroup::CODE_LIST,
            OriginGroup::ALL.iter().map(|g| g.code()).collect(),
        );
        assert_mirrors(
            StatbelGroup::CODE_LIST,
            StatbelGroup::ALL.iter().map(|g| g.code()).collect(),
        );
        assert_mirrors(
            StatbelOrigin::CODE_LIST,
            StatbelOrigin::ALL.iter().map(|g| g.code()).collect(),
        );
        assert_mirrors(
            MigrationBackground::CODE_LIST,
            MigrationBackground::ALL.iter().map(|g| g.code()).collect(),
        );
        assert_mirrors(
            EmployerGroup::CODE_LIST,
            EmployerGroup::ALL.iter().map(|g| g.code()).collect(),
        );
        assert_mirrors(
            EducationBand::CODE_LIST,
            EducationBand::ALL.iter().map(|g| g.code()).collect(),
        );
        for g in OriginGroup::ALL {
            assert_eq!(OriginGroup::from_code(g.code()), Some(*g));
            assert!(!g.label().is_empty());
        }
    }
}
