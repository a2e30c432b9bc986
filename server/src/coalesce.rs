//! One write per flush on a gRPC connection.
//!
//! h2 (under tonic) writes a DATA payload of 256 bytes or more as a chunk of its own and
//! flushes it before it takes the trailers, so such a response costs two `writev`s and
//! wakes the peer twice; a CheckResources answer of 100 decisions is about 800 bytes.
//! Told the connection has no vectored writes, h2 copies payloads under 1 KiB into its
//! own buffer instead, and [`Coalesced`] gathers the separate writes that follow into one
//! send per flush: headers, data and trailers of a small response go out in one write.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Most bytes held back before they are sent: h2's own buffer plus one full frame.
const HOLD: usize = 32 << 10;

/// Room kept between flushes; a buffer grown past it is freed once sent, so an idle
/// connection that once sent a large answer does not keep [`HOLD`] bytes.
const KEEP: usize = 4 << 10;

/// A connection whose writes are held until the next flush (or until [`HOLD`] bytes wait).
#[derive(Debug)]
pub struct Coalesced<T> {
    inner: T,
    /// Accepted and not yet sent; h2 flushes after every batch of frames it writes.
    held: Vec<u8>,
}

impl<T> Coalesced<T> {
    /// Wraps `inner`; nothing is allocated until the first write.
    pub fn new(inner: T) -> Self {
        Coalesced {
            inner,
            held: Vec::new(),
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesced<T> {
    /// Sends held bytes until none are left (or the socket is full).
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        if self.held.capacity() > KEEP {
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesced<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() + buf.len() <= HOLD {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        // Too much to hold: what is held goes out first, in the same call as `buf`.
        loop {
            if this.held.is_empty() {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
            let both = [IoSlice::new(&this.held), IoSlice::new(buf)];
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &both))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let sent_held = n.min(this.held.len());
            this.held.drain(..sent_held);
            if n > sent_held {
                return Poll::Ready(Ok(n - sent_held));
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    /// False on purpose: it is what makes h2 copy small payloads instead of chaining them.
    /// (`poll_write_vectored` is the default: the first non-empty slice, through `poll_write`.)
    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesced<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: Connected> Connected for Coalesced<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A socket that records each write it is given.
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>);

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writes_wait_for_the_flush_and_go_out_as_one() {
        let mut conn = Coalesced::new(Recorder::default());
        assert!(!conn.is_write_vectored(), "h2 must copy small payloads");
        conn.write_all(b"headers").await.unwrap();
        conn.write_all(b" data").await.unwrap();
        assert!(conn.inner.0.is_empty(), "sent before the flush");
        conn.flush().await.unwrap();
        conn.write_all(b"trailers").await.unwrap();
        conn.flush().await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(conn.inner.0, [b"headers data".to_vec(), b"trailers".to_vec()]);
        assert!(conn.held.capacity() <= KEEP, "a small buffer is kept");
        assert!(
            conn.held.capacity() > 0,
            "a small buffer is kept, not reallocated per call"
        );
        conn.write_all(&[7; HOLD]).await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(conn.held.capacity(), 0, "a grown buffer is freed once sent");
    }

    #[tokio::test]
    async fn more_than_it_holds_goes_out_with_what_it_held() {
        // A pipe narrower than one write, so sends are partial and the socket fills.
        let (near, mut far) = tokio::io::duplex(1000);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            far.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut conn = Coalesced::new(near);
        let mut sent = Vec::new();
        for (i, len) in [10, HOLD - 5, 3 * HOLD, 1, HOLD, 7].into_iter().enumerate() {
            let chunk: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            conn.write_all(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
        }
        conn.shutdown().await.unwrap();
        drop(conn);
        assert_eq!(reader.await.unwrap(), sent);
    }
}
