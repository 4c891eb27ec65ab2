//! Kerberos single sign-on end to end against a real MIT KDC (Debian
//! `krb5-kdc`) started by the test on 127.0.0.1 with a throwaway realm, a
//! service principal `HTTP/localhost` and its keytab made now, and client
//! tickets from `kinit`: curl (`--proxy-negotiate`) and a Rust client
//! (libgssapi) reach the site as the Kerberos user with that user's rights,
//! over plain requests and CONNECT; one handshake serves a kept-alive
//! connection; forged, replayed, expired and NTLM tokens get 407.
//!
//! MIT Kerberos reads its configuration from the process environment
//! (`KRB5_CONFIG`, `KRB5CCNAME`, `KRB5_KTNAME`, `KRB5RCACHEDIR`), shared by the
//! in-process gateway and client: so this file has exactly one `#[test]`, which
//! sets the environment before it starts any thread.
#![cfg(feature = "kerberos")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use libgssapi::context::{ClientCtx, CtxFlags};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL};

use socialgate_testkit::directory::*;
use socialgate_testkit::gateway::*;
use socialgate_testkit::upstream::*;

/// A SPNEGO token for `HTTP@localhost` as `user` (from the cache collection).
fn token_for(user: &str) -> String {
    let name = Name::new(
        format!("{user}@{REALM}").as_bytes(),
        Some(GSS_NT_KRB5_PRINCIPAL),
    )
    .unwrap();
    let cred = Cred::acquire(Some(&name), None, CredUsage::Initiate, None)
        .unwrap_or_else(|e| panic!("no ticket for {user}: {e}"));
    let target = Name::new(b"HTTP@localhost", Some(GSS_NT_HOSTBASED_SERVICE)).unwrap();
    let mut ctx = ClientCtx::new(
        Some(cred),
        target,
        CtxFlags::GSS_C_MUTUAL_FLAG,
        Some(GSS_MECH_SPNEGO),
    );
    let tok = ctx.step(None, None).unwrap().unwrap();
    base64::engine::general_purpose::STANDARD.encode(&*tok)
}

/// curl through the gateway with Negotiate; returns (status, body).
fn curl(gw: &socialgate::runtime::RunningGateway, args: &[&str]) -> (u16, String) {
    require("curl", "curl");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--noproxy", "", "--proxy-negotiate", "-U", ":", "-x"])
        .arg(format!("http://localhost:{}", gw.proxy_addr().port()))
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn kerberos_negotiate_sign_in() {
    let kdc = Kdc::start(
        "localhost",
        &[
            ("alice", "alice-pw"),
            ("bob", "bob-pw"),
            ("carol", "carol-pw"),
        ],
        1,
    );
    // Before any thread of this test starts: the environment is shared with
    // MIT Kerberos, which reads it without Rust's lock.
    kdc.set_process_env(true);
    kdc.kinit("bob", "bob-pw", None);
    kdc.kinit("alice", "alice-pw", None);
    runtime().block_on(scenarios(&kdc));
}

async fn scenarios(kdc: &Kdc) {
    let fx = Fixture::new();
    htpasswd(&fx, &[("dave", "dave-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let (tls_addr, tls_ca, tls_hits) = upstream_tls("www.other.test").await;
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  kerberos: {{ keytab: "{keytab}", principal: HTTP/localhost }}
  group_members: {{ communications: [alice], all-staff: [alice, bob, carol] }}
upstream:
  resolve: {{ www.social.test: 127.0.0.1, www.other.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, {up}, {tls}]
"#,
        keytab = kdc.keytab.display(),
        up = up.addr.port(),
        tls = tls_addr.port(),
    );
    let gw = gateway(&fx, &settings, IDENTITY_POLICY).await;
    let site = |path: &str| format!("http://www.social.test:{}{path}", up.addr.port());

    // No credentials: 407 offering Negotiate first, then Basic.
    let mut c = connection(&gw).await;
    let (status, challenges, _) = send(&mut c, "GET", &site("/feed"), None).await;
    assert_eq!(status, 407);
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert_eq!(challenges[0], "Negotiate");
    assert!(
        challenges[1].starts_with("Basic realm=\"Test gateway\""),
        "{challenges:?}"
    );

    // curl as alice (press office): may post; the site never sees the token.
    let (status, body) = curl(&gw, &["-d", "hello", &site("/post")]);
    assert_eq!((status, body.as_str()), (200, "hello from upstream"));
    let seen = up.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.uri, "/post");
    assert!(last.headers.get("proxy-authorization").is_none());

    // curl as bob (staff): may read, may not post.
    kdc.kswitch("bob");
    assert_eq!(curl(&gw, &[&site("/feed")]).0, 200);
    assert_eq!(curl(&gw, &["-d", "hello", &site("/post")]).0, 403);
    kdc.kswitch("alice");

    // CONNECT with Negotiate: a tunnel to another website.
    let ca_file = fx.write("other-ca.pem", &tls_ca);
    let (status, body) = curl(
        &gw,
        &[
            "--cacert",
            &ca_file.display().to_string(),
            &format!("https://www.other.test:{}/", tls_addr.port()),
        ],
    );
    assert_eq!((status, body.as_str()), (200, "hello over tls"));
    assert_eq!(tls_hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A Rust client: one handshake serves a kept-alive connection.
    let before = metric(
        &gw,
        "socialgate_kerberos_handshakes_total{result=\"accepted\"}",
    );
    let token = token_for("alice");
    let mut c = connection(&gw).await;
    let negotiate = format!("Negotiate {token}");
    let (status, _, body) = send(&mut c, "POST", &site("/post"), Some(&negotiate)).await;
    assert_eq!((status, body.as_str()), (200, "hello from upstream"));
    for _ in 0..5 {
        assert_eq!(send(&mut c, "POST", &site("/post"), None).await.0, 200);
    }
    // A client that sends a fresh token with every request (as curl does) is
    // not put through the handshake again on that connection.
    let again = format!("Negotiate {}", token_for("alice"));
    assert_eq!(
        send(&mut c, "GET", &site("/feed"), Some(&again)).await.0,
        200
    );
    let after = metric(
        &gw,
        "socialgate_kerberos_handshakes_total{result=\"accepted\"}",
    );
    assert_eq!(after - before, 1.0, "one handshake for seven requests");
    // Another connection without credentials is not signed in.
    let mut other = connection(&gw).await;
    assert_eq!(send(&mut other, "GET", &site("/feed"), None).await.0, 407);

    // The same token again on a new connection: a replay.
    let mut c = connection(&gw).await;
    assert_eq!(
        send(&mut c, "GET", &site("/feed"), Some(&negotiate))
            .await
            .0,
        407
    );
    assert!(metric(&gw, "socialgate_kerberos_failures_total{reason=\"replay\"}") >= 1.0);

    // A forged token: a valid one with its ciphertext altered.
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(token_for("alice"))
        .unwrap();
    let n = raw.len();
    for b in &mut raw[n - 40..n - 30] {
        *b ^= 0x5a;
    }
    let forged = format!(
        "Negotiate {}",
        base64::engine::general_purpose::STANDARD.encode(&raw)
    );
    let mut c = connection(&gw).await;
    let (status, challenges, _) = send(&mut c, "GET", &site("/feed"), Some(&forged)).await;
    assert_eq!(status, 407);
    assert_eq!(challenges[0], "Negotiate");
    // The connection stays usable after a 407, for the next attempt.
    let fresh = format!("Negotiate {}", token_for("alice"));
    assert_eq!(
        send(&mut c, "GET", &site("/feed"), Some(&fresh)).await.0,
        200
    );

    // Garbage, NTLM and a made-up token.
    for bad in [
        "Negotiate !!!",
        "Negotiate TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==",
        "Negotiate YIIBAQYGKwYBBQUCoIGPMIGMoA0wCwYJKoZIhvcSAQICooF6BHhgdgYJKoZIhvcSAQICAQBuZzBloAMCAQWhAwIBDqIHAwUAAAAAAKNB",
        "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==",
    ] {
        let mut c = connection(&gw).await;
        assert_eq!(send(&mut c, "GET", &site("/feed"), Some(bad)).await.0, 407, "{bad}");
    }
    assert!(
        metric(
            &gw,
            "socialgate_kerberos_failures_total{reason=\"malformed\"}"
        ) >= 1.0
    );
    assert!(metric(&gw, "socialgate_kerberos_failures_total{reason=\"ntlm\"}") >= 1.0);

    // Basic keeps working beside Negotiate.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("dave:dave-pass")
    );
    let mut c = connection(&gw).await;
    assert_eq!(
        send(&mut c, "GET", &site("/feed"), Some(&basic)).await.0,
        403,
        "dave is in no group"
    );

    // An expiring ticket: carol's lives 4 s. A connection signed in with it is
    // signed out when it expires, and a token made before is then refused.
    kdc.kinit("carol", "carol-pw", Some("4s"));
    kdc.kswitch("alice");
    let started = Instant::now();
    let carol = format!("Negotiate {}", token_for("carol"));
    let held = format!("Negotiate {}", token_for("carol"));
    let mut c = connection(&gw).await;
    assert_eq!(
        send(&mut c, "GET", &site("/feed"), Some(&carol)).await.0,
        200
    );
    assert_eq!(send(&mut c, "GET", &site("/feed"), None).await.0, 200);
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;
    assert_eq!(
        send(&mut c, "GET", &site("/feed"), None).await.0,
        407,
        "the connection's sign-in ended with the ticket"
    );
    let mut c = connection(&gw).await;
    assert_eq!(
        send(&mut c, "GET", &site("/feed"), Some(&held)).await.0,
        407,
        "an expired token"
    );
    let expired = metric(
        &gw,
        "socialgate_kerberos_failures_total{reason=\"expired\"}",
    ) + metric(
        &gw,
        "socialgate_kerberos_failures_total{reason=\"clock_skew\"}",
    );
    assert!(expired >= 1.0, "{}", gw.gateway.metrics.render());

    // Metrics name no user.
    let text = gw.gateway.metrics.render();
    for name in ["alice", "bob", "carol"] {
        assert!(!text.contains(name), "metrics name a user: {name}");
    }
    gw.stop().await;

    // The audit trail names the Kerberos user.
    let audit = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"user\":\"alice\"") && l.contains("/post")),
        "{audit}"
    );
    assert!(
        audit.lines().any(|l| l.contains("\"user\":\"bob\"")),
        "{audit}"
    );
}
