//! flowzero_fast: the Rust core of flowzero, exposed to Python as `flowzero._fast`.
//!
//! Pure logic lives in modules that compile without Python (`cargo test --no-default-features`);
//! the `python` feature adds the PyO3 bindings. One file per concern: planning (`plan`), digests (`digest`),
//! retries (`retry`), destinations and redaction (`location`), SigV4 (`sigv4`), the source (`http`), the
//! destinations (`local`, `s3`) and the batch that ties them together (`jobs`).

pub mod digest;
pub mod failure;
pub mod http;
pub mod jobs;
pub mod local;
pub mod location;
pub mod plan;
pub mod pool;
pub mod retry;
pub mod s3;
pub mod sigv4;

#[cfg(feature = "python")]
mod python {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use pyo3::create_exception;
    use pyo3::exceptions::PyException;
    use pyo3::prelude::*;
    use tokio::sync::watch;

    use crate::digest::crc32c_append;
    use crate::failure::Failure;
    use crate::jobs::{self, BatchError, Settings};
    use crate::retry::RetryPolicy;
    use crate::s3;

    create_exception!(
        flowzero._fast,
        TransferError,
        PyException,
        "A batch of transfers could not run."
    );
    create_exception!(
        flowzero._fast,
        CredentialsError,
        TransferError,
        "S3 credentials are missing or were refused."
    );

    /// How often the waiting thread takes the GIL to look for Ctrl-C and report progress.
    const TICK: Duration = Duration::from_millis(100);
    /// How long cleanup (aborting uploads, removing temp files) may take after a Ctrl-C.
    const CLEANUP_GRACE: Duration = Duration::from_secs(30);

    /// Version of the Rust core, so Python can tell which build it loaded.
    #[pyfunction]
    fn version() -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// One file to move: source URL, destination (`s3://bucket/key` or a local path), manifest size and digests.
    #[pyclass(module = "flowzero._fast", frozen, get_all)]
    struct Job {
        url: String,
        destination: String,
        size: Option<u64>,
        md5: Option<String>,
        sha256: Option<String>,
    }

    #[pymethods]
    impl Job {
        #[new]
        #[pyo3(signature = (url, destination, size=None, md5=None, sha256=None))]
        fn new(
            url: String,
            destination: String,
            size: Option<u64>,
            md5: Option<String>,
            sha256: Option<String>,
        ) -> Self {
            Job {
                url,
                destination,
                size,
                md5,
                sha256,
            }
        }

        fn __repr__(&self) -> String {
            format!(
                "Job(url='{}', destination='{}')",
                crate::location::redact_url(&self.url),
                self.destination
            )
        }
    }

    /// What happened to one job.
    #[pyclass(module = "flowzero._fast", frozen, get_all)]
    struct JobResult {
        ok: bool,
        skipped: bool,
        bytes: u64,
        seconds: f64,
        digest: Option<String>,
        error: Option<String>,
    }

    #[pymethods]
    impl JobResult {
        fn __repr__(&self) -> String {
            let text =
                |v: &Option<String>| v.as_ref().map_or("None".to_string(), |s| format!("{s:?}"));
            let flag = |b: bool| if b { "True" } else { "False" };
            format!(
                "JobResult(ok={}, skipped={}, bytes={}, seconds={:.3}, digest={}, error={})",
                flag(self.ok),
                flag(self.skipped),
                self.bytes,
                self.seconds,
                text(&self.digest),
                text(&self.error)
            )
        }
    }

    impl From<jobs::JobResult> for JobResult {
        fn from(r: jobs::JobResult) -> Self {
            JobResult {
                ok: r.ok,
                skipped: r.skipped,
                bytes: r.bytes,
                seconds: r.seconds,
                digest: r.digest,
                error: r.error,
            }
        }
    }

    enum Waited {
        Done(Result<Vec<jobs::JobResult>, BatchError>),
        Interrupted(PyErr),
    }

    /// Move every job concurrently; one result per job, in order. Releases the GIL for the whole transfer and
    /// takes it back every 100 ms to call `progress(bytes_since_last_call)` and to notice Ctrl-C, which cancels
    /// the batch, aborts uploads, removes temp files and re-raises KeyboardInterrupt.
    #[pyfunction]
    #[pyo3(signature = (
        jobs, *, max_workers=8, overwrite=false, region=None, endpoint_url=None, part_size=16*1024*1024,
        part_concurrency=4, timeout=60.0, max_retries=5, retry_base_delay=0.25, s3_checksums=true, progress=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        py: Python<'_>,
        jobs: Vec<Bound<'_, Job>>,
        max_workers: usize,
        overwrite: bool,
        region: Option<String>,
        endpoint_url: Option<String>,
        part_size: u64,
        part_concurrency: usize,
        timeout: f64,
        max_retries: u32,
        retry_base_delay: f64,
        s3_checksums: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<JobResult>> {
        let jobs: Vec<jobs::Job> = jobs
            .iter()
            .map(|j| {
                let j = j.get();
                jobs::Job {
                    url: j.url.clone(),
                    destination: j.destination.clone(),
                    size: j.size,
                    md5: j.md5.clone(),
                    sha256: j.sha256.clone(),
                }
            })
            .collect();
        let settings = Settings {
            max_workers: max_workers.max(1),
            overwrite,
            region,
            endpoint_url,
            part_size,
            part_concurrency: part_concurrency.max(1),
            s3_checksums,
            ..timing(timeout, max_retries, retry_base_delay)?
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .clamp(2, 8),
            )
            .thread_name("flowzero-fast")
            .enable_all()
            .build()
            .map_err(|e| {
                TransferError::new_err(format!("cannot start the transfer runtime: {e}"))
            })?;
        let stop = Arc::new(watch::channel(false).0);
        let counter = Arc::new(AtomicU64::new(0));
        let mut batch = runtime.spawn(jobs::run_batch(
            jobs,
            settings,
            stop.clone(),
            counter.clone(),
        ));

        let waited = py.detach(|| {
            let mut reported = 0u64;
            let mut report = |py: Python<'_>| -> PyResult<()> {
                let done = counter.load(Ordering::Relaxed);
                if let Some(callback) = &progress {
                    if done > reported {
                        callback.call1(py, (done - reported,))?;
                    }
                }
                reported = done;
                Ok(())
            };
            loop {
                match runtime.block_on(async { tokio::time::timeout(TICK, &mut batch).await }) {
                    Ok(joined) => {
                        let outcome = joined.unwrap_or_else(|e| {
                            Err(BatchError::Setup(format!("transfer task failed: {e}")))
                        });
                        return match Python::attach(&mut report) {
                            Ok(()) => Waited::Done(outcome),
                            Err(err) => Waited::Interrupted(err),
                        };
                    }
                    Err(_tick) => {
                        if let Err(err) =
                            Python::attach(|py| py.check_signals().and_then(|()| report(py)))
                        {
                            stop.send_replace(true);
                            // Let every job abort its upload / remove its temp file before raising.
                            let _ = runtime.block_on(async {
                                tokio::time::timeout(CLEANUP_GRACE, &mut batch).await
                            });
                            return Waited::Interrupted(err);
                        }
                    }
                }
            }
        });
        runtime.shutdown_background();
        match waited {
            Waited::Interrupted(err) => Err(err),
            Waited::Done(Ok(results)) => Ok(results.into_iter().map(JobResult::from).collect()),
            Waited::Done(Err(error)) => Err(batch_error(error)),
        }
    }

    /// Default settings with the timeout and retry policy a caller asked for (checked: Duration panics on NaN).
    fn timing(timeout: f64, max_retries: u32, retry_base_delay: f64) -> PyResult<Settings> {
        let valid = timeout > 0.0
            && timeout.is_finite()
            && retry_base_delay >= 0.0
            && retry_base_delay.is_finite();
        if !valid {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "timeout must be > 0 and retry_base_delay >= 0",
            ));
        }
        Ok(Settings {
            timeout: Duration::from_secs_f64(timeout),
            retry: RetryPolicy {
                max_retries,
                base: Duration::from_secs_f64(retry_base_delay),
                cap: Duration::from_secs(20),
            },
            ..Settings::default()
        })
    }

    fn batch_error(error: BatchError) -> PyErr {
        match error {
            BatchError::Credentials(message) => CredentialsError::new_err(message),
            BatchError::Setup(message) => TransferError::new_err(message),
            BatchError::Cancelled => TransferError::new_err("the transfer was cancelled"),
        }
    }

    fn failure_error(failure: Failure) -> PyErr {
        match failure {
            Failure::Auth(message) => CredentialsError::new_err(message),
            other => TransferError::new_err(other.to_string()),
        }
    }

    /// The small S3 requests a delivery makes beside its transfers (metadata.json, cleaning up after killed
    /// runs), with the credentials, endpoint, signer and retries of `transfer`: the fast path never loads boto3.
    #[pyclass(module = "flowzero._fast", frozen)]
    struct S3Objects {
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
        #[pyo3(signature = (*, region=None, endpoint_url=None, timeout=60.0, max_retries=5, retry_base_delay=0.25))]
        fn new(
            region: Option<String>,
            endpoint_url: Option<String>,
            timeout: f64,
            max_retries: u32,
            retry_base_delay: f64,
        ) -> PyResult<Self> {
            let settings = Settings {
                region,
                endpoint_url,
                ..timing(timeout, max_retries, retry_base_delay)?
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| TransferError::new_err(format!("cannot start a runtime: {e}")))?;
            let http = {
                let _inside = runtime.enter();
                crate::http::client(settings.timeout, 1).map_err(TransferError::new_err)?
            };
            let client = jobs::s3_from_env(http, &settings).map_err(batch_error)?;
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

    #[pymodule]
    fn _fast(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(version, m)?)?;
        m.add_function(wrap_pyfunction!(transfer, m)?)?;
        m.add_class::<Job>()?;
        m.add_class::<JobResult>()?;
        m.add_class::<S3Objects>()?;
        m.add("TransferError", m.py().get_type::<TransferError>())?;
        m.add("CredentialsError", m.py().get_type::<CredentialsError>())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crate_version_is_semver() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(v.split('.').count(), 3);
    }
}
