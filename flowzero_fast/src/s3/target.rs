//! Where an S3 request goes: the URL, Host header and canonical path of `bucket/key`, and the region and
//! endpoint the way the AWS tools take them.

use crate::sigv4::uri_encode;

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
}
