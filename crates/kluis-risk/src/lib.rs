//! kluis-risk: not yet written; see the crate README once it exists.
