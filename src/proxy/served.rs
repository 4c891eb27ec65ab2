//! What the proxy port serves itself, and the admin listener too: the PAC file
//! (`/proxy.pac`, also as WPAD `/wpad.dat`; `HTTPS` lines for the HTTPS proxy
//! port `listen_tls`, before the plain port's `PROXY`) and the CA certificate (`/ca.crt`),
//! so staff can fetch them from the address they already know; any other
//! origin-form request on the proxy port is a 400 that says what the port is
//! for. Also the plain response builder the admin pages use. Reveals nothing
//! beyond the policy's site domains and the CA. Called by `route` and by the
//! admin listener, which sits above the proxy (this module names nothing of it).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::gateway::Gateway;
use super::respond::{self, Refusal};
use crate::policy::{DomainPattern, Policy};

/// A complete response with `text`, not cached, under the gateway's CSP.
pub(crate) fn body(
    status: StatusCode,
    content_type: &'static str,
    text: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(text.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(respond::CSP),
    );
    r
}

/// A PAC file: the policy's site domains through `proxies` (tried in order by
/// the browser, never DIRECT for a listed site), everything else DIRECT. Each
/// entry is `host:port` (a plain proxy port, `PROXY host:port`) or already
/// names its kind (`HTTPS host:port`, `PROXY host:port`).
pub fn pac(policy: &Policy, proxies: &[String]) -> String {
    let proxy = proxies
        .iter()
        .map(|p| {
            if p.starts_with("HTTPS ") || p.starts_with("PROXY ") {
                p.clone()
            } else {
                format!("PROXY {p}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut exact = Vec::new();
    let mut suffixes = Vec::new();
    for d in policy.all_domains() {
        match d {
            DomainPattern::Exact(h) => exact.push(format!("{h:?}: 1")),
            DomainPattern::Wildcard(s) => suffixes.push(format!("\".{s}\"")),
        }
    }
    exact.sort();
    exact.dedup();
    suffixes.sort();
    suffixes.dedup();
    format!(
        r#"// socialgate: social sites through the gateway, everything else direct.
// Policy version {version}. Serve this as http://<gateway>/proxy.pac (also for WPAD as wpad.dat).
function FindProxyForURL(url, host) {{
  host = host.toLowerCase();
  if (host.charAt(host.length - 1) == ".") host = host.substring(0, host.length - 1);
  var proxy = "{proxy}";
  var exact = {{{exact}}};
  if (exact.hasOwnProperty(host)) return proxy;
  var suffixes = [{suffixes}];
  for (var i = 0; i < suffixes.length; i++) {{
    if (dnsDomainIs(host, suffixes[i])) return proxy;
  }}
  return "DIRECT";
}}
"#,
        version = policy.version,
        exact = exact.join(", "),
        suffixes = suffixes.join(", "),
    )
}

/// The proxy address to put in the PAC file: the first listener, or (when it
/// listens on all addresses) the name the client used to fetch the file.
fn proxy_address(gw: &Gateway, proxy_addrs: &[SocketAddr], req_host: Option<&str>) -> String {
    let Some(first) = proxy_addrs.first().or(gw.settings.listen.first()) else {
        return "127.0.0.1:3128".into();
    };
    listener_address(*first, req_host)
}

/// `addr` as a PAC `host:port`: its IP, or (when it listens on all addresses)
/// the name the client used to fetch the file.
fn listener_address(first: SocketAddr, req_host: Option<&str>) -> String {
    if first.ip().is_unspecified() {
        let host = req_host
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .map(|a| a.host().to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        format!("{host}:{}", first.port())
    } else {
        first.to_string()
    }
}

pub(crate) fn pac_response(gw: &Gateway, req: &Request<Incoming>) -> Response<ProxyBody> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    // Without `pac.proxies`: the HTTPS proxy port first when there is one
    // (credentials then never cross the network in clear), and the plain port
    // after it, for browsers that do not know `HTTPS` in a PAC file or cannot
    // reach that port. Never DIRECT for a listed site.
    let proxies = if gw.settings.pac_proxies.is_empty() {
        let mut p = Vec::new();
        if let Some(t) = &gw.settings.listen_tls {
            p.push(format!("HTTPS {}", listener_address(t.address, host)));
        }
        if !gw.settings.listen.is_empty() || p.is_empty() {
            p.push(proxy_address(gw, &gw.proxy_addrs(), host));
        }
        p
    } else {
        gw.settings.pac_proxies.clone()
    };
    let text = pac(&gw.policy(), &proxies);
    body(StatusCode::OK, "application/x-ns-proxy-autoconfig", text)
}

pub(crate) fn ca_response(gw: &Gateway) -> Response<ProxyBody> {
    let mut r = body(
        StatusCode::OK,
        "application/x-x509-ca-cert",
        gw.issuer.ca().cert_pem().to_string(),
    );
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"socialgate-ca.crt\""),
    );
    r
}

/// Origin-form requests on the proxy port: the PAC file and the CA; else 400.
pub(crate) fn origin_form(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<Response<ProxyBody>, Refusal> {
    match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/proxy.pac" | "/wpad.dat") => Ok(pac_response(gw, req)),
        (&http::Method::GET, "/ca.crt") => Ok(ca_response(gw)),
        _ => Err(Refusal::BadRequest(
            "This is the web gateway's proxy port. Set it as your browser's proxy (or use /proxy.pac) instead of opening pages on it.".into(),
        )),
    }
}
