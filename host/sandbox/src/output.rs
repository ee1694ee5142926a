//! Guest stdout and stderr: kept up to a bound, the rest counted and
//! dropped. Writing never fails, so a chatty guest loses log lines, not its
//! run.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How much a guest may write in one go (what `check-write` permits).
const WRITE_PERMIT: usize = 64 << 10;

/// A bounded capture of one output stream.
#[derive(Clone)]
pub struct BoundedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: usize,
}

impl BoundedOutput {
    pub fn new(capacity: usize) -> Self {
        BoundedOutput {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                capacity,
                dropped: 0,
            })),
        }
    }

    fn append(&self, data: &[u8]) {
        if let Ok(mut c) = self.inner.lock() {
            let room = c.capacity.saturating_sub(c.bytes.len());
            let kept = data.len().min(room);
            c.bytes.extend_from_slice(&data[..kept]);
            c.dropped += data.len() - kept;
        }
    }

    /// The last `max` bytes kept, as text, trimmed; `None` when empty.
    pub fn tail(&self, max: usize) -> Option<String> {
        let c = self.inner.lock().ok()?;
        let start = c.bytes.len().saturating_sub(max);
        let text = String::from_utf8_lossy(&c.bytes[start..]).trim().to_owned();
        (!text.is_empty()).then_some(text)
    }

    /// What was kept, and how many bytes were dropped.
    pub fn take(&self) -> (Vec<u8>, usize) {
        match self.inner.lock() {
            Ok(mut c) => (std::mem::take(&mut c.bytes), c.dropped),
            Err(_) => (Vec::new(), 0),
        }
    }
}

impl IsTerminal for BoundedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for BoundedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for BoundedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for BoundedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_beyond_the_bound_is_counted_not_kept() {
        let out = BoundedOutput::new(8);
        out.append(b"hello ");
        out.append(b"world, again");
        let (kept, dropped) = out.take();
        assert_eq!(kept, b"hello wo");
        assert_eq!(dropped, 10);
    }
}
