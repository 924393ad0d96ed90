//! The job record, defined once: what one file to move is (`Job`) and what happened to it (`JobResult`). The
//! batch (`jobs`), the byte stream (`stream`) and Python (`python::records`) all use these very structs.

use crate::failure::Reason;

/// One file to move: source URL, destination (`s3://bucket/key` or a local path), manifest size and digests.
/// The one definition of the record: Python sees this very struct as `flowzero._fast.Job`.
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(module = "flowzero._fast", frozen, get_all)
)]
#[derive(Clone, Debug, Default)]
pub struct Job {
    pub url: String,
    pub destination: String,
    pub size: Option<u64>,
    pub md5: Option<String>,
    pub sha256: Option<String>,
}

/// What happened to one job (`flowzero._fast.JobResult` in Python): a failed one says why in `reason`, and
/// `throttled` counts the 429 answers it met on the way.
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(module = "flowzero._fast", frozen, get_all)
)]
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobResult {
    pub ok: bool,
    pub skipped: bool,
    pub bytes: u64,
    pub seconds: f64,
    pub digest: Option<String>,
    pub error: Option<String>,
    pub reason: Option<Reason>,
    pub throttled: u32,
}
