//! kluis-extract: not yet written; see the crate README once it exists.
