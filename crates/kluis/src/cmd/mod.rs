//! One module per subcommand: each has `Args` (clap) and `run`.

pub mod audit;
pub mod authorisation;
pub mod codelist;
pub mod demo;
pub mod derive;
pub mod extract;
pub mod generate;
pub mod ingest;
pub mod init;
pub mod insz;
pub mod job;
pub mod output;
pub mod project;
pub mod report;
pub mod retention;
pub mod risk;
pub mod sdc;
pub mod warehouse;
