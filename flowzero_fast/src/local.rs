//! Local destinations: write to a temp file beside the target, fsync, rename only once verified.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

use crate::digest::{hex_eq, DigestKind, Expected, StreamDigest};
use crate::failure::{io, Failure};

const TEMP_PREFIX: &str = ".flowzero-tmp-";
const WRITE_BUFFER: usize = 1024 * 1024;
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

pub struct LocalSink {
    target: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<tokio::fs::File>>,
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
            .map_err(|e| io("create", &temp, &e))?;
        Ok(LocalSink {
            target: target.to_path_buf(),
            temp,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
        })
    }

    fn writer(&mut self) -> Result<&mut BufWriter<tokio::fs::File>, Failure> {
        self.file
            .as_mut()
            .ok_or_else(|| Failure::Fatal("local sink already closed".into()))
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        let temp = self.temp.clone();
        self.writer()?
            .write_all(chunk)
            .await
            .map_err(|e| io("write", &temp, &e))
    }

    /// Start over from byte zero (the source restarted).
    pub async fn reset(&mut self) -> Result<(), Failure> {
        let temp = self.temp.clone();
        let writer = self.writer()?;
        writer.flush().await.map_err(|e| io("write", &temp, &e))?;
        let file = writer.get_mut();
        file.set_len(0)
            .await
            .map_err(|e| io("truncate", &temp, &e))?;
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| io("rewind", &temp, &e))?;
        Ok(())
    }

    /// Flush, fsync and rename the verified temp file onto the target.
    pub async fn commit(&mut self) -> Result<(), Failure> {
        let temp = self.temp.clone();
        let mut writer = self
            .file
            .take()
            .ok_or_else(|| Failure::Fatal("local sink already closed".into()))?;
        writer.flush().await.map_err(|e| io("write", &temp, &e))?;
        let file = writer.into_inner();
        file.sync_all().await.map_err(|e| io("fsync", &temp, &e))?;
        drop(file);
        tokio::fs::rename(&temp, &self.target)
            .await
            .map_err(|e| io("rename into place", &self.target, &e))?;
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(dir) = tokio::fs::File::open(parent).await {
                let _ = dir.sync_all().await; // best effort: makes the rename durable
            }
        }
        Ok(())
    }

    /// Remove the temp file; nothing is left behind.
    pub async fn abort(&mut self) {
        self.file = None;
        let _ = tokio::fs::remove_file(&self.temp).await;
    }
}

impl Drop for LocalSink {
    fn drop(&mut self) {
        if self.file.is_some() {
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
}
