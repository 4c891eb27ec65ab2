//! Header hygiene between the legs: hop-by-hop headers and the headers named in
//! `Connection` are removed, `Proxy-Authorization` and trusted identity headers
//! never travel upstream, and no `Via` or `X-Forwarded-For` is added. Also whether
//! a client wants a page rather than JSON. Pure functions, used by every handler.

use http::header::{self, HeaderMap, HeaderName};

/// Hop-by-hop headers, as parsed names (a `&str` would be parsed again on every
/// removal, on every request).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Is `name` one of [`HOP_BY_HOP`]? Matched on the name's text, which the
/// compiler checks by length first: nearly every header of a message is none
/// of them, and most are told so by one comparison of lengths.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes hop-by-hop headers (and those `Connection` names) in place, and
/// those in `also`: one pass over the headers present, and removals only
/// when one is there (most messages carry none).
fn strip_hop_by_hop_and(headers: &mut HeaderMap, also: &[HeaderName]) {
    if !headers.keys().any(|k| is_hop_by_hop(k) || also.contains(k)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP.iter().chain(also) {
        headers.remove(name);
    }
}

/// The header naming the audit record of a response the gateway made.
pub const REFERENCE: &str = "x-socialgate-reference";
const REFERENCE_NAME: HeaderName = HeaderName::from_static(REFERENCE);

/// Prepares response headers for the client: hop-by-hop headers out, and an
/// upstream's own `X-Socialgate-Reference` (only the gateway names references).
pub fn clean_response_headers(headers: &mut HeaderMap) {
    // `Alt-Svc` invites the client to HTTP/3 over QUIC (UDP), which never passes
    // through the gateway: the site's offer is not passed on.
    strip_hop_by_hop_and(headers, &[REFERENCE_NAME, header::ALT_SVC]);
}

/// The name prefix of the gateway's own warn-acknowledgement cookies (`warn`):
/// they are for the gateway, never passed to a site.
pub const ACK_COOKIE_PREFIX: &str = "__sg_ack_";

/// Prepares request headers for the upstream: hop-by-hop and identity headers
/// out, and the gateway's own acknowledgement cookies out of `Cookie`.
pub fn clean_request_headers(headers: &mut HeaderMap, identity_headers: &[HeaderName]) {
    strip_hop_by_hop_and(headers, identity_headers);
    strip_ack_cookies(headers);
}

/// Removes `__sg_ack_*` pairs from every `Cookie` header (a header left empty
/// goes); other cookies are kept as sent, in order.
fn strip_ack_cookies(headers: &mut HeaderMap) {
    // Most requests carry none of ours: look before copying anything.
    let ours = |v: &http::HeaderValue| v.to_str().map_or(true, |s| s.contains(ACK_COOKIE_PREFIX));
    if !headers.get_all(header::COOKIE).iter().any(ours) {
        return;
    }
    let values: Vec<http::HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    headers.remove(header::COOKIE);
    for v in values {
        let Ok(text) = v.to_str() else {
            // Not text: it cannot be one of ours, keep it as sent.
            headers.append(header::COOKIE, v);
            continue;
        };
        let kept: Vec<&str> = text
            .split(';')
            .map(str::trim)
            .filter(|pair| !pair.is_empty() && !pair.starts_with(ACK_COOKIE_PREFIX))
            .collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(v) = http::HeaderValue::from_str(&kept.join("; ")) {
            headers.append(header::COOKIE, v);
        }
    }
}

const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");

/// Does the client want a page rather than JSON?
pub fn wants_html(headers: &http::HeaderMap) -> bool {
    // Compared as bytes (asked for every request): `to_str` checks each byte
    // and `str::contains` sets up a searcher, for a few bytes of header.
    if headers
        .get(SEC_FETCH_DEST)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"document"))
    {
        return true;
    }
    const HTML: &[u8] = b"text/html";
    headers
        .get(header::ACCEPT)
        .is_some_and(|v| v.as_bytes().windows(HTML.len()).any(|w| w == HTML))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("proxy-authorization", "Basic abc".parse().unwrap());
        h.insert("x-authenticated-user", "alice".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        clean_request_headers(&mut h, &[HeaderName::from_static("x-authenticated-user")]);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    /// Each header to remove, alone among others (no `Connection` naming it),
    /// on the way up and on the way down.
    #[test]
    fn each_removed_header_goes_alone_and_the_rest_stay() {
        let identity = [HeaderName::from_static("x-authenticated-user")];
        let hop = HOP_BY_HOP;
        let up = hop.iter().chain(&identity);
        for name in up {
            let mut h = HeaderMap::new();
            h.insert("accept", "*/*".parse().unwrap());
            h.insert(name.clone(), "1".parse().unwrap());
            h.insert("x-other", "2".parse().unwrap());
            clean_request_headers(&mut h, &identity);
            assert!(!h.contains_key(name), "{name}");
            assert_eq!(h.len(), 2, "{name}");
        }
        let own = [REFERENCE_NAME, header::ALT_SVC];
        let down = hop.iter().chain(&own);
        for name in down {
            let mut h = HeaderMap::new();
            h.insert("content-type", "text/plain".parse().unwrap());
            h.insert(name.clone(), "1".parse().unwrap());
            clean_response_headers(&mut h);
            assert!(!h.contains_key(name), "{name}");
            assert_eq!(h.len(), 1, "{name}");
        }
    }

    #[test]
    fn acknowledgement_cookies_never_reach_the_site() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            "a=1; __sg_ack_0011aabbccdd=tok; b=2".parse().unwrap(),
        );
        h.append("cookie", "__sg_ack_ffeeddccbbaa=tok".parse().unwrap());
        h.append("cookie", "c=3".parse().unwrap());
        clean_request_headers(&mut h, &[]);
        let cookies: Vec<&str> = h
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, ["a=1; b=2", "c=3"]);
        let mut plain = HeaderMap::new();
        plain.insert("cookie", "session=xyz".parse().unwrap());
        clean_request_headers(&mut plain, &[]);
        assert_eq!(plain["cookie"], "session=xyz");
    }

    /// A page for a browser's navigation (or an Accept naming HTML), JSON for
    /// an API call.
    #[test]
    fn wants_html_for_navigations_and_html_accepts() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            wants_html(&h)
        };
        assert!(with(&[("sec-fetch-dest", "document")]));
        assert!(with(&[("sec-fetch-dest", "Document")]));
        assert!(with(&[(
            "accept",
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )]));
        assert!(with(&[("accept", "application/json, text/html")]));
        assert!(!with(&[("sec-fetch-dest", "empty"), ("accept", "*/*")]));
        assert!(!with(&[("accept", "application/json")]));
        assert!(!with(&[("accept", "text/htm")]));
        assert!(!with(&[]));
    }
}
