//! Streaming one source into one sink, hashing as it goes: resume with Range after transport errors and
//! stalls, restart from zero where the source answers 200, pace GET starts, and wait out 429s without
//! spending the retry budget meant for real errors.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::digest::{DigestKind, StreamDigest};
use crate::failure::{Failure, Reason};
use crate::http::{self, Answer};
use crate::pace::{Pacer, DUE_TRIES};
use crate::plan::{self, Resume};
use crate::record::Job;
use crate::retry::{Jitter, RetryPolicy};
use crate::{local, s3};

/// Where a job's bytes go until they are verified.
pub enum Sink {
    Local(local::LocalSink),
    S3(s3::Sink),
}

impl Sink {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), Failure> {
        match self {
            Sink::Local(s) => s.write(chunk).await,
            Sink::S3(s) => s.write(chunk).await,
        }
    }

    pub async fn reset(&mut self) -> Result<(), Failure> {
        match self {
            Sink::Local(s) => s.reset().await,
            Sink::S3(s) => s.reset().await,
        }
    }

    pub async fn commit(&mut self, digest_hex: &str, kind: DigestKind) -> Result<(), Failure> {
        match self {
            Sink::Local(s) => s.commit().await,
            Sink::S3(s) => s.commit(digest_hex, kind).await,
        }
    }

    pub async fn abort(&mut self) {
        match self {
            Sink::Local(s) => s.abort().await,
            Sink::S3(s) => s.abort().await,
        }
    }
}

/// The source side of a batch: the client, the pacer and the limits every job's download obeys.
pub struct Source {
    pub http: reqwest::Client,
    pub pacer: Option<Arc<Pacer>>,
    pub retry: RetryPolicy,
    /// Like curl's --speed-time: the window over which `min_speed` is judged.
    pub stall_after: Duration,
    pub min_speed: u64,
    pub throttle_budget: Duration,
    pub max_unknown_size: u64,
    /// Bytes received by the whole batch (progress reports).
    pub progress: Arc<AtomicU64>,
}

impl Source {
    /// Wait for this GET's turn (no pacer: at once): taken when it has come, as Python's `Pacer.wait` does; a
    /// task that loses the race for it `DUE_TRIES` times takes a reserved slot instead, so the wait always ends.
    /// The turn is tried on this thread (no hand-off per GET); only a lock held elsewhere sends it to a
    /// blocking thread.
    async fn turn(&self) {
        let Some(pacer) = &self.pacer else { return };
        for _ in 0..DUE_TRIES {
            let wait = match pacer.try_take_when_due() {
                Some(wait) => wait,
                None => {
                    // Someone holds the lock: wait for it where blocking is allowed.
                    let due = pacer.clone();
                    tokio::task::spawn_blocking(move || due.take_when_due())
                        .await
                        .unwrap_or(None)
                }
            };
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return,
            }
        }
        let reserved = pacer.clone();
        let wait = tokio::task::spawn_blocking(move || reserved.take_slot())
            .await
            .unwrap_or_default();
        tokio::time::sleep(wait).await;
    }

    /// How long to pause after the `nth` 429 in a row (the pacer widens the spacing for everyone); never less
    /// than [`MIN_REFUSAL_WAIT`], even when the source says Retry-After: 0 (as flowzero.pacing does).
    async fn pause_after_429(
        &self,
        retry_after: Option<f64>,
        nth: u32,
        jitter: &mut Jitter,
    ) -> Duration {
        let unit = jitter.next_unit();
        let pause = match &self.pacer {
            Some(pacer) => {
                let pacer = pacer.clone();
                tokio::task::spawn_blocking(move || pacer.note_throttled(retry_after, unit))
                    .await
                    .unwrap_or_default()
            }
            None => match retry_after {
                Some(seconds) => Duration::from_secs_f64(seconds),
                None => return self.retry.delay(nth, jitter),
            },
        };
        pause.max(MIN_REFUSAL_WAIT)
    }
}

/// The least a 429 is waited out.
const MIN_REFUSAL_WAIT: Duration = Duration::from_millis(50);

/// How long one file has been held up by 429s: the waits it was asked for and the time its runs of refusals
/// lasted both count, whichever is more (flowzero.pacing's ThrottleBudget, per file; time spent receiving
/// bytes between two runs of refusals does not count).
#[derive(Default)]
struct ThrottleClock {
    /// When the current run of refusals began.
    run: Option<Instant>,
    /// How long the earlier runs lasted.
    before: Duration,
    asked: Duration,
}

impl ThrottleClock {
    fn spent(&self) -> Duration {
        let current = self.run.map_or(Duration::ZERO, |t| t.elapsed());
        self.asked.max(self.before + current)
    }

    /// Count a refusal that asks for `pause`; false if that goes beyond `budget`.
    fn charge(&mut self, pause: Duration, budget: Duration) -> bool {
        self.run.get_or_insert_with(Instant::now);
        if self.spent() + pause > budget {
            return false;
        }
        self.asked += pause;
        true
    }

    /// A GET started at `at` was not refused: the current run of refusals ended then.
    fn answered(&mut self, at: Instant) {
        if let Some(start) = self.run.take() {
            self.before += at.saturating_duration_since(start);
        }
    }
}

/// How one GET ended.
enum Step {
    Done,
    Throttled(Option<f64>),
}

/// Stream the source into `sink` and `digest`, resuming after transport errors; returns the body's length.
/// `throttled` counts the 429 answers met.
pub async fn pump(
    source: &Source,
    job: &Job,
    sink: &mut Sink,
    digest: &mut StreamDigest,
    throttled: &AtomicU32,
) -> Result<u64, Failure> {
    let policy = source.retry;
    let mut jitter = Jitter::from_entropy();
    let mut offset: u64 = 0;
    let mut failures: u32 = 0;
    let mut in_a_row: u32 = 0;
    let mut held_up = ThrottleClock::default();
    loop {
        source.turn().await;
        let asked_at = Instant::now();
        let attempt = fetch(source, job, sink, digest, &mut offset).await;
        if !matches!(attempt, Ok(Step::Throttled(_))) {
            held_up.answered(asked_at);
        }
        match attempt {
            Ok(Step::Done) => return Ok(offset),
            Ok(Step::Throttled(retry_after)) => {
                throttled.fetch_add(1, Ordering::Relaxed);
                in_a_row += 1;
                let pause = source
                    .pause_after_429(retry_after, in_a_row, &mut jitter)
                    .await;
                if !held_up.charge(pause, source.throttle_budget) {
                    return Err(Failure::Fatal(
                        Reason::RateLimited,
                        format!(
                            "the source kept answering 429 (too many requests): {in_a_row} refusals in a \
                             row, {:.1} s held up, over the budget of {:.0} s",
                            held_up.spent().as_secs_f64(),
                            source.throttle_budget.as_secs_f64()
                        ),
                    ));
                }
                tokio::time::sleep(pause).await;
            }
            Err(Failure::Retryable(message)) => {
                in_a_row = 0;
                failures += 1;
                if !policy.allows(failures) {
                    return Err(Failure::fatal(format!(
                        "download failed after {failures} attempts: {message}"
                    )));
                }
                tokio::time::sleep(policy.delay(failures, &mut jitter)).await;
            }
            Err(other) => return Err(other),
        }
    }
}

/// One GET from `offset` to the end of the body (or the first failure); `offset` follows the bytes kept.
async fn fetch(
    source: &Source,
    job: &Job,
    sink: &mut Sink,
    digest: &mut StreamDigest,
    offset: &mut u64,
) -> Result<Step, Failure> {
    let response = match http::get(&source.http, &job.url, *offset).await? {
        Answer::Body(response) => response,
        Answer::Throttled { retry_after } => return Ok(Step::Throttled(retry_after)),
    };
    let status = response.status().as_u16();
    match plan::on_response(
        *offset,
        status,
        http::content_range(&response).as_deref(),
        job.size,
    ) {
        Resume::Continue => {}
        Resume::Complete => return Ok(Step::Done),
        Resume::RestartWithBody => {
            digest.reset();
            sink.reset().await?;
            *offset = 0;
        }
        Resume::RetryFromZero => {
            digest.reset();
            sink.reset().await?;
            *offset = 0;
            return Err(Failure::Retryable(format!(
                "source answered {status} with an unusable range"
            )));
        }
    }
    let cap = job.size.unwrap_or(source.max_unknown_size);
    if let Some(len) = response.content_length() {
        let total = *offset + len;
        match job.size {
            Some(want) if total != want => {
                let reason = if total > want {
                    Reason::TooLarge
                } else {
                    Reason::Checksum
                };
                return Err(Failure::Fatal(
                    reason,
                    format!("the source has {total} bytes, the manifest says {want}"),
                ));
            }
            None if total > cap => return Err(too_large(cap, job.size)),
            _ => {}
        }
    }
    let mut body = response.bytes_stream();
    let mut window = Instant::now();
    let mut window_bytes: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Failure::Retryable(http::describe(e)))?;
        let len = chunk.len() as u64;
        if *offset + len > cap {
            return Err(too_large(cap, job.size));
        }
        digest.update(&chunk);
        sink.write(chunk).await?;
        *offset += len;
        source.progress.fetch_add(len, Ordering::Relaxed);
        // A low-speed limit (curl's --speed-limit/--speed-time): a trickle resets the read timeout with every
        // byte, so it is judged over a window instead.
        window_bytes += len;
        let elapsed = window.elapsed();
        if source.min_speed > 0 && elapsed >= source.stall_after {
            if (window_bytes as f64) < source.min_speed as f64 * elapsed.as_secs_f64() {
                return Err(Failure::Retryable(format!(
                    "the source stalled: {window_bytes} bytes in {:.1} s, below {} bytes/s",
                    elapsed.as_secs_f64(),
                    source.min_speed
                )));
            }
            window = Instant::now();
            window_bytes = 0;
        }
    }
    if job.size.is_some_and(|want| *offset < want) {
        return Err(Failure::Retryable(format!(
            "the source ended early at byte {offset}"
        )));
    }
    Ok(Step::Done)
}

fn too_large(cap: u64, size: Option<u64>) -> Failure {
    let what = match size {
        Some(_) => "the source sent more bytes than the manifest says".to_string(),
        None => {
            format!("the source sent more than {cap} bytes, the cap for a file of unknown size")
        }
    };
    Failure::Fatal(Reason::TooLarge, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_budget_counts_waits_asked_for_and_time_passed() {
        let budget = Duration::from_secs(10);
        let mut clock = ThrottleClock::default();
        assert!(clock.charge(Duration::from_secs(4), budget));
        assert!(clock.charge(Duration::from_secs(5), budget));
        assert!(!clock.charge(Duration::from_secs(2), budget), "9 + 2 > 10");
        assert_eq!(clock.spent(), Duration::from_secs(9));
        let mut waited = ThrottleClock {
            run: Some(Instant::now() - Duration::from_secs(9)),
            ..ThrottleClock::default()
        };
        assert!(
            !waited.charge(Duration::from_secs(2), budget),
            "the refusals began 9 s ago"
        );
        // Receiving bytes between two runs of refusals is not time held up.
        let mut resumed = ThrottleClock {
            run: Some(Instant::now() - Duration::from_secs(3)),
            ..ThrottleClock::default()
        };
        resumed.answered(Instant::now() - Duration::from_secs(2));
        assert!(
            resumed.charge(Duration::from_secs(8), budget),
            "1 s + 8 s <= 10 s"
        );
    }
}
