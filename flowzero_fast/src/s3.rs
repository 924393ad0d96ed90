//! The S3 side: a small SigV4 client (HEAD, PUT, multipart) and a sink that turns a byte stream into parts.
//!
//! Requests are signed with UNSIGNED-PAYLOAD and carry a CRC32C checksum header per part (computed while the
//! part fills, so the bytes are not read twice). The verified digest goes into the object's metadata at create
//! time, so a later HEAD (size + metadata) says whether a copy is already there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::Method;
use tokio::task::JoinSet;

use crate::digest::{crc32c_append, crc32c_header, hex_eq, DigestKind, Expected};
use crate::failure::Failure;
use crate::http::describe;
use crate::pool::{PartBuffer, PartPool};
use crate::retry::{retryable_status, Jitter, RetryPolicy};
use crate::sigv4::{amz_date, authorization, uri_encode, Credentials, Request, UNSIGNED_PAYLOAD};

/// Where requests go: a custom endpoint (path-style) or AWS (virtual-hosted where the bucket allows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub host: String,
    pub path: String,
}

/// The URL, Host header and canonical path of `bucket/key`.
pub fn target(
    endpoint: Option<&str>,
    region: &str,
    bucket: &str,
    key: &str,
) -> Result<Target, String> {
    let key = uri_encode(key, true);
    let (scheme, authority, prefix, path_style) = match endpoint.filter(|e| !e.is_empty()) {
        Some(endpoint) => {
            let with_scheme = if endpoint.contains("://") {
                endpoint.to_string()
            } else {
                format!("https://{endpoint}")
            };
            let url = reqwest::Url::parse(&with_scheme)
                .map_err(|e| format!("invalid S3 endpoint URL: {e}"))?;
            let host = url
                .host_str()
                .ok_or("S3 endpoint URL has no host")?
                .to_string();
            let authority = match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            };
            (
                url.scheme().to_string(),
                authority,
                url.path().trim_end_matches('/').to_string(),
                true,
            )
        }
        None => {
            let dns_safe = !bucket.contains('.')
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if dns_safe {
                (
                    "https".into(),
                    format!("{bucket}.s3.{region}.amazonaws.com"),
                    String::new(),
                    false,
                )
            } else {
                (
                    "https".into(),
                    format!("s3.{region}.amazonaws.com"),
                    String::new(),
                    true,
                )
            }
        }
    };
    // An empty key addresses the bucket itself (ListMultipartUploads): no trailing slash, as the AWS tools send it.
    let path = match (path_style, key.is_empty()) {
        (true, false) => format!("{prefix}/{}/{key}", uri_encode(bucket, false)),
        (true, true) => format!("{prefix}/{}", uri_encode(bucket, false)),
        (false, _) => format!("/{key}"),
    };
    Ok(Target {
        url: format!("{scheme}://{authority}{path}"),
        host: authority,
        path,
    })
}

/// Region and endpoint the way the AWS tools take them; flowzero's own settings win over the environment.
pub fn resolve_region_endpoint(
    region: Option<&str>,
    endpoint: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> (String, Option<String>) {
    let first = |given: Option<&str>, names: &[&str]| -> Option<String> {
        given
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .or_else(|| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty())))
    };
    let region =
        first(region, &["AWS_REGION", "AWS_DEFAULT_REGION"]).unwrap_or_else(|| "us-east-1".into());
    (
        region,
        first(endpoint, &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
    )
}

/// `Code` and `Message` of an S3 XML error body.
pub fn error_fields(body: &str) -> (String, String) {
    (text_of(body, "Code"), text_of(body, "Message"))
}

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

/// How an S3 error answer is handled: bad credentials stop the batch, throttling/5xx retry, the rest fail the file.
pub fn classify(what: &str, status: u16, body: &str) -> Failure {
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
        Failure::Auth(format!(
            "S3 refused {what} ({detail}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        ))
    } else if retryable_status(status) || RETRY_CODES.contains(&code.as_str()) {
        Failure::Retryable(format!("S3 {what}: {detail}"))
    } else {
        Failure::Fatal(format!("S3 {what} failed: {detail}"))
    }
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct Client {
    http: reqwest::Client,
    endpoint: Option<String>,
    region: String,
    creds: Credentials,
    policy: RetryPolicy,
    checksums: AtomicBool,
}

/// One uploaded part, as CompleteMultipartUpload lists it.
#[derive(Clone, Debug)]
pub struct Part {
    pub number: u32,
    pub etag: String,
    pub crc32c: Option<String>,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        endpoint: Option<String>,
        region: String,
        creds: Credentials,
        policy: RetryPolicy,
        checksums: bool,
    ) -> Client {
        Client {
            http,
            endpoint,
            region,
            creds,
            policy,
            checksums: AtomicBool::new(checksums),
        }
    }

    fn checksums(&self) -> bool {
        self.checksums.load(Ordering::Relaxed)
    }

    /// One signed request with retries on transport errors, 5xx and throttling. `accept` lists extra
    /// statuses handed back to the caller (404 for HEAD).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        what: &str,
        method: Method,
        bucket: &str,
        key: &str,
        query: &[(String, String)],
        extra: &[(String, String)],
        body: Bytes,
        accept: &[u16],
    ) -> Result<Response, Failure> {
        let target =
            target(self.endpoint.as_deref(), &self.region, bucket, key).map_err(Failure::Fatal)?;
        let mut pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
            .collect();
        pairs.sort();
        let url = if pairs.is_empty() {
            target.url.clone()
        } else {
            format!("{}?{}", target.url, pairs.join("&"))
        };
        let mut jitter = Jitter::from_entropy();
        let mut failures = 0u32;
        loop {
            let (stamp, _) = amz_date(SystemTime::now());
            let mut headers: Vec<(String, String)> = vec![
                ("host".into(), target.host.clone()),
                ("x-amz-date".into(), stamp.clone()),
                ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()),
            ];
            if let Some(token) = &self.creds.session_token {
                headers.push(("x-amz-security-token".into(), token.clone()));
            }
            headers.extend(extra.iter().cloned());
            let request = Request {
                method: method.as_str(),
                path: &target.path,
                query,
                headers: &headers,
                payload_hash: UNSIGNED_PAYLOAD,
            };
            let auth = authorization(&request, &self.creds, &self.region, &stamp);
            let mut builder = self
                .http
                .request(method.clone(), &url)
                .header("authorization", auth)
                .body(body.clone());
            for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let outcome = match builder.send().await {
                Err(e) => Failure::Retryable(format!("S3 {what}: {}", describe(e))),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Err(e) => Failure::Retryable(format!("S3 {what}: {}", describe(e))),
                        Ok(body) if (200..300).contains(&status) || accept.contains(&status) => {
                            // CompleteMultipartUpload can answer 200 with an error document.
                            if status == 200
                                && body.starts_with(b"<?xml")
                                && contains(&body, b"<Error>")
                            {
                                classify(what, 500, &String::from_utf8_lossy(&body))
                            } else {
                                return Ok(Response {
                                    status,
                                    headers,
                                    body,
                                });
                            }
                        }
                        Ok(body) => classify(what, status, &String::from_utf8_lossy(&body)),
                    }
                }
            };
            match outcome {
                Failure::Retryable(message) => {
                    failures += 1;
                    if !self.policy.allows(failures) {
                        return Err(Failure::Fatal(format!(
                            "{message} (gave up after {failures} attempts)"
                        )));
                    }
                    tokio::time::sleep(self.policy.delay(failures, &mut jitter)).await;
                }
                other => return Err(other),
            }
        }
    }

    /// HEAD s3://bucket/key: its headers (size, `x-amz-meta-*`), or None when there is no such object.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<HeaderMap>, Failure> {
        let resp = self
            .send(
                "HEAD",
                Method::HEAD,
                bucket,
                key,
                &[],
                &[],
                Bytes::new(),
                &[404],
            )
            .await?;
        Ok((resp.status != 404).then_some(resp.headers))
    }

    /// Every incomplete multipart upload under `prefix`, following ListMultipartUploads' pages.
    pub async fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<Upload>, Failure> {
        let mut uploads = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = vec![
                ("uploads".to_string(), String::new()),
                ("prefix".to_string(), prefix.to_string()),
            ];
            if let Some((key, id)) = &markers {
                query.push(("key-marker".into(), key.clone()));
                query.push(("upload-id-marker".into(), id.clone()));
            }
            let resp = self
                .send(
                    "ListMultipartUploads",
                    Method::GET,
                    bucket,
                    "",
                    &query,
                    &[],
                    Bytes::new(),
                    &[],
                )
                .await?;
            let (page, next) = parse_uploads(&String::from_utf8_lossy(&resp.body));
            uploads.extend(page);
            match next {
                Some(next) if Some(&next) != markers.as_ref() => markers = Some(next),
                _ => return Ok(uploads),
            }
        }
    }

    /// Whether s3://bucket/key already holds a verified copy: HEAD size and the digest in its metadata.
    pub async fn verified_copy(
        &self,
        bucket: &str,
        key: &str,
        size: Option<u64>,
        expected: &Expected,
    ) -> Result<bool, Failure> {
        let Some(headers) = self.head(bucket, key).await? else {
            return Ok(false);
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
        if size.is_some() && length != size {
            return Ok(false);
        }
        Ok(match &expected.hex {
            Some(want) => header(expected.kind.meta_header()).is_some_and(|got| hex_eq(&got, want)),
            None => size.is_some(),
        })
    }

    /// Whether to try again without checksum headers: the endpoint refused them (some S3-compatible stores
    /// do); from then on this batch sends none.
    fn drop_checksums_after(&self, outcome: &Result<Response, Failure>) -> bool {
        let refused = matches!(outcome, Err(f @ Failure::Fatal(_)) if checksum_refused(f));
        refused && self.checksums.swap(false, Ordering::Relaxed)
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        crc: u32,
        meta: &[(String, String)],
    ) -> Result<(), Failure> {
        loop {
            let mut headers = meta.to_vec();
            if self.checksums() {
                headers.push(("x-amz-checksum-crc32c".into(), crc32c_header(crc)));
            }
            let outcome = self
                .send(
                    "PutObject",
                    Method::PUT,
                    bucket,
                    key,
                    &[],
                    &headers,
                    body.clone(),
                    &[],
                )
                .await;
            if !self.drop_checksums_after(&outcome) {
                return outcome.map(|_| ());
            }
        }
    }

    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        meta: &[(String, String)],
    ) -> Result<String, Failure> {
        let query = [("uploads".to_string(), String::new())];
        let resp = loop {
            let mut headers = meta.to_vec();
            if self.checksums() {
                headers.push(("x-amz-checksum-algorithm".into(), "CRC32C".into()));
            }
            let outcome = self
                .send(
                    "CreateMultipartUpload",
                    Method::POST,
                    bucket,
                    key,
                    &query,
                    &headers,
                    Bytes::new(),
                    &[],
                )
                .await;
            if !self.drop_checksums_after(&outcome) {
                break outcome?;
            }
        };
        let id = text_of(&String::from_utf8_lossy(&resp.body), "UploadId");
        if id.is_empty() {
            return Err(Failure::Fatal(
                "S3 CreateMultipartUpload answered without an UploadId".into(),
            ));
        }
        Ok(id)
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
        crc: u32,
    ) -> Result<Part, Failure> {
        let query = [
            ("partNumber".to_string(), number.to_string()),
            ("uploadId".to_string(), upload_id.to_string()),
        ];
        let checksum = self.checksums().then(|| crc32c_header(crc));
        let headers: Vec<(String, String)> = checksum
            .iter()
            .map(|c| ("x-amz-checksum-crc32c".to_string(), c.clone()))
            .collect();
        let resp = self
            .send(
                "UploadPart",
                Method::PUT,
                bucket,
                key,
                &query,
                &headers,
                body,
                &[],
            )
            .await?;
        let etag = resp
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let etag = etag.ok_or_else(|| {
            Failure::Fatal(format!("S3 UploadPart {number} answered without an ETag"))
        })?;
        Ok(Part {
            number,
            etag,
            crc32c: checksum,
        })
    }

    pub async fn complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<(), Failure> {
        let query = [("uploadId".to_string(), upload_id.to_string())];
        let body = complete_body(parts);
        let headers = [("content-type".to_string(), "application/xml".to_string())];
        self.send(
            "CompleteMultipartUpload",
            Method::POST,
            bucket,
            key,
            &query,
            &headers,
            Bytes::from(body),
            &[],
        )
        .await
        .map(|_| ())
    }

    pub async fn abort(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), Failure> {
        let query = [("uploadId".to_string(), upload_id.to_string())];
        self.send(
            "AbortMultipartUpload",
            Method::DELETE,
            bucket,
            key,
            &query,
            &[],
            Bytes::new(),
            &[404],
        )
        .await
        .map(|_| ())
    }
}

/// An S3-compatible endpoint saying it does not support the checksum headers.
pub fn checksum_refused(failure: &Failure) -> bool {
    let text = failure.to_string().to_ascii_lowercase();
    matches!(failure, Failure::Fatal(_))
        && (text.contains("checksum") || text.contains("notimplemented"))
}

/// One incomplete multipart upload, as ListMultipartUploads lists it (`initiated` as S3 writes it, ISO 8601).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    pub initiated: String,
}

/// The uploads of one ListMultipartUploads page, and the markers of the next page when it is truncated.
pub fn parse_uploads(body: &str) -> (Vec<Upload>, Option<(String, String)>) {
    let uploads = elements(body, "Upload")
        .into_iter()
        .map(|upload| Upload {
            key: text_of(upload, "Key"),
            upload_id: text_of(upload, "UploadId"),
            initiated: text_of(upload, "Initiated"),
        })
        .filter(|u| !u.key.is_empty() && !u.upload_id.is_empty())
        .collect();
    let truncated = text_of(body, "IsTruncated").eq_ignore_ascii_case("true");
    let next = (
        text_of(body, "NextKeyMarker"),
        text_of(body, "NextUploadIdMarker"),
    );
    (uploads, (truncated && !next.0.is_empty()).then_some(next))
}

/// The inner texts of every `<tag>...</tag>` (no nesting of the same tag, as in S3's listings).
fn elements<'a>(body: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = body;
    while let Some((_, after)) = rest.split_once(&open) {
        let Some((inner, tail)) = after.split_once(&close) else {
            break;
        };
        found.push(inner);
        rest = tail;
    }
    found
}

/// The unescaped text of the first `<tag>` in `body`, or "".
fn text_of(body: &str, tag: &str) -> String {
    elements(body, tag)
        .first()
        .map_or_else(String::new, |t| xml_unescape(t.trim()))
}

/// XML's five entities and numeric character references (keys may hold `&`, `<`, quotes, any Unicode).
fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let entity = rest[at..].split_once(';').map(|(e, _)| &e[1..]);
        let decoded = entity.and_then(|e| match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => e
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        });
        match (entity, decoded) {
            (Some(e), Some(c)) => {
                out.push(c);
                rest = &rest[at + e.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The CompleteMultipartUpload document, parts in order, with their CRC32C where sent.
pub fn complete_body(parts: &[Part]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_by_key(|p| p.number);
    let mut xml =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for p in &sorted {
        let etag = p.etag.replace('&', "&amp;").replace('"', "&quot;");
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag>",
            p.number
        ));
        if let Some(crc) = &p.crc32c {
            xml.push_str(&format!("<ChecksumCRC32C>{crc}</ChecksumCRC32C>"));
        }
        xml.push_str("</Part>");
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

/// Feeds an object from a stream: fills one part at a time and uploads full parts concurrently (at most
/// `part_concurrency` for this file). Part buffers come from the batch's shared [`PartPool`], so the memory
/// of all the batch's parts, filling or in flight, stays within the pool's capacity. A body smaller than one
/// part becomes a single PutObject at commit.
pub struct Sink {
    client: Arc<Client>,
    bucket: String,
    key: String,
    part_size: usize,
    part_concurrency: usize,
    pool: Arc<PartPool>,
    meta: Vec<(String, String)>,
    buf: Option<PartBuffer>,
    crc: u32,
    upload_id: Option<String>,
    next_part: u32,
    inflight: JoinSet<Result<Part, Failure>>,
    parts: Vec<Part>,
}

impl Sink {
    pub fn new(
        client: Arc<Client>,
        bucket: &str,
        key: &str,
        part_size: u64,
        part_concurrency: usize,
        pool: Arc<PartPool>,
        expected: &Expected,
    ) -> Sink {
        let meta = expected
            .hex
            .iter()
            .map(|h| (expected.kind.meta_header().to_string(), h.clone()))
            .collect();
        Sink {
            client,
            bucket: bucket.to_string(),
            key: key.to_string(),
            part_size: part_size as usize,
            part_concurrency: part_concurrency.max(1),
            pool,
            meta,
            buf: None,
            crc: 0,
            upload_id: None,
            next_part: 1,
            inflight: JoinSet::new(),
            parts: Vec::new(),
        }
    }

    pub async fn write(&mut self, mut chunk: Bytes) -> Result<(), Failure> {
        while !chunk.is_empty() {
            let part_size = self.part_size;
            let part = match &mut self.buf {
                Some(part) => part,
                empty => empty.insert(self.pool.acquire(part_size).await.map_err(Failure::Fatal)?),
            };
            let room = part_size - part.buf.len();
            let piece = chunk.split_to(room.min(chunk.len()));
            self.crc = crc32c_append(self.crc, &piece);
            part.buf.extend_from_slice(&piece);
            if part.buf.len() == part_size {
                self.ship_part().await?;
            }
        }
        Ok(())
    }

    async fn ship_part(&mut self) -> Result<(), Failure> {
        let Some(part) = self.buf.take() else {
            return Ok(());
        };
        let shipped = part.ship();
        let crc = std::mem::take(&mut self.crc);
        if self.upload_id.is_none() {
            self.upload_id = Some(
                self.client
                    .create_multipart(&self.bucket, &self.key, &self.meta)
                    .await?,
            );
        }
        while self.inflight.len() >= self.part_concurrency {
            self.reap_one().await?;
        }
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        let pool = self.pool.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let number = self.next_part;
        self.next_part += 1;
        self.inflight.spawn(async move {
            let outcome = client
                .upload_part(&bucket, &key, &upload_id, number, shipped.data.clone(), crc)
                .await;
            pool.recycle(shipped); // the buffer's memory serves the next part
            outcome
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<(), Failure> {
        match self.inflight.join_next().await {
            Some(Ok(Ok(part))) => {
                self.parts.push(part);
                Ok(())
            }
            Some(Ok(Err(failure))) => Err(failure),
            Some(Err(join)) => Err(Failure::Fatal(format!("part upload task failed: {join}"))),
            None => Ok(()),
        }
    }

    /// Upload what is left and make the object visible: PutObject, or the last part + CompleteMultipartUpload.
    /// Only called once the whole body's digest matched.
    pub async fn commit(&mut self, digest_hex: &str, kind: DigestKind) -> Result<(), Failure> {
        match self.upload_id.clone() {
            None => {
                let shipped = self.buf.take().map(PartBuffer::ship);
                let body = shipped.as_ref().map(|p| p.data.clone()).unwrap_or_default();
                let mut meta = self.meta.clone();
                if meta.is_empty() {
                    meta.push((kind.meta_header().to_string(), digest_hex.to_string()));
                }
                let outcome = self
                    .client
                    .put_object(
                        &self.bucket,
                        &self.key,
                        body,
                        std::mem::take(&mut self.crc),
                        &meta,
                    )
                    .await;
                if let Some(part) = shipped {
                    self.pool.recycle(part);
                }
                outcome
            }
            Some(upload_id) => {
                match self.buf.take() {
                    Some(part) if !part.buf.is_empty() => {
                        self.buf = Some(part);
                        self.ship_part().await?;
                    }
                    Some(empty) => empty.release(&self.pool),
                    None => {}
                }
                while !self.inflight.is_empty() {
                    self.reap_one().await?;
                }
                self.client
                    .complete(&self.bucket, &self.key, &upload_id, &self.parts)
                    .await?;
                self.upload_id = None;
                Ok(())
            }
        }
    }

    /// Drop buffered bytes, stop part uploads and abort the multipart upload, so nothing is left in S3.
    pub async fn abort(&mut self) {
        self.inflight.abort_all();
        while self.inflight.join_next().await.is_some() {}
        if let Some(upload_id) = self.upload_id.take() {
            let _ = self.client.abort(&self.bucket, &self.key, &upload_id).await;
        }
        if let Some(part) = self.buf.take() {
            part.release(&self.pool);
        }
        self.crc = 0;
        self.next_part = 1;
        self.parts.clear();
    }

    /// Start over from byte zero (the source restarted): parts uploaded so far are thrown away.
    pub async fn reset(&mut self) -> Result<(), Failure> {
        self.abort().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_endpoints_are_path_style() {
        let t = target(
            Some("http://127.0.0.1:5000"),
            "us-west-2",
            "bkt",
            "a b/c.tif",
        )
        .unwrap();
        assert_eq!(t.url, "http://127.0.0.1:5000/bkt/a%20b/c.tif");
        assert_eq!(t.host, "127.0.0.1:5000");
        assert_eq!(t.path, "/bkt/a%20b/c.tif");
        let t = target(Some("https://minio.local/s3/"), "r", "b", "k").unwrap();
        assert_eq!(
            (t.url.as_str(), t.host.as_str()),
            ("https://minio.local/s3/b/k", "minio.local")
        );
        let t = target(Some("minio.local:9000"), "r", "b", "k").unwrap();
        assert_eq!(t.url, "https://minio.local:9000/b/k");
        assert!(target(Some("http://"), "r", "b", "k").is_err());
    }

    #[test]
    fn an_empty_key_addresses_the_bucket() {
        let t = target(Some("http://127.0.0.1:5000"), "r", "bkt", "").unwrap();
        assert_eq!(
            (t.url.as_str(), t.path.as_str()),
            ("http://127.0.0.1:5000/bkt", "/bkt")
        );
        let t = target(None, "eu-west-1", "my-bucket", "").unwrap();
        assert_eq!(t.path, "/");
    }

    #[test]
    fn upload_listings_are_parsed_page_by_page() {
        let page = "<?xml version=\"1.0\"?><ListMultipartUploadsResult><Bucket>b</Bucket>\
            <NextKeyMarker>a/R&amp;D.tif</NextKeyMarker><NextUploadIdMarker>id-2</NextUploadIdMarker>\
            <IsTruncated>true</IsTruncated>\
            <Upload><Key>a/x.tif</Key><UploadId>id-1</UploadId><Initiated>2026-11-24T10:00:00.000Z</Initiated></Upload>\
            <Upload><Key>a/R&amp;D &#233;t&#xE9;.tif</Key><UploadId>id-2</UploadId>\
            <Initiated>2026-11-24T11:00:00.000Z</Initiated></Upload></ListMultipartUploadsResult>";
        let (uploads, next) = parse_uploads(page);
        assert_eq!(uploads.len(), 2);
        assert_eq!(uploads[0].initiated, "2026-11-24T10:00:00.000Z");
        assert_eq!(uploads[1].key, "a/R&D \u{e9}t\u{e9}.tif");
        assert_eq!(next, Some(("a/R&D.tif".into(), "id-2".into())));
        let last = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert_eq!(parse_uploads(last), (vec![], None));
        assert_eq!(xml_unescape("a & b &bogus; &#;"), "a & b &bogus; &#;");
    }

    #[test]
    fn aws_is_virtual_hosted_unless_the_bucket_has_dots() {
        let t = target(None, "eu-west-1", "my-bucket", "x/y.tif").unwrap();
        assert_eq!(
            t.url,
            "https://my-bucket.s3.eu-west-1.amazonaws.com/x/y.tif"
        );
        assert_eq!(t.path, "/x/y.tif");
        let t = target(None, "eu-west-1", "my.bucket", "k").unwrap();
        assert_eq!(t.url, "https://s3.eu-west-1.amazonaws.com/my.bucket/k");
    }

    #[test]
    fn config_wins_over_environment() {
        let env = |name: &str| match name {
            "AWS_DEFAULT_REGION" => Some("eu-central-1".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://env:1".to_string()),
            _ => None,
        };
        assert_eq!(
            resolve_region_endpoint(None, None, env),
            ("eu-central-1".into(), Some("http://env:1".into()))
        );
        assert_eq!(
            resolve_region_endpoint(Some("us-west-2"), Some("http://cfg:2"), env),
            ("us-west-2".into(), Some("http://cfg:2".into()))
        );
        let s3_first = |name: &str| match name {
            "AWS_ENDPOINT_URL_S3" => Some("http://s3only".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://generic".to_string()),
            "AWS_REGION" => Some("ap-south-1".to_string()),
            "AWS_DEFAULT_REGION" => Some("eu-central-1".to_string()),
            _ => None,
        };
        assert_eq!(
            resolve_region_endpoint(Some(""), Some(""), s3_first),
            ("ap-south-1".into(), Some("http://s3only".into()))
        );
        assert_eq!(
            resolve_region_endpoint(None, None, |_| None),
            ("us-east-1".into(), None)
        );
    }

    #[test]
    fn errors_are_classified() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>";
        assert!(matches!(
            classify("UploadPart", 503, body),
            Failure::Retryable(_)
        ));
        let denied = classify(
            "PutObject",
            403,
            "<Error><Code>InvalidAccessKeyId</Code><Message>nope</Message></Error>",
        );
        match denied {
            Failure::Auth(m) => assert!(
                m.contains("InvalidAccessKeyId") && m.contains("nope"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify("HEAD", 403, ""), Failure::Auth(_)));
        assert!(matches!(
            classify("PutObject", 404, "<Error><Code>NoSuchBucket</Code></Error>"),
            Failure::Fatal(_)
        ));
        assert!(matches!(
            classify(
                "PutObject",
                400,
                "<Error><Code>RequestTimeout</Code></Error>"
            ),
            Failure::Retryable(_)
        ));
        assert_eq!(
            error_fields("<Error><Code>X</Code></Error>"),
            ("X".into(), String::new())
        );
    }

    #[test]
    fn refused_checksums_are_recognised() {
        let refused = classify("PutObject", 400, "<Error><Code>InvalidRequest</Code><Message>x-amz-checksum-crc32c is not supported</Message></Error>");
        assert!(checksum_refused(&refused));
        assert!(checksum_refused(&classify(
            "PutObject",
            501,
            "<Error><Code>NotImplemented</Code></Error>"
        )));
        assert!(!checksum_refused(&classify(
            "PutObject",
            400,
            "<Error><Code>InvalidBucketName</Code></Error>"
        )));
        assert!(!checksum_refused(&Failure::Retryable("checksum".into())));
    }

    #[test]
    fn complete_document_lists_parts_in_order() {
        let parts = vec![
            Part {
                number: 2,
                etag: "\"b\"".into(),
                crc32c: Some("AAAAAA==".into()),
            },
            Part {
                number: 1,
                etag: "\"a\"".into(),
                crc32c: None,
            },
        ];
        let xml = complete_body(&parts);
        let one = xml.find("<PartNumber>1</PartNumber>").unwrap();
        let two = xml.find("<PartNumber>2</PartNumber>").unwrap();
        assert!(one < two);
        assert!(xml.contains("<ETag>&quot;a&quot;</ETag>"));
        assert!(xml.contains("<ChecksumCRC32C>AAAAAA==</ChecksumCRC32C>"));
        assert_eq!(xml.matches("<ChecksumCRC32C>").count(), 1);
    }
}
