//! AWS Signature Version 4 for S3 requests, through AWS's own signer (`aws-sigv4`), in headers with
//! `UNSIGNED-PAYLOAD`.
//!
//! Payloads are never hashed for signing: the body was already hashed once (sha256/md5 of the whole file) and each
//! part carries a CRC32C checksum header, which is signed. Secrets only ever go into the signer.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::credentials::Credentials;

pub use aws_sigv4::http_request::SignableBody;

#[cfg(test)]
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Percent-encoding as SigV4 wants it: everything but unreserved characters (and `/` when asked to keep it).
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let set = if keep_slash {
        UNRESERVED_AND_SLASH
    } else {
        UNRESERVED
    };
    utf8_percent_encode(text, set).to_string()
}

/// What an S3 request is signed with: path used as encoded (S3 does not decode it twice), no normalisation.
fn settings(payload: PayloadChecksumKind) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = payload;
    settings
}

/// The headers that sign a request to `url` (already encoded) carrying `headers` (lowercase names): Authorization,
/// X-Amz-Date, X-Amz-Content-Sha256 (S3 requests: `SignableBody::UnsignedPayload`) and, for temporary credentials,
/// X-Amz-Security-Token.
pub fn signed_headers(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    creds: &Credentials,
    region: &str,
    at: SystemTime,
    body: SignableBody<'_>,
) -> Result<Vec<(String, String)>, String> {
    let identity: Identity = aws_credential_types::Credentials::new(
        &creds.access_key,
        &creds.secret_key,
        creds.session_token.clone(),
        creds.expires,
        "flowzero",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(at)
        .settings(settings(PayloadChecksumKind::XAmzSha256))
        .build()
        .map_err(|e| format!("cannot sign the S3 request: {e}"))?
        .into();
    let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let request = SignableRequest::new(method, url, pairs, body)
        .map_err(|e| format!("cannot sign the S3 request: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| format!("cannot sign the S3 request: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn example_creds() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            expires: None,
        }
    }

    fn at_2013_05_24() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn header<'a>(signed: &'a [(String, String)], name: &str) -> &'a str {
        signed
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// The worked examples of AWS's "Signature Calculations for the Authorization Header" (S3 docs): the
    /// signer is configured the way S3 wants it, so it reproduces them exactly.
    fn documented(url: &str, extra: &[(&str, &str)]) -> String {
        let mut headers = vec![(
            "host".to_string(),
            "examplebucket.s3.amazonaws.com".to_string(),
        )];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let signed = signed_headers(
            "GET",
            url,
            &headers,
            &example_creds(),
            "us-east-1",
            at_2013_05_24(),
            SignableBody::Bytes(&[]),
        )
        .unwrap();
        assert_eq!(header(&signed, "x-amz-content-sha256"), EMPTY_SHA);
        assert_eq!(header(&signed, "x-amz-date"), "20130524T000000Z");
        header(&signed, "authorization").to_string()
    }

    #[test]
    fn aws_documented_get_object_example() {
        let auth = documented(
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[("range", "bytes=0-9")],
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn aws_documented_list_objects_example() {
        let auth = documented(
            "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
            &[],
        );
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn aws_documented_lifecycle_example_has_empty_query_value() {
        let auth = documented("https://examplebucket.s3.amazonaws.com/?lifecycle", &[]);
        assert!(
            auth.ends_with(
                "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
            ),
            "{auth}"
        );
    }

    #[test]
    fn unsigned_payload_with_a_session_token_and_signed_checksum() {
        let creds = Credentials {
            session_token: Some("TOKEN123".into()),
            ..example_creds()
        };
        let headers = vec![
            ("host".to_string(), "h:9000".to_string()),
            ("x-amz-checksum-crc32c".to_string(), "4waSgw==".to_string()),
        ];
        let signed = signed_headers(
            "PUT",
            "http://h:9000/b/a%20b.tif?partNumber=1&uploadId=x%2By",
            &headers,
            &creds,
            "us-west-2",
            at_2013_05_24(),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        assert_eq!(header(&signed, "x-amz-content-sha256"), UNSIGNED_PAYLOAD);
        assert_eq!(header(&signed, "x-amz-security-token"), "TOKEN123");
        let auth = header(&signed, "authorization");
        assert!(auth.contains("SignedHeaders=host;x-amz-checksum-crc32c;x-amz-content-sha256;x-amz-date;x-amz-security-token"), "{auth}");
        assert!(!auth.contains(&creds.secret_key));
    }

    #[test]
    fn encoding_follows_sigv4() {
        assert_eq!(uri_encode("a b/c~d_e.f-g", true), "a%20b/c~d_e.f-g");
        assert_eq!(uri_encode("a/b+c=", false), "a%2Fb%2Bc%3D");
        assert_eq!(uri_encode("é", true), "%C3%A9");
    }
}
