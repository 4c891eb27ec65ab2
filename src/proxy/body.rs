//! Bodies as the proxy holds them: the boxed body every response and forwarded
//! request uses, a request body still streaming or read whole for a scan, the
//! bounded readers (a size cap; for bodies read whole, a time limit and a
//! minimum rate: [`read_paced`]), and the buffering budget
//! (`limits.max_buffered_bytes`, with each user's share bounded:
//! [`BufferBudget`]). No I/O of its own beyond reading the body it is given;
//! used by the pipeline, the handlers and `respond`; `gateway` holds the budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    Buffered(Bytes, Option<Arc<Reservation>>),
}

impl HeldBody {
    pub fn into_proxy_body(self) -> ProxyBody {
        match self {
            // Nothing left to send (a GET): an empty body, which boxes
            // without an allocation.
            HeldBody::Streaming(b) if b.is_end_stream() => empty(),
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
    _permit: Option<Arc<Reservation>>,
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

/// `limits.max_buffered_bytes` (in KiB) and what each client holds of it: a
/// client (a signed-in user name) may hold at most `share_kib`, so one user
/// cannot take the whole budget from the others.
pub struct BufferBudget {
    total: Arc<tokio::sync::Semaphore>,
    share_kib: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// Bytes of the budget held for one body; given back when it is dropped.
pub struct Reservation {
    _permit: tokio::sync::OwnedSemaphorePermit,
    budget: Arc<BufferBudget>,
    client: String,
    kib: usize,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({} KiB for {})", self.kib, self.client)
    }
}

impl BufferBudget {
    /// A budget of `total` bytes, `share` bytes at most per client.
    pub fn new(total: usize, share: usize) -> BufferBudget {
        let total_kib = (total / 1024).clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        BufferBudget {
            total: Arc::new(tokio::sync::Semaphore::new(total_kib)),
            share_kib: (share / 1024).clamp(1, total_kib),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves `bytes` for `client`, or `None` when the budget or the
    /// client's share is used up (nothing is reserved then).
    pub fn reserve(self: &Arc<Self>, client: &str, bytes: usize) -> Option<Reservation> {
        let kib = bytes.div_ceil(1024).max(1);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let current = held.get(client).copied().unwrap_or(0);
        if current.saturating_add(kib) > self.share_kib {
            return None;
        }
        let permit = self
            .total
            .clone()
            .try_acquire_many_owned(u32::try_from(kib).ok()?)
            .ok()?;
        held.insert(client.to_string(), current + kib);
        Some(Reservation {
            _permit: permit,
            budget: self.clone(),
            client: client.to_string(),
            kib,
        })
    }

    /// KiB of the whole budget not held by any body now.
    pub fn available_kib(&self) -> usize {
        self.total.available_permits()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.client) {
            *n = n.saturating_sub(self.kib);
            if *n == 0 {
                held.remove(&self.client);
            }
        }
    }
}

/// How fast a body read whole must arrive: `limits.body_read_timeout` for all
/// of it, and after [`RATE_GRACE`] at least `min_rate` bytes per second on
/// average (`limits.min_body_rate`; 0: no minimum).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyPace {
    pub timeout: Duration,
    pub min_rate: usize,
}

/// How long a body may take before the minimum rate applies (or the whole
/// timeout, when that is shorter).
pub(crate) const RATE_GRACE: Duration = Duration::from_secs(10);

/// How often a slow body's progress is checked.
const PACE_CHECK: Duration = Duration::from_millis(500);

/// Why a body could not be read whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadFailure {
    /// Larger than the limit.
    TooLarge,
    /// The client's body broke (a reset, a malformed chunk).
    Broken,
    /// Not whole within the time limit, or slower than the minimum rate.
    TooSlow,
}

/// Reads a whole body up to `max` bytes, within `pace`. The body stays with the
/// caller (on HTTP/2 it must outlive the refusal that answers it).
pub(crate) async fn read_paced(
    body: &mut Incoming,
    max: usize,
    pace: BodyPace,
) -> Result<Bytes, ReadFailure> {
    let start = tokio::time::Instant::now();
    let grace = RATE_GRACE.min(pace.timeout);
    let mut out = bytes::BytesMut::new();
    loop {
        let left = pace.timeout.saturating_sub(start.elapsed());
        match tokio::time::timeout(PACE_CHECK.min(left), body.frame()).await {
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(_))) => return Err(ReadFailure::Broken),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > max {
                        return Err(ReadFailure::TooLarge);
                    }
                    out.extend_from_slice(&data);
                }
                if body.is_end_stream() {
                    return Ok(out.freeze());
                }
            }
            Err(_) => {}
        }
        let elapsed = start.elapsed();
        if elapsed >= pace.timeout {
            return Err(ReadFailure::TooSlow);
        }
        let floor = pace.min_rate as f64 * elapsed.as_secs_f64();
        if pace.min_rate > 0 && elapsed >= grace && (out.len() as f64) < floor {
            return Err(ReadFailure::TooSlow);
        }
    }
}
