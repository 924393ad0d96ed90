//! Part buffers for S3 uploads, shared by the whole batch.
//!
//! At most `capacity` buffers exist at once, whether filling or being uploaded, so the memory a batch holds
//! for S3 is bounded by `capacity x part size` whatever the number and size of its files. Buffers are reused
//! once their upload is done: their pages are faulted in once per batch, not once per part (page faults and
//! zeroing cost about as much CPU as copying the bytes in).

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct PartPool {
    slots: Arc<Semaphore>,
    free: Mutex<Vec<BytesMut>>,
}

/// A buffer and its slot in the pool: the slot is released when this is dropped or given back.
pub struct PartBuffer {
    pub buf: BytesMut,
    slot: OwnedSemaphorePermit,
}

/// The bytes of a full part on their way to S3, still holding their slot.
pub struct ShippedPart {
    pub data: Bytes,
    slot: OwnedSemaphorePermit,
}

impl PartPool {
    pub fn new(capacity: usize) -> Arc<PartPool> {
        Arc::new(PartPool {
            slots: Arc::new(Semaphore::new(capacity.max(1))),
            free: Mutex::new(Vec::new()),
        })
    }

    /// A free buffer of at least `size` bytes, waiting for a slot if every buffer is in use.
    pub async fn acquire(&self, size: usize) -> Result<PartBuffer, String> {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let reused = {
            let mut free = self.free.lock().unwrap();
            let fit = free.iter().position(|b| b.capacity() >= size);
            match fit {
                Some(i) => Some(free.swap_remove(i)),
                None => {
                    free.pop(); // a buffer too small for this part: let it go rather than hold both
                    None
                }
            }
        };
        let buf = reused.unwrap_or_else(|| BytesMut::with_capacity(size));
        Ok(PartBuffer { buf, slot })
    }

    /// Take back the bytes of a finished upload for reuse (when nothing else still refers to them).
    pub fn recycle(&self, part: ShippedPart) {
        let ShippedPart { data, slot } = part;
        if let Ok(mut buf) = data.try_into_mut() {
            buf.clear();
            self.free.lock().unwrap().push(buf);
        }
        drop(slot); // after the buffer is back, so a waiter finds it
    }

    /// Buffers currently parked for reuse (for tests).
    pub fn parked(&self) -> usize {
        self.free.lock().unwrap().len()
    }

    /// Slots not in use right now (for tests).
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

impl PartBuffer {
    /// Freeze the filled bytes for upload; the slot goes with them. The part is the whole buffer.
    pub fn ship(self) -> ShippedPart {
        ShippedPart {
            data: self.buf.freeze(),
            slot: self.slot,
        }
    }

    /// Give an unused (or abandoned) buffer back to the pool.
    pub fn release(self, pool: &PartPool) {
        let PartBuffer { mut buf, slot } = self;
        buf.clear();
        pool.free.lock().unwrap().push(buf);
        drop(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn buffers_are_bounded_and_reused() {
        block_on(async {
            let pool = PartPool::new(2);
            let mut a = pool.acquire(1024).await.unwrap();
            let b = pool.acquire(1024).await.unwrap();
            assert_eq!(pool.available(), 0);
            // A third buffer waits until one comes back.
            let waiting =
                tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire(1024));
            assert!(waiting.await.is_err());
            a.buf.extend_from_slice(&[7u8; 1024]);
            let address = a.buf.as_ptr();
            let shipped = a.ship();
            assert_eq!(shipped.data.len(), 1024);
            pool.recycle(shipped);
            assert_eq!((pool.parked(), pool.available()), (1, 1));
            let again = pool.acquire(512).await.unwrap();
            assert_eq!(
                again.buf.as_ptr(),
                address,
                "the same memory is handed out again"
            );
            assert!(again.buf.is_empty() && again.buf.capacity() >= 1024);
            again.release(&pool);
            b.release(&pool);
            assert_eq!((pool.parked(), pool.available()), (2, 2));
        });
    }

    #[test]
    fn shared_bytes_are_not_reused_but_free_their_slot() {
        block_on(async {
            let pool = PartPool::new(1);
            let mut a = pool.acquire(16).await.unwrap();
            a.buf.extend_from_slice(b"0123456789abcdef");
            let shipped = a.ship();
            let still_used = shipped.data.clone();
            pool.recycle(shipped);
            assert_eq!((pool.parked(), pool.available()), (0, 1));
            assert_eq!(&still_used[..], b"0123456789abcdef");
        });
    }

    #[test]
    fn a_larger_part_replaces_a_smaller_parked_buffer() {
        block_on(async {
            let pool = PartPool::new(1);
            pool.acquire(16).await.unwrap().release(&pool);
            let big = pool.acquire(4096).await.unwrap();
            assert!(big.buf.capacity() >= 4096);
            assert_eq!(
                pool.parked(),
                0,
                "the small buffer was dropped, not kept beside the big one"
            );
            big.release(&pool);
        });
    }
}
