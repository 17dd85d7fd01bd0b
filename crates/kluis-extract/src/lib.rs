//! kluis-extract: the authorised population of a project, coded exactly as its authorisation
//! says and pseudonymised with the project key ([`coded_population`]); a seeded stratified
//! sample of it ([`CodedPopulation::sample`]); and the phase-1 delivery: Parquet, CSV, codebook
//! and manifest, optionally age-encrypted ([`write_extract`]), checked by [`verify`].
//!
//! Phase 2 (the enclave) uses the same [`CodedPopulation`] with no selection, so a person keeps
//! the same number and the same codes in the sample and in the full-population view.

mod coding;
mod error;
mod files;
#[cfg(feature = "test-support")]
pub mod fixture;
mod population;

pub use coding::output_schema;
pub use error::{Error, Result};
pub use files::{
    CODEBOOK_JSON, CODEBOOK_MD, DATA_CSV, DATA_PARQUET, Delivered, ExtractOptions, FileEntry,
    MANIFEST, Manifest, StratumSummary, Verified, codebook_json, parse_recipient, verify,
    write_extract,
};
pub use population::{
    AGE_RULE, CodedPopulation, QUALIFYING_RULE, STRATUM_RULE, Sample, StratumPopulation,
    coded_population, missing_years,
};

/// Output column: the person's sequence number (1..N over the project's whole population).
pub const PSEUDONYM: &str = "pseudonym";
/// Output column: the calendar year of the person-year.
pub const YEAR: &str = "year";
/// Output column: the stratum name the person belongs to.
pub const STRATUM: &str = "stratum";
