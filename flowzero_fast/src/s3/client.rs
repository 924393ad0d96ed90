//! A small SigV4 S3 client (HEAD, PUT, multipart, listing uploads) over the batch's reqwest client.
//!
//! Requests are signed with UNSIGNED-PAYLOAD and carry a CRC32C checksum header per part (computed while the
//! part fills, so the bytes are not read twice). Credentials come from a [`CredentialCache`], fetched again
//! before they expire; a request S3 refuses with ExpiredToken is tried once more with fresh ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::credentials::{key_id_prefix, CredentialCache};
use crate::digest::{crc32c_header, hex_eq, Expected};
use crate::failure::Failure;
use crate::http::describe;
use crate::retry::{Jitter, RetryPolicy};
use crate::s3::errors::{checksum_refused, classify, EXPIRED_CODES};
use crate::s3::target::target;
use crate::s3::xml::{self, error_fields, is_error_document, parse_uploads, Part, Upload};
use crate::sigv4::{amz_date, authorization, uri_encode, Request, UNSIGNED_PAYLOAD};

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct Client {
    http: reqwest::Client,
    endpoint: Option<String>,
    region: String,
    creds: Arc<CredentialCache>,
    policy: RetryPolicy,
    checksums: AtomicBool,
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        endpoint: Option<String>,
        region: String,
        creds: Arc<CredentialCache>,
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
            target(self.endpoint.as_deref(), &self.region, bucket, key).map_err(Failure::fatal)?;
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
        let mut refreshed = false;
        loop {
            let creds = self.creds.get().await?;
            let who = format!(
                "on bucket '{bucket}' for access key {}…",
                key_id_prefix(&creds.access_key)
            );
            let (stamp, _) = amz_date(SystemTime::now());
            let mut headers: Vec<(String, String)> = vec![
                ("host".into(), target.host.clone()),
                ("x-amz-date".into(), stamp.clone()),
                ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()),
            ];
            if let Some(token) = &creds.session_token {
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
            let auth = authorization(&request, &creds, &self.region, &stamp);
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
                            if status == 200 && is_error_document(&body) {
                                classify(what, 500, &String::from_utf8_lossy(&body), &who)
                            } else {
                                return Ok(Response {
                                    status,
                                    headers,
                                    body,
                                });
                            }
                        }
                        Ok(body) => {
                            let text = String::from_utf8_lossy(&body);
                            let expired = EXPIRED_CODES.contains(&error_fields(&text).0.as_str());
                            if expired && !refreshed {
                                // The token ran out before its announced expiry: once more, freshly fetched.
                                refreshed = true;
                                self.creds.invalidate().await;
                                continue;
                            }
                            classify(what, status, &text, &who)
                        }
                    }
                }
            };
            match outcome {
                Failure::Retryable(message) => {
                    failures += 1;
                    if !self.policy.allows(failures) {
                        return Err(Failure::fatal(format!(
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
        let refused = matches!(outcome, Err(f @ Failure::Fatal(..)) if checksum_refused(f));
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
        let id = xml::upload_id(&String::from_utf8_lossy(&resp.body));
        if id.is_empty() {
            return Err(Failure::fatal(
                "S3 CreateMultipartUpload answered without an UploadId",
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
            Failure::fatal(format!("S3 UploadPart {number} answered without an ETag"))
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
        let body = xml::complete_body(parts);
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
