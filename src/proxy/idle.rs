//! Idle connections: an IO wrapper ([`Watched`]) that notes when a byte last
//! moved either way, and [`watchdog`], which resolves once nothing has moved
//! for `limits.idle_timeout`, so the connection's owner can close it. A long
//! download or upload that is moving is never idle; a connection between
//! requests, a request head or body that stalled, or a response that stopped
//! coming, is.
//!
//! Limits: the wrapper only raises a flag when bytes move (no clock read per
//! read or write: several per request); the watchdog looks at the flag every
//! eighth of the timeout, so a connection is closed between 1 and 1.25
//! timeouts after its last byte. The wrapper adds no buffering. Used by
//! `server` (the proxy port), `intercept` (inside intercepted tunnels) and
//! `relay` (plain tunnels, which touch the flag themselves).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Whether a byte has moved on a connection since the watchdog last looked.
#[derive(Debug)]
pub(crate) struct LastActivity {
    moved: AtomicBool,
}

impl LastActivity {
    pub(crate) fn new() -> Arc<LastActivity> {
        Arc::new(LastActivity {
            moved: AtomicBool::new(true),
        })
    }

    /// A byte moved.
    pub(crate) fn touch(&self) {
        self.moved.store(true, Ordering::Relaxed);
    }

    /// Has a byte moved since the last call?
    fn take_moved(&self) -> bool {
        self.moved.swap(false, Ordering::Relaxed)
    }
}

/// An IO that records its reads and writes in a [`LastActivity`].
pub(crate) struct Watched<I> {
    inner: I,
    activity: Arc<LastActivity>,
}

impl<I> Watched<I> {
    pub(crate) fn new(inner: I, activity: Arc<LastActivity>) -> Watched<I> {
        activity.touch();
        Watched { inner, activity }
    }

    /// The connection itself, no longer watched (a tunnel that keeps its own
    /// timers and wants the socket, e.g. to splice).
    pub(crate) fn into_inner(self) -> I {
        self.inner
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves once nothing has moved on the connection for `idle`: every eighth
/// of it, a look at whether anything moved since the last look (the last
/// activity is then taken to be the look's time, at most a tick late).
pub(crate) async fn watchdog(activity: Arc<LastActivity>, idle: Duration) {
    let tick = (idle / 8).max(Duration::from_millis(10));
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        if activity.take_moved() {
            last = Instant::now();
        } else if last.elapsed() >= idle {
            return;
        }
    }
}
