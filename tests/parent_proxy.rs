//! Chaining through a parent proxy (`upstream.proxy`), against a real Squid
//! (Debian `squid`) that each test starts on loopback with a configuration of
//! its own (its access log, its hosts file naming the test sites 127.0.0.1,
//! no cache), with and without parent authentication (`basic_ncsa_auth` and
//! an htpasswd file made here with `openssl passwd -apr1`). What Squid's
//! access log shows is what went through it: plain requests, plain tunnels and
//! the upstream leg of intercepted sites do, `no_proxy` destinations do not;
//! intercepted posts are still decided and scanned; the destination guard
//! still refuses what the gateway resolves; the parent's 407 and a parent that
//! is down are 502s naming it; bad `upstream.proxy*` settings are start-up
//! errors naming the key (`socialgate check --settings`).
//!
//! Needs squid and openssl installed (`scripts/dev/packages.sh test`); a test
//! fails, rather than skips, without them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const POLICY: &str = r#"
version: 1
roles:
  press-office: { groups: [communications] }
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [www.social.test]
    intercept: true
    activities:
      post: [{ method: POST, path: /api/posts }]
dlp:
  profiles:
    official:
      detectors: [payment-card]
      on_finding: block
rules:
  - { name: press-office-posts, roles: [press-office], sites: [social], activities: [any], action: allow, dlp: official }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: other-websites, sites: [unlisted], activities: [connect], action: allow }
  - { name: other-websites-http, sites: [unlisted], action: allow }
  - { name: everyone-else, action: deny }
"#;

/// `alice:alice-pass` (press office), for raw requests.
const ALICE_BASIC: &str = "YWxpY2U6YWxpY2UtcGFzcw==";

/// A Squid on 127.0.0.1 run by the test; stopped when dropped.
struct Squid {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn squid_binary() -> PathBuf {
    for p in ["/usr/sbin/squid", "/usr/bin/squid"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("squid is not installed: run scripts/dev/packages.sh test (it installs the Debian package `squid`)");
}

/// The NCSA helper of the squid package.
fn ncsa_helper() -> PathBuf {
    let p = PathBuf::from("/usr/lib/squid/basic_ncsa_auth");
    assert!(
        p.exists(),
        "{} is missing: run scripts/dev/packages.sh test (Debian `squid`)",
        p.display()
    );
    p
}

/// An htpasswd line `user:$apr1$...` made by `openssl passwd -apr1`.
fn apr1_line(user: &str, password: &str) -> String {
    let out = Command::new("openssl")
        .args(["passwd", "-apr1", password])
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl could not run ({e}): run scripts/dev/packages.sh test")
        });
    assert!(out.status.success(), "openssl passwd failed");
    format!("{user}:{}\n", String::from_utf8(out.stdout).unwrap().trim())
}

impl Squid {
    /// Starts Squid; with `auth`, only that user (Basic) may use it.
    async fn start(auth: Option<(&str, &str)>) -> Squid {
        Squid::start_with(auth, None).await
    }

    /// [`Squid::start`], speaking TLS on its port with `tls` (certificate
    /// and key PEM) when given: an `https://` parent.
    async fn start_with(auth: Option<(&str, &str)>, tls: Option<(&str, &str)>) -> Squid {
        let bin = squid_binary();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        // Squid run as root drops to the user `proxy`, which must write its logs here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(
            dir.path().join("hosts"),
            "127.0.0.1 www.social.test www.other.test plain.test\n",
        )
        .unwrap();
        let port = free_port();
        let access = match auth {
            Some((user, password)) => {
                std::fs::write(dir.path().join("passwd"), apr1_line(user, password)).unwrap();
                format!(
                    "auth_param basic program {} {d}/passwd\nauth_param basic realm parent\nacl authed proxy_auth REQUIRED\nhttp_access allow clients authed\n",
                    ncsa_helper().display()
                )
            }
            None => "http_access allow clients\n".to_string(),
        };
        let listen = match tls {
            Some((cert, key)) => {
                std::fs::write(dir.path().join("parent.crt"), cert).unwrap();
                std::fs::write(dir.path().join("parent.key"), key).unwrap();
                for f in ["parent.crt", "parent.key"] {
                    std::fs::set_permissions(
                        dir.path().join(f),
                        std::fs::Permissions::from_mode(0o644),
                    )
                    .unwrap();
                }
                format!(
                    "https_port 127.0.0.1:{port} tls-cert={d}/parent.crt tls-key={d}/parent.key"
                )
            }
            None => format!("http_port 127.0.0.1:{port}"),
        };
        let conf = format!(
            "{listen}
acl clients src 127.0.0.0/8
{access}http_access deny all
cache deny all
cache_mem 0 MB
access_log stdio:{d}/access.log
cache_store_log none
cache_log {d}/cache.log
logfile_rotate 0
pid_filename {d}/squid.pid
coredump_dir {d}
workers 1
hosts_file {d}/hosts
dns_nameservers 127.0.0.1
pinger_enable off
icp_port 0
htcp_port 0
shutdown_lifetime 0 seconds
"
        );
        std::fs::write(dir.path().join("squid.conf"), conf).unwrap();
        let child = Command::new(bin)
            .args(["-N", "-f"])
            .arg(dir.path().join("squid.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid could not start");
        let squid = Squid { port, dir, child };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return squid;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(squid.dir.path().join("cache.log")).unwrap_or_default();
        panic!("squid did not listen on 127.0.0.1:{port} within 30s; its cache.log:\n{log}");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits (up to 20 s: Squid logs a tunnel when it closes) for a log line
    /// holding every one of `parts`, and returns it.
    async fn wait_for(&self, parts: &[&str]) -> String {
        for _ in 0..200 {
            if let Some(line) = self
                .log()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no line with {parts:?} in Squid's access log:\n{}",
            self.log()
        );
    }
}

struct Env {
    fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    /// Plain HTTP upstream (plain.test, direct.test).
    plain: Upstream,
    /// The intercepted site, www.social.test.
    social: TlsUpstream,
    /// An unlisted TLS site, www.other.test (a plain tunnel).
    other: (
        std::net::SocketAddr,
        String,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ),
}

/// A gateway whose parent is `proxy_url`, with `credentials` in
/// `upstream.proxy_auth_file` when given; `direct.test` is in `no_proxy`.
async fn env(proxy_url: &str, credentials: Option<&str>) -> Env {
    env_with(proxy_url, credentials, None).await
}

/// [`env`], trusting `parent_ca` (PEM) too, for an `https://` parent.
async fn env_with(proxy_url: &str, credentials: Option<&str>, parent_ca: Option<&str>) -> Env {
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let plain = upstream_http("127.0.0.1").await;
    let social = tls_upstream("www.social.test", CertKind::Good).await;
    let other = upstream_tls("www.other.test").await;
    fx.write(
        "social-ca.pem",
        &format!("{}{}", social.ca_pem, parent_ca.unwrap_or_default()),
    );
    let auth = match credentials {
        Some(c) => {
            fx.write("parent-credentials", c);
            "  proxy_auth_file: \"{dir}/parent-credentials\"\n"
        }
        None => "",
    };
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [alice, bob] }}
upstream:
  extra_roots: ["{{dir}}/social-ca.pem"]
  resolve: {{ www.social.test: 127.0.0.1, www.other.test: 127.0.0.1, plain.test: 127.0.0.1, direct.test: 127.0.0.1, inside.test: 127.0.0.2, parent.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}, {}, {}]
  proxy: {proxy_url}
  no_proxy: [direct.test]
{auth}"#,
        plain.addr.port(),
        social.addr.port(),
        other.0.port(),
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    Env {
        fx,
        gw,
        plain,
        social,
        other,
    }
}

impl Env {
    fn plain_url(&self, host: &str) -> String {
        format!("http://{host}:{}/page", self.plain.addr.port())
    }
    fn social_url(&self, path: &str) -> String {
        format!("https://www.social.test:{}{path}", self.social.addr.port())
    }
    /// A client through the gateway trusting the gateway's CA (intercepted
    /// site). HTTP/1.1 with no idle connections: each tunnel closes after its
    /// request, so that Squid (which logs a tunnel when it closes) logs it.
    fn inspected(&self, user: &str, password: &str) -> reqwest::Client {
        let ca = std::fs::read(self.fx.dir.path().join("ca.crt")).unwrap();
        reqwest::Client::builder()
            .proxy(
                reqwest::Proxy::all(format!("http://{}", self.gw.proxy_addr()))
                    .unwrap()
                    .basic_auth(user, password),
            )
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .http1_only()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    }
    /// A client through the gateway trusting www.other.test's own CA (a plain tunnel).
    fn tunnelling(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(
                reqwest::Proxy::all(format!("http://{}", self.gw.proxy_addr()))
                    .unwrap()
                    .basic_auth("bob", "bob-pass"),
            )
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.other.1.as_bytes()).unwrap())
            .build()
            .unwrap()
    }
    fn other_url(&self) -> String {
        format!("https://www.other.test:{}/", self.other.0.port())
    }
}

/// Plain GET, a plain tunnel, intercepted requests (an allowed post, a DLP-blocked
/// one) through Squid; `no_proxy` directly; the guard still applies.
async fn everything_goes_through(squid: &Squid, e: &Env, user: &str) {
    // no_proxy first: absent from the log once the later lines are there.
    let r = client(&e.gw, Some(("bob", "bob-pass")))
        .get(e.plain_url("direct.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from upstream");
    let seen = e.plain.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].headers.get("via").is_none(),
        "{:?}",
        seen[0].headers
    );

    // Plain HTTP goes to Squid in absolute form (it adds its Via).
    let r = client(&e.gw, Some(("bob", "bob-pass")))
        .get(e.plain_url("plain.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from upstream");
    let seen = e.plain.requests();
    assert_eq!(seen.len(), 2);
    let via = seen[1]
        .headers
        .get("via")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        via.as_deref().is_some_and(|v| v.contains("squid")),
        "{via:?}"
    );
    assert!(seen[1].headers.get("proxy-authorization").is_none());
    let plain_port = e.plain.addr.port();
    squid
        .wait_for(&[
            "GET",
            &format!("http://plain.test:{plain_port}/page"),
            &format!(" {user} "),
        ])
        .await;

    // A plain tunnel to an unlisted site.
    let tunnelling = e.tunnelling();
    let r = tunnelling.get(e.other_url()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello over tls");
    drop(tunnelling);
    squid
        .wait_for(&[
            "CONNECT",
            &format!("www.other.test:{}", e.other.0.port()),
            &format!(" {user} "),
        ])
        .await;

    // The intercepted site: a read, an allowed post, a post DLP blocks.
    let alice = e.inspected("alice", "alice-pass");
    let r = alice.get(e.social_url("/feed")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the social site");
    let body = "{\"text\":\"Road works on the A38 from 3 March\"}";
    let r = alice
        .post(e.social_url("/api/posts"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(e.social.count(), 2);
    assert_eq!(e.social.requests()[1].body, body.as_bytes());
    let r = alice
        .post(e.social_url("/api/posts"))
        .body("{\"text\":\"card 4111 1111 1111 1111\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("payment-card"), "{text}");
    assert_eq!(e.social.count(), 2, "the blocked post reached the site");
    // Bob (staff) may read but not post: decided inside the tunnel as ever.
    let bob = e.inspected("bob", "bob-pass");
    let r = bob
        .post(e.social_url("/api/posts"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(e.social.count(), 2);
    drop((alice, bob));
    squid
        .wait_for(&[
            "CONNECT",
            &format!("www.social.test:{}", e.social.addr.port()),
            &format!(" {user} "),
        ])
        .await;

    // The guard still checks what the gateway resolves (an unlisted name) and
    // IP literals: refused before anything reaches Squid.
    let r = client(&e.gw, Some(("bob", "bob-pass")))
        .get(format!("http://inside.test:{plain_port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = connect_as_alice(e, "127.0.0.2").await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");

    let log = squid.log();
    assert!(
        !log.contains("direct.test"),
        "no_proxy went through Squid:\n{log}"
    );
    assert!(
        !log.contains("inside.test") && !log.contains("127.0.0.2"),
        "{log}"
    );
    // Every line is one of ours, none denied.
    assert!(!log.contains("DENIED"), "{log}");
}

#[tokio::test]
async fn requests_tunnels_and_intercepted_posts_go_through_squid() {
    let squid = Squid::start(None).await;
    let e = env(&squid.url(), None).await;
    everything_goes_through(&squid, &e, "-").await;
}

#[tokio::test]
async fn with_parent_credentials_everything_goes_through_squid_as_the_gateway() {
    let squid = Squid::start(Some(("gateway", "parent-pass"))).await;
    let e = env(&squid.url(), Some("gateway:parent-pass\n")).await;
    everything_goes_through(&squid, &e, "gateway").await;
}

#[tokio::test]
async fn an_https_parent_is_spoken_to_over_verified_tls() {
    let ca = socialgate_testkit::ca::TestCa::new("parent proxy test CA");
    let leaf = ca.leaf(&["parent.test".to_string()]);
    let squid = Squid::start_with(None, Some((&leaf.pem(), &leaf.key_pem()))).await;
    let url = format!("https://parent.test:{}", squid.port);
    let e = env_with(&url, None, Some(&ca.pem())).await;
    everything_goes_through(&squid, &e, "-").await;
    // A parent whose certificate the gateway does not trust: nothing is sent.
    let e = env(&url, None).await;
    let r = client(&e.gw, Some(("bob", "bob-pass")))
        .get(e.plain_url("plain.test"))
        .send()
        .await
        .unwrap();
    let d = detail(r).await;
    assert!(d.contains(&url) && d.contains("secure connection"), "{d}");
    assert_eq!(e.plain.count(), 0);
}

/// Alice's raw CONNECT to `host` at the other upstream's port: the gateway's answer.
async fn connect_as_alice(e: &Env, host: &str) -> String {
    let port = e.other.0.port();
    raw(
        &e.gw,
        format!(
            "CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: Basic {ALICE_BASIC}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
}

/// The 502 JSON's detail.
async fn detail(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    v["detail"].as_str().unwrap().to_string()
}

/// A plain GET, an intercepted GET and a plain CONNECT through a parent that
/// refuses: each a 502 whose detail holds `says`; no site receives anything.
async fn all_refused(e: &Env, says: &[&str]) {
    let r = client(&e.gw, Some(("bob", "bob-pass")))
        .get(e.plain_url("plain.test"))
        .send()
        .await
        .unwrap();
    let d = detail(r).await;
    assert!(says.iter().all(|s| d.contains(s)), "{d}");
    let r = e
        .inspected("bob", "bob-pass")
        .get(e.social_url("/feed"))
        .send()
        .await
        .unwrap();
    let d = detail(r).await;
    assert!(says.iter().all(|s| d.contains(s)), "{d}");
    let r = connect_as_alice(e, "www.other.test").await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(says.iter().all(|s| r.contains(s)), "{r}");
    // The parent's 407 is never passed on (no challenge the client could answer;
    // "407" alone could appear in a random reference).
    assert!(
        !r.to_ascii_lowercase().contains("proxy-authenticate"),
        "{r}"
    );
    assert_eq!(e.plain.count(), 0);
    assert_eq!(e.social.count(), 0);
    assert_eq!(e.other.2.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wrong_parent_credentials_are_a_502_naming_the_parent() {
    let squid = Squid::start(Some(("gateway", "parent-pass"))).await;
    let e = env(&squid.url(), Some("gateway:not-the-password\n")).await;
    all_refused(
        &e,
        &[
            &squid.url(),
            "refused the credentials",
            "upstream.proxy_auth_file",
        ],
    )
    .await;
    assert!(!squid.log().contains("not-the-password"));
    // Without credentials at all, the 502 says to configure them.
    let e = env(&squid.url(), None).await;
    all_refused(
        &e,
        &[
            &squid.url(),
            "asked for credentials",
            "upstream.proxy_auth_file",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_parent_that_is_down_is_a_502_naming_it() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let e = env(&url, None).await;
    all_refused(&e, &[&url, "could not be reached"]).await;
}

/// `socialgate check --settings` on `upstream` YAML: its exit code and output.
fn check(fx: &Fixture, upstream: &str) -> (i32, String) {
    // The CA and audit log in the fixture: `check --settings` checks them too.
    let dir = fx.dir.path().display();
    let path = fx.write(
        "settings.yaml",
        &format!(
            "ca: {{ cert: {dir}/ca.crt, key: {dir}/ca.key, create_if_missing: true }}\naudit: {{ path: {dir}/audit.jsonl }}\nupstream:\n{upstream}"
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_socialgate"))
        .args(["check", "--settings"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn bad_parent_settings_are_errors_naming_the_key() {
    let fx = Fixture::new();
    let creds = fx.write("creds", "gateway:secret-pass\n");
    let (code, out) = check(
        &fx,
        &format!(
            "  proxy: http://127.0.0.1:3128\n  proxy_auth_file: {}\n  no_proxy: [10.0.0.0/8, \"*.council.example\"]\n",
            creds.display()
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("secret-pass"), "{out}");
    for (yaml, key, says) in [
        (
            "  proxy: http://127.0.0.1:3128/some/path\n",
            "upstream.proxy",
            "path",
        ),
        (
            "  proxy: socks5://127.0.0.1:1080\n",
            "upstream.proxy",
            "socks5",
        ),
        ("  proxy: http://127.0.0.1\n", "upstream.proxy", "port"),
        (
            "  proxy: http://127.0.0.1:3128\n  proxy_auth_file: /nonexistent/parent-credentials\n",
            "upstream.proxy_auth_file",
            "cannot read",
        ),
        (
            "  proxy_auth_file: /nonexistent/parent-credentials\n",
            "upstream.proxy_auth_file",
            "upstream.proxy",
        ),
        (
            "  proxy: http://127.0.0.1:3128\n  no_proxy: [\"a*b.example\"]\n",
            "upstream.no_proxy",
            "domain pattern",
        ),
    ] {
        let (code, out) = check(&fx, yaml);
        assert_eq!(code, 1, "{yaml}: {out}");
        assert!(out.contains(key) && out.contains(says), "{yaml}: {out}");
    }
    // A file that is not `user:password`: refused without showing it.
    let bad = fx.write("bad-creds", "just-a-secret-token\n");
    let (code, out) = check(
        &fx,
        &format!(
            "  proxy: http://127.0.0.1:3128\n  proxy_auth_file: {}\n",
            bad.display()
        ),
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("upstream.proxy_auth_file"), "{out}");
    assert!(!out.contains("just-a-secret-token"), "{out}");
}
