//! Bodies as the proxy holds them: the boxed body every response and forwarded
//! request uses, a request body still streaming or read whole for a scan, and the
//! bounded readers. No I/O of its own beyond reading the body it is given; used by
//! the pipeline, the handlers and `respond`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::{Body as _, Incoming};

/// The boxed error of bodies passing through the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the proxy sends: forwarded or made by the gateway.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// An empty body (a CONNECT's 200, a 101).
pub(crate) fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body from the other leg, boxed.
pub(crate) fn boxed_incoming(body: Incoming) -> ProxyBody {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

/// A body as the proxy holds it: still streaming, or read whole for a scan.
pub enum HeldBody {
    Streaming(Incoming),
    /// The bytes and their share of `limits.max_buffered_bytes`, released when the
    /// forwarded body is dropped.
    Buffered(Bytes, Option<Arc<tokio::sync::OwnedSemaphorePermit>>),
}

impl HeldBody {
    pub fn into_proxy_body(self) -> ProxyBody {
        match self {
            HeldBody::Streaming(b) => boxed_incoming(b),
            HeldBody::Buffered(b, permit) => HeldBytes {
                data: Some(b),
                _permit: permit,
            }
            .boxed(),
        }
    }

    /// The bytes when the body was read whole.
    pub(crate) fn buffered(&self) -> Option<&[u8]> {
        match self {
            HeldBody::Buffered(b, _) => Some(b),
            HeldBody::Streaming(_) => None,
        }
    }

    /// Has the client more to send?
    pub(crate) fn is_open(&self) -> bool {
        matches!(self, HeldBody::Streaming(b) if !b.is_end_stream())
    }
}

/// A buffered body that keeps its exact length (so it is forwarded with the same
/// framing) and its share of the buffering budget until it is dropped.
struct HeldBytes {
    data: Option<Bytes>,
    _permit: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl http_body::Body for HeldBytes {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::task::Poll::Ready(
            self.data
                .take()
                .filter(|d| !d.is_empty())
                .map(|d| Ok(http_body::Frame::data(d))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.as_ref().is_none_or(|d| d.is_empty())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A response body that keeps the unread request body open until the response
/// has been sent whole. HTTP/2: a request body dropped before the response ends
/// makes h2 cancel the stream (the client sees a reset instead of the answer);
/// dropped after, h2 ends it with RST_STREAM(NO_ERROR), as RFC 9113 8.1 asks.
struct Lingering {
    inner: ProxyBody,
    _request: Option<Incoming>,
}

impl http_body::Body for Lingering {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Keeps `request` (an unread request body) alive until `resp` has been sent.
pub(crate) fn linger(
    resp: http::Response<ProxyBody>,
    request: HeldBody,
) -> http::Response<ProxyBody> {
    match request {
        HeldBody::Streaming(b) if !b.is_end_stream() => resp.map(|inner| {
            Lingering {
                inner,
                _request: Some(b),
            }
            .boxed()
        }),
        _ => resp,
    }
}

/// How much of an oversized body is read and dropped so that the client can read
/// the 413 (a larger one is cut off: the connection closes).
const DRAIN_CAP: usize = 16 << 20;

/// Reads and drops a body (up to [`DRAIN_CAP`]), so that the client reads the
/// answer instead of a broken pipe.
pub(crate) async fn drain(mut body: Incoming) {
    let mut total = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            total += data.len();
            if total > DRAIN_CAP {
                return;
            }
        }
    }
}

/// Reads a whole body up to `max` bytes. `Err(true)` when it is larger.
pub async fn read_limited(body: Incoming, max: usize) -> Result<Bytes, bool> {
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => Err(e
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()),
    }
}
