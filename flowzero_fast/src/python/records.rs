//! Python's view of the one job record (`record::Job`, `record::JobResult`): a constructor, reprs, and the failure
//! reason as the string value of `flowzero.models.FailureReason`.

use std::convert::Infallible;

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::failure::Reason;
use crate::location::redact_url;
use crate::record::{Job, JobResult};

impl<'py> IntoPyObject<'py> for Reason {
    type Target = PyString;
    type Output = Bound<'py, PyString>;
    type Error = Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyString::new(py, self.as_str()))
    }
}

impl<'py> IntoPyObject<'py> for &Reason {
    type Target = PyString;
    type Output = Bound<'py, PyString>;
    type Error = Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        (*self).into_pyobject(py)
    }
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
            redact_url(&self.url),
            self.destination
        )
    }
}

#[pymethods]
impl JobResult {
    fn __repr__(&self) -> String {
        let text = |v: &Option<String>| v.as_ref().map_or("None".to_string(), |s| format!("{s:?}"));
        let flag = |b: bool| if b { "True" } else { "False" };
        let reason = self
            .reason
            .map_or("None".to_string(), |r| format!("'{}'", r.as_str()));
        format!(
            "JobResult(ok={}, skipped={}, bytes={}, seconds={:.3}, digest={}, error={}, reason={reason}, throttled={})",
            flag(self.ok),
            flag(self.skipped),
            self.bytes,
            self.seconds,
            text(&self.digest),
            text(&self.error),
            self.throttled
        )
    }
}
