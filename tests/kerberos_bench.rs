//! A benchmark, not run by default: requests per second through an in-process
//! gateway to a loopback upstream, signed in
//! (a) with Negotiate once per kept-alive connection,
//! (b) with Basic on every request, answered from the 5-minute cache,
//! (c) with a Kerberos handshake on every request (a new connection each time),
//!     to show what connection binding saves.
//!
//! ```sh
//! cargo test --release --test kerberos_bench -- --ignored --nocapture
//! ```
//!
//! It starts its own KDC on 127.0.0.1 (Debian `krb5-kdc`, `krb5-admin-server`,
//! `krb5-user`) and stops it at the end.
#![cfg(feature = "kerberos")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use libgssapi::context::{ClientCtx, CtxFlags};
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE};

use socialgate_testkit::directory::*;
use socialgate_testkit::gateway::*;
use socialgate_testkit::upstream::*;

const CONNECTIONS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(4);

fn token() -> String {
    let target = Name::new(b"HTTP@localhost", Some(GSS_NT_HOSTBASED_SERVICE)).unwrap();
    let mut ctx = ClientCtx::new(None, target, CtxFlags::empty(), Some(GSS_MECH_SPNEGO));
    let tok = ctx.step(None, None).unwrap().unwrap();
    base64::engine::general_purpose::STANDARD.encode(&*tok)
}

async fn get(c: &mut SendRequest<Full<Bytes>>, url: &str, auth: Option<&str>) -> u16 {
    send(c, "GET", url, auth).await.0
}

/// Runs `CONNECTIONS` loops for `RUN_FOR`; returns requests per second.
async fn kept_alive(
    gw: &socialgate::runtime::RunningGateway,
    url: &str,
    sign_in: bool,
    every: Option<String>,
) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut c = connection(gw).await;
        let url = url.to_string();
        // Each connection signs in with a token of its own (a token is good once).
        let first = sign_in.then(|| format!("Negotiate {}", token()));
        let every = every.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            if let Some(f) = &first {
                assert_eq!(get(&mut c, &url, Some(f)).await, 200);
                n += 1;
            }
            while started.elapsed() < RUN_FOR {
                assert_eq!(get(&mut c, &url, every.as_deref()).await, 200);
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "a benchmark: cargo test --release --test kerberos_bench -- --ignored --nocapture"]
fn negotiate_kept_alive_vs_basic_cached() {
    let kdc = Kdc::start("localhost", &[("alice", "alice-pw")], 300);
    kdc.set_process_env(false);
    kdc.kinit("alice", "alice-pw", None);
    runtime().block_on(async {
        let fx = Fixture::new();
        htpasswd(&fx, &[("bob", "bob-pass")]);
        let up = upstream_http("127.0.0.1").await;
        let settings = format!(
            r#"
identity:
  basic: {{ realm: "Bench", htpasswd: "{{dir}}/users.htpasswd" }}
  kerberos: {{ keytab: "{keytab}" }}
  group_members: {{ all-staff: [alice, bob] }}
upstream:
  resolve: {{ www.social.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, {port}]
"#,
            keytab = kdc.keytab.display(),
            port = up.addr.port()
        );
        let gw = gateway(&fx, &settings, IDENTITY_POLICY).await;
        let url = format!("http://www.social.test:{}/feed", up.addr.port());

        // Warm up: the upstream pool, bcrypt's first check, the replay cache file.
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("bob:bob-pass")
        );
        let mut c = connection(&gw).await;
        assert_eq!(get(&mut c, &url, Some(&basic)).await, 200);

        let negotiate =
            kept_alive(&gw, &url, true, None).await;
        let basic_cached = kept_alive(&gw, &url, false, Some(basic.clone())).await;

        // A handshake per request: new connection, new token each time (tokens
        // made beforehand, so only the gateway's side is timed).
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let tokens: Vec<String> = (0..1500).map(|_| format!("Negotiate {}", token())).collect();
            let addr_gw = gw.proxy_addr();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                for t in &tokens {
                    let tcp = tokio::net::TcpStream::connect(addr_gw).await.unwrap();
                    let (mut c, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    assert_eq!(get(&mut c, &url, Some(t)).await, 200);
                    n += 1;
                    if n >= 20 && started.elapsed() > RUN_FOR {
                        break;
                    }
                }
                n
            }));
        }
        let mut done = 0;
        for t in tasks {
            done += t.await.unwrap();
        }
        let per_request = done as f64 / started.elapsed().as_secs_f64();
        let handshakes = gw.gateway.metrics.render();
        let accepted = handshakes
            .lines()
            .find(|l| l.starts_with("socialgate_kerberos_handshakes_total{result=\"accepted\"}"))
            .unwrap_or("")
            .to_string();
        println!(
            "\n{CONNECTIONS} kept-alive connections, {} s each, GET through the gateway to a loopback upstream:",
            RUN_FOR.as_secs()
        );
        println!("  Negotiate, one handshake per connection : {negotiate:>8.0} req/s");
        println!("  Basic, answered from the cache          : {basic_cached:>8.0} req/s");
        println!("  Negotiate handshake on every request    : {per_request:>8.0} req/s (a new connection each time)");
        println!("  {accepted}");
        gw.stop().await;
    });
}
