//! The HTTPS proxy port (`listen_tls`) end to end: curl speaks TLS to the
//! gateway (`--proxy https://...`, trusting a proxy certificate made by the
//! test), then proxy requests inside that TLS: CONNECT to an intercepted site
//! (a real TLS upstream) where a post is decided per user (allowed: the
//! upstream records it; denied: the block page, nothing upstream), a plain
//! tunnel to an unlisted site (copied, not spliced), a plain-HTTP
//! absolute-form request, 407 without credentials. A client that speaks plain
//! HTTP to the TLS port gets nothing through. The PAC file offers the HTTPS
//! port first. Bulk bytes and a conversation through a tunnel inside TLS
//! arrive intact; ALPN is `http/1.1` only. `check --settings` accepts the
//! settings and refuses a bad address, a missing certificate and a key of
//! another certificate at their keys. With the `kerberos` feature, Negotiate over the TLS port
//! against a real MIT KDC (Debian `krb5-kdc`).
//!
//! MIT Kerberos reads its configuration from the process environment, shared
//! by the in-process gateway and curl: so this file has exactly one `#[test]`,
//! which sets the environment before it starts any thread, then runs each
//! scenario in turn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use socialgate::runtime::RunningGateway;
use socialgate_testkit::ca::TestCa;
use socialgate_testkit::directory::{require, runtime};
use socialgate_testkit::gateway::{gateway, htpasswd, Fixture};
use socialgate_testkit::upstream::{tls_upstream, upstream_http, upstream_tls, CertKind};

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
rules:
  - { name: press-office-posts, roles: [press-office], sites: [social], activities: [any], action: allow }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: other-websites, roles: [staff], sites: [unlisted], activities: [connect], action: allow }
  - { name: everyone-else, action: deny }
"#;

/// What curl printed: the status and the body (stderr appended for messages).
struct Answer {
    status: u16,
    body: String,
}

/// curl through the gateway's HTTPS proxy port (`proxy_host` names it, as the
/// proxy certificate does), trusting `proxy_ca` for the proxy and the
/// gateway's CA for intercepted sites.
fn curl(gw: &RunningGateway, fx: &Fixture, proxy_host: &str, args: &[&str]) -> Answer {
    require("curl", "curl");
    let port = gw.tls_addr.expect("listen_tls is configured").port();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--noproxy", "", "--max-time", "30"])
        .arg("--proxy")
        .arg(format!("https://{proxy_host}:{port}"))
        .arg("--proxy-cacert")
        .arg(fx.path("proxy-ca.pem"))
        .arg("--cacert")
        .arg(fx.path("ca.crt"))
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Answer {
        status: code.trim().parse().unwrap_or(0),
        body: format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// The audit records so far, once one matches `wanted` (records are written
/// when a request completes, by a background writer).
async fn audit_record(
    fx: &Fixture,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..100 {
        let text = std::fs::read_to_string(fx.path("audit.jsonl")).unwrap_or_default();
        if let Some(r) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| wanted(r))
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no such audit record in:\n{}",
        std::fs::read_to_string(fx.path("audit.jsonl")).unwrap_or_default()
    );
}

#[test]
fn https_proxy_port() {
    #[cfg(feature = "kerberos")]
    let kdc = {
        use socialgate_testkit::directory::Kdc;
        let kdc = Kdc::start(
            "localhost",
            &[("alice", "alice-krb"), ("bob", "bob-krb")],
            1,
        );
        // Before any thread of this test starts: MIT Kerberos reads the
        // environment without Rust's lock.
        kdc.set_process_env(false);
        kdc.kinit("bob", "bob-krb", None);
        kdc.kinit("alice", "alice-krb", None);
        kdc
    };
    runtime().block_on(async {
        let fx = Fixture::new();
        htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
        // The proxy port's certificate, from a CA of the test's own: for the
        // name curl uses (localhost, as Kerberos needs) and for 127.0.0.1.
        let proxy_ca = TestCa::new("socialgate test proxy-port CA");
        let leaf = proxy_ca.leaf(&["localhost".into(), "127.0.0.1".into()]);
        fx.write("proxy-ca.pem", &proxy_ca.pem());
        fx.write("proxy.crt", &leaf.pem());
        fx.write("proxy.key", &leaf.key_pem());
        let social = tls_upstream("www.social.test", CertKind::Good).await;
        fx.write("upstream-ca.pem", &social.ca_pem);
        let plain = upstream_http("127.0.0.1").await;
        let (other_addr, other_ca, other_hits) = upstream_tls("www.other.test").await;
        let bulk_site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let talk_site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        fx.write("other-ca.pem", &other_ca);
        #[cfg(feature = "kerberos")]
        let kerberos = format!(
            "  kerberos: {{ keytab: \"{}\", principal: HTTP/localhost }}\n",
            kdc.keytab.display()
        );
        #[cfg(not(feature = "kerberos"))]
        let kerberos = String::new();
        let settings = format!(
            r#"
listen_tls: {{ address: "127.0.0.1:0", cert: "{{dir}}/proxy.crt", key: "{{dir}}/proxy.key" }}
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
{kerberos}  group_members: {{ communications: [alice], all-staff: [alice, bob] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ www.social.test: 127.0.0.1, www.other.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allow_ip_literals: [127.0.0.1/32]
  allowed_ports: [{social}, {plain}, {other}, {bulk}, {talk}]
limits: {{ header_read_timeout: 2s }}
"#,
            social = social.addr.port(),
            plain = plain.addr.port(),
            other = other_addr.port(),
            bulk = bulk_site.local_addr().unwrap().port(),
            talk = talk_site.local_addr().unwrap().port(),
        );
        check_settings_names_the_keys(&fx, &settings);
        let gw = gateway(&fx, &settings, POLICY).await;
        let tls_port = gw.tls_addr.unwrap();
        assert_eq!(tls_port.ip().to_string(), "127.0.0.1");
        let post_url = format!("https://www.social.test:{}/api/posts", social.addr.port());

        // A plain tunnel to an unlisted site inside the TLS connection: relayed
        // by copying (only the plain port's sockets are spliced). First, before the
        // gateway learns 127.0.0.1 as the social site's address (a name that
        // resolves there is then treated as that site).
        let t = curl(
            &gw,
            &fx,
            "127.0.0.1",
            &[
                "-U",
                "bob:bob-pass",
                "--cacert",
                &fx.path("other-ca.pem"),
                &format!("https://www.other.test:{}/", other_addr.port()),
            ],
        );
        assert_eq!(t.status, 200, "{}", t.body);
        assert_eq!(other_hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Megabytes each way through a tunnel inside the TLS port (the copying
        // relay), and ALPN: http/1.1 only. Also before the social site's address
        // is learned.
        bulk_tunnel_over_tls(&gw, &proxy_ca, bulk_site).await;
        conversation_over_tls(&gw, &proxy_ca, talk_site).await;

        // Basic over TLS, CONNECT inside TLS, then the intercepted site's TLS:
        // the press office may post; the upstream records it, without the
        // proxy credentials.
        let a = curl(
            &gw,
            &fx,
            "127.0.0.1",
            &[
                "-U",
                "alice:alice-pass",
                "-d",
                "Bin collections resume on Monday",
                &post_url,
            ],
        );
        assert_eq!(
            (a.status, a.body.as_str()),
            (200, "hello from the social site")
        );
        let seen = social.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].method, "POST");
        assert!(seen[0].uri.ends_with("/api/posts"), "{}", seen[0].uri);
        assert_eq!(&seen[0].body[..], b"Bin collections resume on Monday");
        assert!(seen[0].headers.get("proxy-authorization").is_none());
        let rec = audit_record(&fx, |r| r["user"] == "alice" && r["path"] == "/api/posts").await;
        assert_eq!(rec["action"], "allow", "{rec}");
        assert_eq!(rec["rule"], "press-office-posts", "{rec}");

        // Staff may not post: the block page, under the gateway's CA, and
        // nothing reaches the site.
        let b = curl(
            &gw,
            &fx,
            "127.0.0.1",
            &[
                "-U",
                "bob:bob-pass",
                "-H",
                "Accept: text/html",
                "-d",
                "hello",
                &post_url,
            ],
        );
        assert_eq!(b.status, 403, "{}", b.body);
        assert!(
            b.body.contains("<html") || b.body.contains("<!DOCTYPE"),
            "{}",
            b.body
        );
        assert_eq!(social.count(), 1, "a denied post reached the site");
        let rec = audit_record(&fx, |r| r["user"] == "bob" && r["path"] == "/api/posts").await;
        assert_eq!(
            (rec["action"].as_str(), rec["status"].as_u64()),
            (Some("deny"), Some(403)),
            "{rec}"
        );
        // ... but may read it.
        let r = curl(
            &gw,
            &fx,
            "127.0.0.1",
            &[
                "-U",
                "bob:bob-pass",
                &format!("https://www.social.test:{}/feed", social.addr.port()),
            ],
        );
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "hello from the social site")
        );

        // No credentials over TLS: 407, as on the plain port; wrong ones too.
        let n = curl(&gw, &fx, "127.0.0.1", &[&post_url]);
        assert!(
            n.status == 407 || n.body.contains("407"),
            "{} {}",
            n.status,
            n.body
        );
        let w = curl(&gw, &fx, "127.0.0.1", &["-U", "bob:wrong", &post_url]);
        assert!(
            w.status == 407 || w.body.contains("407"),
            "{} {}",
            w.status,
            w.body
        );
        assert_eq!(social.count(), 2);

        // A plain-HTTP absolute-form request inside the TLS connection.
        let p = curl(
            &gw,
            &fx,
            "127.0.0.1",
            &[
                "-U",
                "bob:bob-pass",
                &format!("http://www.social.test:{}/feed", plain.addr.port()),
            ],
        );
        assert_eq!((p.status, p.body.as_str()), (200, "hello from upstream"));
        let seen = plain.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].uri, "/feed");
        assert!(seen[0].headers.get("proxy-authorization").is_none());

        // A client that opens the TLS port and never completes a handshake is
        // closed (limits.header_read_timeout), and counted no longer.
        stalled_handshake_is_closed(&gw).await;

        // A client that speaks plain HTTP to the TLS port gets no HTTP answer,
        // and nothing reaches any upstream.
        plain_http_to_tls_port(&gw, plain.addr.port()).await;
        assert_eq!(
            plain.count(),
            1,
            "a plain-HTTP client got through the TLS port"
        );
        assert_eq!(social.count(), 2);

        // The PAC file: the HTTPS port first, then the plain port, never DIRECT
        // for a listed site.
        let pac = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{}/proxy.pac", gw.proxy_addr()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected = format!(
            "var proxy = \"HTTPS 127.0.0.1:{}; PROXY {}\";",
            tls_port.port(),
            gw.proxy_addr()
        );
        assert!(pac.contains(&expected), "{expected}\n{pac}");

        #[cfg(feature = "kerberos")]
        negotiate_over_tls(&gw, &fx, &kdc, &post_url, &social);
        gw.stop().await;
    });
}

/// `socialgate check --settings` (the built binary) on the test's own
/// settings: accepted, with the HTTPS port among the start-up checks; then
/// with a wrong key, a missing certificate and a bad address: each refused at
/// its line and key, as `run` refuses them.
fn check_settings_names_the_keys(fx: &Fixture, settings: &str) {
    let bin = env!("CARGO_BIN_EXE_socialgate");
    fx.write("policy.yaml", POLICY);
    let dir = fx.dir.path().display().to_string();
    let good = format!(
        "policy: {dir}/policy.yaml\nca: {{ cert: {dir}/check-ca.crt, key: {dir}/check-ca.key, create_if_missing: true }}\naudit: {{ path: {dir}/check-audit.jsonl }}\n{}",
        settings.replace("{dir}", &dir)
    );
    let run = |name: &str, text: &str| {
        let path = fx.write(name, text);
        let out = std::process::Command::new(bin)
            .args(["check", "--settings"])
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, out) = run("check-good.yaml", &good);
    assert!(ok, "{out}");
    assert!(
        out.contains("listen_tls") && out.contains("certificate and key match"),
        "{out}"
    );

    let other = TestCa::new("another CA").leaf(&["localhost".into()]);
    fx.write("other.key", &other.key_pem());
    let bad = good
        .replace("proxy.key", "other.key")
        .replace("proxy.crt", "missing.crt")
        .replace("127.0.0.1:0", "localhost:3129");
    let (ok, out) = run("check-bad.yaml", &bad);
    assert!(!ok, "{out}");
    for key in ["`listen_tls.address`", "`listen_tls.cert`: cannot read"] {
        // The flow map `listen_tls: { ... }` is line 5 of the file.
        assert!(
            out.contains("check-bad.yaml:5:") && out.contains(key),
            "{key}: {out}"
        );
    }
    let mismatched = good.replace("proxy.key", "other.key");
    let (ok, out) = run("check-mismatched.yaml", &mismatched);
    assert!(!ok, "{out}");
    assert!(
        out.contains("`listen_tls.key`")
            && out.contains("is not the private key of the certificate"),
        "{out}"
    );
    assert!(!out.contains("PRIVATE KEY"), "a key in a message: {out}");
}

/// A TLS client of the proxy port offering `alpn`.
async fn tls_to_proxy_port(
    gw: &RunningGateway,
    proxy_ca: &TestCa,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(proxy_ca.der()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(gw.tls_addr.unwrap()).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// A bulk tunnel to an IP literal inside the TLS port: 3 MiB up, then 9 MiB
/// down, every byte intact and in order, the site reading late so that the
/// gateway's writes to the client back up. Also: the port answers ALPN with
/// `http/1.1`, and refuses a client that offers only `h2`.
async fn bulk_tunnel_over_tls(
    gw: &RunningGateway,
    proxy_ca: &TestCa,
    site: tokio::net::TcpListener,
) {
    const UP: usize = 3 * 1024 * 1024 + 17;
    const DOWN: usize = 9 * 1024 * 1024 + 5;
    fn pattern(i: usize, salt: u8) -> u8 {
        ((i * 31 + i / 4096) as u8) ^ salt
    }
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

    assert!(
        tls_to_proxy_port(gw, proxy_ca, &[b"h2"]).await.is_err(),
        "the proxy port accepted a client that offers only h2"
    );
    let mut tls = tls_to_proxy_port(gw, proxy_ca, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let creds = base64::engine::general_purpose::STANDARD.encode("bob:bob-pass");
    tls.write_all(
        format!(
            "CONNECT 127.0.0.1:{site_port} HTTP/1.1\r\nHost: 127.0.0.1:{site_port}\r\nProxy-Authorization: Basic {creds}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let (mut r, mut w) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        let up: Vec<u8> = (0..UP).map(|i| pattern(i, 0x5a)).collect();
        for chunk in up.chunks(100_000) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
        w
    });
    // Read late, so that the gateway's TLS writes to the client block with
    // data still coming from the site.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut down = Vec::new();
    let _ = r.read_to_end(&mut down).await;
    let _w = writer.await.unwrap();
    let (site_got, intact) = received.await.unwrap();
    assert_eq!(site_got, UP);
    assert!(intact, "the site received altered bytes");
    assert_eq!(down.len(), DOWN);
    assert!(
        down.iter().enumerate().all(|(i, b)| *b == pattern(i, 0xa5)),
        "the client received altered bytes"
    );
}

/// A conversation through a tunnel inside the TLS port: the site sends a reply
/// larger than the sockets hold and then waits for the client's next message;
/// the client reads the whole reply late (so the gateway's TLS writes to it
/// back up) and only then answers. The whole reply must arrive without any
/// later write to push its tail out.
async fn conversation_over_tls(
    gw: &RunningGateway,
    proxy_ca: &TestCa,
    site: tokio::net::TcpListener,
) {
    const REPLY: usize = 8 * 1024 * 1024 + 3;
    let site_port = site.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = site.accept().await.unwrap();
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).await.unwrap();
        s.write_all(&vec![7u8; REPLY]).await.unwrap();
        let mut next = [0u8; 4];
        s.read_exact(&mut next).await.unwrap();
        s.write_all(b"done").await.unwrap();
        s.shutdown().await.unwrap();
    });
    let mut tls = tls_to_proxy_port(gw, proxy_ca, &[b"http/1.1"])
        .await
        .unwrap();
    let creds = base64::engine::general_purpose::STANDARD.encode("bob:bob-pass");
    tls.write_all(
        format!(
            "CONNECT 127.0.0.1:{site_port} HTTP/1.1\r\nHost: 127.0.0.1:{site_port}\r\nProxy-Authorization: Basic {creds}\r\n\r\nhello"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut reply = vec![0u8; REPLY];
    // Bounded, so that a reply stuck in the gateway fails the test instead of
    // hanging it.
    tokio::time::timeout(Duration::from_secs(30), tls.read_exact(&mut reply))
        .await
        .expect("the tail of the reply never arrived: bytes held back in the gateway's TLS stream")
        .unwrap();
    assert!(reply.iter().all(|b| *b == 7));
    tls.write_all(b"next").await.unwrap();
    let mut done = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), tls.read_exact(&mut done))
        .await
        .expect("no answer to the next message")
        .unwrap();
    assert_eq!(&done, b"done");
    server.await.unwrap();
}

/// Two clients that stall in the TLS handshake (one sends nothing, one half a
/// ClientHello) are closed by the gateway once `limits.header_read_timeout`
/// (2 s here) has passed: each read ends. The wait is bounded at 60 s, so a
/// handshake without a deadline fails the test instead of hanging it.
async fn stalled_handshake_is_closed(gw: &RunningGateway) {
    let active = || gw.gateway.metrics.connections_active.get();
    let before = active();
    let mut silent = tokio::net::TcpStream::connect(gw.tls_addr.unwrap())
        .await
        .unwrap();
    let mut half = tokio::net::TcpStream::connect(gw.tls_addr.unwrap())
        .await
        .unwrap();
    // A TLS record header announcing a 512-byte handshake message, then 5 bytes of it.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
        .await
        .unwrap();
    for (name, s) in [("silent", &mut silent), ("half a ClientHello", &mut half)] {
        let mut buf = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf)).await;
        assert!(
            ended.is_ok(),
            "{name}: the gateway kept a stalled TLS handshake open"
        );
    }
    // Both were counted while open and are no longer.
    for _ in 0..100 {
        if active() <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        active() <= before,
        "connections_active {} after the stalled handshakes closed (was {before})",
        active()
    );
}

/// Plain HTTP (a proxy request with valid credentials) sent to the TLS port:
/// the handshake fails, no HTTP response comes back.
async fn plain_http_to_tls_port(gw: &RunningGateway, plain_port: u16) {
    let creds = base64::engine::general_purpose::STANDARD.encode("bob:bob-pass");
    let mut s = tokio::net::TcpStream::connect(gw.tls_addr.unwrap())
        .await
        .unwrap();
    let request = format!(
        "GET http://www.social.test:{plain_port}/feed HTTP/1.1\r\nHost: www.social.test:{plain_port}\r\nProxy-Authorization: Basic {creds}\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // The gateway closes the connection (after a TLS alert at most).
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        !text.contains("HTTP/1."),
        "an HTTP answer on the TLS port: {text}"
    );
    assert!(!text.contains("hello from upstream"), "{text}");
}

/// Negotiate (Kerberos) over the TLS port: curl signs in with the ticket of
/// the primary cache (`HTTP/localhost`, the name in the PAC line and the
/// proxy certificate); rights follow the Kerberos user.
#[cfg(feature = "kerberos")]
fn negotiate_over_tls(
    gw: &RunningGateway,
    fx: &Fixture,
    kdc: &socialgate_testkit::directory::Kdc,
    post_url: &str,
    social: &socialgate_testkit::upstream::TlsUpstream,
) {
    let before = social.count();
    kdc.kswitch("alice");
    let a = curl(
        gw,
        fx,
        "localhost",
        &[
            "--proxy-negotiate",
            "-U",
            ":",
            "-d",
            "posted with a ticket",
            post_url,
        ],
    );
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "hello from the social site")
    );
    let seen = social.requests();
    assert_eq!(seen.len(), before + 1);
    let last = seen.last().unwrap();
    assert_eq!(&last.body[..], b"posted with a ticket");
    assert!(last.headers.get("proxy-authorization").is_none());

    kdc.kswitch("bob");
    let b = curl(
        gw,
        fx,
        "localhost",
        &[
            "--proxy-negotiate",
            "-U",
            ":",
            "-d",
            "posted with a ticket",
            post_url,
        ],
    );
    assert_eq!(b.status, 403, "{}", b.body);
    assert_eq!(social.count(), before + 1, "bob's post reached the site");
    kdc.kswitch("alice");
}
