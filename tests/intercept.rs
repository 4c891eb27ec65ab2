//! TLS interception end to end: a real TLS upstream with its own CA (trusted via
//! `upstream.extra_roots`), reached through `upstream.resolve` on loopback, and real
//! clients trusting the gateway's CA. Activity-level decisions inside the tunnel,
//! HTTP/2 on both legs, 421 on a mismatched Host, 502 on bad upstream
//! certificates, the warn flow and a WebSocket relay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

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
      post: [{ method: POST, path: /api/posts }]
      message: [{ websocket: true, path: /ws }]
  careful:
    domains: [www.careful.test]
rules:
  - { name: press-office-posts, roles: [press-office], sites: [social], activities: [any], action: allow }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: staff-careful, roles: [staff], sites: [careful], activities: [read], action: warn, warn_for: 1h, message: "Everything here is public." }
  - { name: everyone-else, action: deny }
"#;

struct Env {
    fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: TlsUpstream,
}

async fn env_with(kind: CertKind) -> Env {
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let up = tls_upstream("www.social.test", kind).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [alice, bob] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ www.social.test: 127.0.0.1, www.careful.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
"#,
        up.addr.port()
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    Env { fx, gw, up }
}

fn url(e: &Env, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", e.up.addr.port())
}

/// Opens a CONNECT tunnel as bob and completes TLS with the gateway (trusting only
/// the gateway CA) using `sni`.
async fn tunnel(
    e: &Env,
    connect_host: &str,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tunnel_as(e, "Ym9iOmJvYi1wYXNz", connect_host, sni, alpn).await
}

/// An HTTP/1.1 tunnel to www.social.test as alice (press office: may post).
async fn alice_http1_tunnel(e: &Env) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tunnel_as(
        e,
        "YWxpY2U6YWxpY2UtcGFzcw==",
        "www.social.test",
        "www.social.test",
        &[b"http/1.1"],
    )
    .await
}

/// The same with other Basic credentials (base64 of `user:password`).
async fn tunnel_as(
    e: &Env,
    basic: &str,
    connect_host: &str,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let port = e.up.addr.port();
    let s = open_tunnel(
        &e.gw,
        &format!("{connect_host}:{port}"),
        &format!("Proxy-Authorization: Basic {basic}\r\n"),
    )
    .await;
    tls_with_gateway(s, &e.fx.dir.path().join("ca.crt"), sni, alpn).await
}

#[tokio::test]
async fn reading_passes_posting_is_decided_per_activity() {
    let e = env_with(CertKind::Good).await;
    let bob = client_trusting_gateway(&e.gw, &e.fx, Some(("bob", "bob-pass")));
    // The client trusts only the gateway CA: success means a leaf for this host
    // issued by that CA.
    let r = bob
        .get(url(&e, "www.social.test", "/feed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the social site");
    assert_eq!(e.up.count(), 1);

    // A staff post gets the block page; the upstream receives nothing.
    let r = bob
        .post(url(&e, "www.social.test", "/api/posts"))
        .header("accept", "text/html")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("everyone-else") && page.contains("Posting on social is not allowed"),
        "{page}"
    );
    assert_eq!(e.up.count(), 1);

    // The press office's post reaches the upstream byte for byte.
    let alice = client_trusting_gateway(&e.gw, &e.fx, Some(("alice", "alice-pass")));
    let body = "{\"text\":\"Road works on the A38 from 3 March, 9:00 to 17:00\"}";
    let r = alice
        .post(url(&e, "www.social.test", "/api/posts"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.requests();
    let last = seen.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.body.as_ref()),
        ("POST", body.as_bytes())
    );
    assert!(!last.headers.contains_key("proxy-authorization"));
}

#[tokio::test]
async fn http2_on_both_legs() {
    let e = env_with(CertKind::Good).await;
    let bob = client_trusting_gateway(&e.gw, &e.fx, Some(("bob", "bob-pass")));
    let r = bob
        .get(url(&e, "www.social.test", "/feed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2, "client leg");
    assert_eq!(
        e.up.requests()[0].version,
        http::Version::HTTP_2,
        "upstream leg"
    );
}

/// A browser opens many streams at once on a new HTTP/2 tunnel: the gateway
/// dials the site once and sends them all over that one HTTP/2 connection, not
/// one TLS connection per stream (a burst of connections the site would see,
/// and a handshake each).
#[tokio::test]
async fn concurrent_http2_streams_on_a_new_tunnel_share_one_upstream_connection() {
    use http_body_util::{BodyExt, Empty};
    let e = env_with(CertKind::Good).await;
    let tls = tunnel(&e, "www.social.test", "www.social.test", &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let streams = 20;
    let requests = (0..streams).map(|i| {
        let mut sender = sender.clone();
        let uri = url(&e, "www.social.test", &format!("/feed?n={i}"));
        async move {
            let req = http::Request::builder()
                .uri(uri)
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(body.as_ref(), b"hello from the social site");
    }
    assert_eq!(e.up.count(), streams);
    assert!(e
        .up
        .requests()
        .iter()
        .all(|r| r.version == http::Version::HTTP_2));
    assert_eq!(
        e.up.connection_count(),
        1,
        "TLS connections the site accepted"
    );
}

#[tokio::test]
async fn a_mismatched_host_inside_the_tunnel_gets_421() {
    let e = env_with(CertKind::Good).await;
    let mut tls = tunnel(&e, "www.social.test", "www.social.test", &[b"http/1.1"]).await;
    tls.write_all(b"GET /feed HTTP/1.1\r\nHost: www.careful.test\r\n\r\n")
        .await
        .unwrap();
    let out = read_response(&mut tls).await;
    assert!(out.starts_with("HTTP/1.1 421"), "{out}");
    // The right host on the same connection works.
    let port = e.up.addr.port();
    tls.write_all(format!("GET /feed HTTP/1.1\r\nHost: www.social.test:{port}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let out = read_response(&mut tls).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(e.up.count(), 1);
    // An HTTP/1.1 client reaches the site over HTTP/1.1, though the site offers
    // HTTP/2: the upstream leg follows the client's protocol.
    assert_eq!(e.up.requests()[0].version, http::Version::HTTP_11);
}

#[tokio::test]
async fn invalid_upstream_certificates_get_502() {
    for kind in [CertKind::Expired, CertKind::WrongName, CertKind::SelfSigned] {
        let e = env_with(kind).await;
        let bob = client_trusting_gateway(&e.gw, &e.fx, Some(("bob", "bob-pass")));
        let r = bob
            .get(url(&e, "www.social.test", "/feed"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{kind:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains("certificate"), "{kind:?}: {page}");
        assert!(!page.contains("<form"), "no way to proceed");
        assert_eq!(e.up.count(), 0, "{kind:?}");
    }
}

#[tokio::test]
async fn warn_interstitial_continue_then_allowed() {
    let e = env_with(CertKind::Good).await;
    let bob = client_trusting_gateway(&e.gw, &e.fx, Some(("bob", "bob-pass")));
    let page_url = url(&e, "www.careful.test", "/feed?x=1");
    // An API call before acknowledging: JSON acknowledgement_required.
    let r = bob
        .get(&page_url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "acknowledgement_required");
    // A page load: the interstitial, with the rule's message and a Continue form.
    let r = bob
        .get(&page_url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Everything here is public.") && page.contains("Continue"),
        "{page}"
    );
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(e.up.count(), 0);
    // A forged token does nothing.
    let r = bob
        .post(url(&e, "www.careful.test", "/.socialgate/continue"))
        .form(&[("token", "abc.def")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Continue: redirected to the original path on the same host.
    let r = bob
        .post(url(&e, "www.careful.test", "/.socialgate/continue"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/feed?x=1");
    // The acknowledgement is audited with the site and the rule it answers.
    e.gw.gateway.audit.flush().await;
    let audit = std::fs::read_to_string(e.fx.dir.path().join("audit.jsonl")).unwrap();
    let ack: serde_json::Value = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["path"] == "/.socialgate/continue" && v["status"] == 303)
        .unwrap_or_else(|| panic!("no acknowledgement record in:\n{audit}"));
    assert_eq!(
        (&ack["site"], &ack["rule"], &ack["action"], &ack["user"]),
        (
            &serde_json::json!("careful"),
            &serde_json::json!("staff-careful"),
            &serde_json::json!("warn"),
            &serde_json::json!("bob")
        ),
        "{ack}"
    );
    let r = bob
        .get(&page_url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(e.up.count(), 1);
    // Another user has not acknowledged.
    let alice = client_trusting_gateway(&e.gw, &e.fx, Some(("alice", "alice-pass")));
    let r = alice
        .post(url(&e, "www.careful.test", "/.socialgate/continue"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a token is bound to its user");
}

#[tokio::test]
async fn websocket_through_an_intercepted_tunnel() {
    let e = env_with(CertKind::Good).await;
    let port = e.up.addr.port();
    // bob may only read: the `message` activity (a WebSocket on /ws) is denied.
    let mut tls = tunnel(&e, "www.social.test", "www.social.test", &[b"http/1.1"]).await;
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: www.social.test:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tls.write_all(upgrade.as_bytes()).await.unwrap();
    let out = read_response(&mut tls).await;
    assert!(
        out.starts_with("HTTP/1.1 403") && out.contains("\"activity\":\"message\""),
        "{out}"
    );

    // alice (press office) may: 101 from the site, then bytes are relayed both ways.
    let mut tls = alice_http1_tunnel(&e).await;
    tls.write_all(upgrade.as_bytes()).await.unwrap();
    let out = read_response(&mut tls).await;
    assert!(out.starts_with("HTTP/1.1 101"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains(&format!(
            "sec-websocket-accept: {}",
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ==").to_ascii_lowercase()
        )),
        "{out}"
    );
    tls.write_all(b"\x81\x05hello").await.unwrap();
    let mut echoed = [0u8; 7];
    tls.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"\x81\x05hello");
}

/// A client whose own body breaks mid-way inside an intercepted tunnel (a chunk
/// size that is not a number) gets a 400 saying so, as on plain HTTP, not a 502
/// blaming the site; the site never receives a complete request.
#[tokio::test]
async fn a_broken_client_body_inside_the_tunnel_is_a_400() {
    let e = env_with(CertKind::Good).await;
    // alice (press office) may post, so the request is forwarded while its body streams.
    let mut tls = alice_http1_tunnel(&e).await;
    let port = e.up.addr.port();
    tls.write_all(
        format!(
            "POST /api/posts HTTP/1.1\r\nHost: www.social.test:{port}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let out = read_response(&mut tls).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("malformed or cut off"), "{out}");
    assert_eq!(e.up.count(), 0, "no complete request reached the site");
}
