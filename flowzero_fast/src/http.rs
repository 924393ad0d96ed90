//! The source side: one shared HTTP client (TLS and proxies like the AWS tools) and streaming GETs that can
//! start at an offset.
//!
//! Trust: the system's CA store (rustls-native-certs, which honours SSL_CERT_FILE / SSL_CERT_DIR), or only the
//! PEM bundle the caller names (AWS_CA_BUNDLE, resolved in Python for every downloader). Proxies: reqwest reads
//! HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY (either case) as the AWS tools do. Redirects (Planet's
//! download links answer 302 to a storage host) are followed; reqwest drops Authorization, Cookie and
//! Proxy-Authorization when a redirect leaves the origin.

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use crate::failure::{Failure, Reason};
use crate::location::{redact_text, redact_url};
use crate::plan;
use crate::retry::retryable_status;

/// How the batch's client is built.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub max_workers: usize,
    /// A PEM bundle to trust instead of the system's store.
    pub ca_bundle: Option<String>,
}

/// The one client of a batch: connections are pooled and reused for every file and every S3 request.
pub fn client(options: &ClientOptions) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.timeout)
        .read_timeout(options.timeout)
        .pool_max_idle_per_host(options.max_workers.max(1) * 2)
        .tcp_nodelay(true)
        .user_agent(concat!("flowzero-fast/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = options.ca_bundle.as_deref().filter(|p| !p.is_empty()) {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read the CA bundle {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("the CA bundle {path} is not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!("the CA bundle {path} holds no certificate"));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(describe)
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

/// What a GET got: a response to stream, or a 429 to wait out.
pub enum Answer {
    Body(reqwest::Response),
    /// The source is pacing us; `retry_after` is what it asked for, if anything (seconds).
    Throttled {
        retry_after: Option<f64>,
    },
}

/// GET `url` from byte `offset`. Answers 2xx and 416 are returned for the caller to plan with, 429 as
/// [`Answer::Throttled`]; 5xx/408 and transport errors are retryable; 401/403/410 say the link was refused
/// (it may have expired); any other status fails the file.
pub async fn get(client: &reqwest::Client, url: &str, offset: u64) -> Result<Answer, Failure> {
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
        Ok(Answer::Body(response))
    } else if status == 429 {
        Ok(Answer::Throttled {
            retry_after: throttle_hint(response).await,
        })
    } else if retryable_status(status) {
        Err(Failure::Retryable(format!("source answered HTTP {status}")))
    } else {
        let reason = if matches!(status, 401 | 403 | 410) {
            Reason::ExpiredLink
        } else {
            Reason::Other
        };
        Err(Failure::Fatal(
            reason,
            format!("source answered HTTP {status} for {}", redact_url(url)),
        ))
    }
}

/// The wait a 429 asks for: Retry-After (seconds or an HTTP date), else Planet's body hint `retry-in 200ms`.
async fn throttle_hint(response: reqwest::Response) -> Option<f64> {
    let header = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()));
    if header.is_some() {
        return header;
    }
    // Planet's answers are a line of text; more than a few KiB is not a hint.
    let body = tokio::time::timeout(Duration::from_secs(5), response.bytes())
        .await
        .ok()?
        .ok()?;
    body_hint(&String::from_utf8_lossy(&body[..body.len().min(4096)]))
}

/// A Retry-After value in seconds from `now`: delta-seconds or an HTTP date.
pub fn retry_after(value: &str, now: SystemTime) -> Option<f64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then_some(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).map_or(0.0, |d| d.as_secs_f64()))
}

/// `retry-in 200ms` / `retry-in 1.5s` in a 429's body, in seconds.
pub fn body_hint(body: &str) -> Option<f64> {
    let lower = body.to_ascii_lowercase();
    let rest = lower.split("retry-in").nth(1)?.trim_start();
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let value: f64 = number.parse().ok()?;
    let unit = rest[number.len()..].trim_start();
    let seconds = if unit.starts_with("ms") {
        value / 1000.0
    } else if unit.starts_with('m') {
        value * 60.0
    } else {
        value
    };
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after("2", now), Some(2.0));
        assert_eq!(retry_after(" 0.5 ", now), Some(0.5));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now), Some(3.0));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(0.0));
        assert_eq!(retry_after("-1", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn planet_body_hints() {
        assert_eq!(body_hint("max rate reached: retry-in 200ms"), Some(0.2));
        assert_eq!(body_hint("Retry-In 1.5s"), Some(1.5));
        assert_eq!(body_hint("retry-in 2"), Some(2.0));
        assert_eq!(body_hint("too many requests"), None);
        assert_eq!(body_hint("retry-in soon"), None);
    }
}
