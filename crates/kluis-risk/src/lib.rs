//! kluis-risk: re-identification risk of microdata, and the means to bring it under a limit.
//!
//! - [`coded`]: columns as dense category codes; [`read`]: CSV/Parquet into coded columns.
//! - [`classes`]: equivalence classes over quasi-identifiers.
//! - [`analysis`]: sample risk (k-anonymity, uniques, l-diversity, prosecutor risk).
//! - [`population`]: journalist risk of a sample measured against its full population.
//! - [`trajectory`]: a unit's quasi-identifiers across years as one record.
//! - [`hierarchy`], [`recode`], [`suppress`], [`loss`]: optimal global recoding over a
//!   generalisation lattice, local suppression, the information they cost, and [`enforce_k`]
//!   doing all three.

pub mod analysis;
pub mod classes;
pub mod coded;
pub mod error;
mod hash;
pub mod hierarchy;
pub mod loss;
pub mod population;
pub mod read;
pub mod recode;
pub mod suppress;
pub mod trajectory;

pub use analysis::{
    LDiversity, MissingPolicy, ProsecutorRisk, RiskOptions, RiskReport, analyse, record_frequencies,
};
pub use classes::{Classes, group};
pub use coded::{CodedColumn, CodedTable, Dictionary, MISSING};
pub use error::{Result, RiskError};
pub use hierarchy::Hierarchy;
pub use loss::{
    ColumnLoss, Enforcement, InformationLoss, code_entropy, enforce_k, information_loss,
};
pub use population::{JournalistRisk, PopulationRisk, population_risk, population_risk_tables};
pub use read::{read_table, read_table_with};
pub use recode::{Recoding, RecodingOptions, apply_recoding, optimal_recoding};
pub use suppress::{Suppression, suppress_to_k};
pub use trajectory::{Trajectories, TrajectoryCoder};
