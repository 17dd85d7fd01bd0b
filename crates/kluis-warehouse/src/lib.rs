//! kluis-warehouse: the provider's population data on disk. The layout (see [`layout`]), writing
//! it atomically ([`WarehouseWriter`]), reading it as Arrow record batches ([`Warehouse`]),
//! loading real data with validation ([`ingest`]) and exporting it to CSV ([`export`]).

pub mod dates;
mod error;
pub mod export;
pub mod ingest;
pub mod layout;
mod read;
mod write;

pub use error::{Error, Result};
pub use layout::{Manifest, Source};
pub use read::{BATCH_ROWS, Batches, TableInfo, Warehouse, WarehouseInfo};
pub use write::{BackgroundWriter, WarehouseWriter, writer_properties};
