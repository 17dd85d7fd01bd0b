//! kluis domain model: the code lists, INSZ numbers, and the rules that derive national origin,
//! Statbel origin and migration background. No I/O: everything here is pure and embedded.

pub mod codelists;
pub mod groups;
pub mod insz;
pub mod rules;
pub mod schema;

pub use codelists::{Country, country};
pub use groups::{
    EducationBand, EmployerGroup, MigrationBackground, OriginGroup, StatbelGroup, StatbelOrigin,
};
pub use insz::{Insz, InszError, InszInfo, InszKind, PartialDate, Sex, holds_insz, redact_if_insz};
pub use rules::{Background, MigrationThresholds, Origin};
