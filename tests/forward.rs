//! The core gateway end to end: identity (407), role and site decisions, CONNECT
//! tunnels, the destination guard against a loopback canary, header hygiene and bad
//! input. Real upstreams on 127.0.0.1, a real client (reqwest), raw sockets where a
//! client would refuse to send what we test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;

const POLICY: &str = r#"
version: 1
roles:
  press-office: { groups: [communications] }
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [www.social.test, "*.cdn.social.test"]
    intercept: false
    activities:
      comment: [{ method: POST, path: /api/graphql, form: { op: CreateComment } }]
      post: [{ method: POST, path: /post }]
rules:
  - { name: press-office-posts, roles: [press-office], sites: [social], action: allow }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: other-websites, sites: [unlisted], activities: [connect], action: allow }
  - { name: other-websites-http, sites: [unlisted], action: allow }
  - { name: everyone-else, action: deny }
"#;

struct Env {
    _fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: Upstream,
    canary: Canary,
    tls: (
        std::net::SocketAddr,
        String,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ),
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
    let up = upstream_http("127.0.0.1").await;
    let canary = canary("127.0.0.2").await;
    let tls = upstream_tls("www.other.test").await;
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [alice, bob, carol] }}
  trusted_header: {{ user: X-Authenticated-User, groups: X-Authenticated-Groups, from: [10.0.0.5/32] }}
upstream:
  resolve: {{ www.social.test: 127.0.0.1, www.other.test: 127.0.0.1, canary.test: 127.0.0.2 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, 443, {}, {}, {}]
"#,
        up.addr.port(),
        canary.addr.port(),
        tls.0.port()
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    Env {
        _fx: fx,
        gw,
        up,
        canary,
        tls,
    }
}

fn url(e: &Env, path: &str) -> String {
    format!("http://www.social.test:{}{path}", e.up.addr.port())
}

/// Three users, one after another on one client keep-alive connection, reach
/// the site over three upstream connections: an upstream connection belongs to
/// the user it was opened for. The same user again reuses theirs.
#[tokio::test]
async fn upstream_connections_belong_to_one_user() {
    let e = env().await;
    let mut conn = connection(&e.gw).await;
    let before = e.up.connections.load(std::sync::atomic::Ordering::SeqCst);
    for (user, password) in [
        ("alice", "alice-pass"),
        ("bob", "bob-pass"),
        ("carol", "carol-pass"),
        ("alice", "alice-pass"),
    ] {
        let auth = format!("Basic {}", b64(&format!("{user}:{password}")));
        let (status, _, body) = send(&mut conn, "GET", &url(&e, "/feed"), Some(&auth)).await;
        assert_eq!(status, 200, "{user}: {body}");
    }
    let seen = e.up.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        e.up.connections.load(std::sync::atomic::Ordering::SeqCst) - before,
        3,
        "alice, bob and carol each get their own upstream connection; alice's second request reuses hers"
    );
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn identity_is_required_and_checked() {
    let e = env().await;
    let anon = client(&e.gw, None);
    let r = anon.get(url(&e, "/")).send().await.unwrap();
    assert_eq!(r.status(), 407);
    assert_eq!(
        r.headers()["proxy-authenticate"].to_str().unwrap(),
        "Basic realm=\"Test gateway\", charset=\"UTF-8\""
    );
    assert!(r.headers().contains_key("x-socialgate-reference"));
    for (u, p) in [("alice", "wrong"), ("mallory", "alice-pass"), ("", "")] {
        let r = client(&e.gw, Some((u, p)))
            .get(url(&e, "/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 407, "{u}:{p}");
    }
    // A broken Proxy-Authorization header is a 407, never a 500.
    for header in [
        "Basic",
        "Basic %%%",
        "Basic Zm9vYmFy",
        "Negotiate abc",
        "Basic YWxpY2U6YWxpY2UtcGFzcw== extra",
    ] {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: www.social.test\r\nProxy-Authorization: {header}\r\nConnection: close\r\n\r\n",
            url(&e, "/")
        );
        let out = raw(&e.gw, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 407"), "{header}: {out}");
    }
    assert_eq!(e.up.count(), 0, "the upstream must receive nothing");
    let r = client(&e.gw, Some(("alice", "alice-pass")))
        .get(url(&e, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from upstream");
}

#[tokio::test]
async fn decisions_by_role_site_and_activity() {
    let e = env().await;
    let bob = client(&e.gw, Some(("bob", "bob-pass")));
    let alice = client(&e.gw, Some(("alice", "alice-pass")));

    // Staff read.
    assert_eq!(
        bob.get(url(&e, "/feed")).send().await.unwrap().status(),
        200
    );
    assert_eq!(e.up.count(), 1);

    // Staff may not post: JSON for an API client, nothing upstream.
    let r = bob
        .post(url(&e, "/post"))
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let reference = r.headers()["x-socialgate-reference"]
        .to_str()
        .unwrap()
        .to_string();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "blocked");
    assert_eq!(v["rule"], "everyone-else");
    assert_eq!(v["site"], "social");
    assert_eq!(v["activity"], "post");
    assert_eq!(v["reference"], reference.as_str());

    // A browser gets a page naming the rule; it does not echo the body or headers.
    let r = bob
        .post(url(&e, "/post"))
        .header("accept", "text/html")
        .header("x-secret-header", "do-not-echo")
        .body("secret body text")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("everyone-else") && page.contains("social"),
        "{page}"
    );
    assert!(!page.contains("do-not-echo") && !page.contains("secret body text"));

    // A comment named by a form matcher.
    let r = bob
        .post(url(&e, "/api/graphql"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("op=CreateComment&text=hi")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["activity"], "comment");
    assert_eq!(e.up.count(), 1, "denied requests never reach the upstream");

    // The press office posts; the upstream receives the body byte for byte, no
    // proxy credentials, origin-form, Host from the URI.
    let body = "Bin collections resume on Monday \u{2014} see the website";
    let r = alice
        .post(url(&e, "/post"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.method, "POST");
    assert_eq!(last.uri, "/post");
    assert_eq!(last.body, body.as_bytes());
    assert_eq!(
        last.headers["host"],
        format!("www.social.test:{}", e.up.addr.port()).as_str()
    );
    assert!(!last.headers.contains_key("proxy-authorization"));
    assert!(!last.headers.contains_key("via") && !last.headers.contains_key("x-forwarded-for"));
}

#[tokio::test]
async fn identity_headers_never_reach_the_upstream() {
    let e = env().await;
    let alice = client(&e.gw, Some(("alice", "alice-pass")));
    let r = alice
        .get(url(&e, "/"))
        .header("x-authenticated-user", "mallory")
        .header("x-authenticated-groups", "communications")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = e.up.requests();
    let h = &seen[0].headers;
    for name in [
        "x-authenticated-user",
        "x-authenticated-groups",
        "proxy-authorization",
        "x-hop",
    ] {
        assert!(!h.contains_key(name), "{name} was forwarded");
    }
}

#[tokio::test]
async fn destination_guard_protects_the_canary() {
    let e = env().await;
    let alice = client(&e.gw, Some(("alice", "alice-pass")));
    let port = e.canary.addr.port();
    for host in [
        "127.0.0.2",
        "2130706434",
        "0x7f000002",
        "0177.0.0.2",
        "[::ffff:127.0.0.2]",
        "canary.test",
        "CANARY.test.",
    ] {
        let r = alice
            .get(format!("http://{host}:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{host}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["rule"], "destination-guard", "{host}");
        // The same through CONNECT.
        let req = format!(
            "CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: Basic YWxpY2U6YWxpY2UtcGFzcw==\r\n\r\n"
        );
        let out = raw(&e.gw, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 403"), "CONNECT {host}: {out}");
    }
    assert_eq!(e.canary.hits(), 0, "the canary must never be reached");
    // A port outside allowed_ports, by request and by CONNECT.
    let r = alice
        .get("http://www.social.test:22/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let out = raw(
        &e.gw,
        b"CONNECT www.other.test:25 HTTP/1.1\r\nHost: www.other.test:25\r\nProxy-Authorization: Basic YWxpY2U6YWxpY2UtcGFzcw==\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 403") && out.contains("destination-guard"),
        "{out}"
    );
    // The gateway's own listener.
    let own = e.gw.proxy_addr();
    let r = alice.get(format!("http://{own}/")).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn connect_tunnels_are_decided_and_checked() {
    let e = env().await;
    let (tls_addr, ca_pem, hits) = &e.tls;
    let trusting = |creds: Option<(&str, &str)>| {
        let mut proxy = reqwest::Proxy::all(format!("http://{}", e.gw.proxy_addr())).unwrap();
        if let Some((u, p)) = creds {
            proxy = proxy.basic_auth(u, p);
        }
        reqwest::Client::builder()
            .proxy(proxy)
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    // An unlisted site: tunnelled untouched, end-to-end TLS with the real upstream.
    let r = trusting(Some(("bob", "bob-pass")))
        .get(format!("https://www.other.test:{}/", tls_addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello over tls");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Without credentials: 407 before anything is dialled.
    let out = raw(
        &e.gw,
        format!(
            "CONNECT www.other.test:{0} HTTP/1.1\r\nHost: www.other.test:{0}\r\n\r\n",
            tls_addr.port()
        )
        .as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 407"), "{out}");

    // A social site that staff may only read: a tunnel (activity connect) is denied.
    let out = raw(
        &e.gw,
        format!(
            "CONNECT www.social.test:{0} HTTP/1.1\r\nHost: www.social.test:{0}\r\nProxy-Authorization: Basic Ym9iOmJvYi1wYXNz\r\n\r\n",
            tls_addr.port()
        )
        .as_bytes(),
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 403") && out.contains("\"activity\":\"connect\""),
        "{out}"
    );

    // A tunnel to an unlisted host whose ClientHello names another host is closed
    // before any byte reaches the upstream (domain fronting).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(e.gw.proxy_addr())
        .await
        .unwrap();
    s.write_all(
        format!(
            "CONNECT www.other.test:{0} HTTP/1.1\r\nHost: www.other.test:{0}\r\nProxy-Authorization: Basic Ym9iOmJvYi1wYXNz\r\n\r\n",
            tls_addr.port()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = [0u8; 39];
    s.read_exact(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("www.social.test").unwrap();
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        connector.connect(name, s).await.is_err(),
        "the fronted handshake must fail"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer() {
    let e = env().await;
    let out = raw(&e.gw, b"GARBAGE\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let big = "a".repeat(70_000);
    let out = raw(
        &e.gw,
        format!("GET http://www.social.test/ HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 431"),
        "{}",
        &out[..out.len().min(200)]
    );
    let out = raw(
        &e.gw,
        b"TRACE http://www.social.test/ HTTP/1.1\r\nHost: www.social.test\r\nProxy-Authorization: Basic YWxpY2U6YWxpY2UtcGFzcw==\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    let out = raw(
        &e.gw,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(e.up.count(), 0);
}

/// A bulk tunnel (the spliced path on Linux): megabytes each way arrive intact and
/// in order, a half-close from the client reaches the site while the site keeps
/// sending, and the audit record carries the exact byte counts.
#[tokio::test]
async fn bulk_tunnels_carry_every_byte_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const UP: usize = 3 * 1024 * 1024 + 17;
    const DOWN: usize = 9 * 1024 * 1024 + 5;
    fn pattern(i: usize, salt: u8) -> u8 {
        ((i * 31 + i / 4096) as u8) ^ salt
    }
    // The site: reads until the client's half-close, checks every byte, then sends
    // DOWN bytes and closes.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_port = site.local_addr().unwrap().port();
    let received = tokio::spawn(async move {
        let (mut s, _) = site.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        let intact = got.len() == UP && got.iter().enumerate().all(|(i, b)| *b == pattern(i, 0x5a));
        let down: Vec<u8> = (0..DOWN).map(|i| pattern(i, 0xa5)).collect();
        s.write_all(&down).await.unwrap();
        s.shutdown().await.unwrap();
        (got.len(), intact)
    });
    let fx = Fixture::new();
    let settings = format!(
        "identity:\n  networks: [{{ cidr: 127.0.0.0/8, user: bob, groups: [all-staff] }}]\nupstream:\n  allow_destinations: [127.0.0.1/32]\n  allow_ip_literals: [127.0.0.1/32]\n  allowed_ports: [{site_port}]\n"
    );
    let gw = gateway(&fx, &settings, POLICY).await;

    let s = open_tunnel(&gw, &format!("127.0.0.1:{site_port}"), "").await;
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let up: Vec<u8> = (0..UP).map(|i| pattern(i, 0x5a)).collect();
        for chunk in up.chunks(100_000) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
        w
    });
    // Read late, so that the gateway's writes to the client block with data still
    // coming from the site (the relay then tops its pipe up while it waits).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut down = Vec::new();
    r.read_to_end(&mut down).await.unwrap();
    let _w = writer.await.unwrap();
    let (site_got, intact) = received.await.unwrap();
    assert_eq!(site_got, UP);
    assert!(intact, "the site received altered bytes");
    assert_eq!(down.len(), DOWN);
    assert!(
        down.iter().enumerate().all(|(i, b)| *b == pattern(i, 0xa5)),
        "the client received altered bytes"
    );
    // The tunnel's audit record is written when it closes.
    let audit_path = fx.dir.path().join("audit.jsonl");
    let mut record = None;
    for _ in 0..100 {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        record = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["method"] == "CONNECT");
        if record.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let record = record.expect("an audit record for the tunnel");
    assert_eq!(record["bytes_up"], UP as u64, "{record}");
    assert_eq!(record["bytes_down"], DOWN as u64, "{record}");
}
