//! `transfer(jobs, ...)`: one batch on a multi-threaded runtime with the GIL released, taken back every tick to
//! report progress and notice Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::sync::watch;

use super::credentials::PyProvider;
use super::{batch_error, seconds, timing, TransferError, TICK};
use crate::jobs::{self, BatchError, Settings};
use crate::record::{Job, JobResult};

/// How long cleanup (aborting uploads, removing temp files) may take after a Ctrl-C.
const CLEANUP_GRACE: Duration = Duration::from_secs(30);

enum Waited {
    Done(Result<Vec<JobResult>, BatchError>),
    Interrupted(PyErr),
}

/// Move every job concurrently; one result per job, in order. Releases the GIL for the whole transfer and
/// takes it back every 100 ms to call `progress(bytes_since_last_call)` and to notice Ctrl-C, which cancels
/// the batch, aborts uploads, removes temp files and re-raises KeyboardInterrupt.
#[pyfunction]
#[pyo3(signature = (
    jobs, *, max_workers=8, overwrite=false, region=None, endpoint_url=None, part_size=16*1024*1024,
    part_concurrency=4, timeout=60.0, max_retries=5, retry_base_delay=0.25, s3_checksums=true, progress=None,
    credentials=None, ca_bundle=None, download_rate=None, rate_file=None, throttle_budget=600.0,
    min_speed=1024, max_unknown_size=4*1024*1024*1024
))]
#[allow(clippy::too_many_arguments)]
pub fn transfer(
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
    credentials: Option<Py<PyAny>>,
    ca_bundle: Option<String>,
    download_rate: Option<f64>,
    rate_file: Option<PathBuf>,
    throttle_budget: f64,
    min_speed: u64,
    max_unknown_size: u64,
) -> PyResult<Vec<JobResult>> {
    let jobs: Vec<Job> = jobs.iter().map(|j| j.get().clone()).collect();
    let settings = Settings {
        max_workers: max_workers.max(1),
        overwrite,
        region,
        endpoint_url,
        part_size,
        part_concurrency: part_concurrency.max(1),
        s3_checksums,
        credentials: credentials.map(|c| Arc::new(PyProvider(c)) as _),
        ca_bundle,
        download_rate,
        rate_file,
        throttle_budget: seconds("throttle_budget", throttle_budget, true)?,
        min_speed,
        max_unknown_size,
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
        .map_err(|e| TransferError::new_err(format!("cannot start the transfer runtime: {e}")))?;
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
        Waited::Done(Ok(results)) => Ok(results),
        Waited::Done(Err(error)) => Err(batch_error(error)),
    }
}
