//! Two gateway replicas behind a real HAProxy (Debian `haproxy`, TCP mode,
//! roundrobin, health checks on `/readyz`), all on loopback: two `socialgate
//! run` processes (the built binary) share the CA, the policy and the warn key,
//! each with its own `instance` name and audit log.
//!
//! Shows: a warning acknowledged through one replica is honoured by the other
//! when HAProxy sends the next connection there (which replica served is read
//! from the audit `instance` field, found by the response's reference); both
//! present the same CA (the intercepted leaf chains to the one CA file, and
//! `/ca.crt` is the same) and the same policy version (`socialgate_policy_info`);
//! one replica stopped with SIGTERM while clients keep making requests through
//! HAProxy: it exits 0, every request started after it exited succeeds, and
//! the failures around the stop are counted, printed and bounded by the
//! number of requests in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socialgate_testkit::directory::{free_port, require};
use socialgate_testkit::gateway::{htpasswd, Fixture};
use socialgate_testkit::upstream::{tls_upstream, CertKind, TlsUpstream};

const BIN: &str = env!("CARGO_BIN_EXE_socialgate");

const POLICY: &str = r#"
version: 1
roles:
  staff: { groups: [all-staff] }
sites:
  social: { domains: [www.social.test] }
  careful: { domains: [www.careful.test] }
rules:
  - { name: staff-read-social, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: staff-careful, roles: [staff], sites: [careful], activities: [read], action: warn, warn_for: 1h, message: "Everything here is public." }
  - { name: everyone-else, action: deny }
"#;

/// Requests the load phase keeps in flight at once.
const WORKERS: usize = 4;

/// A child process killed (if still running) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Proc {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

struct Replica {
    instance: &'static str,
    port: u16,
    admin: u16,
    audit: PathBuf,
    proc: Proc,
}

/// Starts `socialgate run` as `instance`, sharing the CA, policy and warn key in `fx`.
fn start_replica(fx: &Fixture, up: &TlsUpstream, instance: &'static str) -> Replica {
    let (port, admin) = (free_port(), free_port());
    let dir = fx.dir.path().display().to_string();
    let audit = fx.dir.path().join(format!("audit-{instance}.jsonl"));
    let settings = format!(
        r#"instance: {instance}
listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin}
policy: {dir}/policy.yaml
ca: {{ cert: {dir}/certs/ca.crt, key: {dir}/certs/ca.key }}
warn: {{ key_file: {dir}/warn.key }}
identity:
  basic: {{ realm: "Test gateway", htpasswd: {dir}/users.htpasswd }}
  group_members: {{ all-staff: [bob] }}
upstream:
  extra_roots: [{dir}/upstream-ca.pem]
  resolve: {{ www.social.test: 127.0.0.1, www.careful.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{up}]
audit: {{ path: {audit} }}
"#,
        up = up.addr.port(),
        audit = audit.display(),
    );
    let config = fx.write(&format!("{instance}.yaml"), &settings);
    let log = fx.dir.path().join(format!("{instance}.log"));
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Replica {
        instance,
        port,
        admin,
        audit,
        proc: Proc {
            name: instance,
            child,
            log,
        },
    }
}

/// HAProxy in TCP mode in front of `replicas`, roundrobin, one thread,
/// health checks on each replica's `/readyz`.
fn start_haproxy(fx: &Fixture, replicas: &[&Replica]) -> (Proc, u16) {
    let haproxy = require("haproxy", "haproxy");
    let port = free_port();
    let mut servers = String::new();
    for r in replicas {
        servers.push_str(&format!(
            "  server {} 127.0.0.1:{} check port {} inter 300ms fall 2 rise 1\n",
            r.instance, r.port, r.admin
        ));
    }
    let cfg = format!(
        "global\n  nbthread 1\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  timeout check 10s\n  retries 3\n  option redispatch\n\
         frontend gateways\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
         backend replicas\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n{servers}"
    );
    let path = fx.write("haproxy.cfg", &cfg);
    let log = fx.dir.path().join("haproxy.log");
    let check = Command::new(&haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c refused the configuration:\n{cfg}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(&haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (
        Proc {
            name: "haproxy",
            child,
            log,
        },
        port,
    )
}

/// Bounded poll until `url` answers 200 (the process must stay alive).
async fn wait_ready(url: &str, p: &mut Proc) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..240 {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!(
                "{} exited ({status}) before it was ready:\n{}",
                p.name,
                p.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{} was not ready at {url}:\n{}", p.name, p.log_text());
}

/// A new client (so a new connection, which HAProxy places) through HAProxy,
/// as bob, trusting only the gateways' CA file.
fn through_haproxy(fx: &Fixture, port: u16) -> reqwest::Client {
    let ca = std::fs::read(fx.dir.path().join("certs/ca.crt")).unwrap();
    reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::all(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .basic_auth("bob", "bob-pass"),
        )
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Every audit record of every replica.
fn audit_records(replicas: &[&Path]) -> Vec<serde_json::Value> {
    replicas
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `instance` of the audit record with `reference` (polled: the writer
/// is in the background).
async fn instance_of(replicas: &[&Path], reference: &str) -> String {
    for _ in 0..100 {
        if let Some(r) = audit_records(replicas)
            .iter()
            .find(|r| r["reference"] == reference)
        {
            return r["instance"].as_str().unwrap_or_default().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reference {reference} is in no replica's audit log");
}

fn reference(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-socialgate-reference")
        .unwrap_or_else(|| panic!("no X-Socialgate-Reference on a {}", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// `socialgate_policy_info`'s version label on `admin`.
async fn policy_version(admin: u16) -> String {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("socialgate_policy_info{"))
        .and_then(|l| l.split("version=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("no socialgate_policy_info in:\n{text}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_haproxy() {
    require("haproxy", "haproxy");
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let up = tls_upstream("www.social.test", CertKind::Good).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    fx.write("policy.yaml", POLICY);
    fx.write(
        "warn.key",
        "0123456789abcdef0123456789abcdef0123456789abcdef\n",
    );
    // One CA for both replicas, made once as an administrator would.
    let made = Command::new(BIN)
        .args(["ca", "init", "--dir"])
        .arg(fx.dir.path().join("certs"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let mut gw1 = start_replica(&fx, &up, "gw1");
    let mut gw2 = start_replica(&fx, &up, "gw2");
    for r in [&mut gw1, &mut gw2] {
        let url = format!("http://127.0.0.1:{}/readyz", r.admin);
        wait_ready(&url, &mut r.proc).await;
    }
    let (mut haproxy, hp) = start_haproxy(&fx, &[&gw1, &gw2]);
    // HAProxy is up once a request goes through it.
    let feed = format!("https://www.social.test:{}/feed", up.addr.port());
    let mut through = false;
    for _ in 0..120 {
        if let Ok(r) = through_haproxy(&fx, hp).get(&feed).send().await {
            if r.status() == 200 {
                through = true;
                break;
            }
        }
        if let Some(s) = haproxy.child.try_wait().unwrap() {
            panic!("haproxy exited ({s}):\n{}", haproxy.log_text());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        through,
        "nothing got through HAProxy:\n{}",
        haproxy.log_text()
    );
    let audits = [gw1.audit.clone(), gw2.audit.clone()];
    let audits: Vec<&Path> = audits.iter().map(|p| p.as_path()).collect();

    // The same CA and the same policy on both replicas.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut cas = Vec::new();
    for r in [&gw1, &gw2] {
        let ca = plain
            .get(format!("http://127.0.0.1:{}/ca.crt", r.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        cas.push(ca);
    }
    assert_eq!(cas[0], cas[1], "the replicas present different CAs");
    assert_eq!(
        cas[0].trim(),
        std::fs::read_to_string(fx.dir.path().join("certs/ca.crt"))
            .unwrap()
            .trim()
    );
    let (v1, v2) = (
        policy_version(gw1.admin).await,
        policy_version(gw2.admin).await,
    );
    assert_eq!(v1, v2, "the replicas serve different policies");
    println!("both replicas: policy version {v1}");

    // The warn flow across replicas. The interstitial through one replica ...
    let careful = format!("https://www.careful.test:{}/feed", up.addr.port());
    let r = through_haproxy(&fx, hp)
        .get(&careful)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let warned_by = instance_of(&audits, &reference(&r)).await;
    let html = r.text().await.unwrap();
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no interstitial: {html}"))
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // ... acknowledged (on whichever replica HAProxy picks next) ...
    let r = through_haproxy(&fx, hp)
        .post(format!(
            "https://www.careful.test:{}/.socialgate/continue",
            up.addr.port()
        ))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let acknowledged_by = instance_of(&audits, &reference(&r)).await;
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    println!("warned by {warned_by}, acknowledged through {acknowledged_by}");
    // ... and honoured by both: two new connections, one to each replica.
    let before = up.count();
    for _ in 0..2 {
        let r = through_haproxy(&fx, hp)
            .get(&careful)
            .header("accept", "text/html")
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(up.count(), before + 2);
    let mut served_by = Vec::new();
    for _ in 0..100 {
        served_by = audit_records(&audits)
            .iter()
            .filter(|r| r["host"] == "www.careful.test" && r["status"] == 200)
            .map(|r| r["instance"].as_str().unwrap_or_default().to_string())
            .collect();
        if served_by.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    served_by.sort();
    assert_eq!(
        served_by,
        ["gw1", "gw2"],
        "the acknowledged page was not served by both replicas"
    );
    let other = if acknowledged_by == "gw1" {
        "gw2"
    } else {
        "gw1"
    };
    println!("acknowledged through {acknowledged_by}, honoured by {other} too");

    // One replica stopped mid-load. Workers keep making requests (each on a
    // new connection) through HAProxy; gw1 gets SIGTERM once every worker has
    // succeeded a few times.
    let stopped = Arc::new(AtomicBool::new(false)); // gw1 has exited
    let done = Arc::new(AtomicBool::new(false));
    let ok_count = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (stopped, done, ok_count) = (stopped.clone(), done.clone(), ok_count.clone());
        let (fx_ca, feed) = (fx.dir.path().join("certs/ca.crt"), feed.clone());
        workers.push(tokio::spawn(async move {
            let ca = std::fs::read(fx_ca).unwrap();
            // (failed around the stop, failed after gw1 had exited, total)
            let (mut failed, mut failed_after, mut total) = (0usize, 0usize, 0usize);
            while !done.load(Ordering::SeqCst) {
                let after = stopped.load(Ordering::SeqCst);
                let client = reqwest::Client::builder()
                    .proxy(
                        reqwest::Proxy::all(format!("http://127.0.0.1:{hp}"))
                            .unwrap()
                            .basic_auth("bob", "bob-pass"),
                    )
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let why = match client.get(&feed).send().await {
                    Ok(r) if r.status() == 200 => match r.text().await {
                        Ok(t) if t == "hello from the social site" => None,
                        Ok(t) => Some(format!("200 with another body: {t}")),
                        Err(e) => Some(format!("body: {e:?}")),
                    },
                    Ok(r) => Some(format!("status {}", r.status())),
                    Err(e) => Some(format!("{e:?}")),
                };
                let good = why.is_none();
                if let Some(why) = why {
                    println!(
                        "a request failed ({}): {why}",
                        if after {
                            "after gw1 exited"
                        } else {
                            "around the stop"
                        }
                    );
                }
                total += 1;
                if good {
                    ok_count.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed += 1;
                    if after {
                        failed_after += 1;
                    }
                }
            }
            (failed, failed_after, total)
        }));
    }
    // (Bounded waits: a load that makes no progress fails the test, not hangs it.)
    let mut waited = 0;
    while ok_count.load(Ordering::SeqCst) < WORKERS * 5 {
        waited += 1;
        assert!(waited < 6000, "the load made no progress through HAProxy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = gw1.proc.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = gw1.proc.child.wait().unwrap();
        (status, gw1)
    })
    .await
    .unwrap();
    let (exit, gw1) = status;
    stopped.store(true, Ordering::SeqCst);
    assert!(
        exit.success(),
        "gw1 did not exit 0 after SIGTERM ({exit}):\n{}",
        gw1.proc.log_text()
    );
    // Requests after the stop: until another 10 per worker have succeeded.
    let at_stop = ok_count.load(Ordering::SeqCst);
    let mut waited = 0;
    while ok_count.load(Ordering::SeqCst) < at_stop + WORKERS * 10 {
        waited += 1;
        assert!(
            waited < 6000,
            "no progress through HAProxy after gw1 stopped:\n{}",
            haproxy.log_text()
        );
        if let Some(s) = gw2.proc.child.try_wait().unwrap() {
            panic!("gw2 exited ({s}):\n{}", gw2.proc.log_text());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::SeqCst);
    let (mut failed, mut failed_after, mut total) = (0, 0, 0);
    for w in workers {
        let (f, fa, t) = w.await.unwrap();
        failed += f;
        failed_after += fa;
        total += t;
    }
    println!(
        "replica stop under load: {total} requests, {failed} failed around the stop, {failed_after} of them after gw1 had exited ({WORKERS} in flight at a time)"
    );
    assert_eq!(failed_after, 0, "requests failed after gw1 had exited");
    assert!(
        failed <= WORKERS,
        "{failed} requests failed around the stop, more than the {WORKERS} in flight"
    );
    // The requests after the stop were served by gw2 only, and gw1's audit log
    // was flushed on exit.
    let gw1_records = audit_records(&[gw1.audit.as_path()]);
    assert!(gw1_records.iter().all(|r| r["instance"] == "gw1"));
    assert!(gw1_records.iter().any(|r| r["host"] == "www.social.test"));
    drop(haproxy);
    drop(gw2);
}
