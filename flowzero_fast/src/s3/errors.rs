//! What an S3 error answer means: bad credentials stop the batch, throttling and 5xx retry, the rest fail the file.

use crate::failure::Failure;
use crate::retry::retryable_status;
use crate::s3::xml::error_fields;

const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
];
const RETRY_CODES: &[&str] = &[
    "SlowDown",
    "InternalError",
    "RequestTimeout",
    "ServiceUnavailable",
];

/// Codes that say the session token ran out: worth one more try with freshly fetched credentials.
pub const EXPIRED_CODES: &[&str] = &["ExpiredToken", "TokenRefreshRequired"];

/// How an S3 error answer is handled: bad credentials stop the batch, throttling/5xx retry, the rest fail the file.
/// `who` says whose request it was in a refusal (bucket, access key id prefix), never a secret.
pub fn classify(what: &str, status: u16, body: &str, who: &str) -> Failure {
    let (code, message) = error_fields(body);
    let detail = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}")
    };
    let detail = if message.is_empty() {
        detail
    } else {
        format!("{detail}: {message}")
    };
    if status == 403 || AUTH_CODES.contains(&code.as_str()) {
        let who = if who.is_empty() {
            String::new()
        } else {
            format!(" {who}")
        };
        Failure::Auth(format!(
            "S3 refused the credentials for {what}{who} ({detail})"
        ))
    } else if retryable_status(status) || RETRY_CODES.contains(&code.as_str()) {
        Failure::Retryable(format!("S3 {what}: {detail}"))
    } else {
        Failure::fatal(format!("S3 {what} failed: {detail}"))
    }
}

/// An S3-compatible endpoint saying it does not support the checksum headers.
pub fn checksum_refused(failure: &Failure) -> bool {
    let text = failure.to_string().to_ascii_lowercase();
    matches!(failure, Failure::Fatal(..))
        && (text.contains("checksum") || text.contains("notimplemented"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>";
        assert!(matches!(
            classify("UploadPart", 503, body, ""),
            Failure::Retryable(_)
        ));
        let denied = classify(
            "PutObject",
            403,
            "<Error><Code>InvalidAccessKeyId</Code><Message>nope</Message></Error>",
            "",
        );
        match denied {
            Failure::Auth(m) => assert!(
                m.contains("InvalidAccessKeyId") && m.contains("nope"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify("HEAD", 403, "", ""), Failure::Auth(_)));
        assert!(matches!(
            classify(
                "PutObject",
                404,
                "<Error><Code>NoSuchBucket</Code></Error>",
                ""
            ),
            Failure::Fatal(..)
        ));
        assert!(matches!(
            classify(
                "PutObject",
                400,
                "<Error><Code>RequestTimeout</Code></Error>",
                ""
            ),
            Failure::Retryable(_)
        ));
        assert_eq!(
            error_fields("<Error><Code>X</Code></Error>"),
            ("X".into(), String::new())
        );
    }

    #[test]
    fn a_refusal_says_whose_request_it_was() {
        let who = "on bucket 'b' for access key AKIAIOSF…";
        match classify(
            "PutObject",
            403,
            "<Error><Code>AccessDenied</Code></Error>",
            who,
        ) {
            Failure::Auth(m) => assert_eq!(
                m,
                "S3 refused the credentials for PutObject on bucket 'b' for access key AKIAIOSF… \
                 (HTTP 403 AccessDenied)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_checksums_are_recognised() {
        let refused = classify("PutObject", 400, "<Error><Code>InvalidRequest</Code><Message>x-amz-checksum-crc32c is not supported</Message></Error>", "");
        assert!(checksum_refused(&refused));
        assert!(checksum_refused(&classify(
            "PutObject",
            501,
            "<Error><Code>NotImplemented</Code></Error>",
            ""
        )));
        assert!(!checksum_refused(&classify(
            "PutObject",
            400,
            "<Error><Code>InvalidBucketName</Code></Error>",
            ""
        )));
        assert!(!checksum_refused(&Failure::Retryable("checksum".into())));
    }
}
