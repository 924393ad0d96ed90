//! A batch of transfers on one tokio runtime: bounded concurrency, per-job results, cancellation.
//!
//! Each job: skip if the destination already holds a verified copy; otherwise stream the source once,
//! hashing as it goes, into a local temp file or an S3 upload; resume with Range after transport errors
//! (restart from zero where the source answers 200); commit only if the digest matches, else abort.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use crate::credentials::{CredentialCache, Credentials, Provider};
use crate::digest::{self, hex_eq, Expected, StreamDigest};
use crate::failure::{Failure, Reason};
use crate::location::Destination;
use crate::pace::Pacer;
use crate::plan;
use crate::pool::PartPool;
use crate::record::{Job, JobResult};
use crate::retry::RetryPolicy;
use crate::stream::{pump, Sink, Source};
use crate::{http, local, s3};

/// How a batch runs.
#[derive(Clone)]
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
    /// Where S3 credentials come from; None: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
    pub credentials: Option<Arc<dyn Provider>>,
    /// A PEM bundle to trust instead of the system's CA store (sources and S3 alike).
    pub ca_bundle: Option<String>,
    /// GET starts per second (None: no pacing), shared through `rate_file` with other processes when given.
    pub download_rate: Option<f64>,
    pub rate_file: Option<PathBuf>,
    /// The most one file may wait on 429 answers before it fails as rate limited.
    pub throttle_budget: Duration,
    /// A transfer slower than this (bytes/s) for `timeout` is a stall, retried with Range (0: off).
    pub min_speed: u64,
    /// The cap on a body whose size the manifest does not give.
    pub max_unknown_size: u64,
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
            credentials: None,
            ca_bundle: None,
            download_rate: None,
            rate_file: None,
            throttle_budget: Duration::from_secs(600),
            min_speed: 1024,
            max_unknown_size: 4 << 30,
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
    source: Source,
    s3: Option<Arc<s3::Client>>,
    settings: Settings,
    stop: Arc<watch::Sender<bool>>,
    auth_error: Mutex<Option<String>>,
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
    let http = http::client(&http::ClientOptions {
        timeout: settings.timeout,
        max_workers: settings.max_workers,
        ca_bundle: settings.ca_bundle.clone(),
    })
    .map_err(BatchError::Setup)?;
    let wants_s3 = jobs.iter().any(|j| j.destination.starts_with("s3://"));
    let s3 = if wants_s3 {
        Some(Arc::new(s3_client(http.clone(), &settings).await?))
    } else {
        None
    };
    let pacer = pacer_for(&settings)?;
    let source = Source {
        http,
        pacer,
        retry: settings.retry,
        stall_after: settings.timeout,
        min_speed: settings.min_speed,
        throttle_budget: settings.throttle_budget,
        max_unknown_size: settings.max_unknown_size,
        progress,
    };
    let gate = Arc::new(Semaphore::new(settings.max_workers.max(1)));
    // Two at least, so a lone file can fill its next part while the previous one uploads.
    let part_pool = PartPool::new(settings.max_workers.max(2));
    let ctx = Arc::new(Ctx {
        source,
        s3,
        settings,
        stop: stop.clone(),
        auth_error: Mutex::new(None),
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
                failed(Failure::fatal(format!("transfer task failed: {e}")), 0.0)
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

/// The pacer of GET starts, if a rate was asked for: shared through the rate file when there is one.
fn pacer_for(settings: &Settings) -> Result<Option<Arc<Pacer>>, BatchError> {
    let Some(rate) = settings.download_rate else {
        return Ok(None);
    };
    if !(rate.is_finite() && rate > 0.0) {
        return Err(BatchError::Setup(format!(
            "download_rate must be > 0, not {rate}"
        )));
    }
    let pacer = match &settings.rate_file {
        Some(path) => Pacer::shared(rate, path).map_err(|e| {
            BatchError::Setup(format!("cannot open the rate file {}: {e}", path.display()))
        })?,
        None => Pacer::in_process(rate),
    };
    Ok(Some(Arc::new(pacer)))
}

/// The S3 client of a batch: credentials from the caller's provider (else the AWS_* key variables), fetched
/// once now so that a batch without credentials stops before any download; region and endpoint as given, else
/// the way the AWS tools take them from the environment.
pub async fn s3_client(
    http: reqwest::Client,
    settings: &Settings,
) -> Result<s3::Client, BatchError> {
    let cache = match &settings.credentials {
        Some(provider) => CredentialCache::new(provider.clone()),
        None => {
            let env = |name: &str| std::env::var(name).ok();
            CredentialCache::fixed(
                Credentials::from_lookup(env)
                    .ok_or_else(|| BatchError::Credentials(NO_ENV_CREDENTIALS.into()))?,
            )
        }
    };
    let cache = Arc::new(cache);
    if let Err(failure) = cache.get().await {
        return Err(BatchError::Credentials(failure.to_string()));
    }
    let env = |name: &str| std::env::var(name).ok();
    let (region, endpoint) = s3::resolve_region_endpoint(
        settings.region.as_deref(),
        settings.endpoint_url.as_deref(),
        env,
    );
    Ok(s3::Client::new(
        http,
        endpoint,
        region,
        cache,
        settings.retry,
        settings.s3_checksums,
    ))
}

/// Without a provider only the key variables are looked at (Python's resolver gives the full chain).
pub const NO_ENV_CREDENTIALS: &str =
    "no AWS credentials for the S3 destination: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";

fn failed(failure: Failure, seconds: f64) -> JobResult {
    JobResult {
        ok: false,
        seconds,
        reason: Some(failure.reason()),
        error: Some(failure.to_string()),
        ..JobResult::default()
    }
}

async fn run_job(ctx: &Ctx, job: &Job) -> JobResult {
    let started = Instant::now();
    let throttled = AtomicU32::new(0);
    let outcome = transfer(ctx, job, &throttled).await;
    let seconds = started.elapsed().as_secs_f64();
    let throttled = throttled.into_inner();
    match outcome {
        Ok(result) => JobResult {
            seconds,
            throttled,
            ..result
        },
        Err(failure) => {
            if let Failure::Auth(message) = &failure {
                ctx.auth_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| message.clone());
                ctx.stop.send_replace(true);
            }
            JobResult {
                throttled,
                ..failed(failure, seconds)
            }
        }
    }
}

fn s3_of(ctx: &Ctx) -> Result<Arc<s3::Client>, Failure> {
    ctx.s3
        .clone()
        .ok_or_else(|| Failure::fatal("S3 is not configured"))
}

/// One job, from the skip check to commit; the sink is aborted on any failure, including cancellation.
async fn transfer(ctx: &Ctx, job: &Job, throttled: &AtomicU32) -> Result<JobResult, Failure> {
    let destination = Destination::parse(&job.destination).map_err(Failure::fatal)?;
    let expected =
        digest::choose(job.sha256.as_deref(), job.md5.as_deref()).map_err(Failure::fatal)?;
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
            let (client, pool) = (s3_of(ctx)?, ctx.part_pool.clone());
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
        outcome = deliver(ctx, job, &expected, &mut sink, throttled) => outcome,
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
            s3_of(ctx)?.verified_copy(bucket, key, size, expected).await
        }
    }
}

async fn deliver(
    ctx: &Ctx,
    job: &Job,
    expected: &Expected,
    sink: &mut Sink,
    throttled: &AtomicU32,
) -> Result<JobResult, Failure> {
    let mut digest = StreamDigest::new(expected.kind);
    let bytes = pump(&ctx.source, job, sink, &mut digest, throttled).await?;
    let got = digest.finalize_hex();
    if let Some(want) = &expected.hex {
        if !hex_eq(want, &got) {
            return Err(Failure::Fatal(
                Reason::Checksum,
                format!(
                    "{} mismatch: the manifest says {want}, the {bytes} bytes received hash to {got}",
                    expected.kind.name()
                ),
            ));
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
