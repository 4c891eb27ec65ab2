//! The HTTPS proxy port (`listen_tls`) end to end: curl speaks TLS to the
//! gateway (`--proxy https://...`, trusting a proxy certificate made by the
//! test), then proxy requests inside that TLS: CONNECT to an intercepted site
//! (a real TLS upstream) where a post is decided per user (allowed: the
//! upstream records it; denied: the block page, nothing upstream), a plain
//! tunnel to an unlisted site (copied, not spliced), a plain-HTTP
//! absolute-form request, 407 without credentials. A client that speaks plain
//! HTTP to the TLS port gets nothing through. The PAC file offers the HTTPS
//! port first. With the `kerberos` feature, Negotiate over the TLS port
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
  allowed_ports: [{social}, {plain}, {other}]
"#,
            social = social.addr.port(),
            plain = plain.addr.port(),
            other = other_addr.port(),
        );
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
