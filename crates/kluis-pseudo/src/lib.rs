//! Project keys, keyed pseudonyms, sequence numbers, the sealed key store and crypto-shredding.
//!
//! A project's pseudonyms are HMAC-SHA-256 of each person's INSZ under the project's 256-bit
//! random key. Researchers never see those HMACs: each person gets a sequence number 1..N, the
//! rank of their HMAC in the population, so the numbering carries no trace of the INSZ (and so of
//! the birth date or sex it encodes). Destroy the key and the numbering can never be computed
//! again: that is crypto-shredding.

mod keys;
mod map;
mod shred;

pub use keys::{MasterKey, ProjectKey, ProviderPersons, Pseudonymiser, SealedKey};
pub use map::{PseudonymMap, parse_insz};
pub use shred::{Shredded, shred_file, shred_tree};

/// Largest INSZ value plus one: INSZ numbers have 11 digits.
pub const INSZ_LIMIT: u64 = 100_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PseudoError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error(
        "the sealed key of {context} does not open under this master key (wrong master key or altered key store)"
    )]
    KeyDoesNotOpen { context: String },
    #[error("pseudonym map {path}: {reason}")]
    BadMap { path: String, reason: String },
    #[error(
        "INSZ number {position} of the population is not an 11-digit number (the value is not shown: INSZ numbers never appear in messages)"
    )]
    BadInsz { position: usize },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PseudoError + '_ {
    move |error| PseudoError::Io {
        path: path.display().to_string(),
        error,
    }
}
