//! The admin listener (`admin_listen`): `/metrics`, `/healthz`, `/readyz`,
//! `/proxy.pac`, `/ca.crt` and a status page at `/`. The PAC and CA responses
//! are the proxy port's own (`proxy::served`); the admin listener sits above the
//! proxy and uses it, never the other way round. Nothing here reveals users,
//! paths or policy content beyond names. Called by `runtime`.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::respond;
use crate::proxy::served::{body, ca_response, pac_response};
use crate::proxy::{Gateway, ProxyBody};

fn status_page(gw: &Gateway) -> String {
    let policy = gw.policy();
    let loaded = gw
        .policy_loaded_at
        .read()
        .map(|t| *t)
        .unwrap_or(gw.started_at);
    let uptime = (chrono::Utc::now() - gw.started_at).num_seconds().max(0);
    let details = [
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
        "socialgate is running.",
        &details,
        "socialgate",
        install,
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
