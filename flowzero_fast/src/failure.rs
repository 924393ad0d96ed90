//! How one step of a transfer can fail, which decides whether it is retried, fails the file, or stops the batch,
//! and the typed reason a failed file reports (the same six values as Python's `flowzero.models.FailureReason`).

use std::fmt;

/// Why a file failed, as a value: Python acts on it (fresh links, one more fetch, stop the run), never on text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The source refused the link (401/403/410): fresh links may cure it.
    ExpiredLink,
    /// The bytes do not match the manifest's size or digest.
    Checksum,
    /// The destination refused the credentials (or there were none).
    Auth,
    /// The source kept answering 429 until the file's throttle budget ran out.
    RateLimited,
    /// The source sent (or announced) more bytes than the manifest or the cap allows.
    TooLarge,
    Other,
}

impl Reason {
    /// The value of `FailureReason` in Python.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ExpiredLink => "expired_link",
            Reason::Checksum => "checksum",
            Reason::Auth => "auth",
            Reason::RateLimited => "rate_limited",
            Reason::TooLarge => "too_large",
            Reason::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Transport trouble, a 5xx or a stall: worth another attempt.
    Retryable(String),
    /// This file cannot be delivered, for the reason given: a failed result.
    Fatal(Reason, String),
    /// S3 refused the credentials (403 and friends): nothing else will work either, so the batch stops.
    Auth(String),
    /// The batch was cancelled (Ctrl-C, or another file's credential failure).
    Cancelled,
}

impl Failure {
    /// A failure of this file for no more specific reason (4xx, disk error, bad destination...).
    pub fn fatal(message: impl Into<String>) -> Failure {
        Failure::Fatal(Reason::Other, message.into())
    }

    /// The reason a failed result reports.
    pub fn reason(&self) -> Reason {
        match self {
            Failure::Fatal(reason, _) => *reason,
            Failure::Auth(_) => Reason::Auth,
            Failure::Retryable(_) | Failure::Cancelled => Reason::Other,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retryable(m) | Failure::Fatal(_, m) | Failure::Auth(m) => f.write_str(m),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// An I/O error on a local path, as one line.
pub fn io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Failure {
    Failure::fatal(format!("cannot {what} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_match_python_values() {
        let all = [
            (Reason::ExpiredLink, "expired_link"),
            (Reason::Checksum, "checksum"),
            (Reason::Auth, "auth"),
            (Reason::RateLimited, "rate_limited"),
            (Reason::TooLarge, "too_large"),
            (Reason::Other, "other"),
        ];
        for (reason, text) in all {
            assert_eq!(reason.as_str(), text);
        }
        assert_eq!(Failure::fatal("x").reason(), Reason::Other);
        assert_eq!(Failure::Auth("x".into()).reason(), Reason::Auth);
    }
}
