//! Hostile clients and broken upstreams: request smuggling attempts on a raw
//! socket, an upstream that fails in every way a site can, TRACE, requests to
//! the gateway itself, and the per-client connection cap. Everything on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const POLICY: &str = r#"
version: 1
roles: { staff: { groups: [all-staff] } }
sites: { social: { domains: [www.social.test], intercept: false } }
rules:
  - { name: everything, roles: [staff], action: allow }
  - { name: everyone-else, action: deny }
"#;

fn settings(ports: &[u16], extra: &str) -> String {
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!(
        r#"
identity:
  networks: [ {{ cidr: 127.0.0.0/8, user: tester, groups: [all-staff] }} ]
upstream:
  resolve: {{ www.social.test: 127.0.0.1, faulty.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, 443, {}]
  response_timeout: 1s
{extra}
"#,
        ports.join(", ")
    )
}

/// What a strict upstream received: only requests whose head AND body arrived whole.
#[derive(Clone, Default)]
struct Strict {
    complete: Arc<Mutex<Vec<(String, http::HeaderMap, bytes::Bytes)>>>,
    heads: Arc<AtomicUsize>,
}

async fn strict_upstream() -> (u16, Strict) {
    use http_body_util::BodyExt;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Strict::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            s.heads.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            if let Ok(b) = body.collect().await {
                                s.complete.lock().unwrap().push((
                                    parts.uri.to_string(),
                                    parts.headers,
                                    b.to_bytes(),
                                ));
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn smuggling_attempts_get_400_or_exactly_one_well_formed_request() {
    let (port, seen) = strict_upstream().await;
    let fx = Fixture::new();
    let gw = gateway(&fx, &settings(&[port], ""), POLICY).await;
    let host = format!("www.social.test:{port}");
    let url = format!("http://{host}/");
    let cases: Vec<(&str, String)> = vec![
        (
            "CL and TE",
            format!("POST {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        ),
        (
            "two different Content-Lengths",
            format!("POST {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nContent-Length: 40\r\nConnection: close\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        ),
        (
            "Transfer-Encoding: xchunked",
            format!("POST {url} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
        ),
        (
            "obs-fold",
            format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nX-Folded: a\r\n  Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
        ),
        ("bare LF", format!("GET {url} HTTP/1.1\nHost: {host}\nConnection: close\n\n")),
        (
            "chunk size overflow",
            format!("POST {url} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "space before colon",
            format!("POST {url} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
        ),
    ];
    let mut failures = Vec::new();
    for (name, request) in cases {
        let before = seen.complete.lock().unwrap().len();
        // The strict upstream answers only after reading a whole body, so by the
        // time the client has its answer, anything forwarded has been counted.
        let out = raw(&gw, request.as_bytes()).await;
        let got: Vec<_> = seen.complete.lock().unwrap()[before..].to_vec();
        let status = out.get(9..12).unwrap_or("");
        let ok = match status {
            "400" => got.is_empty(),
            _ => {
                got.len() == 1
                    && got[0].0 == "/"
                    && !(got[0].1.contains_key("content-length")
                        && got[0].1.contains_key("transfer-encoding"))
                    && !got.iter().any(|(p, _, b)| {
                        p.contains("smuggled") || String::from_utf8_lossy(b).contains("smuggled")
                    })
            }
        };
        if !ok {
            failures.push(format!(
                "{name}: status {status:?}, upstream got {:?}",
                got.iter().map(|g| (&g.0, &g.2)).collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A site that fails in one of several ways, counting what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Accept, read the request, never answer.
    Silent,
    /// Read the request and reset the connection before any response byte.
    ResetBeforeResponse,
    /// Promise 1,000 bytes, send 100, reset.
    ResetMidBody,
    /// A chunked body that stops without its last chunk.
    TruncatedChunked,
}

async fn faulty_upstream(fault: Fault) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let r = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                match fault {
                    Fault::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Fault::ResetBeforeResponse => {
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                    }
                    Fault::ResetMidBody => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                            .await;
                        let _ = s.write_all(&[b'x'; 100]).await;
                        let _ = s.flush().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                    }
                    Fault::TruncatedChunked => {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").await;
                        let _ = s.flush().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                drop(s);
            });
        }
    });
    (port, requests)
}

#[tokio::test]
async fn upstream_faults_never_look_like_a_complete_answer_and_posts_are_not_retried() {
    let mut ports = Vec::new();
    let mut upstreams = Vec::new();
    for f in [
        Fault::Silent,
        Fault::ResetBeforeResponse,
        Fault::ResetMidBody,
        Fault::TruncatedChunked,
    ] {
        let (p, count) = faulty_upstream(f).await;
        ports.push(p);
        upstreams.push((f, p, count));
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    ports.push(closed);
    let fx = Fixture::new();
    let gw = gateway(&fx, &settings(&ports, ""), POLICY).await;
    let client = client(&gw, None);

    // Connection refused: 502, distinct from a policy denial.
    let r = client
        .post(format!("http://faulty.test:{closed}/post"))
        .body("a post")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["kind"].as_str()),
        (Some("upstream"), Some("connect"))
    );

    for (fault, port, count) in &upstreams {
        let url = format!("http://faulty.test:{port}/post");
        let result = client
            .post(&url)
            .body("a post that must not be sent twice")
            .send()
            .await;
        match fault {
            Fault::Silent => {
                let r = result.unwrap();
                assert_eq!(r.status(), 504, "{fault:?}");
            }
            Fault::ResetBeforeResponse => {
                let r = result.unwrap();
                assert_eq!(r.status(), 502, "{fault:?}");
            }
            Fault::ResetMidBody | Fault::TruncatedChunked => {
                // Headers may arrive, but the body must fail: never a complete 200.
                match result {
                    Err(_) => {}
                    Ok(r) => {
                        assert_eq!(r.status(), 200, "{fault:?}");
                        assert!(
                            r.bytes().await.is_err(),
                            "{fault:?}: the client must see the body fail"
                        );
                    }
                }
            }
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "{fault:?}: the POST reached the site exactly once (no retry)"
        );
    }
}

#[tokio::test]
async fn refusals_trace_own_listener_and_per_client_cap() {
    let (port, seen) = strict_upstream().await;
    let fx = Fixture::new();
    let gw = gateway(
        &fx,
        &settings(&[port], "limits: { max_connections_per_client: 3 }"),
        POLICY,
    )
    .await;
    let own = gw.proxy_addr();
    // TRACE is refused.
    let out = raw(&gw, format!("TRACE http://www.social.test:{port}/ HTTP/1.1\r\nHost: www.social.test\r\nConnection: close\r\n\r\n").as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    // The gateway's own listener, by address, even on an allowed port and inside
    // allow_destinations (127.0.0.1/32).
    let gw2 = gateway(
        &Fixture::new(),
        &settings(&[port, own.port()], "").replace(
            "allowed_ports: [",
            // An IP literal the client may name, so that the self-guard decides.
            &format!(
                "allow_ip_literals: [127.0.0.1/32]\n  allowed_ports: [{}, ",
                own.port()
            ),
        ),
        POLICY,
    )
    .await;
    let own2 = gw2.proxy_addr();
    let out = raw(
        &gw2,
        format!(
            "GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            own2.port()
        )
        .as_bytes(),
    )
    .await;
    assert!(
        out.contains("403") && out.contains("destination-guard") && !out.contains("IP address"),
        "{out}"
    );
    assert_eq!(seen.heads.load(Ordering::SeqCst), 0);
    // Per-client cap: the fourth connection from one address is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(own).await.unwrap();
        s.write_all(b"GET").await.unwrap(); // a slow head keeps the connection open
        held.push(s);
    }
    // The accept loop counts connections in order, so the fourth is over the cap.
    let mut fourth = TcpStream::connect(own).await.unwrap();
    let _ = fourth
        .write_all(
            format!("GET http://www.social.test:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), fourth.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(
        n, 0,
        "the connection over the cap is closed without an answer"
    );
    drop(held);
    // Once the others close, the client is served again (bounded wait for the
    // gateway to notice the closes).
    let mut out = String::new();
    for _ in 0..100 {
        out = raw(&gw, format!("GET http://www.social.test:{port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await;
        if out.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn the_scan_buffer_budget_is_a_503_and_an_oversized_body_a_413() {
    let (port, seen) = strict_upstream().await;
    let fx = Fixture::new();
    let policy = r#"
version: 1
roles: { staff: { groups: [all-staff] } }
sites: { social: { domains: [www.social.test], intercept: false } }
dlp: { profiles: { official: { detectors: [uk-nino], on_finding: block } } }
rules:
  - { name: scanned-posts, roles: [staff], sites: [social], action: allow, dlp: official }
  - { name: everyone-else, action: deny }
"#;
    let gw = gateway(
        &fx,
        &settings(
            &[port],
            "limits: { max_scan_bytes: 64KiB, max_buffered_bytes: 16KiB }",
        ),
        policy,
    )
    .await;
    let client = client(&gw, None);
    let url = format!("http://www.social.test:{port}/post");
    // Within both limits: scanned and forwarded.
    let r = client
        .post(&url)
        .body("x".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Within the scan limit but over what may be held at once: 503, nothing sent.
    let r = client
        .post(&url)
        .body("x".repeat(30_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Over the scan limit: 413 (fail closed), nothing sent.
    let r = client
        .post(&url)
        .body("x".repeat(100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(seen.complete.lock().unwrap().len(), 1);
}

/// A client that opens a tunnel and stops reading while the site keeps
/// sending fills both sockets' buffers; the direction towards the client is
/// then stuck writing. The tunnel must still end after `limits.idle_timeout`
/// without a byte moved (it used to stay open for ever, holding both sockets):
/// the site sees its connection closed.
#[tokio::test]
async fn a_tunnel_whose_client_stopped_reading_is_closed_after_the_idle_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<std::io::Result<()>>();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        // The client's first bytes (not TLS: a port other than 443).
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        // Writes until the gateway closes the connection (an error), however
        // long the buffers take to fill.
        let ended = loop {
            if let Err(e) = s.write_all(&chunk).await {
                break Err(e);
            }
        };
        let _ = closed_tx.send(ended.map(|_: ()| ()));
    });
    let fx = Fixture::new();
    let gw = gateway(
        &fx,
        &settings(&[port], "limits: { idle_timeout: 2s }"),
        POLICY,
    )
    .await;
    let mut client = open_tunnel(&gw, &format!("www.social.test:{port}"), "").await;
    client.write_all(b"hello").await.unwrap();
    // The client never reads; the site's writes stall once the buffers are
    // full, and 2 s later (generous bound) the gateway lets both sides go.
    let ended = tokio::time::timeout(Duration::from_secs(30), closed_rx)
        .await
        .expect("the tunnel stayed open with its client not reading");
    assert!(ended.unwrap().is_err());
    drop(client);
}
