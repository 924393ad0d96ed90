//! AWS Signature Version 4 for S3 requests, signed in headers with `UNSIGNED-PAYLOAD`.
//!
//! Payloads are never hashed for signing: the body was already hashed once (sha256/md5 of the whole file)
//! and each part carries a CRC32C checksum header, which is signed. Secrets only ever go into the HMAC.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::credentials::Credentials;
use crate::digest::{sha256_hex, to_hex};

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

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

/// `(20130524T000000Z, 20130524)` for a moment in time, in UTC: httpdate's calendar (IMF-fixdate,
/// `Fri, 24 May 2013 00:00:00 GMT`) rearranged.
pub fn amz_date(at: SystemTime) -> (String, String) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = httpdate::fmt_http_date(at.max(UNIX_EPOCH));
    let fields: Vec<&str> = text.split(' ').collect();
    let (day, month, year, time) = (fields[1], fields[2], fields[3], fields[4]);
    let month = MONTHS.iter().position(|m| *m == month).map_or(1, |i| i + 1);
    let date = format!("{year}{month:02}{day}");
    (format!("{date}T{}Z", time.replace(':', "")), date)
}

/// One request to sign. `path` is already URI-encoded; query pairs and header values are raw.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Lowercase names; must include `host`, `x-amz-date` and `x-amz-content-sha256`.
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

fn canonical_request(req: &Request<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method, req.path, query, canonical_headers, signed, req.payload_hash
    );
    (text, signed)
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The `Authorization` header value for `req`, signed at `stamp` (`YYYYMMDDTHHMMSSZ`).
pub fn authorization(req: &Request<'_>, creds: &Credentials, region: &str, stamp: &str) -> String {
    let date = &stamp[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let (canonical, signed) = canonical_request(req);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), date);
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = to_hex(&hmac(&key, &to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn example_creds() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            expires: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The worked examples of AWS's "Signature Calculations for the Authorization Header" (S3 docs).
    #[test]
    fn aws_documented_get_object_example() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &h,
            payload_hash: EMPTY_SHA,
        };
        let auth = authorization(&req, &example_creds(), "us-east-1", "20130524T000000Z");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// The signature of AWS's documented GET examples on `examplebucket` (empty payload, 2013-05-24).
    fn documented_get_signature(query: &[(&str, &str)]) -> String {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = Request {
            method: "GET",
            path: "/",
            query: &q,
            headers: &h,
            payload_hash: EMPTY_SHA,
        };
        authorization(&req, &example_creds(), "us-east-1", "20130524T000000Z")
    }

    #[test]
    fn aws_documented_list_objects_example() {
        let auth = documented_get_signature(&[("prefix", "J"), ("max-keys", "2")]);
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn aws_documented_lifecycle_example_has_empty_query_value() {
        let auth = documented_get_signature(&[("lifecycle", "")]);
        assert!(
            auth.ends_with(
                "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
            ),
            "{auth}"
        );
    }

    #[test]
    fn secrets_never_in_the_header_or_debug() {
        let creds = Credentials {
            session_token: Some("TOKEN123".into()),
            ..example_creds()
        };
        let h = headers(&[("host", "h"), ("x-amz-date", "20130524T000000Z")]);
        let req = Request {
            method: "PUT",
            path: "/k",
            query: &[],
            headers: &h,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let auth = authorization(&req, &creds, "us-west-2", "20130524T000000Z");
        assert!(!auth.contains(&creds.secret_key));
        assert!(!format!("{creds:?}").contains(&creds.secret_key));
    }

    #[test]
    fn encoding_follows_sigv4() {
        assert_eq!(uri_encode("a b/c~d_e.f-g", true), "a%20b/c~d_e.f-g");
        assert_eq!(uri_encode("a/b+c=", false), "a%2Fb%2Bc%3D");
        assert_eq!(uri_encode("é", true), "%C3%A9");
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        assert_eq!(amz_date(at), ("20130524T000000Z".into(), "20130524".into()));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723); // 2000-02-29T01:02:03Z
        assert_eq!(amz_date(leap).0, "20000229T010203Z");
        assert_eq!(amz_date(UNIX_EPOCH).0, "19700101T000000Z");
    }
}
