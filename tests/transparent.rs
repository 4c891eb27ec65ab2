//! Transparent mode end to end, in network namespaces this test makes:
//!
//! ```text
//!  client ns  c0 10.250.1.2, .3 ──veth── g0 10.250.1.1   gateway ns   g1 10.250.2.1 ──veth── u0 10.250.2.2-.5  upstream ns
//!             fd00:250:1::2              fd00:250:1::1                fd00:250:2::1           fd00:250:2::2, ::3
//!  (no proxy setting)                    nft: tcp to the upstream ports
//!                                        redirect to :3180 (HTTP), :3443 (TLS)
//! ```
//!
//! The gateway binary runs in the gateway namespace (`ip netns exec`), the
//! recording upstreams (crates/testkit) and the clients (reqwest, no proxy
//! configured) run in-process on threads that entered the other namespaces.
//! Every address used exists only inside those namespaces; they are deleted
//! when the test ends, even when it fails (`World`'s Drop).
//!
//! Sites, each at its own upstream address: `www.social.test` (.2, intercepted,
//! guests may read), `www.careful.test` (.4, not intercepted, guests may open
//! tunnels), `www.blocked.test` (.5, intercepted, denied); .3 belongs to no
//! site (the spoofing target). One test runs the router with nftables `tproxy`
//! (and the gateway with `tproxy: true`) instead of `redirect`. Guests are
//! identified by `networks` (10.250.1.2
//! only); Basic is configured too, to show that a transparent client never
//! gets a 407.
//!
//! Skipped (with a message) only where namespaces cannot be made: not root, or
//! no `ip` (Debian: iproute2). A missing `nft` (Debian: nftables) fails.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use socialgate_testkit::gateway::{htpasswd, Fixture};
use socialgate_testkit::upstream::{
    tls_upstream_at, upstream_http, CertKind, TlsUpstream, Upstream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = r#"
version: 1
roles:
  guests: { groups: [guests] }
sites:
  social:
    domains: [www.social.test, v6.social.test]
    activities:
      post: [{ method: POST, path: /api/posts }]
  careful:
    domains: [www.careful.test]
    intercept: false
  blocked:
    domains: [www.blocked.test]
rules:
  - { name: guests-read-social, roles: [guests], sites: [social], activities: [read], action: allow }
  - { name: guests-tunnel-careful, roles: [guests], sites: [careful], activities: [connect], action: allow }
  - { name: everyone-else, action: deny }
"#;

const GUEST: &str = "10.250.1.2";
const STRANGER: &str = "10.250.1.3";
/// Known by a network entry with `challenge: true` (a 407 on the proxy port).
const CHALLENGED: &str = "10.250.1.4";
const GATEWAY_CLIENT_SIDE: &str = "10.250.1.1";
const SOCIAL: &str = "10.250.2.2";
const NOBODY: &str = "10.250.2.3";
const CAREFUL: &str = "10.250.2.4";
const BLOCKED: &str = "10.250.2.5";
const GUEST6: &str = "fd00:250:1::2";
const GATEWAY6: &str = "fd00:250:1::1";
const SOCIAL6: &str = "fd00:250:2::2";
const NOBODY6: &str = "fd00:250:2::3";

static WORLDS: AtomicUsize = AtomicUsize::new(0);

/// Can this process make network namespaces? `Err`: why not (then the test
/// is skipped). A missing `nft` is not a reason: the test fails on it.
fn namespaces_possible() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not running as root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("no `ip` command (Debian package iproute2)".into()),
    }
}

/// Says that `test` was skipped and why, on the process's stderr itself (not
/// the test harness's captured output), so that a skip shows in every run.
fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED tests/transparent.rs {test}: network namespaces cannot be made here: {why}"
    );
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{cmd}`: {e}{}",
            if cmd == "nft" {
                " (install the Debian package nftables)"
            } else {
                " (install the Debian package iproute2)"
            }
        )
    });
    assert!(
        out.status.success(),
        "`{cmd} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tokio runtime on a thread inside a network namespace: every socket its
/// tasks open lives there. Stops when dropped.
struct NsRuntime {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl NsRuntime {
    fn enter(ns: &str) -> NsRuntime {
        let path = format!("/var/run/netns/{ns}");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                f.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            tx.send(rt.handle().clone()).unwrap();
            let _ = rt.block_on(stop_rx);
        });
        NsRuntime {
            handle: rx.recv().unwrap(),
            _stop: stop_tx,
        }
    }

    /// Runs `f` inside the namespace and waits for its output.
    async fn run<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        self.handle.spawn(f).await.unwrap()
    }
}

/// The namespaces, the gateway process and the upstreams of one test.
struct World {
    names: Vec<String>,
    gateway: Option<Child>,
    fx: Fixture,
    client: Option<NsRuntime>,
    gw: Option<NsRuntime>,
    up: Option<NsRuntime>,
    plain: Option<Upstream>,
    tls: Option<TlsUpstream>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.gateway.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.client.take();
        self.gw.take();
        self.up.take();
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

impl World {
    fn client(&self) -> &NsRuntime {
        self.client.as_ref().unwrap()
    }
    fn plain(&self) -> &Upstream {
        self.plain.as_ref().unwrap()
    }
    fn tls(&self) -> &TlsUpstream {
        self.tls.as_ref().unwrap()
    }
    fn http_port(&self) -> u16 {
        self.plain().addr.port()
    }
    fn tls_port(&self) -> u16 {
        self.tls().addr.port()
    }

    /// Makes the namespaces, the upstreams and the gateway; `None` when
    /// namespaces cannot be made here.
    async fn new(test: &str) -> Option<World> {
        World::with(test, false).await
    }

    /// [`World::new`]; `tproxy`: the router uses nftables `tproxy` (policy
    /// routing, no NAT) instead of `redirect`, and the gateway `tproxy: true`.
    async fn with(test: &str, tproxy: bool) -> Option<World> {
        if let Err(why) = namespaces_possible() {
            skipped(test, &why);
            return None;
        }
        let n = WORLDS.fetch_add(1, Ordering::SeqCst);
        let tag = format!("sgt{}x{n}", std::process::id());
        let (c, g, u) = (format!("{tag}c"), format!("{tag}g"), format!("{tag}u"));
        let mut world = World {
            names: Vec::new(),
            gateway: None,
            fx: Fixture::new(),
            client: None,
            gw: None,
            up: None,
            plain: None,
            tls: None,
        };
        assert!(
            Command::new("nft")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "the transparent-mode test needs `nft` (install the Debian package nftables)"
        );
        for ns in [&c, &g, &u] {
            let made = Command::new("ip")
                .args(["netns", "add", ns])
                .output()
                .unwrap();
            if !made.status.success() {
                // Root without the right to make namespaces (a restricted container).
                let why = String::from_utf8_lossy(&made.stderr);
                skipped(test, why.trim());
                return None;
            }
            world.names.push(ns.clone());
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        run(
            "ip",
            &[
                "link", "add", "name", "c0", "netns", &c, "type", "veth", "peer", "name", "g0",
                "netns", &g,
            ],
        );
        run(
            "ip",
            &[
                "link", "add", "name", "g1", "netns", &g, "type", "veth", "peer", "name", "u0",
                "netns", &u,
            ],
        );
        for (ns, dev, addrs) in [
            (&c, "c0", vec![GUEST, STRANGER, CHALLENGED, GUEST6]),
            (&g, "g0", vec![GATEWAY_CLIENT_SIDE, GATEWAY6]),
            (&g, "g1", vec!["10.250.2.1", "fd00:250:2::1"]),
            (
                &u,
                "u0",
                vec![SOCIAL, NOBODY, CAREFUL, BLOCKED, SOCIAL6, NOBODY6],
            ),
        ] {
            for a in addrs {
                if a.contains(':') {
                    // No duplicate address detection: usable at once.
                    let a = format!("{a}/64");
                    run("ip", &["-n", ns, "addr", "add", &a, "dev", dev, "nodad"]);
                } else {
                    run(
                        "ip",
                        &["-n", ns, "addr", "add", &format!("{a}/24"), "dev", dev],
                    );
                }
            }
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        // The client knows no proxy: its route to the sites is via the gateway.
        run(
            "ip",
            &[
                "-n",
                &c,
                "route",
                "add",
                "10.250.2.0/24",
                "via",
                GATEWAY_CLIENT_SIDE,
            ],
        );
        run(
            "ip",
            &[
                "-n",
                &c,
                "-6",
                "route",
                "add",
                "fd00:250:2::/64",
                "via",
                GATEWAY6,
            ],
        );
        world.client = Some(NsRuntime::enter(&c));
        world.gw = Some(NsRuntime::enter(&g));
        world.up = Some(NsRuntime::enter(&u));
        // The upstreams listen on every address of the upstream namespace
        // (the plain one on IPv6 and IPv4).
        let up = world.up.as_ref().unwrap();
        world.plain = Some(up.run(upstream_http("[::]")).await);
        world.tls = Some(
            up.run(tls_upstream_at(
                "0.0.0.0",
                "www.social.test",
                CertKind::Good,
            ))
            .await,
        );
        let (hp, tp) = (world.http_port(), world.tls_port());
        // The router redirects the client's web traffic (to the sites' ports,
        // and 80/443) to the gateway's transparent ports.
        let rules = if tproxy {
            // TPROXY: marked packets are delivered locally, to the socket
            // that took them; their destination address is left alone.
            run(
                "ip",
                &["-n", &g, "rule", "add", "fwmark", "1", "lookup", "100"],
            );
            run(
                "ip",
                &[
                    "-n",
                    &g,
                    "route",
                    "add",
                    "local",
                    "0.0.0.0/0",
                    "dev",
                    "lo",
                    "table",
                    "100",
                ],
            );
            format!(
                "table ip sgtest {{\n  chain pre {{\n    type filter hook prerouting priority mangle; policy accept;\n    iifname \"g0\" tcp dport {{ 80, {hp} }} tproxy to :3180 meta mark set 1 accept\n    iifname \"g0\" tcp dport {{ 443, {tp} }} tproxy to :3443 meta mark set 1 accept\n  }}\n}}\n"
            )
        } else {
            let mut rules = String::new();
            for family in ["ip", "ip6"] {
                rules.push_str(&format!(
                    "table {family} sgtest {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    iifname \"g0\" tcp dport {{ 80, {hp} }} redirect to :3180\n    iifname \"g0\" tcp dport {{ 443, {tp} }} redirect to :3443\n  }}\n}}\n"
                ));
            }
            rules
        };
        let rules_file = world.fx.write("rules.nft", &rules);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &g,
                "nft",
                "-f",
                &rules_file.display().to_string(),
            ],
        );
        world.start_gateway(&g, hp, tp, tproxy).await;
        Some(world)
    }

    async fn start_gateway(&mut self, ns: &str, hp: u16, tp: u16, tproxy: bool) {
        let dir = self.fx.dir.path().display().to_string();
        self.fx.write("policy.yaml", POLICY);
        self.fx.write("upstream-ca.pem", &self.tls().ca_pem);
        htpasswd(&self.fx, &[("alice", "alice-pass")]);
        let settings = format!(
            r#"listen: 127.0.0.1:3128
admin_listen: 127.0.0.1:9128
listen_transparent: {{ http: "[::]:3180", https: "[::]:3443", tproxy: {tproxy} }}
policy: {dir}/policy.yaml
ca: {{ cert: {dir}/ca.crt, key: {dir}/ca.key, create_if_missing: true }}
audit: {{ path: {dir}/audit.jsonl }}
identity:
  basic: {{ realm: "Test gateway", htpasswd: {dir}/users.htpasswd }}
  networks:
    - {{ cidr: {GUEST}/32, user: kiosk, groups: [guests] }}
    - {{ cidr: "{GUEST6}/128", user: kiosk, groups: [guests] }}
    - {{ cidr: {CHALLENGED}/32, user: lobby, groups: [], challenge: true }}
upstream:
  extra_roots: ["{dir}/upstream-ca.pem"]
  resolve: {{ www.social.test: {SOCIAL}, v6.social.test: "{SOCIAL6}", www.careful.test: {CAREFUL}, www.blocked.test: {BLOCKED} }}
  allow_destinations: [10.250.2.0/24, "fd00:250:2::/64"]
  allowed_ports: [80, 443, {hp}, {tp}]
"#
        );
        let config = self.fx.write("socialgate.yaml", &settings);
        let log = std::fs::File::create(self.fx.dir.path().join("gateway.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_socialgate"),
                "run",
                "--config",
            ])
            .arg(&config)
            .current_dir(self.fx.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.gateway = Some(child);
        // Ready when the admin port answers /readyz (asked from inside).
        for _ in 0..300 {
            if let Some(status) = self.gateway.as_mut().unwrap().try_wait().unwrap() {
                panic!("the gateway exited ({status}):\n{}", self.gateway_log());
            }
            let ready = self
                .gw
                .as_ref()
                .unwrap()
                .run(async {
                    let Ok(mut s) = tokio::net::TcpStream::connect("127.0.0.1:9128").await else {
                        return false;
                    };
                    let _ = s
                        .write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                        .await;
                    let mut out = Vec::new();
                    let _ = s.read_to_end(&mut out).await;
                    out.starts_with(b"HTTP/1.1 200")
                })
                .await;
            if ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not become ready:\n{}", self.gateway_log());
    }

    fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.fx.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// The gateway's CA certificate (made at its first start).
    fn gateway_ca(&self) -> Vec<u8> {
        std::fs::read(self.fx.dir.path().join("ca.crt")).unwrap()
    }

    /// The first audit record that `wanted` accepts (the log is written by
    /// a queue: read again until it is there, or fail showing the log).
    async fn audit_record(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let path = self.fx.dir.path().join("audit.jsonl");
        let mut text = String::new();
        for _ in 0..100 {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(r) = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|r| wanted(r))
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no such audit record in:\n{text}");
    }

    /// A metric's value from the admin port (0 when absent).
    async fn metric(&self, line_start: &str) -> f64 {
        let text = self
            .gw
            .as_ref()
            .unwrap()
            .run(async {
                let mut s = tokio::net::TcpStream::connect("127.0.0.1:9128")
                    .await
                    .unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = Vec::new();
                s.read_to_end(&mut out).await.unwrap();
                String::from_utf8_lossy(&out).into_owned()
            })
            .await;
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// A client with no proxy setting, from `source`, that finds each site at
    /// `resolve` and trusts `roots` (PEM).
    fn browser(source: &str, resolve: &[(&str, SocketAddr)], roots: &[&[u8]]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .local_address(source.parse::<std::net::IpAddr>().unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .tls_built_in_root_certs(false);
        for (host, addr) in resolve {
            b = b.resolve(host, *addr);
        }
        for pem in roots {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
        }
        b.build().unwrap()
    }

    /// Sends `req` from the client namespace: status, headers, body; `Err`
    /// when the connection failed.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, String), String> {
        self.client()
            .run(async move {
                let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp.text().await.map_err(|e| e.to_string())?;
                Ok((status, headers, body))
            })
            .await
    }
}

fn at(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[tokio::test]
async fn plain_http_is_decided_by_host_and_sent_to_the_original_destination() {
    let Some(w) = World::new("plain_http").await else {
        return;
    };
    let hp = w.http_port();
    let resolve = [
        ("www.social.test", at(SOCIAL, hp)),
        ("www.blocked.test", at(BLOCKED, hp)),
    ];
    let guest = World::browser(GUEST, &resolve, &[]);

    // An allowed site: the upstream at the original destination gets the request.
    let (status, _, body) = w
        .send(guest.get(format!("http://www.social.test:{hp}/feed?x=1")))
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from upstream"),
        "{}",
        w.gateway_log()
    );
    let seen = w.plain().requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "/feed?x=1");
    assert_eq!(
        seen[0].headers["host"],
        format!("www.social.test:{hp}").as_str()
    );

    // A denied site: the block page, and nothing reaches the upstream.
    let (status, headers, body) = w
        .send(
            guest
                .get(format!("http://www.blocked.test:{hp}/"))
                .header("accept", "text/html"),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        body.contains("everyone-else") && body.contains("blocked"),
        "{body}"
    );
    assert!(headers.contains_key("x-socialgate-reference"));
    assert_eq!(
        w.plain().count(),
        1,
        "the denied request reached the upstream"
    );

    // Host spoofing: Host names the allowed site, the packets go to another
    // address (where an upstream listens too). Refused; nothing is sent.
    let spoofer = World::browser(GUEST, &[("www.social.test", at(NOBODY, hp))], &[]);
    let (status, _, body) = w
        .send(spoofer.get(format!("http://www.social.test:{hp}/feed")))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("destination-guard"), "{body}");
    assert_eq!(
        w.plain().count(),
        1,
        "the spoofed request reached an upstream"
    );
    assert_eq!(
        w.metric("socialgate_destination_denied_total{reason=\"host-mismatch\"}")
            .await,
        1.0
    );

    // The same over IPv6 (IP6T_SO_ORIGINAL_DST): allowed, then spoofed.
    let guest6 = World::browser(GUEST6, &[("v6.social.test", at(SOCIAL6, hp))], &[]);
    let (status, _, body) = w
        .send(guest6.get(format!("http://v6.social.test:{hp}/six")))
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from upstream"),
        "{}",
        w.gateway_log()
    );
    assert_eq!(w.plain().count(), 2);
    assert_eq!(w.plain().requests()[1].uri, "/six");
    let spoofer6 = World::browser(GUEST6, &[("v6.social.test", at(NOBODY6, hp))], &[]);
    let (status, _, body) = w
        .send(spoofer6.get(format!("http://v6.social.test:{hp}/six")))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        w.plain().count(),
        2,
        "the spoofed request reached an upstream"
    );
    assert_eq!(
        w.metric("socialgate_destination_denied_total{reason=\"host-mismatch\"}")
            .await,
        2.0
    );

    // A client no identity source knows: 403, never a 407, though Basic is
    // configured (it does not know it talks to a proxy).
    let stranger = World::browser(STRANGER, &resolve, &[]);
    let (status, headers, body) = w
        .send(stranger.get(format!("http://www.social.test:{hp}/feed")))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(!headers.contains_key("proxy-authenticate"));
    assert!(body.contains("does not know this computer"), "{body}");
    assert_eq!(w.plain().count(), 2);

    // A network entry that would ask for a sign-in on a denial: here the
    // block page instead (the client cannot sign in to a proxy it does not know).
    let challenged = World::browser(CHALLENGED, &resolve, &[]);
    let (status, headers, body) = w
        .send(challenged.get(format!("http://www.social.test:{hp}/feed")))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(!headers.contains_key("proxy-authenticate"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["rule"], "everyone-else", "{body}");

    // A loop: a redirected connection to the gateway's own address, and one
    // straight to its transparent port.
    let gateway_itself = World::browser(GUEST, &[], &[]);
    for url in [
        format!("http://{GATEWAY_CLIENT_SIDE}/"),
        format!("http://{GATEWAY_CLIENT_SIDE}:3180/"),
    ] {
        let (status, _, body) = w.send(gateway_itself.get(&url)).await.unwrap();
        assert_eq!(status, 403, "{url}: {body}");
        assert!(body.contains("destination-guard"), "{url}: {body}");
    }
    assert_eq!(
        w.metric("socialgate_destination_denied_total{reason=\"gateway\"}")
            .await,
        2.0
    );
    assert_eq!(w.plain().count(), 2);

    // The spoofed request is in the audit log: who, which host, why.
    let spoof_record = w
        .audit_record(|r| {
            r["host"] == "www.social.test" && r["status"] == 403 && r["rule"] == "destination-guard"
        })
        .await;
    assert_eq!(spoof_record["client_ip"], GUEST, "{spoof_record}");
    assert_eq!(spoof_record["user"], "kiosk", "{spoof_record}");
    assert_eq!(spoof_record["action"], "deny", "{spoof_record}");

    // Decisions are counted as on the proxy port (IPv4 and IPv6 reads).
    assert_eq!(
        w.metric("socialgate_requests_total{action=\"allow\",activity=\"read\",role=\"guests\",site=\"social\"}")
            .await,
        2.0
    );
    assert_eq!(
        w.metric("socialgate_requests_total{action=\"deny\",activity=\"read\",role=\"guests\",site=\"blocked\"}")
            .await,
        1.0
    );
}

/// A TLS handshake from the client namespace to `addr` with `server_name`
/// (an IP address: no SNI is sent), trusting `root`; then one GET. The
/// response, or why there was none.
async fn tls_get(
    w: &World,
    addr: SocketAddr,
    server_name: &str,
    root: Vec<u8>,
) -> Result<String, String> {
    let name = server_name.to_string();
    w.client()
        .run(async move {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile_certs(&root) {
                roots.add(c).unwrap();
            }
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
            let local = SocketAddr::new(GUEST.parse().unwrap(), 0);
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(local).unwrap();
            let tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
            let sn = rustls::pki_types::ServerName::try_from(name.clone()).unwrap();
            let mut tls = connector
                .connect(sn, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tls.write_all(
                format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            let _ = tls.read_to_end(&mut out).await;
            if out.is_empty() {
                return Err("no response".into());
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        })
        .await
}

/// The certificates of a PEM bundle.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

#[tokio::test]
async fn tls_is_decided_by_sni_intercepted_or_relayed_to_the_original_destination() {
    let Some(w) = World::new("tls").await else {
        return;
    };
    let tp = w.tls_port();
    let gateway_ca = w.gateway_ca();
    let upstream_ca = w.tls().ca_pem.clone().into_bytes();

    // No SNI (the client names an address): refused before anything is sent.
    let got = tls_get(&w, at(NOBODY, tp), NOBODY, gateway_ca.clone()).await;
    assert!(got.is_err(), "{got:?}");
    assert_eq!(w.tls().count(), 0);
    assert_eq!(
        w.metric("socialgate_destination_denied_total{reason=\"ip-literal\"}")
            .await,
        1.0,
        "{}",
        w.gateway_log()
    );

    let refused = w
        .audit_record(|r| r["method"] == "CONNECT" && r["host"] == NOBODY)
        .await;
    assert_eq!(refused["rule"], "destination-guard", "{refused}");
    assert_eq!(refused["user"], "kiosk", "{refused}");

    let resolve = [
        ("www.social.test", at(SOCIAL, tp)),
        ("www.blocked.test", at(BLOCKED, tp)),
        ("www.careful.test", at(CAREFUL, tp)),
    ];
    // An intercepted, allowed site: the client trusts the gateway's CA.
    let guest = World::browser(GUEST, &resolve, &[&gateway_ca]);
    let (status, _, body) = w
        .send(guest.get(format!("https://www.social.test:{tp}/feed")))
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from the social site"),
        "{}",
        w.gateway_log()
    );
    let seen = w.tls().requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].uri.ends_with("/feed"), "{seen:?}");

    // Inside it, a denied activity is the block page (JSON for a non-page request).
    let (status, _, body) = w
        .send(
            guest
                .post(format!("https://www.social.test:{tp}/api/posts"))
                .body("hi"),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["rule"], "everyone-else");
    assert_eq!(json["activity"], "post");

    // A denied, intercepted site: the block page under the gateway's leaf.
    let (status, headers, body) = w
        .send(
            guest
                .get(format!("https://www.blocked.test:{tp}/"))
                .header("accept", "text/html"),
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(body.contains("everyone-else"), "{body}");
    assert_eq!(
        w.tls().count(),
        1,
        "the denied requests reached the upstream"
    );

    // A site that is not intercepted: relayed, the client's TLS goes to the
    // site itself (it trusts the site's CA, not the gateway's).
    let direct = World::browser(GUEST, &resolve, &[&upstream_ca]);
    let (status, _, body) = w
        .send(direct.get(format!("https://www.careful.test:{tp}/page")))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "hello from the social site"));
    assert_eq!(w.tls().count(), 2);
    assert!(w.tls().requests()[1].uri.ends_with("/page"));

    // SNI spoofing: a name whose addresses are elsewhere. Relayed site: the
    // connection is closed; intercepted site: the inner request is refused.
    let spoof = [
        ("www.careful.test", at(NOBODY, tp)),
        ("www.social.test", at(NOBODY, tp)),
    ];
    let relayed = World::browser(GUEST, &spoof, &[&upstream_ca]);
    let got = w
        .send(relayed.get(format!("https://www.careful.test:{tp}/")))
        .await;
    assert!(got.is_err(), "{got:?}");
    let intercepted = World::browser(GUEST, &spoof, &[&gateway_ca]);
    let (status, _, body) = w
        .send(intercepted.get(format!("https://www.social.test:{tp}/feed")))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("destination-guard"), "{body}");
    assert_eq!(
        w.tls().count(),
        2,
        "a spoofed connection reached the upstream"
    );
    assert_eq!(
        w.metric("socialgate_destination_denied_total{reason=\"host-mismatch\"}")
            .await,
        2.0
    );

    // A loop: TLS redirected to the gateway's own address.
    let got = tls_get(
        &w,
        at(GATEWAY_CLIENT_SIDE, 443),
        "www.social.test",
        gateway_ca.clone(),
    )
    .await;
    assert!(got.is_err(), "{got:?}");
    assert_eq!(
        w.metric("socialgate_destination_denied_total{reason=\"gateway\"}")
            .await,
        1.0
    );
}

/// Under TPROXY the connection keeps its destination as its local address:
/// the same decisions, the same Host check, the same pinned dial.
#[tokio::test]
async fn tproxy_connections_are_decided_as_redirected_ones() {
    let Some(w) = World::with("tproxy", true).await else {
        return;
    };
    let (hp, tp) = (w.http_port(), w.tls_port());
    let guest = World::browser(
        GUEST,
        &[
            ("www.social.test", at(SOCIAL, hp)),
            ("www.blocked.test", at(BLOCKED, hp)),
        ],
        &[],
    );
    let (status, _, body) = w
        .send(guest.get(format!("http://www.social.test:{hp}/feed")))
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "hello from upstream"),
        "{}",
        w.gateway_log()
    );
    assert_eq!(w.plain().count(), 1);
    let (status, _, _) = w
        .send(guest.get(format!("http://www.blocked.test:{hp}/")))
        .await
        .unwrap();
    assert_eq!(status, 403);
    let spoofer = World::browser(GUEST, &[("www.social.test", at(NOBODY, hp))], &[]);
    let (status, _, body) = w
        .send(spoofer.get(format!("http://www.social.test:{hp}/feed")))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        w.plain().count(),
        1,
        "the spoofed request reached an upstream"
    );
    let gateway_ca = w.gateway_ca();
    let tls = World::browser(
        GUEST,
        &[("www.social.test", at(SOCIAL, tp))],
        &[&gateway_ca],
    );
    let (status, _, body) = w
        .send(tls.get(format!("https://www.social.test:{tp}/feed")))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "hello from the social site"));
    assert_eq!(w.tls().count(), 1);
    assert_eq!(
        w.metric("socialgate_destination_denied_total{reason=\"host-mismatch\"}")
            .await,
        1.0
    );
}
