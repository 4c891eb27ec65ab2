//! Fewer, larger writes on a multiplexed connection. An HTTP/2 connection
//! writes (one TLS record, one `writev`) for each DATA frame it sends (h2
//! writes a frame's payload in place rather than copy it, so its buffer takes
//! no second frame), and under load each stream's answer wakes it on its own:
//! about one write per request, where one write could carry many.
//!
//! [`Coalesced`] wraps such a connection's I/O. While other requests of the
//! same tunnel are in progress ([`InFlight`]) it holds what is written (up to
//! `MAX_HELD`), and the first flush after is put off once: the task wakes
//! itself, so it runs again after the tasks already runnable (the other
//! streams among them), and the flush of that turn (an HTTP/2 connection
//! flushes on every turn) writes what they queued meanwhile with it. So a
//! write waits at most one turn of the runtime, never on another request, and
//! with nothing else in flight it is written at once, uncopied. A shutdown
//! writes what is held first. Used by `intercept` on both legs of an HTTP/2
//! tunnel; reads pass through untouched.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many requests of one tunnel are being handled right now.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

/// One request being handled; counted until dropped.
pub(crate) struct Handling(Arc<AtomicUsize>);

impl InFlight {
    /// Counts a request until the returned guard is dropped.
    pub fn enter(&self) -> Handling {
        self.0.fetch_add(1, Ordering::Relaxed);
        Handling(self.0.clone())
    }

    fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes held at most before they are written whatever else is in flight.
const MAX_HELD: usize = 64 * 1024;

/// Turns a flush is put off at most in a row (while each brings more bytes).
const MAX_PUT_OFFS: u32 = 16;

/// An I/O that holds what is written while at least `others` requests are in
/// flight and writes it at the next flush but one (see the module header).
pub(crate) struct Coalesced<I> {
    inner: I,
    in_flight: InFlight,
    /// In-flight count at which writes are held: 1 where the writer's own
    /// request is no longer counted (answers to the client), 2 where it is
    /// (requests to the site).
    others: usize,
    /// Accepted, not yet written to `inner`.
    held: Vec<u8>,
    /// Flushes put off in a row for what `held` holds, and its length at the
    /// last one.
    put_offs: u32,
    held_at_put_off: usize,
}

impl<I> Coalesced<I> {
    pub fn new(inner: I, in_flight: InFlight, others: usize) -> Self {
        Coalesced {
            inner,
            in_flight,
            others,
            held: Vec::new(),
            put_offs: 0,
            held_at_put_off: 0,
        }
    }

    fn holding(&self) -> bool {
        !self.held.is_empty() || self.in_flight.now() >= self.others
    }
}

impl<I: AsyncWrite + Unpin> Coalesced<I> {
    /// Writes out what is held.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.held.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Coalesced<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Coalesced<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if !this.holding() {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if this.held.len() + len > MAX_HELD {
            std::task::ready!(this.poll_write_held(cx))?;
            if len >= MAX_HELD {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            this.held.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.held.is_empty() {
            let growing = this.put_offs == 0 || this.held.len() > this.held_at_put_off;
            if growing && this.put_offs < MAX_PUT_OFFS && this.in_flight.now() >= this.others {
                // Put off: the task is woken now, so it runs again after the
                // tasks already runnable, and its connection flushes then (an
                // HTTP/2 connection flushes on every turn), with what they
                // queued meanwhile.
                this.put_offs += 1;
                this.held_at_put_off = this.held.len();
                cx.waker().wake_by_ref();
                return Poll::Ready(Ok(()));
            }
            std::task::ready!(this.poll_write_held(cx))?;
        }
        this.put_offs = 0;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_write_held(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn ready_len(p: Poll<std::io::Result<usize>>) -> usize {
        match p {
            Poll::Ready(Ok(n)) => n,
            other => panic!("not written: {other:?}"),
        }
    }

    /// What the far end of `b` has received so far.
    async fn received(b: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut got = vec![0u8; 256];
        match tokio::time::timeout(std::time::Duration::from_millis(50), b.read(&mut got)).await {
            Ok(Ok(n)) => got.truncate(n),
            _ => got.clear(),
        }
        got
    }

    #[tokio::test]
    async fn a_lone_request_is_written_at_once() {
        let in_flight = InFlight::default();
        let (a, mut b) = tokio::io::duplex(256);
        let mut w = Coalesced::new(a, in_flight.clone(), 1);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert_eq!(ready_len(Pin::new(&mut w).poll_write(&mut cx, b"one")), 3);
        assert_eq!(received(&mut b).await, b"one");
    }

    #[tokio::test]
    async fn with_others_in_flight_a_flush_waits_while_more_comes() {
        let in_flight = InFlight::default();
        let (a, mut b) = tokio::io::duplex(256);
        let mut w = Coalesced::new(a, in_flight.clone(), 1);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let other = in_flight.enter();
        let flushed = |w: &mut Coalesced<_>, cx: &mut Context<'_>| {
            matches!(Pin::new(w).poll_flush(cx), Poll::Ready(Ok(())))
        };
        assert_eq!(ready_len(Pin::new(&mut w).poll_write(&mut cx, b"one,")), 4);
        // The first flush is put off (the task was woken to come back)...
        assert!(flushed(&mut w, &mut cx));
        assert_eq!(received(&mut b).await, b"");
        // ...and again while each turn brings more...
        assert_eq!(ready_len(Pin::new(&mut w).poll_write(&mut cx, b"two")), 3);
        assert!(flushed(&mut w, &mut cx));
        assert_eq!(received(&mut b).await, b"");
        // ...and a turn that brought nothing writes it all.
        assert!(flushed(&mut w, &mut cx));
        assert_eq!(received(&mut b).await, b"one,two");
        // At most MAX_PUT_OFFS turns in a row, however much comes.
        for _ in 0..MAX_PUT_OFFS {
            assert_eq!(ready_len(Pin::new(&mut w).poll_write(&mut cx, b".")), 1);
            assert!(flushed(&mut w, &mut cx));
        }
        assert_eq!(received(&mut b).await, b"");
        assert_eq!(ready_len(Pin::new(&mut w).poll_write(&mut cx, b"!")), 1);
        assert!(flushed(&mut w, &mut cx));
        assert_eq!(received(&mut b).await.len(), MAX_PUT_OFFS as usize + 1);
        // Held bytes are written before a shutdown, whatever is in flight.
        assert_eq!(ready_len(Pin::new(&mut w).poll_write(&mut cx, b"end")), 3);
        assert!(matches!(
            Pin::new(&mut w).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(received(&mut b).await, b"end");
        drop(other);
    }

    #[tokio::test]
    async fn held_bytes_go_out_once_nothing_else_is_in_flight() {
        let in_flight = InFlight::default();
        let (a, mut b) = tokio::io::duplex(256);
        let mut w = Coalesced::new(a, in_flight.clone(), 1);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let other = in_flight.enter();
        assert_eq!(ready_len(Pin::new(&mut w).poll_write(&mut cx, b"held")), 4);
        drop(other);
        assert!(matches!(
            Pin::new(&mut w).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(received(&mut b).await, b"held");
    }
}
