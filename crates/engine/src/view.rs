//! The request view: the one translation of a request into the facts that
//! activity classification, the policy and DLP see.
//!
//! Job: [`RequestView::build`] takes a request as it arrived ([`RawRequest`]:
//! plain HTTP, an intercepted HTTP/1.1 or HTTP/2 request, a policy test, an
//! `explain` command line, a fuzz input) and returns the view every later step
//! reads, or a [`ViewRefusal`] when the request cannot be read one way only. The
//! proxy forwards exactly the request the view describes
//! ([`RequestView::forward_target`]), so what was decided is what the site gets.
//!
//! Limits: pure (no I/O, no clock). The body is whatever the caller buffered;
//! the view never reads more. Callers: `verdict` (policy tests, `explain`), the
//! gateway's proxy pipeline, the fuzz harness and the benches.

use std::borrow::Cow;

use crate::policy::{NormalHost, Policy};

/// A request as it arrived, before anything is interpreted.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// The method on the wire (`CONNECT` for a tunnel).
    pub method: &'a str,
    /// The normalised host the request is addressed to.
    pub host: &'a NormalHost,
    /// Path and query as the client sent them (`/a/b?x=1`); empty for CONNECT.
    pub target: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The body, when the caller buffered it (only where a matcher or a scan
    /// needs it).
    pub body: Option<&'a [u8]>,
    /// A CONNECT that is decided as a tunnel (activity `connect`).
    pub connect: bool,
}

/// What classification, the policy and DLP know about a request.
#[derive(Debug, Clone)]
pub struct RequestView<'a> {
    /// The method the request counts as.
    pub method: Cow<'a, str>,
    pub host: &'a NormalHost,
    /// The path as matched and as forwarded.
    pub path: Cow<'a, str>,
    /// The query string as sent (without `?`).
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// The raw body, when buffered.
    pub body: Option<&'a [u8]>,
    /// A WebSocket upgrade.
    pub websocket: bool,
    /// A CONNECT that is decided as a tunnel (activity `connect`).
    pub connect: bool,
}

/// Why a request has no single reading: it is refused, never forwarded as
/// something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewRefusal {
    /// The path could be read more than one way by the site (400).
    #[error("the request path is ambiguous: {0}")]
    AmbiguousPath(&'static str),
}

impl<'a> RequestView<'a> {
    /// Builds the view of `raw` as the `policy` will see it.
    pub fn build(_policy: &Policy, raw: &RawRequest<'a>) -> Result<RequestView<'a>, ViewRefusal> {
        let (path, query) = match raw.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw.target, None),
        };
        Ok(RequestView {
            method: Cow::Borrowed(raw.method),
            host: raw.host,
            path: Cow::Borrowed(path),
            query,
            headers: raw.headers,
            body: raw.body,
            websocket: is_websocket_upgrade(raw.headers),
            connect: raw.connect,
        })
    }

    /// The view of a CONNECT decided as a tunnel (activity `connect`): there is
    /// nothing to read but the host.
    pub fn tunnel(host: &'a NormalHost, headers: &'a http::HeaderMap) -> RequestView<'a> {
        RequestView {
            method: Cow::Borrowed("CONNECT"),
            host,
            path: Cow::Borrowed(""),
            query: None,
            headers,
            body: None,
            websocket: false,
            connect: true,
        }
    }

    /// The request target the site receives: the path as decided, then the
    /// query as sent.
    pub fn forward_target(&self) -> String {
        let path: &str = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        match self.query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        }
    }
}

/// Is this request a WebSocket upgrade (`Upgrade: websocket`)?
pub fn is_websocket_upgrade(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}
