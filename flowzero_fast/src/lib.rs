//! flowzero_fast: the Rust core of flowzero, exposed to Python as `flowzero._fast`.
//!
//! Pure logic lives in modules that compile without Python (`cargo test --no-default-features`); the `python`
//! feature adds the PyO3 bindings (`python/`). One file per concern: planning (`plan`), digests (`digest`),
//! retries (`retry`), why a file failed (`failure`), destinations and redaction (`location`), credentials
//! (`credentials`), SigV4 (`sigv4`), the source (`http`), pacing (`pace`), the destinations (`local`, `s3`),
//! the job record (`record`), one source into one sink (`stream`) and the batch that ties them together (`jobs`).

pub mod credentials;
pub mod digest;
pub mod failure;
pub mod http;
pub mod jobs;
pub mod local;
pub mod location;
pub mod pace;
pub mod plan;
pub mod pool;
pub mod record;
pub mod retry;
pub mod s3;
pub mod sigv4;
pub mod stream;

#[cfg(feature = "python")]
mod python;

#[cfg(test)]
mod tests {
    #[test]
    fn crate_version_is_semver() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(v.split('.').count(), 3);
    }
}
