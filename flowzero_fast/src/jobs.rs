//! A batch of transfers on one tokio runtime: bounded concurrency, per-job results, cancellation.
//!
//! Each job: skip if the destination already holds a verified copy; otherwise stream the source once,
//! hashing as it goes, into a local temp file or an S3 upload; resume with Range after transport errors
//! (restart from zero where the source answers 200); commit only if the digest matches, else abort.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{watch, Semaphore};

use crate::digest::{self, hex_eq, DigestKind, Expected, StreamDigest};
use crate::failure::Failure;
use crate::location::Destination;
use crate::plan::{self, Resume};
use crate::pool::PartPool;
use crate::retry::{Jitter, RetryPolicy};
use crate::sigv4::Credentials;
use crate::{http, local, s3};

/// One file to move.
#[derive(Clone, Debug, Default)]
pub struct Job {
    pub url: String,
    pub destination: String,
    pub size: Option<u64>,
    pub md5: Option<String>,
    pub sha256: Option<String>,
}

/// What happened to one job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobResult {
    pub ok: bool,
    pub skipped: bool,
    pub bytes: u64,
    pub seconds: f64,
    pub digest: Option<String>,
    pub error: Option<String>,
}

/// How a batch runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub max_workers: usize,
    pub overwrite: bool,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub part_size: u64,
    pub part_concurrency: usize,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub s3_checksums: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_workers: 8,
            overwrite: false,
            region: None,
            endpoint_url: None,
            part_size: 16 * 1024 * 1024,
            part_concurrency: 4,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            s3_checksums: true,
        }
    }
}

/// Why a whole batch stopped (single-file failures are results, not errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// S3 credentials are missing or were refused.
    Credentials(String),
    /// The batch could not start (e.g. the HTTP client could not be built).
    Setup(String),
    /// The caller cancelled (Ctrl-C).
    Cancelled,
}

struct Ctx {
    http: reqwest::Client,
    s3: Option<Arc<s3::Client>>,
    settings: Settings,
    stop: Arc<watch::Sender<bool>>,
    auth_error: Mutex<Option<String>>,
    progress: Arc<AtomicU64>,
    /// S3 part buffers of the whole batch (filling or uploading): memory stays within max_workers x part_size.
    part_pool: Arc<PartPool>,
}

/// Resolves once the batch is told to stop.
async fn stopped(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Run every job, at most `max_workers` at once; results come back in job order.
/// `stop` cancels the batch; `progress` counts bytes received.
pub async fn run_batch(
    jobs: Vec<Job>,
    settings: Settings,
    stop: Arc<watch::Sender<bool>>,
    progress: Arc<AtomicU64>,
) -> Result<Vec<JobResult>, BatchError> {
    let http = http::client(settings.timeout, settings.max_workers).map_err(BatchError::Setup)?;
    let wants_s3 = jobs.iter().any(|j| j.destination.starts_with("s3://"));
    let s3 = if wants_s3 {
        Some(Arc::new(s3_from_env(http.clone(), &settings)?))
    } else {
        None
    };
    let gate = Arc::new(Semaphore::new(settings.max_workers.max(1)));
    // Two at least, so a lone file can fill its next part while the previous one uploads.
    let part_pool = PartPool::new(settings.max_workers.max(2));
    let ctx = Arc::new(Ctx {
        http,
        s3,
        settings,
        stop: stop.clone(),
        auth_error: Mutex::new(None),
        progress,
        part_pool,
    });
    // Jobs start in order: the dispatcher waits for a free worker before starting the next one.
    let mut handles = Vec::with_capacity(jobs.len());
    for job in jobs {
        let permit = tokio::select! {
            permit = gate.clone().acquire_owned() => permit.ok(),
            _ = stopped(ctx.stop.subscribe()) => None,
        };
        let ctx = ctx.clone();
        handles.push(tokio::spawn(async move {
            match permit {
                Some(_permit) => run_job(&ctx, &job).await,
                None => failed(Failure::Cancelled, 0.0),
            }
        }));
    }
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(
            handle.await.unwrap_or_else(|e| {
                failed(Failure::Fatal(format!("transfer task failed: {e}")), 0.0)
            }),
        );
    }
    if let Some(message) = ctx.auth_error.lock().unwrap().take() {
        return Err(BatchError::Credentials(message));
    }
    if *stop.borrow() {
        return Err(BatchError::Cancelled);
    }
    Ok(results)
}

/// The S3 client of a batch: credentials, region and endpoint the way the AWS tools take them.
pub fn s3_from_env(http: reqwest::Client, settings: &Settings) -> Result<s3::Client, BatchError> {
    let env = |name: &str| std::env::var(name).ok();
    let creds = Credentials::from_lookup(env).ok_or_else(|| {
        BatchError::Credentials(
            "no AWS credentials for the S3 destination: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        )
    })?;
    let (region, endpoint) = s3::resolve_region_endpoint(
        settings.region.as_deref(),
        settings.endpoint_url.as_deref(),
        env,
    );
    Ok(s3::Client::new(
        http,
        endpoint,
        region,
        creds,
        settings.retry,
        settings.s3_checksums,
    ))
}

fn failed(failure: Failure, seconds: f64) -> JobResult {
    JobResult {
        ok: false,
        seconds,
        error: Some(failure.to_string()),
        ..JobResult::default()
    }
}

async fn run_job(ctx: &Ctx, job: &Job) -> JobResult {
    let started = Instant::now();
    let outcome = transfer(ctx, job).await;
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(result) => JobResult { seconds, ..result },
        Err(failure) => {
            if let Failure::Auth(message) = &failure {
                ctx.auth_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| message.clone());
                ctx.stop.send_replace(true);
            }
            failed(failure, seconds)
        }
    }
}

enum Sink {
    Local(local::LocalSink),
    S3(s3::Sink),
}

impl Sink {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Failure> {
        match self {
            Sink::Local(s) => s.write(chunk).await,
            Sink::S3(s) => s.write(chunk).await,
        }
    }

    async fn reset(&mut self) -> Result<(), Failure> {
        match self {
            Sink::Local(s) => s.reset().await,
            Sink::S3(s) => s.reset().await,
        }
    }

    async fn commit(&mut self, digest_hex: &str, kind: DigestKind) -> Result<(), Failure> {
        match self {
            Sink::Local(s) => s.commit().await,
            Sink::S3(s) => s.commit(digest_hex, kind).await,
        }
    }

    async fn abort(&mut self) {
        match self {
            Sink::Local(s) => s.abort().await,
            Sink::S3(s) => s.abort().await,
        }
    }
}

fn s3_client(ctx: &Ctx) -> Result<Arc<s3::Client>, Failure> {
    ctx.s3
        .clone()
        .ok_or_else(|| Failure::Fatal("S3 is not configured".into()))
}

/// One job, from the skip check to commit; the sink is aborted on any failure, including cancellation.
async fn transfer(ctx: &Ctx, job: &Job) -> Result<JobResult, Failure> {
    let destination = Destination::parse(&job.destination).map_err(Failure::Fatal)?;
    let expected =
        digest::choose(job.sha256.as_deref(), job.md5.as_deref()).map_err(Failure::Fatal)?;
    let present = !ctx.settings.overwrite
        && tokio::select! {
            present = already_there(ctx, &destination, job.size, &expected) => present?,
            _ = stopped(ctx.stop.subscribe()) => return Err(Failure::Cancelled),
        };
    if present {
        let size = job.size.unwrap_or(0);
        return Ok(JobResult {
            ok: true,
            skipped: true,
            bytes: size,
            digest: expected.hex,
            ..JobResult::default()
        });
    }
    let mut sink = match &destination {
        Destination::Local(path) => Sink::Local(local::LocalSink::create(path).await?),
        Destination::S3 { bucket, key } => {
            let part = plan::part_size(ctx.settings.part_size, job.size);
            let (client, pool) = (s3_client(ctx)?, ctx.part_pool.clone());
            Sink::S3(s3::Sink::new(
                client,
                bucket,
                key,
                part,
                ctx.settings.part_concurrency,
                pool,
                &expected,
            ))
        }
    };
    // Cancellation drops `deliver` at its next await; the sink outlives it, so the abort below still runs.
    let outcome = tokio::select! {
        outcome = deliver(ctx, job, &expected, &mut sink) => outcome,
        _ = stopped(ctx.stop.subscribe()) => Err(Failure::Cancelled),
    };
    if outcome.is_err() {
        sink.abort().await;
    }
    outcome
}

async fn already_there(
    ctx: &Ctx,
    destination: &Destination,
    size: Option<u64>,
    expected: &Expected,
) -> Result<bool, Failure> {
    match destination {
        Destination::Local(path) => {
            Ok(local::verified_copy(&PathBuf::from(path), size, expected).await)
        }
        Destination::S3 { bucket, key } => {
            s3_client(ctx)?
                .verified_copy(bucket, key, size, expected)
                .await
        }
    }
}

async fn deliver(
    ctx: &Ctx,
    job: &Job,
    expected: &Expected,
    sink: &mut Sink,
) -> Result<JobResult, Failure> {
    let mut digest = StreamDigest::new(expected.kind);
    let bytes = pump(ctx, job, sink, &mut digest).await?;
    let got = digest.finalize_hex();
    if let Some(want) = &expected.hex {
        if !hex_eq(want, &got) {
            return Err(Failure::Fatal(format!(
                "{} mismatch: the manifest says {want}, the {bytes} bytes received hash to {got}",
                expected.kind.name()
            )));
        }
    }
    sink.commit(&got, expected.kind).await?;
    Ok(JobResult {
        ok: true,
        bytes,
        digest: Some(got),
        ..JobResult::default()
    })
}

/// Stream the source into `sink` and `digest`, resuming after transport errors; returns the body's length.
async fn pump(
    ctx: &Ctx,
    job: &Job,
    sink: &mut Sink,
    digest: &mut StreamDigest,
) -> Result<u64, Failure> {
    let policy = ctx.settings.retry;
    let mut jitter = Jitter::from_entropy();
    let mut offset: u64 = 0;
    let mut failures: u32 = 0;
    loop {
        let attempt: Result<bool, Failure> = async {
            let response = http::get(&ctx.http, &job.url, offset).await?;
            let status = response.status().as_u16();
            match plan::on_response(
                offset,
                status,
                http::content_range(&response).as_deref(),
                job.size,
            ) {
                Resume::Continue => {}
                Resume::Complete => return Ok(true),
                Resume::RestartWithBody => {
                    digest.reset();
                    sink.reset().await?;
                    offset = 0;
                }
                Resume::RetryFromZero => {
                    digest.reset();
                    sink.reset().await?;
                    offset = 0;
                    return Err(Failure::Retryable(format!(
                        "source answered {status} with an unusable range"
                    )));
                }
            }
            if let (Some(want), Some(len)) = (job.size, response.content_length()) {
                if offset + len != want {
                    return Err(Failure::Fatal(format!(
                        "the source has {} bytes, the manifest says {want}",
                        offset + len
                    )));
                }
            }
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| Failure::Retryable(http::describe(e)))?;
                let len = chunk.len() as u64;
                if job.size.is_some_and(|want| offset + len > want) {
                    return Err(Failure::Fatal(
                        "the source sent more bytes than the manifest says".into(),
                    ));
                }
                digest.update(&chunk);
                sink.write(chunk).await?;
                offset += len;
                ctx.progress.fetch_add(len, Ordering::Relaxed);
            }
            if job.size.is_some_and(|want| offset < want) {
                return Err(Failure::Retryable(format!(
                    "the source ended early at byte {offset}"
                )));
            }
            Ok(true)
        }
        .await;
        match attempt {
            Ok(_) => return Ok(offset),
            Err(Failure::Retryable(message)) => {
                failures += 1;
                if !policy.allows(failures) {
                    return Err(Failure::Fatal(format!(
                        "download failed after {failures} attempts: {message}"
                    )));
                }
                tokio::time::sleep(policy.delay(failures, &mut jitter)).await;
            }
            Err(other) => return Err(other),
        }
    }
}
