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
//! The path is normalised (dot segments removed, unreserved characters decoded,
//! RFC 3986 section 6.2.2) and the method overrides applied; a path or method
//! that a site could read another way is a [`ViewRefusal`] (400).
//!
//! Limits: pure (no I/O, no clock). The body is whatever the caller buffered;
//! the view never reads more, and never rewrites the query or the body. Depends
//! only on `host` (so `policy` can read the view without a cycle);
//! `RequestView::build(policy, raw)` is defined in `policy`. Callers: `verdict`
//! (policy tests, `explain`), the gateway's proxy pipeline, the fuzz harness and
//! the benches.

use std::borrow::Cow;

use crate::host::NormalHost;

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
    /// The method the request counts as could be read more than one way (400).
    #[error("the request method is ambiguous: {0}")]
    AmbiguousMethod(String),
}

/// The headers that make a request count as another method.
pub const METHOD_OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl<'a> RequestView<'a> {
    /// Builds the view of `raw`, given the query parameters its site names as
    /// method overrides (`method_override: { query: [...] }`): the path
    /// normalised ([`normalize_path`]), the method overrides applied
    /// ([`effective_method`]). Refuses what has no single reading. Callers go
    /// through `RequestView::build(policy, raw)` (in `policy`), which looks the
    /// site up.
    pub fn from_raw(
        raw: &RawRequest<'a>,
        override_query: &[String],
    ) -> Result<RequestView<'a>, ViewRefusal> {
        let (path, query) = match raw.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw.target, None),
        };
        let (path, method) = if raw.connect {
            (Cow::Borrowed(path), Cow::Borrowed(raw.method))
        } else {
            (
                normalize_path(path)?,
                effective_method(raw.method, raw.headers, query, override_query)?,
            )
        };
        Ok(RequestView {
            method,
            host: raw.host,
            path,
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

/// Is this request a WebSocket upgrade? Any `Upgrade` line naming `websocket`
/// among its protocols counts (a client must not hide the upgrade behind a
/// second protocol or a second line).
pub fn is_websocket_upgrade(headers: &http::HeaderMap) -> bool {
    headers.get_all(http::header::UPGRADE).iter().any(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
    })
}

/// `GET`, `HEAD` and `OPTIONS`: the methods that only read.
pub fn is_safe_method(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Normalises a request path (RFC 3986 section 6.2.2): percent-encoded
/// unreserved characters are decoded, other percent-encodings get upper-case hex
/// digits, and `.` and `..` segments are removed. Encoded `/` (`%2F`) and `\`
/// (`%5C`) stay encoded.
///
/// Refused, because a server could read them another way: a NUL (raw or `%00`),
/// a raw `\`, a control character, space or non-ASCII byte, a `%` without two
/// hex digits, a `.` or `..` that an encoded `/` or `\` separates from the rest of
/// its segment (`/a/..%2fb`, `%2e%2e%2f`), a dot segment with `;` parameters
/// (`/..;/`), and a `..` that climbs above the root. `""` and `*` are left
/// alone; any other path must start with `/`.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, ViewRefusal> {
    use ViewRefusal::AmbiguousPath;
    if path.is_empty() || path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(AmbiguousPath("it does not start with `/`"));
    }
    // Most paths have nothing to decode and no segment starting with a dot.
    if !path.contains("/.")
        && path
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'%' && b != b'\\')
    {
        return Ok(Cow::Borrowed(path));
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let digit = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
                let (Some(hi), Some(lo)) = (digit(i + 1), digit(i + 2)) else {
                    return Err(AmbiguousPath("a `%` is not followed by two hex digits"));
                };
                let b = (hi * 16 + lo) as u8;
                if b == 0 {
                    return Err(AmbiguousPath("it holds a NUL (`%00`)"));
                }
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    decoded.push(b as char);
                } else {
                    decoded.push('%');
                    decoded.push(HEX[hi as usize] as char);
                    decoded.push(HEX[lo as usize] as char);
                }
                i += 3;
            }
            0 => return Err(AmbiguousPath("it holds a NUL")),
            b'\\' => return Err(AmbiguousPath("it holds a backslash")),
            b if !(0x21..0x7f).contains(&b) => {
                return Err(AmbiguousPath(
                    "it holds a control character, a space or a non-ASCII byte",
                ))
            }
            b => {
                decoded.push(b as char);
                i += 1;
            }
        }
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in decoded[1..].split('/') {
        trailing_slash = false;
        if seg.contains("%2F") || seg.contains("%5C") {
            let hidden_dot = seg
                .split("%2F")
                .flat_map(|s| s.split("%5C"))
                .any(|part| is_dot_segment(part.split(';').next().unwrap_or(part)));
            if hidden_dot {
                return Err(AmbiguousPath(
                    "a `.` or `..` is next to an encoded `/` or `\\`",
                ));
            }
        }
        let base = seg.split(';').next().unwrap_or(seg);
        if base != seg && is_dot_segment(base) {
            return Err(AmbiguousPath("a dot segment carries `;` parameters"));
        }
        match seg {
            "." => trailing_slash = true,
            ".." => {
                if kept.pop().is_none() {
                    return Err(AmbiguousPath("a `..` climbs above the root"));
                }
                trailing_slash = true;
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    out.push('/');
    out.push_str(&kept.join("/"));
    if trailing_slash && !kept.is_empty() {
        out.push('/');
    }
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

fn is_dot_segment(s: &str) -> bool {
    s == "." || s == ".."
}

/// The method a request counts as. `X-HTTP-Method-Override`, `X-HTTP-Method`
/// and `X-Method-Override`, and the query parameters the site names
/// (`method_override: { query: [...] }`), make the request the method they name.
///
/// Refused: two signals that name different methods (or one header given twice
/// with different values), a value that is not a method, and an override that
/// would make an unsafe method (`POST`, `PUT`, ...) count as a safe one (`GET`,
/// `HEAD`, `OPTIONS`): the site may ignore the override and write.
pub fn effective_method<'a>(
    wire: &'a str,
    headers: &http::HeaderMap,
    query: Option<&str>,
    query_names: &[String],
) -> Result<Cow<'a, str>, ViewRefusal> {
    let mut named: Option<(String, String)> = None;
    let mut note = |value: &str, from: String| -> Result<(), ViewRefusal> {
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ViewRefusal::AmbiguousMethod(format!(
                "{from} names `{value}`, which is not a method"
            )));
        }
        let up = value.to_ascii_uppercase();
        match &named {
            Some((m, first)) if *m != up => Err(ViewRefusal::AmbiguousMethod(format!(
                "{first} names {m} but {from} names {up}"
            ))),
            Some(_) => Ok(()),
            None => {
                named = Some((up, from));
                Ok(())
            }
        }
    };
    // Looked for among the names present first: a `get_all` by `&str` parses
    // and hashes the name, three times per request, for headers rarely sent.
    let overrides = headers
        .keys()
        .any(|k| METHOD_OVERRIDE_HEADERS.contains(&k.as_str()));
    for name in METHOD_OVERRIDE_HEADERS.iter().filter(|_| overrides) {
        for v in headers.get_all(*name) {
            let Ok(text) = v.to_str() else {
                return Err(ViewRefusal::AmbiguousMethod(format!(
                    "header `{name}` is not text"
                )));
            };
            note(text, format!("header `{name}`"))?;
        }
    }
    if let (false, Some(q)) = (query_names.is_empty(), query) {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if query_names.iter().any(|n| *n == k) {
                note(&v, format!("query parameter `{k}`"))?;
            }
        }
    }
    let Some((method, from)) = named else {
        return Ok(Cow::Borrowed(wire));
    };
    if method.eq_ignore_ascii_case(wire) {
        return Ok(Cow::Borrowed(wire));
    }
    if is_safe_method(&method) && !is_safe_method(wire) {
        return Err(ViewRefusal::AmbiguousMethod(format!(
            "{from} asks a {wire} to count as {method}; the site may ignore it and write"
        )));
    }
    Ok(Cow::Owned(method))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        let table = [
            ("/", "/"),
            ("", ""),
            ("*", "*"),
            ("/a/b?", "/a/b?"),
            (
                "/youtubei/v1/reel/../comment/create_comment",
                "/youtubei/v1/comment/create_comment",
            ),
            (
                "/youtubei/v1/reel/%2e%2e/comment/create_comment",
                "/youtubei/v1/comment/create_comment",
            ),
            (
                "/youtubei/v1/reel/%2E%2E/comment/create_comment",
                "/youtubei/v1/comment/create_comment",
            ),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/%61%62c", "/abc"),
            ("/%7e%2D%5f", "/~-_"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%5cb", "/a%5Cb"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a//b", "/a//b"),
            ("/a/..../b", "/a/..../b"),
            ("/a/.b/c.", "/a/.b/c."),
            ("/.well-known/x", "/.well-known/x"),
            ("/a;b/c", "/a;b/c"),
        ];
        for (raw, want) in table {
            assert_eq!(normalize_path(raw).unwrap(), want, "{raw}");
        }
        assert!(matches!(normalize_path("/a/b"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in [
            "/a/..%2fb",
            "/a/..%2Fb",
            "/a/%2e%2e%2fb",
            "/a/%2e%2e%5cb",
            "/a/b%2f..",
            "/a/.%2fb",
            "/a/%2e%2f",
            "/a\\b",
            "/a/..\\b",
            "/a%00b",
            "/a\0b",
            "/..",
            "/a/../..",
            "/%2e%2e/x",
            "/a/..;/b",
            "/a/.;x/b",
            "/a%",
            "/a%2",
            "/a%zz",
            "/a b",
            "/a\tb",
            "/caf\u{e9}",
            "a/b",
        ] {
            assert!(
                matches!(normalize_path(raw), Err(ViewRefusal::AmbiguousPath(_))),
                "{raw:?} should be refused, got {:?}",
                normalize_path(raw)
            );
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn method_overrides() {
        let names = vec!["method".to_string()];
        let m = |wire, h: &[(&'static str, &'static str)], q: Option<&str>| {
            effective_method(wire, &headers(h), q, &names)
        };
        assert_eq!(m("GET", &[], None).unwrap(), "GET");
        assert_eq!(
            m("GET", &[("x-http-method-override", "POST")], None).unwrap(),
            "POST"
        );
        assert_eq!(
            m("GET", &[("x-http-method", "delete")], None).unwrap(),
            "DELETE"
        );
        assert_eq!(
            m("GET", &[("x-method-override", "PUT")], None).unwrap(),
            "PUT"
        );
        assert_eq!(m("GET", &[], Some("method=post&x=1")).unwrap(), "POST");
        assert_eq!(m("POST", &[], Some("method=PUT")).unwrap(), "PUT");
        // Two signals that agree are one.
        assert_eq!(
            m(
                "GET",
                &[
                    ("x-http-method-override", "POST"),
                    ("x-http-method", "post")
                ],
                Some("method=POST")
            )
            .unwrap(),
            "POST"
        );
        // The site's query names only: another site's `method` is just a parameter.
        assert_eq!(
            effective_method("GET", &headers(&[]), Some("method=post"), &[]).unwrap(),
            "GET"
        );
        for (wire, h, q) in [
            (
                "GET",
                vec![
                    ("x-http-method-override", "POST"),
                    ("x-http-method-override", "PUT"),
                ],
                None,
            ),
            (
                "GET",
                vec![
                    ("x-http-method-override", "POST"),
                    ("x-http-method", "DELETE"),
                ],
                None,
            ),
            (
                "GET",
                vec![("x-http-method-override", "POST")],
                Some("method=delete"),
            ),
            ("GET", vec![], Some("method=post&method=put")),
            ("GET", vec![("x-http-method-override", "")], None),
            ("GET", vec![("x-http-method-override", "PO ST")], None),
            // An unsafe method must not count as a safe one: the site may ignore it.
            ("POST", vec![("x-http-method-override", "GET")], None),
            ("POST", vec![], Some("method=get")),
        ] {
            assert!(
                matches!(m(wire, &h, q), Err(ViewRefusal::AmbiguousMethod(_))),
                "{wire} {h:?} {q:?}: {:?}",
                m(wire, &h, q)
            );
        }
    }

    #[test]
    fn websocket_upgrades_are_seen_behind_other_protocols() {
        assert!(is_websocket_upgrade(&headers(&[("upgrade", "WebSocket")])));
        assert!(is_websocket_upgrade(&headers(&[(
            "upgrade",
            "h2c, websocket"
        )])));
        assert!(is_websocket_upgrade(&headers(&[
            ("upgrade", "h2c"),
            ("upgrade", "websocket")
        ])));
        assert!(!is_websocket_upgrade(&headers(&[("upgrade", "h2c")])));
    }
}
