//! An S3 object fed from a stream: parts filled from the batch's shared pool and uploaded concurrently.

use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::digest::{crc32c_append, DigestKind, Expected};
use crate::failure::Failure;
use crate::pool::{PartBuffer, PartPool};
use crate::s3::client::Client;
use crate::s3::xml::Part;

/// Feeds an object from a stream: fills one part at a time and uploads full parts concurrently (at most
/// `part_concurrency` for this file). Part buffers come from the batch's shared [`PartPool`], so the memory
/// of all the batch's parts, filling or in flight, stays within the pool's capacity. A body smaller than one
/// part becomes a single PutObject at commit.
pub struct Sink {
    client: Arc<Client>,
    bucket: String,
    key: String,
    part_size: usize,
    part_concurrency: usize,
    pool: Arc<PartPool>,
    meta: Vec<(String, String)>,
    buf: Option<PartBuffer>,
    crc: u32,
    upload_id: Option<String>,
    next_part: u32,
    inflight: JoinSet<Result<Part, Failure>>,
    parts: Vec<Part>,
}

impl Sink {
    pub fn new(
        client: Arc<Client>,
        bucket: &str,
        key: &str,
        part_size: u64,
        part_concurrency: usize,
        pool: Arc<PartPool>,
        expected: &Expected,
    ) -> Sink {
        let meta = expected
            .hex
            .iter()
            .map(|h| (expected.kind.meta_header().to_string(), h.clone()))
            .collect();
        Sink {
            client,
            bucket: bucket.to_string(),
            key: key.to_string(),
            part_size: part_size as usize,
            part_concurrency: part_concurrency.max(1),
            pool,
            meta,
            buf: None,
            crc: 0,
            upload_id: None,
            next_part: 1,
            inflight: JoinSet::new(),
            parts: Vec::new(),
        }
    }

    pub async fn write(&mut self, mut chunk: Bytes) -> Result<(), Failure> {
        while !chunk.is_empty() {
            let part_size = self.part_size;
            let part = match &mut self.buf {
                Some(part) => part,
                empty => empty.insert(self.pool.acquire(part_size).await.map_err(Failure::fatal)?),
            };
            let room = part_size - part.buf.len();
            let piece = chunk.split_to(room.min(chunk.len()));
            self.crc = crc32c_append(self.crc, &piece);
            part.buf.extend_from_slice(&piece);
            if part.buf.len() == part_size {
                self.ship_part().await?;
            }
        }
        Ok(())
    }

    async fn ship_part(&mut self) -> Result<(), Failure> {
        let Some(part) = self.buf.take() else {
            return Ok(());
        };
        let shipped = part.ship();
        let crc = std::mem::take(&mut self.crc);
        if self.upload_id.is_none() {
            self.upload_id = Some(
                self.client
                    .create_multipart(&self.bucket, &self.key, &self.meta)
                    .await?,
            );
        }
        while self.inflight.len() >= self.part_concurrency {
            self.reap_one().await?;
        }
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        let pool = self.pool.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let number = self.next_part;
        self.next_part += 1;
        self.inflight.spawn(async move {
            let outcome = client
                .upload_part(&bucket, &key, &upload_id, number, shipped.data.clone(), crc)
                .await;
            pool.recycle(shipped); // the buffer's memory serves the next part
            outcome
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<(), Failure> {
        match self.inflight.join_next().await {
            Some(Ok(Ok(part))) => {
                self.parts.push(part);
                Ok(())
            }
            Some(Ok(Err(failure))) => Err(failure),
            Some(Err(join)) => Err(Failure::fatal(format!("part upload task failed: {join}"))),
            None => Ok(()),
        }
    }

    /// Upload what is left and make the object visible: PutObject, or the last part + CompleteMultipartUpload.
    /// Only called once the whole body's digest matched.
    pub async fn commit(&mut self, digest_hex: &str, kind: DigestKind) -> Result<(), Failure> {
        match self.upload_id.clone() {
            None => {
                let shipped = self.buf.take().map(PartBuffer::ship);
                let body = shipped.as_ref().map(|p| p.data.clone()).unwrap_or_default();
                let mut meta = self.meta.clone();
                if meta.is_empty() {
                    meta.push((kind.meta_header().to_string(), digest_hex.to_string()));
                }
                let outcome = self
                    .client
                    .put_object(
                        &self.bucket,
                        &self.key,
                        body,
                        std::mem::take(&mut self.crc),
                        &meta,
                    )
                    .await;
                if let Some(part) = shipped {
                    self.pool.recycle(part);
                }
                outcome
            }
            Some(upload_id) => {
                match self.buf.take() {
                    Some(part) if !part.buf.is_empty() => {
                        self.buf = Some(part);
                        self.ship_part().await?;
                    }
                    Some(empty) => empty.release(&self.pool),
                    None => {}
                }
                while !self.inflight.is_empty() {
                    self.reap_one().await?;
                }
                self.client
                    .complete(&self.bucket, &self.key, &upload_id, &self.parts)
                    .await?;
                self.upload_id = None;
                Ok(())
            }
        }
    }

    /// Drop buffered bytes, stop part uploads and abort the multipart upload, so nothing is left in S3.
    pub async fn abort(&mut self) {
        self.inflight.abort_all();
        while self.inflight.join_next().await.is_some() {}
        if let Some(upload_id) = self.upload_id.take() {
            let _ = self.client.abort(&self.bucket, &self.key, &upload_id).await;
        }
        if let Some(part) = self.buf.take() {
            part.release(&self.pool);
        }
        self.crc = 0;
        self.next_part = 1;
        self.parts.clear();
    }

    /// Start over from byte zero (the source restarted): parts uploaded so far are thrown away.
    pub async fn reset(&mut self) -> Result<(), Failure> {
        self.abort().await;
        Ok(())
    }
}
