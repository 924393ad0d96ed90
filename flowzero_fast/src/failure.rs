//! How one step of a transfer can fail, which decides whether it is retried, fails the file, or stops the batch.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Transport trouble or a 5xx: worth another attempt.
    Retryable(String),
    /// This file cannot be delivered (4xx, digest mismatch, disk error...): a failed result.
    Fatal(String),
    /// S3 refused the credentials (403 and friends): nothing else will work either, so the batch stops.
    Auth(String),
    /// The batch was cancelled (Ctrl-C, or another file's credential failure).
    Cancelled,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retryable(m) | Failure::Fatal(m) | Failure::Auth(m) => f.write_str(m),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// An I/O error on a local path, as one line.
pub fn io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Failure {
    Failure::Fatal(format!("cannot {what} {}: {err}", path.display()))
}
