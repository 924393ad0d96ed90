//! The S3 side: where requests go (`target`), what error answers mean (`errors`), S3's XML (`xml`), the SigV4
//! client (`client`) and the sink that turns a byte stream into parts (`sink`).
//!
//! The verified digest goes into the object's metadata at create time, so a later HEAD (size + metadata) says
//! whether a copy is already there.

pub mod client;
pub mod errors;
pub mod sink;
pub mod target;
pub mod xml;

pub use client::{Client, Response};
pub use errors::{checksum_refused, classify};
pub use sink::Sink;
pub use target::{resolve_region_endpoint, target, Target};
pub use xml::{parse_uploads, Part, Upload};
