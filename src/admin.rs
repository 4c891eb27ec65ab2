//! The admin listener (`admin_listen`): `/metrics`, `/healthz`, `/readyz`,
//! `/proxy.pac`, `/ca.crt` and a status page at `/`. The proxy port answers
//! `/proxy.pac` and `/ca.crt` too, so staff can fetch them from the address they
//! already know. Nothing here reveals users, paths or policy content beyond names.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::policy::{DomainPattern, Policy};
use crate::proxy::respond::{self, Refusal};
use crate::proxy::{Gateway, ProxyBody};

fn body(
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

/// A PAC file: the policy's site domains through `proxy`, everything else DIRECT.
pub fn pac(policy: &Policy, proxy: &str) -> String {
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
  var proxy = "PROXY {proxy}";
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

fn pac_response(gw: &Gateway, req: &Request<Incoming>) -> Response<ProxyBody> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let addrs = gw.proxy_addrs();
    let text = pac(&gw.policy(), &proxy_address(gw, &addrs, host));
    body(StatusCode::OK, "application/x-ns-proxy-autoconfig", text)
}

fn ca_response(gw: &Gateway) -> Response<ProxyBody> {
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

fn status_page(gw: &Gateway) -> String {
    let policy = gw.policy();
    let loaded = gw
        .policy_loaded_at
        .read()
        .map(|t| *t)
        .unwrap_or(gw.started_at);
    let uptime = (chrono::Utc::now() - gw.started_at).num_seconds().max(0);
    let failure = gw.reload_failure.read().ok().and_then(|f| f.clone());
    let mut details = vec![
        ("Gateway version", env!("CARGO_PKG_VERSION").to_string()),
        ("Policy", policy.source.clone()),
        ("Policy version", policy.version.clone()),
        (
            "Policy loaded",
            loaded.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        (
            "Uptime",
            format!(
                "{}h {:02}m {:02}s",
                uptime / 3600,
                (uptime / 60) % 60,
                uptime % 60
            ),
        ),
        ("Sites", policy.sites.len().to_string()),
        ("Rules", policy.rules.len().to_string()),
        (
            "CA fingerprint (SHA-256)",
            gw.issuer.ca().sha256_fingerprint(),
        ),
    ];
    let mut lead = "socialgate is running.";
    let mut warning = String::new();
    if let Some(f) = &failure {
        let since = f.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        details.insert(3, ("Policy reload refused since", since.clone()));
        lead = "socialgate is running, but the policy files on disk are refused: the policy loaded earlier still decides.";
        warning = format!(
            "<h2>Policy reload refused since {since}</h2>\n<p>Fix these errors (<code>socialgate check</code> shows them too); the files are watched, or send SIGHUP.</p>\n<pre style=\"white-space:pre-wrap\">{}</pre>\n",
            respond::html_escape(&f.error)
        );
    }
    let install = r#"<h2>Install the gateway's certificate</h2>
<p>Download <a href="/ca.crt">ca.crt</a>; check that its SHA-256 fingerprint is the one above.</p>
<ul>
<li><b>Windows</b> (or a Group Policy for every PC): open the file, <i>Install Certificate</i>, <i>Local Machine</i>, place it in <i>Trusted Root Certification Authorities</i>. By GPO: Computer Configuration &gt; Policies &gt; Windows Settings &gt; Security Settings &gt; Public Key Policies &gt; Trusted Root Certification Authorities &gt; Import.</li>
<li><b>macOS</b>: open the file in Keychain Access, add it to the <i>System</i> keychain, open it and set <i>When using this certificate</i> to <i>Always Trust</i>; or <code>sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ca.crt</code>.</li>
<li><b>Firefox</b>: Settings &gt; Privacy &amp; Security &gt; Certificates &gt; View Certificates &gt; Authorities &gt; Import, tick <i>Trust this CA to identify websites</i>; or set the enterprise policy <code>Certificates.ImportEnterpriseRoots</code> to use the Windows or macOS store.</li>
</ul>
<p>Browsers find the gateway through <a href="/proxy.pac">/proxy.pac</a> (also served as WPAD <code>wpad.dat</code>).</p>
<p>Metrics: <a href="/metrics">/metrics</a> &middot; health: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a></p>"#;
    respond::page(
        "Web gateway status",
        lead,
        &details,
        "socialgate",
        &format!("{warning}{install}"),
    )
}

async fn admin_handle(gw: Arc<Gateway>, req: Request<Incoming>) -> Response<ProxyBody> {
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return body(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "GET only\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            gw.metrics
                .sync_cert_counters(gw.issuer.minted_total(), gw.issuer.cache_hits_total());
            body(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                gw.metrics.render(),
            )
        }
        "/healthz" => body(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            if gw.proxy_addrs().is_empty() {
                body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "no proxy listener\n",
                )
            } else {
                body(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    format!("ready (policy {})\n", gw.policy().version),
                )
            }
        }
        "/proxy.pac" | "/wpad.dat" => pac_response(&gw, &req),
        "/ca.crt" => ca_response(&gw),
        "/" => body(StatusCode::OK, "text/html; charset=utf-8", status_page(&gw)),
        _ => body(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

/// Serves the admin listener until `shutdown` turns true.
pub async fn serve_admin(
    gw: Arc<Gateway>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let gw = gw.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(admin_handle(gw, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
