//! WebSocket messages under a `dlp` rule, end to end: a real WebSocket client
//! (tokio-tungstenite) inside an intercepted tunnel, through the gateway, to the
//! testkit's TLS upstream whose `/ws-messages` echo records every message it
//! receives. Each client message is scanned before it is sent: a blocking
//! finding closes the socket with 1008 and the site never gets the message; a
//! message over `limits.max_scan_bytes` closes it with 1009; a `log` profile
//! lets the message through and records the finding; without `dlp:` the byte
//! relay is used as before. Only observable outcomes are asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const POLICY: &str = r#"
version: 1
roles:
  press-office: { groups: [communications] }
  staff: { groups: [all-staff] }
  contractors: { groups: [contractors] }
sites:
  social:
    domains: [www.social.test]
    activities:
      message: [{ websocket: true, path: "/ws*" }]
dlp:
  profiles:
    official: { detectors: [uk-nino, payment-card], on_finding: block }
    watch: { detectors: [uk-nino], on_finding: log }
rules:
  - { name: press-office-chat, roles: [press-office], sites: [social], activities: [any], action: allow, dlp: official }
  - { name: staff-chat-watched, roles: [staff], sites: [social], activities: [any], action: allow, dlp: watch }
  - { name: contractors-chat, roles: [contractors], sites: [social], activities: [any], action: allow }
  - { name: everyone-else, action: deny }
"#;

const NINO: &str = "JG 10 37 82 B";
const MAX_SCAN: usize = 4096;

const ALICE: &str = "alice:alice-pass"; // press office: dlp official (block)
const BOB: &str = "bob:bob-pass"; // staff: dlp watch (log)
const CAROL: &str = "carol:carol-pass"; // contractors: no dlp

struct Env {
    fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: TlsUpstream,
}

async fn env() -> Env {
    let fx = Fixture::new();
    htpasswd(
        &fx,
        &[
            ("alice", "alice-pass"),
            ("bob", "bob-pass"),
            ("carol", "carol-pass"),
        ],
    );
    let up = tls_upstream("www.social.test", CertKind::Good).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [bob], contractors: [carol] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ www.social.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
limits:
  max_scan_bytes: {MAX_SCAN}
"#,
        up.addr.port()
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    Env { fx, gw, up }
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A CONNECT tunnel as `creds`, TLS with the gateway (trusting only its CA).
async fn tunnel(e: &Env, creds: &str) -> Tls {
    use base64::Engine as _;
    let port = e.up.addr.port();
    let basic = base64::engine::general_purpose::STANDARD.encode(creds);
    let s = open_tunnel(
        &e.gw,
        &format!("www.social.test:{port}"),
        &format!("Proxy-Authorization: Basic {basic}\r\n"),
    )
    .await;
    tls_with_gateway(
        s,
        &e.fx.dir.path().join("ca.crt"),
        "www.social.test",
        &[b"http/1.1"],
    )
    .await
}

/// A WebSocket to `path` on the site, through the gateway, as `creds`; the
/// client offers permessage-deflate (which a scanned socket must not take up).
async fn websocket(e: &Env, creds: &str, path: &str) -> (WebSocketStream<Tls>, http::HeaderMap) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tls = tunnel(e, creds).await;
    let mut req = format!("wss://www.social.test:{}{path}", e.up.addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-extensions",
        http::HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
    );
    let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    (ws, resp.headers().clone())
}

/// The next data or close message (pings and pongs skipped); `None` at the end.
async fn next_message(ws: &mut WebSocketStream<Tls>) -> Option<Message> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            _ => return None,
        }
    }
}

/// The close code the gateway (or site) closed the socket with.
async fn closed_with(ws: &mut WebSocketStream<Tls>) -> Option<CloseCode> {
    match next_message(ws).await? {
        Message::Close(Some(frame)) => Some(frame.code),
        Message::Close(None) => None,
        other => panic!("expected a close, got {other:?}"),
    }
}

/// The audit lines of WebSocket upgrades (method GET, path under /ws),
/// waiting (boundedly) until `n` of them are written: a scanned socket's
/// record is completed when the socket ends.
async fn websocket_audit(e: &Env, n: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for _ in 0..200 {
        e.gw.gateway.audit.flush().await;
        let text = std::fs::read_to_string(e.fx.dir.path().join("audit.jsonl")).unwrap_or_default();
        lines = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["method"] == "GET" && l["path"].as_str().unwrap_or("").starts_with("/ws"))
            .collect();
        if lines.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    lines
}

fn received_text(e: &Env) -> Vec<String> {
    e.up.ws_messages()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[tokio::test]
async fn a_clean_message_is_echoed_under_a_dlp_rule_and_deflate_is_not_negotiated() {
    let e = env().await;
    let (mut ws, headers) = websocket(&e, ALICE, "/ws-messages").await;
    assert!(
        !headers.contains_key("sec-websocket-extensions"),
        "{headers:?}"
    );
    ws.send(Message::text("hello, residents")).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::text("hello, residents"))
    );
    // The site was never offered compression.
    let upgrade =
        e.up.requests()
            .into_iter()
            .find(|r| r.uri == "/ws-messages")
            .unwrap();
    assert!(
        !upgrade.headers.contains_key("sec-websocket-extensions"),
        "{:?}",
        upgrade.headers
    );
    ws.close(None).await.unwrap();
    while next_message(&mut ws).await.is_some() {}
    assert_eq!(received_text(&e), ["hello, residents"]);
    let audit = websocket_audit(&e, 1).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["status"], 101, "{}", audit[0]);
    assert_eq!(audit[0]["action"], "allow", "{}", audit[0]);
    assert_eq!(audit[0]["rule"], "press-office-chat", "{}", audit[0]);
    assert_eq!(audit[0]["bytes_up"], 16, "{}", audit[0]);
    assert_eq!(audit[0]["bytes_down"], 16, "{}", audit[0]);
}

#[tokio::test]
async fn a_compressed_frame_is_refused_as_deflate_was_not_negotiated() {
    let e = env().await;
    let (mut ws, _) = websocket(&e, ALICE, "/ws-messages").await;
    // RSV1 set (as permessage-deflate would): the gateway cannot read it, so it
    // never passes.
    let mut frame = Frame::message(NINO.as_bytes().to_vec(), OpCode::Data(Data::Text), true);
    frame.header_mut().rsv1 = true;
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Protocol));
    let audit = websocket_audit(&e, 1).await;
    assert_eq!(audit[0]["status"], 1002, "{}", audit[0]);
    assert!(e.up.ws_messages().is_empty());
}

#[tokio::test]
async fn a_message_with_an_ni_number_closes_the_socket_with_1008_and_is_not_sent() {
    let e = env().await;
    let (mut ws, _) = websocket(&e, ALICE, "/ws-messages").await;
    ws.send(Message::text("first, a clean one")).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::text("first, a clean one"))
    );
    ws.send(Message::text(format!(
        "Resident {NINO} asked about parking"
    )))
    .await
    .unwrap();
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Policy));
    let audit = websocket_audit(&e, 1).await;
    assert_eq!(audit.len(), 1, "one audit line for the socket: {audit:?}");
    let line = &audit[0];
    assert_eq!(line["status"], 1008, "{line}");
    assert_eq!(line["action"], "deny", "{line}");
    assert_eq!(line["rule"], "press-office-chat", "{line}");
    assert_eq!(line["activity"], "message", "{line}");
    let dlp = line["dlp"].as_array().unwrap();
    assert_eq!(dlp.len(), 1, "{line}");
    assert_eq!(dlp[0]["detector"], "uk-nino", "{line}");
    let sample = dlp[0]["sample"].as_str().unwrap();
    assert!(!sample.is_empty(), "{line}");
    let text = std::fs::read_to_string(e.fx.dir.path().join("audit.jsonl")).unwrap();
    assert!(
        !text.contains(NINO),
        "the raw value is never audited: {text}"
    );
    assert!(!text.contains("JG103782B"), "nor its compact form: {text}");
    // The audit line is written after the socket ended: nothing more will come.
    assert_eq!(received_text(&e), ["first, a clean one"]);
}

#[tokio::test]
async fn an_ni_number_split_across_fragments_is_blocked() {
    let e = env().await;
    let (mut ws, _) = websocket(&e, ALICE, "/ws-messages").await;
    let parts = ["Resident JG 10 ", "37 82", " B asked about parking"];
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(part.as_bytes().to_vec(), opcode, i == parts.len() - 1);
        ws.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Policy));
    let audit = websocket_audit(&e, 1).await;
    assert_eq!(audit[0]["status"], 1008, "{}", audit[0]);
    assert_eq!(audit[0]["dlp"][0]["detector"], "uk-nino", "{}", audit[0]);
    assert!(e.up.ws_messages().is_empty(), "{:?}", received_text(&e));
}

#[tokio::test]
async fn a_binary_message_is_scanned() {
    let e = env().await;
    let (mut ws, _) = websocket(&e, ALICE, "/ws-messages").await;
    ws.send(Message::binary(b"\x00\x01clean bytes\xff".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::binary(b"\x00\x01clean bytes\xff".to_vec()))
    );
    let mut payload = b"\x00\x02".to_vec();
    payload.extend_from_slice(format!("nino={NINO}").as_bytes());
    ws.send(Message::binary(payload)).await.unwrap();
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Policy));
    let audit = websocket_audit(&e, 1).await;
    assert_eq!(audit[0]["status"], 1008, "{}", audit[0]);
    assert_eq!(audit[0]["dlp"][0]["detector"], "uk-nino", "{}", audit[0]);
    assert_eq!(e.up.ws_messages().len(), 1, "only the clean message");
}

#[tokio::test]
async fn an_oversized_message_closes_the_socket_and_is_not_forwarded() {
    let e = env().await;
    let (mut ws, _) = websocket(&e, ALICE, "/ws-messages").await;
    ws.send(Message::text("x".repeat(MAX_SCAN + 1)))
        .await
        .unwrap();
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Size));
    let audit = websocket_audit(&e, 1).await;
    assert_eq!(audit[0]["status"], 1009, "{}", audit[0]);
    assert_eq!(audit[0]["action"], "deny", "{}", audit[0]);
    assert!(e.up.ws_messages().is_empty());

    // Fragments that together pass the limit: the same, nothing of them sent.
    let (mut ws, _) = websocket(&e, ALICE, "/ws-messages").await;
    let chunk = "y".repeat(MAX_SCAN / 2 + 1);
    let first = Frame::message(chunk.clone().into_bytes(), OpCode::Data(Data::Text), false);
    let last = Frame::message(chunk.into_bytes(), OpCode::Data(Data::Continue), true);
    ws.send(Message::Frame(first)).await.unwrap();
    let _ = ws.send(Message::Frame(last)).await;
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Size));
    assert!(e.up.ws_messages().is_empty());
}

#[tokio::test]
async fn a_log_profile_lets_the_message_through_and_records_the_finding() {
    let e = env().await;
    let (mut ws, _) = websocket(&e, BOB, "/ws-messages").await;
    let msg = format!("Resident {NINO} asked about parking");
    ws.send(Message::text(msg.clone())).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::text(msg.clone()))
    );
    ws.close(None).await.unwrap();
    while next_message(&mut ws).await.is_some() {}
    assert_eq!(received_text(&e), [msg]);
    let audit = websocket_audit(&e, 1).await;
    let line = &audit[0];
    assert_eq!(line["status"], 101, "{line}");
    assert_eq!(line["action"], "allow", "{line}");
    assert_eq!(line["rule"], "staff-chat-watched", "{line}");
    assert_eq!(line["dlp"][0]["detector"], "uk-nino", "{line}");
    assert_eq!(line["dlp"][0]["on_finding"], "log", "{line}");
    let text = std::fs::read_to_string(e.fx.dir.path().join("audit.jsonl")).unwrap();
    assert!(!text.contains(NINO), "{text}");
}

#[tokio::test]
async fn without_dlp_the_byte_relay_is_kept() {
    let e = env().await;
    // The byte echo on /ws sends the client's (masked) frames back as they
    // are: only a byte relay passes them, so the raw bytes prove which relay.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tunnel(&e, CAROL).await;
    let port = e.up.addr.port();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: www.social.test:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
    tls.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Not even valid for a scanner (unmasked, and an NI number): relayed as is.
    let mut frame = vec![0x81, 0x0d];
    frame.extend_from_slice(NINO.as_bytes());
    tls.write_all(&frame).await.unwrap();
    let mut echoed = vec![0u8; frame.len()];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(echoed, frame);

    // And a real client's messages reach the message echo unscanned.
    let (mut ws, _) = websocket(&e, CAROL, "/ws-messages").await;
    ws.send(Message::text(NINO)).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Some(Message::text(NINO)));
    assert_eq!(received_text(&e), [NINO]);
}
