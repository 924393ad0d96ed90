//! Where a job writes to (`s3://bucket/key` or a local path) and how URLs may appear in messages.

use std::path::PathBuf;

/// A job's destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    S3 { bucket: String, key: String },
    Local(PathBuf),
}

impl Destination {
    pub fn parse(text: &str) -> Result<Destination, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                return Err(format!("'{text}' is not an s3://bucket/key destination"));
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if text.contains("://") {
            return Err(format!(
                "unsupported destination '{text}' (use s3://bucket/key or a local path)"
            ));
        }
        if text.is_empty() || text.ends_with('/') {
            return Err(format!("destination '{text}' does not name a file"));
        }
        Ok(Destination::Local(PathBuf::from(text)))
    }
}

/// A URL as it may be shown: query string (which carries download tokens) and user info hidden.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?****"),
        None => (url, ""),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://****@{host}{path}"),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    format!("{base}{query}")
}

/// `text` with every URL inside it redacted, e.g. an HTTP library's error message.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ',' | ']'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_destinations() {
        assert_eq!(
            Destination::parse("s3://bucket/a/b c.tif").unwrap(),
            Destination::S3 {
                bucket: "bucket".into(),
                key: "a/b c.tif".into()
            }
        );
        for bad in [
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://b/dir/",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_destinations() {
        assert_eq!(
            Destination::parse("/tmp/x.tif").unwrap(),
            Destination::Local("/tmp/x.tif".into())
        );
        assert_eq!(
            Destination::parse("rel/x.tif").unwrap(),
            Destination::Local("rel/x.tif".into())
        );
        assert!(Destination::parse("gs://b/k").is_err());
        assert!(Destination::parse("").is_err());
        assert!(Destination::parse("dir/").is_err());
    }

    #[test]
    fn urls_lose_tokens_and_passwords() {
        assert_eq!(
            redact_url("https://h/p/f.tif?token=SECRET&x=1"),
            "https://h/p/f.tif?****"
        );
        assert_eq!(redact_url("https://user:pw@h:9/p"), "https://****@h:9/p");
        assert_eq!(redact_url("https://h/p"), "https://h/p");
    }

    #[test]
    fn text_with_urls_is_redacted() {
        let msg = "error sending request for url (http://127.0.0.1:5/download/a.tif?token=abc123): closed";
        let red = redact_text(msg);
        assert!(!red.contains("abc123"), "{red}");
        assert_eq!(
            red,
            "error sending request for url (http://127.0.0.1:5/download/a.tif?****): closed"
        );
        let two = redact_text("a https://x/y?sig=1 b s3://bucket/k c http://u:p@z/q?t=2");
        assert_eq!(
            two,
            "a https://x/y?**** b s3://bucket/k c http://****@z/q?****"
        );
        assert_eq!(redact_text("no urls here"), "no urls here");
    }
}
