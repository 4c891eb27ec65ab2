//! What operators see: Prometheus counters after known traffic, one JSON audit line
//! per request with the contract's fields, policy reloads under load (a broken file
//! changes nothing), and a graceful stop that lets a slow request finish.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::*;

const POLICY: &str = r#"
version: 1
roles:
  staff: { groups: [all-staff] }
  press-office: { groups: [communications] }
sites:
  social:
    domains: [www.social.test]
    intercept: false
    activities:
      post: [{ method: POST, path: /post }]
rules:
  - { name: try-blocking-social, sites: [social], action: deny, enforce: false }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: other-websites, sites: [unlisted], action: allow }
  - { name: everyone-else, action: deny }
"#;

fn settings(up_port: u16, extra_port: u16) -> String {
    format!(
        r#"
admin_listen: 127.0.0.1:0
identity:
  basic: {{ realm: "Test", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ all-staff: [bob, alice], communications: [alice] }}
  trusted_header: {{ user: X-Authenticated-User, from: [127.0.0.1/32] }}
upstream:
  # closed.test on an address of its own: 127.0.0.1 is learned for the site social.
  resolve: {{ www.social.test: 127.0.0.1, www.other.test: 127.0.0.1, closed.test: 127.0.0.2 }}
  allow_destinations: [127.0.0.1/32, 127.0.0.2/32]
  allowed_ports: [80, 443, {up_port}, {extra_port}]
"#
    )
}

/// Parses the Prometheus text format into `name{labels}` → value.
fn scrape(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

async fn metrics(gw: &socialgate::runtime::RunningGateway) -> (String, HashMap<String, f64>) {
    let text = admin_metrics(gw).await;
    let map = scrape(&text);
    (text, map)
}

/// A port on 127.0.0.1 where nothing listens.
async fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn metrics_count_known_traffic_with_policy_labels() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass"), ("alice", "alice-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let closed = closed_port().await;
    let gw = gateway(&fx, &settings(up.addr.port(), closed), POLICY).await;
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let base = format!("http://www.social.test:{}", up.addr.port());
    for _ in 0..2 {
        assert_eq!(
            bob.get(format!("{base}/feed"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        bob.post(format!("{base}/post"))
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        client(&gw, None)
            .get(format!("{base}/"))
            .send()
            .await
            .unwrap()
            .status(),
        407
    );
    assert_eq!(
        client(&gw, Some(("bob", "nope")))
            .get(format!("{base}/"))
            .send()
            .await
            .unwrap()
            .status(),
        407
    );
    assert_eq!(
        bob.get("http://www.social.test:22/")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        bob.get(format!("http://closed.test:{closed}/"))
            .send()
            .await
            .unwrap()
            .status(),
        502
    );

    let (text, m) = metrics(&gw).await;
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("missing {k} in\n{text}"))
    };
    assert_eq!(
        get(
            r#"socialgate_requests_total{action="allow",activity="read",role="staff",site="social"}"#
        ),
        2.0
    );
    assert_eq!(
        get(
            r#"socialgate_requests_total{action="deny",activity="post",role="staff",site="social"}"#
        ),
        1.0
    );
    assert_eq!(
        get(r#"socialgate_dry_run_matches_total{action="deny",rule="try-blocking-social"}"#),
        3.0
    );
    assert_eq!(
        get(r#"socialgate_auth_failures_total{reason="missing"}"#),
        1.0
    );
    assert_eq!(
        get(r#"socialgate_auth_failures_total{reason="bad_credentials"}"#),
        1.0
    );
    assert_eq!(
        get(r#"socialgate_destination_denied_total{reason="port"}"#),
        1.0
    );
    assert_eq!(
        get(r#"socialgate_upstream_errors_total{kind="connect"}"#),
        1.0
    );
    assert_eq!(
        get(r#"socialgate_request_duration_seconds_count{site="social"}"#),
        3.0
    );
    // Two upstream bodies plus the pages the gateway made (403, 407s, 502).
    assert!(
        get(r#"socialgate_bytes_total{direction="down"}"#)
            > 2.0 * "hello from upstream".len() as f64
    );
    assert_eq!(
        get(r#"socialgate_bytes_total{direction="up"}"#),
        0.0,
        "the body of the denied post never went up"
    );
    let version = gw.gateway.policy().version.clone();
    assert_eq!(
        get(&format!(r#"socialgate_policy_info{{version="{version}"}}"#)),
        1.0
    );
    for name in [
        "socialgate_connections_active",
        "socialgate_tunnels_active",
        "socialgate_certs_minted_total",
        "socialgate_cert_cache_hits_total",
    ] {
        assert!(m.contains_key(name), "{name} missing");
    }
    // Labels never carry users, paths or hosts outside the catalogue.
    for leak in ["bob", "/feed", "closed.test", "nope"] {
        assert!(!text.contains(leak), "{leak} leaked into /metrics");
    }
    // The other admin endpoints.
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    let a = gw.admin_addr.unwrap();
    assert_eq!(
        admin
            .get(format!("http://{a}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        admin
            .get(format!("http://{a}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let pac = admin
        .get(format!("http://{a}/proxy.pac"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        pac.contains("FindProxyForURL")
            && pac.contains("\"www.social.test\"")
            && pac.contains(&format!("PROXY {}", gw.proxy_addr())),
        "{pac}"
    );
    let ca = admin
        .get(format!("http://{a}/ca.crt"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----") && !ca.contains("PRIVATE"));
    let status = admin
        .get(format!("http://{a}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        status.contains(&version)
            && status.contains("Firefox")
            && status.contains("macOS")
            && status.contains("Windows")
    );
    // The proxy port serves the PAC file and the CA to origin-form requests too.
    let out = raw(
        &gw,
        b"GET /proxy.pac HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("FindProxyForURL"),
        "{out}"
    );
}

#[tokio::test]
async fn one_audit_line_per_request_with_the_contract_fields() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let gw = gateway(&fx, &settings(up.addr.port(), 1), POLICY).await;
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let base = format!("http://www.social.test:{}", up.addr.port());
    assert_eq!(
        bob.get(format!("{base}/feed?token=secret-query"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let denied = bob
        .post(format!("{base}/post"))
        .body("hello")
        .send()
        .await
        .unwrap();
    let reference = denied.headers()["x-socialgate-reference"]
        .to_str()
        .unwrap()
        .to_string();
    // Missing credentials: counted, not audited. Wrong ones: audited, the user
    // name only when that user exists.
    let _ = client(&gw, None)
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap();
    let _ = client(&gw, Some(("bob", "wrong")))
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap();
    let _ = client(&gw, Some(("bob-pass", "bob")))
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap();
    // A hostile user name from the trusted header (quotes, backslash, tab, JSON).
    let evil = "ev\"il\\\t{\"user\":\"admin\"}";
    let r = client(&gw, None)
        .get(format!("{base}/x"))
        .header("x-authenticated-user", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the evil user holds no role");
    gw.gateway.audit.flush().await;

    let text = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    for l in &lines {
        for field in [
            "ts",
            "reference",
            "instance",
            "client_ip",
            "user",
            "roles",
            "groups",
            "method",
            "host",
            "path",
            "site",
            "activity",
            "action",
            "rule",
            "dry_run",
            "dlp",
            "status",
            "bytes_up",
            "bytes_down",
            "duration_ms",
        ] {
            assert!(l.get(field).is_some(), "{field} missing in {l}");
        }
    }
    let read = &lines[0];
    assert_eq!(read["user"], "bob");
    assert_eq!(read["roles"], serde_json::json!(["staff"]));
    assert_eq!(read["path"], "/feed", "no query string");
    assert!(!text.contains("secret-query"));
    assert_eq!(
        (
            read["site"].as_str(),
            read["activity"].as_str(),
            read["action"].as_str()
        ),
        (Some("social"), Some("read"), Some("allow"))
    );
    assert_eq!(read["rule"], "staff-read");
    assert_eq!(
        read["dry_run"],
        serde_json::json!([{"rule": "try-blocking-social", "action": "deny"}])
    );
    assert_eq!(read["status"], 200);
    assert_eq!(read["bytes_down"], "hello from upstream".len());
    assert_eq!(read["client_ip"], "127.0.0.1");
    // No `instance` in the settings: the host name names the replica.
    assert_eq!(read["instance"], socialgate::settings::host_name().as_str());
    let deny = &lines[1];
    assert_eq!(deny["reference"], reference.as_str());
    assert_eq!(
        (
            deny["action"].as_str(),
            deny["rule"].as_str(),
            deny["status"].as_u64()
        ),
        (Some("deny"), Some("everyone-else"), Some(403))
    );
    assert_eq!(
        lines[2]["user"], "bob",
        "wrong password for an existing user"
    );
    assert_eq!(lines[2]["status"], 407);
    assert!(
        lines[3]["user"].is_null(),
        "an unknown name may be a password: not recorded"
    );
    assert!(!text.contains("bob-pass"));
    assert_eq!(lines[4]["user"], evil, "escaped, one record");
}

const ALLOW: &str = r#"
version: 1
roles: { staff: { groups: [all-staff] } }
sites: { social: { domains: [www.social.test], intercept: false } }
rules:
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: everyone-else, action: deny }
"#;

const DENY: &str = r#"
version: 1
roles: { staff: { groups: [all-staff] } }
sites: { social: { domains: [www.social.test], intercept: false } }
rules:
  - { name: social-closed-today, sites: [social], action: deny }
  - { name: everyone-else, action: deny }
"#;

const BROKEN: &str = "version: 1\nrules:\n  - { name: oops, action: allow, sitez: [social] }\n";

#[tokio::test]
async fn reloads_under_load_never_fail_a_request_and_a_broken_policy_changes_nothing() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let gw = gateway(&fx, &settings(up.addr.port(), 1), ALLOW).await;
    let url = format!("http://www.social.test:{}/feed", up.addr.port());
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, denied, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let load = {
        let (bob, url, stop, ok, denied, failed) = (
            bob.clone(),
            url.clone(),
            stop.clone(),
            ok.clone(),
            denied.clone(),
            failed.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 20_000 {
                n += 1;
                match bob.get(&url).send().await.map(|r| r.status().as_u16()) {
                    Ok(200) => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(403) => denied.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };
    let status = |c: reqwest::Client| {
        let url = url.clone();
        async move { c.get(&url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(bob.clone()).await, 200);
    let v1 = gw.gateway.policy().version.clone();
    for round in 0..3 {
        fx.write("policy.yaml", DENY);
        assert!(gw.reload(), "round {round}: a valid policy loads");
        assert_eq!(
            status(bob.clone()).await,
            403,
            "round {round}: the new policy decides"
        );
        fx.write("policy.yaml", BROKEN);
        assert!(!gw.reload(), "round {round}: the broken policy is refused");
        assert_eq!(
            status(bob.clone()).await,
            403,
            "round {round}: the broken policy changed nothing"
        );
        fx.write("policy.yaml", ALLOW);
        assert!(gw.reload());
        assert_eq!(
            status(bob.clone()).await,
            200,
            "round {round}: back to allowing"
        );
        assert_eq!(gw.gateway.policy().version, v1);
    }
    // The file is also watched: writing it is enough (bounded wait, not a timing test).
    fx.write("policy.yaml", DENY);
    let mut switched = false;
    for _ in 0..100 {
        if status(bob.clone()).await == 403 {
            switched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(switched, "the watcher reloads a changed policy file");
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed during reloads"
    );
    assert!(ok.load(Ordering::SeqCst) > 0 && denied.load(Ordering::SeqCst) > 0);
    let (_, m) = metrics(&gw).await;
    assert_eq!(m[r#"socialgate_policy_reloads_total{result="error"}"#], 3.0);
    assert!(m[r#"socialgate_policy_reloads_total{result="ok"}"#] >= 7.0);
}

#[tokio::test]
async fn graceful_stop_lets_a_slow_request_finish() {
    use bytes::Bytes;
    use http_body_util::Full;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"slow but complete"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let gw = gateway(&fx, &settings(port, 1), ALLOW).await;
    let proxy = gw.proxy_addr();
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let url = format!("http://www.social.test:{port}/slow");
    let in_flight = tokio::spawn(async move {
        let r = bob.get(&url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    // Wait until the request is in flight (bounded).
    for _ in 0..100 {
        if gw.gateway.metrics.connections_active.get() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    gw.stop().await;
    assert_eq!(
        in_flight.await.unwrap(),
        (200, "slow but complete".to_string())
    );
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "no new connections after stop"
    );
}

/// Every `reason` of `socialgate_destination_denied_total`, by its contract name.
const DESTINATION_REASONS: [&str; 12] = [
    "port",
    "gateway",
    "loopback",
    "private",
    "cgnat",
    "link_local",
    "multicast",
    "unspecified",
    "reserved",
    "ip-literal",
    "ambiguous-site",
    "host-mismatch",
];

#[tokio::test]
async fn every_destination_refusal_reason_is_exported_at_zero_from_the_start() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass"), ("alice", "alice-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let closed = closed_port().await;
    let gw = gateway(&fx, &settings(up.addr.port(), closed), POLICY).await;

    // A fresh gateway, before any request: every reason is there, at 0.
    let (text, m) = metrics(&gw).await;
    for reason in DESTINATION_REASONS {
        let key = format!("socialgate_destination_denied_total{{reason=\"{reason}\"}}");
        assert_eq!(m.get(&key), Some(&0.0), "{key} in\n{text}");
    }

    // One refused port counts there; the others stay at 0 and stay exported.
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let resp = bob.get("http://www.social.test:22/").send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let (text, m) = metrics(&gw).await;
    for reason in DESTINATION_REASONS {
        let key = format!("socialgate_destination_denied_total{{reason=\"{reason}\"}}");
        let want = if reason == "port" { 1.0 } else { 0.0 };
        assert_eq!(m.get(&key), Some(&want), "{key} in\n{text}");
    }
    assert!(
        up.requests().is_empty(),
        "the upstream must receive nothing"
    );
}

/// `pac.proxies` lists every replica: the PAC file answers a listed site with
/// them in order and never with DIRECT; other hosts stay DIRECT.
#[tokio::test]
async fn the_pac_file_names_every_replica_in_order() {
    let fx = Fixture::new();
    let gw = gateway(
        &fx,
        "pac: { proxies: [\"gw1.council.example:3128\", \"gw2.council.example:3128\"] }\n",
        POLICY,
    )
    .await;
    let out = raw(
        &gw,
        b"GET /proxy.pac HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains(
            "var proxy = \"PROXY gw1.council.example:3128; PROXY gw2.council.example:3128\";"
        ),
        "{out}"
    );
    assert!(!out.contains(&gw.proxy_addr().to_string()), "{out}");
    // DIRECT only as the answer for hosts no site lists.
    assert_eq!(out.matches("\"DIRECT\"").count(), 1, "{out}");
    assert!(out.contains("return \"DIRECT\";"), "{out}");
}
