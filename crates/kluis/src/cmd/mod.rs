//! One module per subcommand: each has `Args` (clap) and `run`.

pub mod codelist;
pub mod derive;
pub mod generate;
pub mod ingest;
pub mod insz;
pub mod warehouse;
