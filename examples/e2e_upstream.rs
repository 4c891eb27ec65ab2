//! A tiny HTTPS "social site" for the browser end-to-end test (`tests/e2e/browser.sh`).
//!
//! It makes a throwaway CA and a leaf certificate for the given names, writes the CA
//! certificate (PEM) to `--ca-out` so the gateway can trust it via
//! `upstream.extra_roots`, binds `127.0.0.1:<port>`, writes the bound port to
//! `--port-file` once it is listening, and answers every request with a small HTML
//! page saying `Social test site: <path>`. It speaks HTTP/1.1 and HTTP/2 (ALPN) and
//! runs until it is killed.
//!
//! Run it by hand:
//!
//! ```text
//! cargo run --example e2e_upstream -- --port 0 --ca-out /tmp/up-ca.pem \
//!     --names www.social.test,www.careful.test --port-file /tmp/up.port
//! curl --cacert /tmp/up-ca.pem --resolve www.social.test:$(cat /tmp/up.port):127.0.0.1 \
//!     https://www.social.test:$(cat /tmp/up.port)/feed
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use socialgate_testkit::ca::{self, TestCa};
use socialgate_testkit::script::{args_or_exit, flag_values, split_names, write_atomic};
use tokio::net::TcpListener;

const USAGE: &str =
    "usage: e2e_upstream --port 0|N --ca-out FILE --names a.test,b.test --port-file FILE";

struct Args {
    port: u16,
    ca_out: String,
    names: Vec<String>,
    port_file: String,
}

fn parse_args() -> Result<Args, String> {
    let mut port = None;
    let mut ca_out = None;
    let mut names = None;
    let mut port_file = None;
    for (flag, value) in flag_values(USAGE)? {
        match flag.as_str() {
            "--port" => {
                port = Some(
                    value
                        .parse::<u16>()
                        .map_err(|e| format!("--port {value}: {e}"))?,
                )
            }
            "--ca-out" => ca_out = Some(value),
            "--names" => names = Some(split_names(&value)),
            "--port-file" => port_file = Some(value),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let names = names.ok_or_else(|| format!("--names is required\n{USAGE}"))?;
    if names.is_empty() {
        return Err(format!("--names must name at least one host\n{USAGE}"));
    }
    Ok(Args {
        port: port.unwrap_or(0),
        ca_out: ca_out.ok_or_else(|| format!("--ca-out is required\n{USAGE}"))?,
        names,
        port_file: port_file.ok_or_else(|| format!("--port-file is required\n{USAGE}"))?,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(host: &str, path: &str) -> String {
    let path = escape(path);
    let host = escape(host);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Social test site</title></head>\n<body>\
         <h1>Social test site: {path}</h1>\
         <p>Served by the e2e test upstream for {host}.</p></body></html>\n"
    )
}

#[tokio::main]
async fn main() {
    let args = args_or_exit("e2e_upstream", parse_args());

    // A throwaway CA, and a leaf for every name signed by it.
    let ca = TestCa::new("socialgate e2e upstream CA");
    let leaf = ca.sign(ca::site_params(&args.names));
    write_atomic(&args.ca_out, &ca.pem());
    let acceptor = ca::acceptor(vec![leaf.der(), ca.der()], &leaf, ca::ALPN_H2_HTTP1);

    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .unwrap_or_else(|e| panic!("binding 127.0.0.1:{}: {e}", args.port));
    let addr = listener.local_addr().unwrap();
    write_atomic(&args.port_file, &format!("{}\n", addr.port()));
    eprintln!(
        "e2e_upstream: listening on https://{addr} for {}",
        args.names.join(", ")
    );

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("e2e_upstream: accept: {e}");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("e2e_upstream: TLS handshake: {e}");
                    return;
                }
            };
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let host = req
                    .uri()
                    .host()
                    .map(str::to_string)
                    .or_else(|| {
                        req.headers()
                            .get(http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                let host = host.split(':').next().unwrap_or_default().to_string();
                let path = req.uri().path().to_string();
                eprintln!("e2e_upstream: {} {host} {path}", req.method());
                let resp = Response::builder()
                    .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .header(http::header::CACHE_CONTROL, "no-store")
                    .body(Full::new(Bytes::from(page(&host, &path))))
                    .unwrap();
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}
