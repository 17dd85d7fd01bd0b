//! Exit statuses: 0 ok, 1 runtime failure, 2 bad usage or bad input (DESIGN.md conventions).

use std::fmt;

/// An error caused by what the user gave us (a bad file, row, value or argument): exit status 2.
/// Everything else that goes wrong is a runtime failure: exit status 1.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Wraps a message as a bad-input error for `anyhow`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// Exit status for an error: 2 when any cause in its chain is bad input, else 1.
pub fn status_for(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<BadInput>()) {
        2
    } else {
        1
    }
}
