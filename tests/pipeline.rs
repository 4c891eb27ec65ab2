//! The proxy's one pipeline, seen from outside: a refusal gives the same answer on
//! plain HTTP and inside an intercepted tunnel (the destination guard), the
//! decision comes before any name lookup or dial (lazy names), an HTTP/2 request
//! refused before its body is read still gets its 403, and an upstream cannot make
//! its response look made by the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::net::TcpListener;

const POLICY: &str = r#"
version: 1
roles:
  press-office: { groups: [communications] }
  staff: { groups: [all-staff] }
sites:
  guarded:
    domains: [www.guarded.test, plain.guarded.test]
  quiet:
    domains: [www.quiet.test]
  nowhere:
    domains: [www.nowhere.invalid]
  social:
    domains: [www.social.test]
    activities:
      post: [{ method: POST, path: /api/posts }]
  forger:
    domains: [forger.test]
    intercept: false
rules:
  - { name: press-office-all, roles: [press-office], sites: [guarded, quiet, nowhere, social, forger], activities: [any], action: allow }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: everyone-else, action: deny }
"#;

const BOB: &str = "Ym9iOmJvYi1wYXNz"; // bob:bob-pass (staff)

fn settings(ports: &[u16], resolve: &str, extra: &str) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!(
        r#"
admin_listen: 127.0.0.1:0
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [alice, bob] }}
upstream:
  resolve: {{ {resolve} }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
{extra}
"#,
        ports.join(", ")
    )
}

/// The value of one metric line (exact name and labels), 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn guard_refusals_are_the_same_403_on_plain_http_and_inside_tunnels() {
    let canary = canary("127.0.0.2").await;
    let port = canary.addr.port();
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let gw = gateway(
        &fx,
        &settings(
            &[port],
            "www.guarded.test: 127.0.0.2, plain.guarded.test: 127.0.0.2",
            "",
        ),
        POLICY,
    )
    .await;
    // Plain HTTP.
    let alice = client(&gw, Some(("alice", "alice-pass")));
    let r = alice
        .get(format!("http://plain.guarded.test:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let plain: serde_json::Value = r.json().await.unwrap();
    // Inside an intercepted tunnel (the CONNECT is accepted without a lookup).
    let alice = client_trusting_gateway(&gw, &fx, Some(("alice", "alice-pass")));
    let r = alice
        .get(format!("https://www.guarded.test:{port}/feed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().contains_key("x-socialgate-reference"));
    let tunnelled: serde_json::Value = r.json().await.unwrap();
    for v in [&plain, &tunnelled] {
        assert_eq!(v["error"], "blocked", "{v}");
        assert_eq!(v["rule"], "destination-guard", "{v}");
        let reason = v["reason"].as_str().unwrap();
        assert!(reason.contains("not allowed"), "{reason}");
        assert!(
            !reason.contains("loopback"),
            "the address class is not shown: {reason}"
        );
    }
    assert_eq!(canary.hits(), 0, "the canary must never be reached");
    let m = admin_metrics(&gw).await;
    assert_eq!(
        metric(
            &m,
            r#"socialgate_destination_denied_total{reason="loopback"}"#
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"socialgate_upstream_errors_total{kind="connect"}"#),
        0.0,
        "a guard refusal is not an upstream error"
    );
}

#[tokio::test]
async fn inside_a_tunnel_the_decision_comes_before_the_lookup_and_the_dial() {
    // On an address the guard allows: only a dial would reach it.
    let canary = canary("127.0.0.1").await;
    let port = canary.addr.port();
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let gw = gateway(
        &fx,
        &settings(&[port], "www.quiet.test: 127.0.0.1", ""),
        POLICY,
    )
    .await;
    let bob = client_trusting_gateway(&gw, &fx, Some(("bob", "bob-pass")));
    // A name that does not resolve: bob is denied by policy, so he gets the block
    // page, not a 502 for the name.
    let r = bob
        .get(format!("https://www.nowhere.invalid:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["rule"].as_str(), v["site"].as_str()),
        (Some("blocked"), Some("everyone-else"), Some("nowhere")),
        "{v}"
    );
    // A name that resolves to the canary: the denied request never dials it.
    let r = bob
        .post(format!("https://www.quiet.test:{port}/post"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        canary.hits(),
        0,
        "a denied request must not connect upstream"
    );
    let m = admin_metrics(&gw).await;
    for kind in ["dns", "connect", "timeout"] {
        let series = format!("socialgate_upstream_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&m, &series), 0.0, "no lookup, no dial: {m}");
    }
    // The CONNECT alone is accepted after identity and port, without a lookup.
    open_tunnel(
        &gw,
        &format!("www.nowhere.invalid:{port}"),
        &format!("Proxy-Authorization: Basic {BOB}\r\n"),
    )
    .await;
    // Allowed, the request dials (and reaches the canary, which hangs up).
    let alice = client_trusting_gateway(&gw, &fx, Some(("alice", "alice-pass")));
    let r = alice
        .get(format!("https://www.quiet.test:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(canary.hits(), 1);
}

#[tokio::test]
async fn an_http2_request_refused_before_its_body_is_read_gets_its_403() {
    let up = tls_upstream("www.social.test", CertKind::Good).await;
    let port = up.addr.port();
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    fx.write("upstream-ca.pem", &up.ca_pem);
    let gw = gateway(
        &fx,
        &settings(
            &[port],
            "www.social.test: 127.0.0.1",
            "  extra_roots: [\"{dir}/upstream-ca.pem\"]",
        ),
        POLICY,
    )
    .await;
    let bob = client_trusting_gateway(&gw, &fx, Some(("bob", "bob-pass")));
    // Larger than HTTP/2's initial flow-control window, so the body is still
    // being sent when the refusal goes out.
    let body = vec![b'x'; 4 << 20];
    for _ in 0..3 {
        let r = bob
            .post(format!("https://www.social.test:{port}/api/posts"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("the refusal arrives, not a reset stream");
        assert_eq!(r.version(), http::Version::HTTP_2);
        assert_eq!(r.status(), 403);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (
                v["error"].as_str(),
                v["rule"].as_str(),
                v["activity"].as_str()
            ),
            (Some("blocked"), Some("everyone-else"), Some("post")),
            "{v}"
        );
    }
    assert_eq!(up.count(), 0, "nothing reached the site");
    // The connection still serves an allowed request.
    let r = bob
        .get(format!("https://www.social.test:{port}/feed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A plain HTTP upstream that claims a gateway reference of its own.
async fn forging_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
                    let resp = hyper::Response::builder()
                        .header("x-socialgate-reference", "forged")
                        .body(Full::new(Bytes::from_static(b"hello from the forger")))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_cannot_pass_its_response_off_as_the_gateways() {
    let addr = forging_upstream().await;
    let port = addr.port();
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let gw = gateway(
        &fx,
        &settings(&[port], "forger.test: 127.0.0.1", ""),
        POLICY,
    )
    .await;
    let alice = client(&gw, Some(("alice", "alice-pass")));
    let r = alice
        .get(format!("http://forger.test:{port}/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !r.headers().contains_key("x-socialgate-reference"),
        "{:?}",
        r.headers()
    );
    assert_eq!(r.text().await.unwrap(), "hello from the forger");
    gw.gateway.audit.flush().await;
    let text = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["action"], "allow", "{line}");
    assert_eq!(line["rule"], "press-office-all", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_ne!(line["reference"], "forged", "{line}");
    assert_eq!(line["bytes_down"], 21, "counted as forwarded: {line}");
    let m = admin_metrics(&gw).await;
    assert_eq!(
        metric(
            &m,
            r#"socialgate_requests_total{action="allow",activity="read",role="press-office",site="forger"}"#
        ),
        1.0,
        "{m}"
    );
}
