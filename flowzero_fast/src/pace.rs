//! Pacing download requests to a rate (Planet: 5 per second per API key), shared with other processes through a
//! small file, and backing off when the source answers 429.
//!
//! The protocol is the one flowzero's Python downloaders implement byte for byte: the state is two
//! little-endian f64 (`next_slot`, unix seconds: the earliest start of the next request; `interval`, the current
//! spacing in seconds), read and written under an exclusive `flock` of the whole file. A 429 stretches the
//! interval by [`BACKOFF`] (at most [`MAX_FACTOR`] x the base); every granted slot wins back 1/[`RECOVERY_STEPS`]
//! of the rate. The three numbers are Python's (`flowzero.pacing`), exposed as `flowzero._fast.PACE_*` and tested
//! equal: processes of both kinds share one file, so they must also agree on how it changes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The pacing state: `next` (unix seconds) and `interval` (seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct State {
    pub next: f64,
    pub interval: f64,
}

/// Largest interval as a multiple of the base (a 429 storm spaces requests at most this far apart).
pub const MAX_FACTOR: f64 = 16.0;
/// A 429 stretches the interval by this much (most 429s of a shared pacer are arrival jitter).
pub const BACKOFF: f64 = 1.25;
/// Each granted slot wins back 1/RECOVERY_STEPS of the rate.
pub const RECOVERY_STEPS: f64 = 10.0;
/// Rounds a waiter may lose the race for a due slot before it takes a reserved one (as Python's `_TRIES`).
pub const DUE_TRIES: usize = 16;
/// How far ahead a slot may lie before it is taken as garbage (a clock jump).
const FUTURE_LIMIT_S: f64 = 120.0;

impl State {
    /// From the file's bytes: missing, short or garbage content means "no request yet, base interval".
    pub fn decode(bytes: &[u8], base: f64) -> State {
        let read = |at: usize| {
            bytes
                .get(at..at + 8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        match (read(0), read(8)) {
            (Some(next), Some(interval)) if next.is_finite() => State { next, interval },
            _ => State {
                next: 0.0,
                interval: base,
            },
        }
    }

    pub fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next.to_le_bytes());
        out[8..].copy_from_slice(&self.interval.to_le_bytes());
        out
    }

    /// The interval within [base, 16 x base] (else the base), a slot no more than 120 s ahead (else now).
    fn normalised(self, base: f64, now: f64) -> State {
        let interval = if self.interval.is_finite()
            && self.interval >= base
            && self.interval <= MAX_FACTOR * base
        {
            self.interval
        } else {
            base
        };
        let next = if self.next > now + FUTURE_LIMIT_S {
            now
        } else {
            self.next
        };
        State { next, interval }
    }
}

/// A request's turn: when it may start, and the state to write back.
pub fn acquire(state: State, now: f64, rate: f64) -> (f64, State) {
    let base = 1.0 / rate;
    let state = state.normalised(base, now);
    let slot = now.max(state.next);
    let eased = base.max(1.0 / (1.0 / state.interval + rate / RECOVERY_STEPS));
    (
        slot,
        State {
            next: slot + state.interval,
            interval: eased,
        },
    )
}

/// A turn taken only when it has come: `Ok` with the state to write back (the next slot counted from `now`, so a
/// request that starts late pushes the ones after it), or `Err` with the seconds until it comes (nothing taken).
pub fn acquire_when_due(state: State, now: f64, rate: f64) -> Result<State, f64> {
    let state = state.normalised(1.0 / rate, now);
    if now < state.next {
        return Err(state.next - now);
    }
    Ok(acquire(state, now, rate).1) // the slot is `now`, so the next one counts from here
}

/// After a 429: the state to write back and the pause this request takes (`unit` in [0, 1) is the jitter).
pub fn throttled(
    state: State,
    now: f64,
    rate: f64,
    retry_after: Option<f64>,
    unit: f64,
) -> (State, f64) {
    let base = 1.0 / rate;
    let state = state.normalised(base, now);
    let interval = (state.interval * BACKOFF).min(MAX_FACTOR * base);
    let pause = retry_after.unwrap_or(interval * (1.0 + unit * 0.5));
    let next = state.next.max(now + pause);
    (State { next, interval }, pause)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The mutex's guard (a panic elsewhere does not poison the pacing state); with `block` false, `None` while another
/// thread holds it.
fn guard<T>(mutex: &Mutex<T>, block: bool) -> Option<MutexGuard<'_, T>> {
    match (block, mutex.try_lock()) {
        (_, Ok(guard)) => Some(guard),
        (_, Err(TryLockError::Poisoned(e))) => Some(e.into_inner()),
        (true, Err(TryLockError::WouldBlock)) => {
            Some(mutex.lock().unwrap_or_else(|e| e.into_inner()))
        }
        (false, Err(TryLockError::WouldBlock)) => None,
    }
}

/// The file's exclusive `flock` (another process's counts too); with `block` false, `None` while one is held.
fn flock(file: &File, block: bool) -> Option<std::io::Result<()>> {
    if block {
        return Some(file.lock());
    }
    match file.try_lock() {
        Ok(()) => Some(Ok(())),
        Err(std::fs::TryLockError::WouldBlock) => None,
        Err(std::fs::TryLockError::Error(e)) => Some(Err(e)),
    }
}

enum Store {
    Memory(Mutex<State>),
    /// Kept open for the batch; every read-modify-write happens under `flock`.
    File(Mutex<File>),
}

/// Paces the GET starts of a batch at `rate` per second, within this process or across processes.
pub struct Pacer {
    rate: f64,
    store: Store,
}

impl Pacer {
    /// In-process pacing (no file).
    pub fn in_process(rate: f64) -> Pacer {
        Pacer {
            rate,
            store: Store::Memory(Mutex::new(State {
                next: 0.0,
                interval: 1.0 / rate,
            })),
        }
    }

    /// Pacing shared through `path` (created 0600 in a 0700 folder if absent).
    pub fn shared(rate: f64, path: &Path) -> std::io::Result<Pacer> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        Ok(Pacer {
            rate,
            store: Store::File(Mutex::new(file)),
        })
    }

    /// Read, change and write the state as one step (under the mutex, and the file lock where shared); the file
    /// is written only when its bytes would change (as Python's `Pacer._state`). With `block` false, `None` when
    /// another thread or process holds a lock right now: the caller then waits for it on a blocking thread rather
    /// than on the async runtime.
    fn update<T>(
        &self,
        block: bool,
        change: impl FnOnce(State) -> (State, T),
    ) -> Option<std::io::Result<T>> {
        let base = 1.0 / self.rate;
        match &self.store {
            Store::Memory(state) => {
                let mut state = guard(state, block)?;
                let (new, out) = change(*state);
                *state = new;
                Some(Ok(out))
            }
            Store::File(file) => {
                let file = guard(file, block)?;
                if let Err(e) = flock(&file, block)? {
                    return Some(Err(e));
                }
                let outcome = (|| {
                    let mut bytes = [0u8; 16];
                    let read = file.read_at(&mut bytes, 0)?;
                    let (new, out) = change(State::decode(&bytes[..read], base));
                    let encoded = new.encode();
                    if bytes[..read] != encoded {
                        file.write_all_at(&encoded, 0)?;
                    }
                    Ok(out)
                })();
                let _ = file.unlock();
                Some(outcome)
            }
        }
    }

    /// Take the next slot (blocking: file I/O under a lock); returns how long to wait before starting.
    pub fn take_slot(&self) -> Duration {
        let now = unix_now();
        let slot = self
            .update(true, |state| {
                let (slot, new) = acquire(state, now, self.rate);
                (new, slot)
            })
            .and_then(Result::ok)
            .unwrap_or(now); // a broken file must not stop downloads: pace by nothing this time
        Duration::from_secs_f64((slot - now).max(0.0))
    }

    /// Take the next slot if it has come (`None`: go now), else how long until it comes (nothing taken). Planet
    /// counts arrivals: a task woken late must not start right before one woken on time (see `flowzero.pacing`).
    /// Blocks while another holds the lock.
    pub fn take_when_due(&self) -> Option<Duration> {
        self.when_due(true).flatten()
    }

    /// [`Pacer::take_when_due`] without waiting for a lock: `None` when one is held elsewhere right now. The
    /// common case (nobody else in the file this microsecond) then costs four system calls on the calling
    /// thread instead of a hand-off to a blocking thread and back for every GET.
    pub fn try_take_when_due(&self) -> Option<Option<Duration>> {
        self.when_due(false)
    }

    fn when_due(&self, block: bool) -> Option<Option<Duration>> {
        let now = unix_now();
        let outcome = self.update(block, |state| {
            match acquire_when_due(state, now, self.rate) {
                Ok(taken) => (taken, None),
                Err(wait) => (state, Some(wait)),
            }
        })?;
        Some(match outcome {
            Ok(wait) => wait.map(|w| Duration::from_secs_f64(w.max(0.0))),
            Err(_) => None, // a broken file must not stop downloads: pace by nothing this time
        })
    }

    /// Record a 429; returns the pause this request takes before its next turn.
    pub fn note_throttled(&self, retry_after: Option<f64>, unit: f64) -> Duration {
        let now = unix_now();
        let pause = self
            .update(true, |state| {
                throttled(state, now, self.rate, retry_after, unit)
            })
            .and_then(Result::ok)
            .unwrap_or_else(|| retry_after.unwrap_or(1.0 / self.rate));
        Duration::from_secs_f64(pause.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_by_the_interval_and_the_interval_eases_back() {
        let rate = 5.0;
        let empty = State::decode(&[], 0.2);
        assert_eq!(
            empty,
            State {
                next: 0.0,
                interval: 0.2
            }
        );
        let (slot, state) = acquire(empty, 100.0, rate);
        assert_eq!(slot, 100.0);
        assert!((state.next - 100.2).abs() < 1e-9 && state.interval == 0.2);
        let (slot, _) = acquire(state, 100.05, rate);
        assert!(
            (slot - 100.2).abs() < 1e-9,
            "the second request waits for its turn"
        );
        // A widened interval eases back: 1 / (1/0.8 + 5/10) = 0.571..., never below the base.
        let (_, eased) = acquire(
            State {
                next: 0.0,
                interval: 0.8,
            },
            100.0,
            rate,
        );
        assert!((eased.interval - 1.0 / (1.25 + 0.5)).abs() < 1e-9);
        let (_, floor) = acquire(
            State {
                next: 0.0,
                interval: 0.2,
            },
            100.0,
            rate,
        );
        assert_eq!(floor.interval, 0.2);
    }

    #[test]
    fn a_turn_taken_when_due_counts_the_next_slot_from_the_real_start() {
        let rate = 4.0;
        let empty = State {
            next: 0.0,
            interval: 0.25,
        };
        let taken = acquire_when_due(empty, 100.0, rate).unwrap();
        assert!((taken.next - 100.25).abs() < 1e-9);
        let wait = acquire_when_due(taken, 100.1, rate).unwrap_err();
        assert!((wait - 0.15).abs() < 1e-9, "not yet: {wait}");
        let late = acquire_when_due(taken, 100.4, rate).unwrap();
        assert!(
            (late.next - 100.65).abs() < 1e-9,
            "a late start pushes the next"
        );
    }

    #[test]
    fn garbage_is_normalised() {
        let rate = 5.0;
        for interval in [f64::NAN, f64::INFINITY, 0.01, 100.0] {
            let (_, state) = acquire(
                State {
                    next: 0.0,
                    interval,
                },
                10.0,
                rate,
            );
            assert!((state.next - 10.2).abs() < 1e-9, "{interval}");
        }
        let (slot, _) = acquire(
            State {
                next: 1e12,
                interval: 0.2,
            },
            10.0,
            rate,
        );
        assert_eq!(slot, 10.0, "a slot far in the future is taken as garbage");
        assert_eq!(State::decode(&[1, 2, 3], 0.2).next, 0.0);
        let nan = State {
            next: f64::NAN,
            interval: 0.2,
        }
        .encode();
        assert_eq!(State::decode(&nan, 0.2).next, 0.0);
        let round = State {
            next: 12.5,
            interval: 0.4,
        };
        assert_eq!(State::decode(&round.encode(), 0.2), round);
    }

    #[test]
    fn a_429_stretches_the_interval_up_to_sixteen_times_the_base() {
        let rate = 5.0;
        let mut state = State {
            next: 0.0,
            interval: 0.2,
        };
        let mut pauses = Vec::new();
        for _ in 0..15 {
            let (new, pause) = throttled(state, 50.0, rate, None, 0.0);
            state = new;
            pauses.push(pause);
        }
        for (k, got) in pauses.iter().enumerate() {
            let want = (0.2 * 1.25f64.powi(k as i32 + 1)).min(3.2);
            assert!((got - want).abs() < 1e-9, "{pauses:?}");
        }
        assert!((pauses[14] - 3.2).abs() < 1e-9, "capped at 16 x the base");
        assert!((state.next - 53.2).abs() < 1e-9);
        let (jittered, pause) = throttled(
            State {
                next: 0.0,
                interval: 0.2,
            },
            50.0,
            rate,
            None,
            0.999,
        );
        assert!(pause > 0.25 && pause < 0.375 && jittered.interval == 0.25);
        let (told, pause) = throttled(
            State {
                next: 0.0,
                interval: 0.2,
            },
            50.0,
            rate,
            Some(2.0),
            0.5,
        );
        assert_eq!((pause, told.next), (2.0, 52.0));
        // An earlier slot already further out than the pause is kept.
        let (kept, _) = throttled(
            State {
                next: 60.0,
                interval: 0.2,
            },
            50.0,
            rate,
            Some(1.0),
            0.0,
        );
        assert_eq!(kept.next, 60.0);
    }

    #[test]
    fn two_pacers_on_one_file_interleave_their_slots() {
        let dir = std::env::temp_dir().join(format!("flowzero-pacer-{}", std::process::id()));
        let path = dir.join("sub").join("rate");
        let _ = std::fs::remove_dir_all(&dir);
        let rate = 50.0; // 20 ms apart
        let a = Pacer::shared(rate, &path).unwrap();
        let b = Pacer::shared(rate, &path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        let start = unix_now();
        let mut slots = Vec::new();
        for i in 0..10 {
            let pacer = if i % 2 == 0 { &a } else { &b };
            let wait = pacer.take_slot();
            slots.push(unix_now() + wait.as_secs_f64());
        }
        for pair in slots.windows(2) {
            assert!(pair[1] - pair[0] > 0.019, "slots {slots:?}");
        }
        assert!(slots[9] - start >= 9.0 * 0.02 - 0.005 && slots[9] - start < 0.5);
        // Both wrote the same 16 bytes the protocol defines.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 16);
        let state = State::decode(&bytes, 0.02);
        assert!((state.next - (slots[9] + 0.02)).abs() < 0.005);
        // A 429 seen by one widens the spacing for the other.
        a.note_throttled(None, 0.0);
        let after = State::decode(&std::fs::read(&path).unwrap(), 0.02);
        assert!((after.interval - 0.025).abs() < 1e-9);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_try_gives_way_to_a_lock_held_elsewhere_and_writes_only_what_changed() {
        let dir = std::env::temp_dir().join(format!("flowzero-pacer-try-{}", std::process::id()));
        let path = dir.join("rate");
        let _ = std::fs::remove_dir_all(&dir);
        let rate = 10.0; // 100 ms apart
        let pacer = Pacer::shared(rate, &path).unwrap();
        // Another process holding the file's lock: the try steps aside and takes nothing.
        let other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        other.lock().unwrap();
        assert_eq!(pacer.try_take_when_due(), None);
        assert_eq!(std::fs::read(&path).unwrap().len(), 0);
        other.unlock().unwrap();
        // Free: the first slot is due at once and is taken without blocking.
        assert_eq!(pacer.try_take_when_due(), Some(None));
        let taken = std::fs::read(&path).unwrap();
        assert_eq!(taken.len(), 16);
        // The next one is not due: a wait, and the file is left exactly as it was.
        let wait = pacer.try_take_when_due().unwrap().unwrap();
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pacer.take_when_due().map(|_| ()), Some(()));
        assert_eq!(std::fs::read(&path).unwrap(), taken);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
