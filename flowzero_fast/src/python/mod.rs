//! The PyO3 bindings, thin and typed (see `flowzero/_fast.pyi`): `transfer` (a batch), `S3Objects` (the small S3
//! requests beside it), the job record (`records`) and the credential provider Python hands over
//! (`credentials`). Long work releases the GIL; failures cross as `TransferError` / `CredentialsError`.

mod credentials;
mod objects;
mod records;
mod transfer;

use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

use crate::failure::Failure;
use crate::jobs::{BatchError, Settings};
use crate::retry::RetryPolicy;

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

/// How often a waiting thread takes the GIL to look for Ctrl-C and report progress.
const TICK: Duration = Duration::from_millis(100);

/// Version of the Rust core, so Python can tell which build it loaded.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// A duration from seconds given by Python (checked: Duration panics on NaN and negatives).
fn seconds(name: &str, value: f64, allow_zero: bool) -> PyResult<Duration> {
    let valid = value.is_finite() && (value > 0.0 || (allow_zero && value == 0.0));
    if !valid {
        let bound = if allow_zero { ">= 0" } else { "> 0" };
        return Err(PyValueError::new_err(format!(
            "{name} must be {bound}, not {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// Default settings with the timeout and retry policy a caller asked for.
fn timing(timeout: f64, max_retries: u32, retry_base_delay: f64) -> PyResult<Settings> {
    Ok(Settings {
        timeout: seconds("timeout", timeout, false)?,
        retry: RetryPolicy {
            max_retries,
            base: seconds("retry_base_delay", retry_base_delay, true)?,
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

#[pymodule]
fn _fast(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add(
        "RETRYABLE_STATUSES",
        crate::retry::RETRYABLE_STATUSES.to_vec(),
    )?;
    m.add("PACE_BACKOFF", crate::pace::BACKOFF)?;
    m.add("PACE_RECOVERY_STEPS", crate::pace::RECOVERY_STEPS)?;
    m.add("PACE_MAX_BACKOFF_FACTOR", crate::pace::MAX_FACTOR)?;
    m.add_function(wrap_pyfunction!(transfer::transfer, m)?)?;
    m.add_class::<crate::record::Job>()?;
    m.add_class::<crate::record::JobResult>()?;
    m.add_class::<objects::S3Objects>()?;
    m.add("TransferError", m.py().get_type::<TransferError>())?;
    m.add("CredentialsError", m.py().get_type::<CredentialsError>())?;
    Ok(())
}
