//! Local destinations: write to a temp file beside the target, fsync, rename only once verified.

use std::io::{IoSlice, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::digest::{hex_eq, DigestKind, Expected, StreamDigest};
use crate::failure::{io, Failure};

const TEMP_PREFIX: &str = ".flowzero-tmp-";
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temp file for `target`: same folder (so the rename is atomic), name starting with `.flowzero-tmp-`.
pub fn temp_path_for(target: &Path, unique: u64) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(
        "{TEMP_PREFIX}{name}.{}.{unique}",
        std::process::id()
    ))
}

/// Bytes go to the kernel in batches of about this much: one blocking-pool hop per batch, not per chunk.
const WRITE_BATCH: usize = 1024 * 1024;
/// Chunks per `writev` call (well under IOV_MAX).
const MAX_SLICES: usize = 64;

/// A temp file being written. Received chunks are kept as they came (no copy in user space) and written
/// with `writev` on the blocking pool once about [`WRITE_BATCH`] bytes are waiting.
pub struct LocalSink {
    target: PathBuf,
    temp: PathBuf,
    /// None while a batch is being written on the blocking pool (and after commit).
    file: Option<std::fs::File>,
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Committed or aborted: nothing left to clean up.
    done: bool,
}

fn closed() -> Failure {
    Failure::fatal("local sink already closed")
}

fn task_failed(e: tokio::task::JoinError) -> Failure {
    Failure::fatal(format!("file task failed: {e}"))
}

/// Write every chunk, in order, with as few `writev` calls as the kernel allows.
pub fn write_chunks<W: Write>(out: &mut W, chunks: &[Bytes]) -> std::io::Result<()> {
    let (mut index, mut offset) = (0usize, 0usize);
    loop {
        while index < chunks.len() && offset == chunks[index].len() {
            index += 1;
            offset = 0;
        }
        if index == chunks.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = std::iter::once(&chunks[index][offset..])
            .chain(chunks[index + 1..].iter().map(|c| &c[..]))
            .take(MAX_SLICES)
            .map(IoSlice::new)
            .collect();
        let mut written = match out.write_vectored(&slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while written > 0 {
            let left = chunks[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
}

impl LocalSink {
    pub async fn create(target: &Path) -> Result<LocalSink, Failure> {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("create folder", parent, &e))?;
        }
        let temp = temp_path_for(target, TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|e| io("create", &temp, &e))?
            .into_std()
            .await;
        Ok(LocalSink {
            target: target.to_path_buf(),
            temp,
            file: Some(file),
            pending: Vec::new(),
            pending_len: 0,
            done: false,
        })
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<(), Failure> {
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Write what is waiting, on the blocking pool (the file comes back with the outcome).
    async fn flush(&mut self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let mut file = self.file.take().ok_or_else(closed)?;
        let (file, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = write_chunks(&mut file, &chunks);
            (file, outcome)
        })
        .await
        .map_err(task_failed)?;
        self.file = Some(file);
        outcome.map_err(|e| io("write", &self.temp, &e))
    }

    /// Start over from byte zero (the source restarted).
    pub async fn reset(&mut self) -> Result<(), Failure> {
        self.pending.clear();
        self.pending_len = 0;
        let mut file = self.file.take().ok_or_else(closed)?;
        let (file, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = file
                .set_len(0)
                .and_then(|_| file.seek(std::io::SeekFrom::Start(0)).map(|_| ()));
            (file, outcome)
        })
        .await
        .map_err(task_failed)?;
        self.file = Some(file);
        outcome.map_err(|e| io("truncate", &self.temp, &e))
    }

    /// Write what is left, fsync and rename the verified temp file onto the target.
    pub async fn commit(&mut self) -> Result<(), Failure> {
        self.flush().await?;
        let file = self.file.take().ok_or_else(closed)?;
        let (temp, target) = (self.temp.clone(), self.target.clone());
        tokio::task::spawn_blocking(move || -> Result<(), Failure> {
            file.sync_all().map_err(|e| io("fsync", &temp, &e))?;
            drop(file);
            std::fs::rename(&temp, &target).map_err(|e| io("rename into place", &target, &e))?;
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                if let Ok(dir) = std::fs::File::open(parent) {
                    let _ = dir.sync_all(); // best effort: makes the rename durable
                }
            }
            Ok(())
        })
        .await
        .map_err(task_failed)??;
        self.done = true;
        Ok(())
    }

    /// Remove the temp file; nothing is left behind.
    pub async fn abort(&mut self) {
        self.pending.clear();
        self.file = None;
        let _ = tokio::fs::remove_file(&self.temp).await;
        self.done = true;
    }
}

impl Drop for LocalSink {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Digest of a file on disk, read in 1 MiB blocks.
pub fn hash_file(path: &Path, kind: DigestKind) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut digest = StreamDigest::new(kind);
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(digest.finalize_hex());
        }
        digest.update(&buf[..n]);
    }
}

/// Whether `path` already holds a verified copy: right size and digest. With neither known, it cannot be
/// verified, so it is fetched again.
pub async fn verified_copy(path: &Path, size: Option<u64>, expected: &Expected) -> bool {
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return false;
    };
    if !meta.is_file() || size.is_some_and(|s| s != meta.len()) {
        return false;
    }
    match &expected.hex {
        Some(want) => {
            let (path, kind, want) = (path.to_path_buf(), expected.kind, want.clone());
            tokio::task::spawn_blocking(move || {
                hash_file(&path, kind).is_ok_and(|got| hex_eq(&got, &want))
            })
            .await
            .unwrap_or(false)
        }
        None => size.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_file_sits_beside_the_target() {
        let t = temp_path_for(Path::new("/data/out/scene.tif"), 7);
        assert_eq!(t.parent(), Some(Path::new("/data/out")));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".flowzero-tmp-scene.tif."), "{name}");
        assert_ne!(
            temp_path_for(Path::new("a.tif"), 1),
            temp_path_for(Path::new("a.tif"), 2)
        );
    }

    /// A writer that takes at most `limit` bytes per call, like a kernel answering with short writes.
    struct Dribble {
        out: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Dribble {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls += 1;
            let mut taken = 0;
            for b in bufs {
                let n = b.len().min(self.limit - taken);
                self.out.extend_from_slice(&b[..n]);
                taken += n;
                if taken == self.limit {
                    break;
                }
            }
            Ok(taken)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn chunks_are_written_whole_and_in_order_despite_short_writes() {
        let chunks: Vec<Bytes> = (0..200u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; (i as usize * 37) % 300]))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        for limit in [1, 7, 299, 4096, usize::MAX / 2] {
            let mut out = Dribble {
                out: Vec::new(),
                limit,
                calls: 0,
            };
            write_chunks(&mut out, &chunks).unwrap();
            assert_eq!(out.out, expected, "limit {limit}");
        }
        let mut whole = Dribble {
            out: Vec::new(),
            limit: usize::MAX / 2,
            calls: 0,
        };
        write_chunks(&mut whole, &chunks).unwrap();
        assert_eq!(
            whole.calls,
            200usize.div_ceil(MAX_SLICES),
            "one writev per {MAX_SLICES} chunks"
        );
        let mut zero = Dribble {
            out: Vec::new(),
            limit: 0,
            calls: 0,
        };
        let err = write_chunks(&mut zero, &chunks).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
        write_chunks(&mut zero, &[]).unwrap();
    }
}
