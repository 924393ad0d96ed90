//! `S3Objects`: the small S3 requests a delivery makes beside its transfers (metadata.json, cleaning up after
//! killed runs), with the credentials, endpoint, TLS, signer and retries of `transfer`: the fast path never
//! loads boto3.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;

use super::credentials::PyProvider;
use super::{batch_error, failure_error, timing, TransferError, TICK};
use crate::digest::crc32c_append;
use crate::failure::Failure;
use crate::jobs::{self, Settings};
use crate::s3;

#[pyclass(module = "flowzero._fast", frozen)]
pub struct S3Objects {
    runtime: tokio::runtime::Runtime,
    client: s3::Client,
}

impl S3Objects {
    /// Run one request with the GIL released, looking for Ctrl-C every tick (which drops the request).
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        work: impl std::future::Future<Output = Result<T, Failure>> + Send,
    ) -> PyResult<T> {
        let mut work = std::pin::pin!(work);
        py.detach(|| loop {
            let waited = self
                .runtime
                .block_on(async { tokio::time::timeout(TICK, work.as_mut()).await });
            match waited {
                Ok(done) => return done.map_err(failure_error),
                Err(_tick) => Python::attach(|py| py.check_signals())?,
            }
        })
    }
}

#[pymethods]
impl S3Objects {
    #[new]
    #[pyo3(signature = (
        *, region=None, endpoint_url=None, timeout=60.0, max_retries=5, retry_base_delay=0.25,
        credentials=None, ca_bundle=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        region: Option<String>,
        endpoint_url: Option<String>,
        timeout: f64,
        max_retries: u32,
        retry_base_delay: f64,
        credentials: Option<Py<PyAny>>,
        ca_bundle: Option<String>,
    ) -> PyResult<Self> {
        let settings = Settings {
            region,
            endpoint_url,
            credentials: credentials.map(|c| Arc::new(PyProvider(c)) as _),
            ca_bundle,
            ..timing(timeout, max_retries, retry_base_delay)?
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TransferError::new_err(format!("cannot start a runtime: {e}")))?;
        let http = {
            let _inside = runtime.enter();
            crate::http::client(&crate::http::ClientOptions {
                timeout: settings.timeout,
                max_workers: 1,
                ca_bundle: settings.ca_bundle.clone(),
            })
            .map_err(TransferError::new_err)?
        };
        // The first fetch may call the provider (Python): the GIL is released while the runtime waits.
        let client = py
            .detach(|| runtime.block_on(jobs::s3_client(http, &settings)))
            .map_err(batch_error)?;
        Ok(S3Objects { runtime, client })
    }

    /// The object's headers (lower-case names: content-length, x-amz-meta-*), or None if it does not exist.
    fn head(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
    ) -> PyResult<Option<HashMap<String, String>>> {
        let headers = self.run(py, self.client.head(bucket, key))?;
        Ok(headers.map(|headers| {
            headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
                })
                .collect()
        }))
    }

    /// PUT a small object in one request, with a CRC32C checksum and `x-amz-meta-*` metadata.
    #[pyo3(signature = (bucket, key, data, *, content_type="application/octet-stream", metadata=None))]
    fn put(
        &self,
        py: Python<'_>,
        bucket: &str,
        key: &str,
        data: &[u8],
        content_type: &str,
        metadata: Option<HashMap<String, String>>,
    ) -> PyResult<()> {
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        headers.extend(
            metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (format!("x-amz-meta-{}", k.to_ascii_lowercase()), v)),
        );
        let crc = crc32c_append(0, data);
        let body = bytes::Bytes::copy_from_slice(data);
        self.run(py, self.client.put_object(bucket, key, body, crc, &headers))
    }

    /// The incomplete multipart uploads under `prefix`: (key, upload id, initiated as ISO 8601).
    fn list_uploads(
        &self,
        py: Python<'_>,
        bucket: &str,
        prefix: &str,
    ) -> PyResult<Vec<(String, String, String)>> {
        let uploads = self.run(py, self.client.list_uploads(bucket, prefix))?;
        Ok(uploads
            .into_iter()
            .map(|u| (u.key, u.upload_id, u.initiated))
            .collect())
    }

    /// Abort one multipart upload (an upload already gone is not an error).
    fn abort(&self, py: Python<'_>, bucket: &str, key: &str, upload_id: &str) -> PyResult<()> {
        self.run(py, self.client.abort(bucket, key, upload_id))
    }
}
