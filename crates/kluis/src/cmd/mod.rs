//! One module per subcommand: each has `Args` (clap) and `run`.

pub mod codelist;
pub mod derive;
pub mod insz;
pub mod job;
