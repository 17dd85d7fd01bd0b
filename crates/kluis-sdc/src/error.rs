//! Typed errors of the disclosure-control engine.

use thiserror::Error;

/// Everything that can go wrong in kluis-sdc.
#[derive(Debug, Error)]
pub enum SdcError {
    /// A rule set could not be read or is out of range.
    #[error("rule set: {0}")]
    Rules(String),
    /// A table, hierarchy or microdata input is malformed; the message names file, row, field and value.
    #[error("{0}")]
    Input(String),
    /// The table's margins do not add up, so its relations cannot be audited.
    #[error("{0}")]
    Inconsistent(String),
    /// The LP solver failed.
    #[error("LP solver: {0}")]
    Solver(String),
}

impl SdcError {
    /// The message without the category prefix.
    pub fn message(&self) -> String {
        match self {
            SdcError::Rules(m)
            | SdcError::Input(m)
            | SdcError::Inconsistent(m)
            | SdcError::Solver(m) => m.clone(),
        }
    }

    /// Whether the error is the caller's input (bad usage), rather than a runtime failure.
    pub fn is_input(&self) -> bool {
        !matches!(self, SdcError::Solver(_))
    }
}
