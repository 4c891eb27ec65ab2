//! Sign-in abuse through a real gateway on loopback: failed Basic sign-ins are
//! throttled per client address (counted in `socialgate_signin_throttled_total`)
//! without running bcrypt, while another user's cached sign-in from the same
//! address keeps working; and a cached sign-in is served while every bcrypt
//! worker is busy. No timings: outcomes, counters and metrics only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use socialgate::identity::throttle::CLIENT_FREE_FAILURES;
use support::*;

const POLICY: &str = r#"
version: 1
roles: { staff: { groups: [all-staff] } }
rules:
  - { name: other-websites, sites: [unlisted], action: allow }
  - { name: everyone-else, action: deny }
"#;

struct Env {
    _fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: Upstream,
}

async fn env() -> Env {
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let settings = format!(
        r#"
admin_listen: 127.0.0.1:0
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ all-staff: [alice, bob] }}
upstream:
  resolve: {{ normal.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
"#,
        up.addr.port()
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    Env { _fx: fx, gw, up }
}

/// One request as `user` through the gateway; its status.
async fn get(e: &Env, user: &str, pass: &str) -> u16 {
    client(&e.gw, Some((user, pass)))
        .get(format!("http://normal.test:{}/", e.up.addr.port()))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// bcrypt checks the gateway has run, all costs together.
fn checks(e: &Env) -> u64 {
    let pool = e.gw.gateway.identity.bcrypt_pool();
    pool.verifications().iter().map(|(_, n)| n).sum()
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[tokio::test]
async fn failures_from_one_address_are_throttled_but_a_cached_colleague_is_not() {
    let e = env().await;
    assert_eq!(get(&e, "bob", "bob-pass").await, 200);
    let before = checks(&e);
    // Password spraying from 127.0.0.1: a different name each time, so only the
    // address's count reaches its limit.
    for i in 0..CLIENT_FREE_FAILURES {
        assert_eq!(get(&e, &format!("guess{i}"), "Winter2026!").await, 407);
    }
    assert_eq!(checks(&e), before + u64::from(CLIENT_FREE_FAILURES));
    // The next attempt is refused before any check, even with alice's right
    // password (she has no cached sign-in), and counted.
    // 429 with Retry-After and no Proxy-Authenticate: a browser must not ask
    // again for a password that is not the problem.
    let throttled = client(&e.gw, Some(("alice", "alice-pass")))
        .get(format!("http://normal.test:{}/", e.up.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status().as_u16(), 429);
    let retry: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(throttled.headers().get("proxy-authenticate").is_none());
    assert!(throttled.headers().get("x-socialgate-reference").is_some());
    assert_eq!(get(&e, "guess-more", "Winter2026!").await, 429);
    assert_eq!(checks(&e), before + u64::from(CLIENT_FREE_FAILURES));
    let text = admin_metrics(&e.gw).await;
    assert_eq!(
        metric(
            &text,
            "socialgate_signin_throttled_total{reason=\"client\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "socialgate_auth_failures_total{reason=\"throttled\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(&text, "socialgate_signin_throttled_total{reason=\"user\"}"),
        0.0
    );
    // bob, signed in from the same address before, is still served from the cache.
    let upstream_before = e.up.count();
    assert_eq!(get(&e, "bob", "bob-pass").await, 200);
    assert_eq!(e.up.count(), upstream_before + 1);
    assert_eq!(checks(&e), before + u64::from(CLIENT_FREE_FAILURES));
}

#[tokio::test]
async fn a_cached_sign_in_is_served_while_every_bcrypt_worker_is_busy() {
    let e = Arc::new(env().await);
    assert_eq!(get(&e, "bob", "bob-pass").await, 200);
    let permits = e.gw.gateway.identity.bcrypt_pool().permits();
    let all = u32::try_from(permits.available_permits()).unwrap();
    let held = permits.acquire_many_owned(all).await.unwrap();
    // A wrong password now waits for a worker ...
    let e2 = e.clone();
    let wrong = tokio::spawn(async move { get(&e2, "alice", "not-her-password").await });
    // ... while bob's cached sign-in goes through.
    assert_eq!(get(&e, "bob", "bob-pass").await, 200);
    assert!(!wrong.is_finished(), "a bcrypt check ran without a worker");
    drop(held);
    assert_eq!(wrong.await.unwrap(), 407);
}
