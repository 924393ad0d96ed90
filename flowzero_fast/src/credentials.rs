//! AWS credentials for the S3 client: where they come from is not Rust's business (Python resolves the AWS
//! tools' chain with botocore and hands over a provider); Rust keeps the current set and asks the provider
//! again shortly before it expires, so a long batch never signs a request with expired keys.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::failure::Failure;

/// Refresh this long before the expiry the provider announced (the AWS SDKs use five minutes).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// One set of credentials; `expires` is None for long-term keys.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}****)", key_id_prefix(&self.access_key))
    }
}

/// The first characters of an access key id, the most of it any message shows (`AKIA1234`).
pub fn key_id_prefix(access_key: &str) -> &str {
    let end = access_key
        .char_indices()
        .nth(8)
        .map_or(access_key.len(), |(i, _)| i);
    &access_key[..end]
}

impl Credentials {
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from a variable lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
        let non_empty = |name: &str| get(name).filter(|v| !v.is_empty());
        Some(Credentials {
            access_key: non_empty("AWS_ACCESS_KEY_ID")?,
            secret_key: non_empty("AWS_SECRET_ACCESS_KEY")?,
            session_token: non_empty("AWS_SESSION_TOKEN"),
            expires: None,
        })
    }

    /// From a provider's answer: expiry as seconds since the epoch, if any.
    pub fn from_parts(
        access_key: String,
        secret_key: String,
        session_token: Option<String>,
        expires_epoch: Option<f64>,
    ) -> Credentials {
        let expires = expires_epoch
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| UNIX_EPOCH + Duration::from_secs_f64(t));
        Credentials {
            access_key,
            secret_key,
            session_token: session_token.filter(|t| !t.is_empty()),
            expires,
        }
    }

    /// Whether these should be replaced before signing at `now`.
    pub fn stale_at(&self, now: SystemTime) -> bool {
        self.expires
            .is_some_and(|expires| now + REFRESH_MARGIN >= expires)
    }
}

/// Where fresh credentials come from. `fetch` may block (it may call into Python and the network).
pub trait Provider: Send + Sync {
    fn fetch(&self) -> Result<Credentials, String>;
}

/// Fixed credentials (environment variables, tests).
pub struct Fixed(pub Credentials);

impl Provider for Fixed {
    fn fetch(&self) -> Result<Credentials, String> {
        Ok(self.0.clone())
    }
}

/// The credentials in use and their provider: one fetch at a time, again when they are about to expire.
pub struct CredentialCache {
    provider: Arc<dyn Provider>,
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl CredentialCache {
    pub fn new(provider: Arc<dyn Provider>) -> CredentialCache {
        CredentialCache {
            provider,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// A cache that starts with `creds` already fetched.
    pub fn fixed(creds: Credentials) -> CredentialCache {
        CredentialCache {
            provider: Arc::new(Fixed(creds.clone())),
            current: tokio::sync::Mutex::new(Some(creds)),
        }
    }

    /// Credentials valid for a while yet; the provider is asked (off the async threads) when there are none.
    pub async fn get(&self) -> Result<Credentials, Failure> {
        let mut current = self.current.lock().await;
        if let Some(creds) = current.as_ref().filter(|c| !c.stale_at(SystemTime::now())) {
            return Ok(creds.clone());
        }
        let provider = self.provider.clone();
        let fetched = tokio::task::spawn_blocking(move || provider.fetch())
            .await
            .map_err(|e| Failure::Auth(format!("the AWS credential provider failed: {e}")))?
            .map_err(Failure::Auth)?;
        *current = Some(fetched.clone());
        Ok(fetched)
    }

    /// Forget the current set (S3 said it expired): the next `get` asks the provider.
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn credentials_from_environment_lookup() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("AK".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("SK".to_string()),
            "AWS_SESSION_TOKEN" => Some(String::new()),
            _ => None,
        };
        let c = Credentials::from_lookup(env).unwrap();
        assert_eq!(
            (
                c.access_key.as_str(),
                c.secret_key.as_str(),
                c.session_token,
                c.expires
            ),
            ("AK", "SK", None, None)
        );
        assert!(Credentials::from_lookup(|_| None).is_none());
    }

    #[test]
    fn debug_shows_only_the_key_id_prefix() {
        let c = Credentials::from_parts("AKIAIOSFODNN7EXAMPLE".into(), "SECRET".into(), None, None);
        assert_eq!(format!("{c:?}"), "Credentials(AKIAIOSF****)");
        assert_eq!(key_id_prefix("AK"), "AK");
    }

    struct Counting(AtomicU32, f64);

    impl Provider for Counting {
        fn fetch(&self) -> Result<Credentials, String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let expiry = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                + self.1;
            Ok(Credentials::from_parts(
                format!("AK{n}"),
                "S".into(),
                Some("T".into()),
                Some(expiry),
            ))
        }
    }

    #[test]
    fn expiring_credentials_are_fetched_again_and_long_lived_ones_kept() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let soon = Arc::new(Counting(AtomicU32::new(0), 2.0));
            let cache = CredentialCache::new(soon.clone());
            assert_eq!(cache.get().await.unwrap().access_key, "AK0");
            assert_eq!(cache.get().await.unwrap().access_key, "AK1"); // within the margin: refreshed
            let later = Arc::new(Counting(AtomicU32::new(0), 3600.0));
            let cache = CredentialCache::new(later.clone());
            cache.get().await.unwrap();
            cache.get().await.unwrap();
            assert_eq!(later.0.load(Ordering::SeqCst), 1);
            cache.invalidate().await;
            assert_eq!(cache.get().await.unwrap().access_key, "AK1");
        });
    }
}
