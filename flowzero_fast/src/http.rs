//! The source side: one shared HTTP client and streaming GETs that can start at an offset.

use std::error::Error as _;
use std::time::Duration;

use crate::failure::Failure;
use crate::location::{redact_text, redact_url};
use crate::plan;
use crate::retry::retryable_status;

/// The one client of a batch: connections are pooled and reused for every file and every S3 request.
pub fn client(timeout: Duration, max_workers: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .pool_max_idle_per_host(max_workers.max(1) * 2)
        .tcp_nodelay(true)
        .user_agent(concat!("flowzero-fast/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(describe)
}

/// A reqwest error as one line with its causes, without any URL query string.
pub fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    redact_text(&text)
}

/// GET `url` from byte `offset`. Answers 2xx and 416 are returned for the caller to plan with;
/// 5xx/429/408 and transport errors are retryable; any other status fails the file.
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    offset: u64,
) -> Result<reqwest::Response, Failure> {
    let mut request = client.get(url);
    if let Some(range) = plan::range_header(offset) {
        request = request.header(reqwest::header::RANGE, range);
    }
    let response = request
        .send()
        .await
        .map_err(|e| Failure::Retryable(describe(e)))?;
    let status = response.status().as_u16();
    if response.status().is_success() || status == 416 {
        Ok(response)
    } else if retryable_status(status) {
        Err(Failure::Retryable(format!("source answered HTTP {status}")))
    } else {
        Err(Failure::Fatal(format!(
            "source answered HTTP {status} for {}",
            redact_url(url)
        )))
    }
}

/// The Content-Range header of a response, if any.
pub fn content_range(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()
        .map(str::to_string)
}
