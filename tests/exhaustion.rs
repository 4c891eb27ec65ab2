//! Resource exhaustion by a signed-in user, end to end on loopback: stalled
//! request bodies inside intercepted tunnels must not take the buffering budget
//! from another user (`limits.max_buffered_bytes_per_client`); a body the
//! gateway reads whole must arrive within `limits.body_read_timeout` (408, its
//! budget given back); an intercepted tunnel with no traffic is closed after
//! `limits.idle_timeout` (HTTP/1.1 and HTTP/2); a request that headers alone
//! deny is refused without reading its body; and a client that negotiated h2
//! and sends a bad connection preface gets GOAWAY(PROTOCOL_ERROR).
//! Real gateway, real TLS upstream, raw sockets and reqwest; only observable
//! outcomes are asserted (statuses, closed connections, what the upstream got).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = r#"
version: 1
roles:
  press-office: { groups: [communications] }
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [www.social.test]
    activities:
      post: [{ method: POST, path: /api/graphql, json: { operationName: "^CreateTweet$" } }]
dlp:
  profiles:
    official: { detectors: [uk-nino], on_finding: block }
rules:
  - { name: press-office-posts, roles: [press-office], sites: [social], activities: [any], action: allow, dlp: official }
  - { name: staff-posts, roles: [staff], sites: [social], activities: [any], action: allow, dlp: official }
  - { name: everyone-else, action: deny }
"#;

const ALICE: &str = "alice:alice-pass"; // press office
const MALLORY: &str = "mallory:mallory-pass"; // staff: the attacker
const CAROL: &str = "carol:carol-pass"; // no role: denied everything

const POST_BODY: &str = r#"{"operationName":"CreateTweet","variables":{"text":"hello"}}"#;

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

struct Env {
    fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: TlsUpstream,
}

async fn env(limits: &str) -> Env {
    let fx = Fixture::new();
    htpasswd(
        &fx,
        &[
            ("alice", "alice-pass"),
            ("mallory", "mallory-pass"),
            ("carol", "carol-pass"),
        ],
    );
    let up = tls_upstream("www.social.test", CertKind::Good).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [mallory] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ www.social.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
limits:
{limits}
"#,
        up.addr.port()
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    Env { fx, gw, up }
}

/// A CONNECT tunnel as `creds`, TLS with the gateway offering `alpn`.
async fn tunnel(e: &Env, creds: &str, alpn: &[&[u8]]) -> Tls {
    let basic = base64::engine::general_purpose::STANDARD.encode(creds);
    let s = open_tunnel(
        &e.gw,
        &format!("www.social.test:{}", e.up.addr.port()),
        &format!("Proxy-Authorization: Basic {basic}\r\n"),
    )
    .await;
    tls_with_gateway(s, &e.fx.dir.path().join("ca.crt"), "www.social.test", alpn).await
}

/// The head of a JSON POST to the site's GraphQL path declaring `length` bytes.
fn post_head(e: &Env, length: usize) -> String {
    format!(
        "POST /api/graphql HTTP/1.1\r\nHost: www.social.test:{}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        e.up.addr.port()
    )
}

/// A whole post by `creds` on a fresh tunnel: the response's status line and body.
async fn post(e: &Env, creds: &str) -> String {
    let mut tls = tunnel(e, creds, &[b"http/1.1"]).await;
    let req = format!("{}{POST_BODY}", post_head(e, POST_BODY.len()));
    tls.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut tls).await
}

/// A post that declares `length` bytes, sends one, and then a byte every
/// second: held open by a task until the returned handle is aborted.
async fn stalled_post(e: &Env, creds: &str, length: usize) -> tokio::task::JoinHandle<()> {
    let mut tls = tunnel(e, creds, &[b"http/1.1"]).await;
    tls.write_all(post_head(e, length).as_bytes())
        .await
        .unwrap();
    tls.write_all(b"{").await.unwrap();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if tls.write_all(b" ").await.is_err() {
                return;
            }
        }
    })
}

/// Reads until the peer closes; `true` when it closed within `within`.
async fn closes_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn the_press_office_posts_while_another_user_holds_thirty_stalled_bodies() {
    // 30 bodies of 512 KiB would take 15 MiB of an 8 MiB budget; one user's
    // share is 2 MiB (twice max_scan_bytes).
    let e = env("  max_scan_bytes: 1MiB\n  max_buffered_bytes: 8MiB\n").await;
    let mut attackers = Vec::new();
    for _ in 0..30 {
        attackers.push(stalled_post(&e, MALLORY, 512 << 10).await);
    }
    // Mallory's next post finds the budget (or Mallory's share of it) full:
    // the stalled bodies are held now.
    let mut probe = String::new();
    for _ in 0..50 {
        probe = post(&e, MALLORY).await;
        if probe.starts_with("HTTP/1.1 503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(probe.starts_with("HTTP/1.1 503"), "{probe}");
    assert!(probe.contains("try again"), "{probe}");

    let alice = post(&e, ALICE).await;
    assert!(alice.starts_with("HTTP/1.1 200"), "{alice}");
    assert!(alice.contains("hello from the social site"), "{alice}");
    let seen = e.up.requests();
    assert!(
        seen.iter().any(|r| r.body == POST_BODY.as_bytes()),
        "the upstream received the press office's post"
    );
    for a in attackers {
        a.abort();
    }
}

#[tokio::test]
async fn a_stalled_body_is_refused_408_within_the_body_read_timeout_and_its_budget_comes_back() {
    let e = env(
        "  max_scan_bytes: 1MiB\n  max_buffered_bytes: 1MiB\n  body_read_timeout: 2s\n  idle_timeout: 60s\n",
    )
    .await;
    let mut tls = tunnel(&e, MALLORY, &[b"http/1.1"]).await;
    tls.write_all(post_head(&e, 1 << 20).as_bytes())
        .await
        .unwrap();
    tls.write_all(b"{").await.unwrap();
    // While the stalled body holds the whole budget, another post is 503.
    let mut busy = String::new();
    for _ in 0..50 {
        busy = post(&e, ALICE).await;
        if busy.starts_with("HTTP/1.1 503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    // The stalled body is answered 408 (body_read_timeout 2 s; generous bound)
    // and its connection closed.
    let answer = tokio::time::timeout(Duration::from_secs(20), read_response(&mut tls))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closes_within(&mut tls, Duration::from_secs(10)).await);
    // The budget is back: the next post goes through.
    let alice = post(&e, ALICE).await;
    assert!(alice.starts_with("HTTP/1.1 200"), "{alice}");
    assert!(e
        .up
        .requests()
        .iter()
        .all(|r| r.body == POST_BODY.as_bytes()));
}

#[tokio::test]
async fn an_idle_http1_tunnel_is_closed_after_the_idle_timeout() {
    let e = env("  idle_timeout: 2s\n").await;
    let mut tls = tunnel(&e, ALICE, &[b"http/1.1"]).await;
    let get = format!(
        "GET / HTTP/1.1\r\nHost: www.social.test:{}\r\n\r\n",
        e.up.addr.port()
    );
    tls.write_all(get.as_bytes()).await.unwrap();
    let resp = read_response(&mut tls).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // Kept alive, then nothing: closed after 2 s (generous bound).
    assert!(closes_within(&mut tls, Duration::from_secs(12)).await);
}

#[tokio::test]
async fn an_idle_http2_tunnel_is_closed_after_the_idle_timeout() {
    use http_body_util::{BodyExt, Empty};
    let e = env("  idle_timeout: 2s\n").await;
    let tls = tunnel(&e, ALICE, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("https://www.social.test:{}/", e.up.addr.port()))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    // The connection then carries nothing: the gateway closes it.
    let ended = tokio::time::timeout(Duration::from_secs(12), conn).await;
    assert!(ended.is_ok(), "the HTTP/2 tunnel stayed open");
}

#[tokio::test]
async fn a_stalled_request_head_closes_the_tunnel_after_the_idle_timeout() {
    // idle_timeout (2 s) is shorter than header_read_timeout (15 s): a head that
    // stops half-way is an idle tunnel.
    let e = env("  idle_timeout: 2s\n").await;
    let mut tls = tunnel(&e, ALICE, &[b"http/1.1"]).await;
    tls.write_all(b"POST /api/graphql HTTP/1.1\r\nHost: www.social.test")
        .await
        .unwrap();
    assert!(closes_within(&mut tls, Duration::from_secs(12)).await);
    assert_eq!(e.up.count(), 0);
}

#[tokio::test]
async fn a_user_denied_on_headers_is_refused_without_sending_the_body() {
    let e = env("  max_scan_bytes: 1MiB\n").await;
    let mut tls = tunnel(&e, CAROL, &[b"http/1.1"]).await;
    // Headers only: the body (declared) is never sent.
    tls.write_all(post_head(&e, 4000).as_bytes()).await.unwrap();
    let resp = read_response(&mut tls).await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("everyone-else"), "{resp}");
    assert_eq!(e.up.count(), 0);
}

#[tokio::test]
async fn a_bad_http2_preface_is_answered_with_goaway_protocol_error() {
    let e = env("").await;
    let mut tls = tunnel(&e, ALICE, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // h2spec 3.5/2: an invalid connection preface.
    tls.write_all(b"INVALID CONNECTION PREFACE\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    // Frames: 3-byte length, type, flags, 4-byte stream id, payload. The
    // server's SETTINGS may come first; a GOAWAY (type 7) must follow with
    // PROTOCOL_ERROR (1) as its error code.
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= out.len() {
        let len = u32::from_be_bytes([0, out[at], out[at + 1], out[at + 2]]) as usize;
        let kind = out[at + 3];
        let payload = &out[at + 9..(at + 9 + len).min(out.len())];
        if kind == 7 && payload.len() >= 8 {
            goaway = Some(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]));
        }
        at += 9 + len;
    }
    assert_eq!(
        goaway,
        Some(1),
        "expected GOAWAY(PROTOCOL_ERROR), got {:?}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn a_websocket_message_held_for_its_scan_counts_against_the_users_share() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;
    // A share of 1 KiB: a 2000-byte message cannot be held for its scan.
    let e = env("  max_scan_bytes: 4096\n  max_buffered_bytes: 1KiB\n").await;
    let tls = tunnel(&e, ALICE, &[b"http/1.1"]).await;
    let req = format!("wss://www.social.test:{}/ws-messages", e.up.addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    ws.send(Message::text("small")).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo, Message::text("small"));
    ws.send(Message::text("x".repeat(2000))).await.unwrap();
    let closed = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closed, Some(CloseCode::Again));
    assert_eq!(
        e.up.ws_messages(),
        vec![bytes::Bytes::from_static(b"small")]
    );
}
