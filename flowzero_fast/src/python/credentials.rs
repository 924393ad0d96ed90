//! The credential provider Python hands over: a callable returning
//! `(access_key, secret_key, session_token | None, expiry_epoch | None)`, called with the GIL briefly held at
//! the start of a batch and again shortly before the credentials expire.

use pyo3::prelude::*;

use crate::credentials::{Credentials, Provider};

pub struct PyProvider(pub Py<PyAny>);

type Answer = (String, String, Option<String>, Option<f64>);

impl Provider for PyProvider {
    fn fetch(&self) -> Result<Credentials, String> {
        Python::attach(|py| {
            let answer = self
                .0
                .call0(py)
                .map_err(|e| format!("the AWS credential provider failed: {e}"))?;
            let (access_key, secret_key, token, expiry): Answer = answer.bind(py).extract().map_err(|_| {
                "the AWS credential provider must return (access_key, secret_key, token, expiry)".to_string()
            })?;
            if access_key.is_empty() || secret_key.is_empty() {
                return Err("the AWS credential provider returned empty credentials".into());
            }
            Ok(Credentials::from_parts(
                access_key, secret_key, token, expiry,
            ))
        })
    }
}
