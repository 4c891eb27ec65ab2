//! Warn acknowledgements across replicas and restarts: the acknowledgement made
//! through one gateway travels as a signed cookie on the site's origin; a second
//! gateway with the same `warn.key_file` honours it (as a restarted one would),
//! a gateway with another key does not, and no site ever receives the cookie.
//! Real TLS upstream, real clients trusting the (shared) gateway CA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::*;

const POLICY: &str = r#"
version: 1
roles:
  staff: { groups: [all-staff] }
sites:
  careful:
    domains: [www.careful.test]
rules:
  - { name: staff-careful, roles: [staff], sites: [careful], activities: [read], action: warn, warn_for: 1h, message: "Everything here is public." }
  - { name: everyone-else, action: deny }
"#;

async fn replica(
    fx: &Fixture,
    up: &TlsUpstream,
    key_file: Option<&str>,
) -> socialgate::runtime::RunningGateway {
    let warn = key_file
        .map(|k| format!("warn: {{ key_file: \"{{dir}}/{k}\" }}\n"))
        .unwrap_or_default();
    let settings = format!(
        r#"{warn}
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ all-staff: [bob] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ www.careful.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
"#,
        up.addr.port()
    );
    gateway(fx, &settings, POLICY).await
}

/// bob's page load of /feed through `gw`, sending `cookie` when given.
async fn page(
    gw: &socialgate::runtime::RunningGateway,
    fx: &Fixture,
    up: &TlsUpstream,
    cookie: Option<&str>,
) -> reqwest::Response {
    let bob = client_trusting_gateway(gw, fx, Some(("bob", "bob-pass")));
    let mut req = bob
        .get(format!("https://www.careful.test:{}/feed", up.addr.port()))
        .header("accept", "text/html");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn an_acknowledgement_through_one_replica_holds_on_another_with_the_same_key() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let up = tls_upstream("www.careful.test", CertKind::Good).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    fx.write(
        "warn.key",
        "0123456789abcdef0123456789abcdef0123456789abcdef\n",
    );
    fx.write(
        "other.key",
        "fedcba9876543210fedcba9876543210fedcba9876543210\n",
    );
    let a = replica(&fx, &up, Some("warn.key")).await;
    let b = replica(&fx, &up, Some("warn.key")).await;
    let stranger = replica(&fx, &up, Some("other.key")).await;
    let keyless = replica(&fx, &up, None).await;

    // Through A: the interstitial, then Continue.
    let r = page(&a, &fx, &up, None).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let bob_a = client_trusting_gateway(&a, &fx, Some(("bob", "bob-pass")));
    let r = bob_a
        .post(format!(
            "https://www.careful.test:{}/.socialgate/continue",
            up.addr.port()
        ))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with("__sg_ack_")
            && set_cookie.contains("HttpOnly")
            && set_cookie.contains("Secure")
            && set_cookie.contains("Max-Age=3600"),
        "{set_cookie}"
    );
    let pair = set_cookie.split(';').next().unwrap().to_string();
    let cookies = format!("theme=dark; {pair}");
    assert_eq!(up.count(), 0);

    // B (a replica, or A after a restart: the same key) honours it.
    let r = page(&b, &fx, &up, Some(&cookies)).await;
    assert_eq!(r.status(), 200, "replica B with the shared key");
    assert_eq!(up.count(), 1);
    // The site never sees the gateway's cookie; its own cookies pass.
    let seen = up.requests();
    let cookie_seen: Vec<&str> = seen[0]
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookie_seen, ["theme=dark"]);

    // Another key, or no shared key: the cookie is worth nothing.
    for (name, gw) in [("another key", &stranger), ("no key file", &keyless)] {
        let r = page(gw, &fx, &up, Some(&cookies)).await;
        assert_eq!(r.status(), 403, "{name}");
    }
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_short_or_missing_key_file_is_an_error_at_its_key() {
    let fx = Fixture::new();
    fx.write("short.key", "too short");
    for (file, says) in [("short.key", "at least 32"), ("missing.key", "cannot read")] {
        let text = format!(
            "warn: {{ key_file: \"{}\" }}\n",
            fx.dir.path().join(file).display()
        );
        let err = socialgate::settings::Settings::from_yaml("s.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:1:") && err.contains("`warn.key_file`") && err.contains(says),
            "{err}"
        );
        assert!(
            !err.contains("too short"),
            "the key's bytes are never shown: {err}"
        );
    }
}
