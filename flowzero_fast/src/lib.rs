//! flowzero_fast: the Rust core of flowzero, exposed to Python as `flowzero._fast`.
//!
//! Pure logic lives in modules that compile without Python (`cargo test --no-default-features`);
//! the `python` feature adds the PyO3 bindings.

pub mod digest;
pub mod location;
pub mod plan;
pub mod retry;
pub mod sigv4;

#[cfg(feature = "python")]
mod python {
    use pyo3::prelude::*;

    /// Version of the Rust core, so Python can tell which build it loaded.
    #[pyfunction]
    fn version() -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    #[pymodule]
    fn _fast(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(version, m)?)?;
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
