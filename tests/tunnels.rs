//! Tunnel destinations (issue 14): a CONNECT or `http://` request that names an
//! IP literal is refused unless the address is a site's (`networks:`, or learned
//! for one of its domains) or in `upstream.allow_ip_literals`; an unlisted name
//! whose address is a site's is decided as that site. Inside an intercepted
//! tunnel a CONNECT is 405 and `Alt-Svc` never reaches the client. Everything
//! stays on loopback: sites' `networks:` here are 127.0.0.0/8 and names resolve
//! through `upstream.resolve`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// dave is a contractor: he may read X, never write to it; unlisted sites are
/// open to everyone (as tunnels).
fn policy(networks: &str) -> String {
    format!(
        r#"
version: 1
roles:
  contractor: {{ groups: [contractors] }}
sites:
  x:
    domains: [x.test]
{networks}
    activities:
      post: [{{ method: POST, path_regex: "^/i/api/graphql/[^/]+/CreateTweet$" }}]
rules:
  - {{ name: contractor-reads, roles: [contractor], sites: [x], activities: [read], action: allow }}
  - {{ name: contractor-no-writes, roles: [contractor], sites: [x], activities: [write], action: deny }}
  - {{ name: unlisted-open, sites: [unlisted], activities: [any], action: allow }}
"#
    )
}

const DAVE: &str = "Proxy-Authorization: Basic ZGF2ZTpkYXZlLXBhc3M=\r\n";

struct Env {
    fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: TlsUpstream,
}

/// A gateway in front of a TLS upstream for x.test on 127.0.0.1; `extra` is
/// added to the `upstream:` section, `networks` to site x.
async fn env(extra: &str, networks: &str) -> Env {
    let fx = Fixture::new();
    htpasswd(&fx, &[("dave", "dave-pass")]);
    let up = tls_upstream("x.test", CertKind::Good).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    let settings = format!(
        r#"
admin_listen: 127.0.0.1:0
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ contractors: [dave] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ x.test: 127.0.0.1, alias.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
{extra}
"#,
        up.addr.port()
    );
    let gw = gateway(&fx, &settings, &policy(networks)).await;
    Env { fx, gw, up }
}

/// Sends a CONNECT to `target` as dave and returns the gateway's whole answer.
async fn connect_answer(gw: &socialgate::runtime::RunningGateway, target: &str) -> String {
    raw(
        gw,
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{DAVE}\r\n").as_bytes(),
    )
    .await
}

/// An intercepted tunnel to `name` as dave, TLS with the gateway (trusting only
/// its CA, SNI `name`), HTTP/1.1 on top.
async fn intercepted(e: &Env, name: &str) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tls = tls_to(e, name).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn tls_to(e: &Env, name: &str) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let port = e.up.addr.port();
    let s = open_tunnel(&e.gw, &format!("{name}:{port}"), DAVE).await;
    tls_with_gateway(s, &e.fx.dir.path().join("ca.crt"), name, &[b"http/1.1"]).await
}

/// Sends `method path` with `Host: host:<the upstream's port>`; status,
/// headers and body.
async fn request(
    e: &Env,
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    method: &str,
    host: &str,
    path: &str,
) -> (u16, http::HeaderMap, String) {
    let host = format!("{host}:{}", e.up.addr.port());
    sender.ready().await.unwrap();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Full::new(Bytes::from_static(b"{\"text\":\"hello\"}")))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

const TWEET: &str = "/i/api/graphql/abc123/CreateTweet";

#[tokio::test]
async fn ip_literal_connects_are_refused_in_every_spelling() {
    let e = env("", "").await;
    let port = e.up.addr.port();
    for target in [
        format!("127.0.0.1:{port}"),
        format!("2130706433:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
    ] {
        let answer = connect_answer(&e.gw, &target).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{target}: {answer}");
        assert!(answer.contains("destination-guard"), "{target}: {answer}");
        assert!(answer.contains("IP address"), "{target}: {answer}");
    }
    // Plain HTTP to an IP literal: the same rule.
    let answer = raw(
        &e.gw,
        format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{DAVE}\r\n")
            .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("destination-guard"), "{answer}");
    assert_eq!(e.up.count(), 0, "the upstream received nothing");
    let metrics = admin_metrics(&e.gw).await;
    assert!(
        metrics.contains("socialgate_destination_denied_total{reason=\"ip-literal\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_allowed_ip_literal_is_a_tunnel_again() {
    let site = canary("127.0.0.1").await;
    let fx = Fixture::new();
    htpasswd(&fx, &[("dave", "dave-pass")]);
    let settings = format!(
        "identity:\n  basic: {{ realm: t, htpasswd: \"{{dir}}/users.htpasswd\" }}\n  group_members: {{ contractors: [dave] }}\nupstream:\n  allow_destinations: [127.0.0.1/32]\n  allow_ip_literals: [127.0.0.1/32]\n  allowed_ports: [{}]\n",
        site.addr.port()
    );
    let gw = gateway(&fx, &settings, &policy("")).await;
    let _s = open_tunnel(&gw, &format!("127.0.0.1:{}", site.addr.port()), DAVE).await;
    assert_eq!(site.hits(), 1, "dialled as an unlisted destination");
}

#[tokio::test]
async fn an_ip_literal_in_an_inspected_sites_networks_is_refused_by_name() {
    let e = env("", "    networks: [127.0.0.0/8]").await;
    let answer = connect_answer(&e.gw, &format!("127.0.0.1:{}", e.up.addr.port())).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("inspected site `x`"), "{answer}");
    assert_eq!(e.up.count(), 0);
}

#[tokio::test]
async fn an_unlisted_name_in_a_sites_networks_is_decided_as_the_site() {
    let e = env("", "    networks: [127.0.0.0/8]").await;
    let mut s = intercepted(&e, "alias.test").await;
    let (status, _, body) = request(&e, &mut s, "POST", "alias.test", TWEET).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("contractor-no-writes"), "{body}");
    assert_eq!(e.up.count(), 0, "the upstream received nothing");
}

#[tokio::test]
async fn an_unlisted_name_at_a_learned_address_is_decided_as_the_site() {
    let e = env("", "").await;
    // dave reads x.test: the gateway resolves it, and learns 127.0.0.1 for x.
    let mut s = intercepted(&e, "x.test").await;
    let (status, _, body) = request(&e, &mut s, "GET", "x.test", "/home").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(e.up.count(), 1);
    // alias.test points at the same address: it is x, and dave may not post.
    let mut s = intercepted(&e, "alias.test").await;
    let (status, _, body) = request(&e, &mut s, "POST", "alias.test", TWEET).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("contractor-no-writes"), "{body}");
    assert_eq!(e.up.count(), 1, "the write never reached the upstream");
}

#[tokio::test]
async fn a_connect_inside_an_intercepted_tunnel_is_405() {
    let e = env("", "").await;
    let mut tls = tls_to(&e, "x.test").await;
    tls.write_all(b"CONNECT x.test:443 HTTP/1.1\r\nHost: x.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(e.up.count(), 0);
}

#[tokio::test]
async fn alt_svc_is_removed_from_intercepted_responses() {
    let e = env("", "").await;
    let mut s = intercepted(&e, "x.test").await;
    let (status, headers, _) = request(&e, &mut s, "GET", "x.test", "/alt-svc").await;
    assert_eq!(status, 200);
    assert_eq!(e.up.count(), 1, "the upstream answered");
    assert!(headers.get("alt-svc").is_none(), "{headers:?}");
}

#[test]
fn site_networks_are_validated_with_their_position() {
    let fx = Fixture::new();
    let path = fx.write(
        "policy.yaml",
        "version: 1\nsites:\n  x:\n    domains: [x.test]\n    networks: [127.0.0.0/8, 10.0.0.1/8, 0.0.0.0/0, nonsense]\nrules:\n  - { name: r, action: deny }\n",
    );
    let errors: Vec<String> = match socialgate::policy::load_policy(
        &path.display().to_string(),
        &socialgate::policy::sources::FsFiles,
    ) {
        Ok(_) => panic!("the policy should not load"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    };
    let file = path.display().to_string();
    assert_eq!(
        errors,
        vec![
            format!("{file}:5:29: site `x`: `networks`: `10.0.0.1/8` has bits set after the prefix; write `10.0.0.0/8`"),
            format!("{file}:5:41: site `x`: `networks`: `0.0.0.0/0` is wider than /8: no site publishes a range that large"),
            format!("{file}:5:52: site `x`: `networks`: `nonsense` is not a CIDR block: write address/prefix, e.g. `192.0.2.0/24` (`/32` for one address)"),
        ]
    );
}

#[tokio::test]
async fn plain_http_to_an_unlisted_name_in_a_sites_networks_is_decided_as_the_site() {
    let e = env("", "    networks: [127.0.0.0/8]").await;
    let port = e.up.addr.port();
    let answer = raw(
        &e.gw,
        format!(
            "POST http://alias.test:{port}{TWEET} HTTP/1.1\r\nHost: alias.test:{port}\r\n{DAVE}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("contractor-no-writes"), "{answer}");
    assert_eq!(e.up.count(), 0);
}
