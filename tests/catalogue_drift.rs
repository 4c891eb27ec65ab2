//! Catalogue drift, as operators see it: a request that matcher #N of an
//! activity names shows `matched: site/activity#N` in the audit and moves
//! `socialgate_catalogue_matches_total{site,activity,matcher="N"}`; a request no
//! matcher names moves `socialgate_activity_fallback_total{site,kind}`; a reload
//! retires the series of a matcher that is gone. Then `socialgate catalogue
//! report` reads the audit log this gateway wrote (plain and gzip). Last, the
//! shipped Mastodon and Bluesky site files recognised by their API paths on a
//! host of no site (`api_path_sites`): their denials apply there, nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::io::Write;

use support::*;

const POLICY: &str = r#"
version: 1
roles:
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [www.social.test]
    intercept: false
    activities:
      read:
        - { method: POST, path: /api/feed }
      post:
        - { method: POST, path: /api/v1/posts }
        - { method: POST, path: /api/v2/posts }
      comment:
        - { method: POST, path_regex: '/api/v[12]/posts/[0-9]+/comments' }
rules:
  - { name: staff-social, roles: [staff], sites: [social], action: allow }
  - { name: other-websites, sites: [unlisted], action: allow }
  - { name: everyone-else, action: deny }
"#;

/// Settings; `other_port` is an upstream for the unlisted www.other.test on
/// 127.0.0.2 (an address of its own, so it is not taken for the site's).
fn settings(up_port: u16, other_port: u16) -> String {
    format!(
        r#"
admin_listen: 127.0.0.1:0
identity:
  basic: {{ realm: "Test", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ all-staff: [bob] }}
upstream:
  resolve: {{ www.social.test: 127.0.0.1, www.other.test: 127.0.0.2 }}
  allow_destinations: [127.0.0.1/32, 127.0.0.2/32]
  allowed_ports: [80, 443, {up_port}, {other_port}]
"#
    )
}

/// `name{labels}` -> value, from the Prometheus text format.
fn scrape(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn matches(site: &str, activity: &str, matcher: &str) -> String {
    format!(
        "socialgate_catalogue_matches_total{{activity=\"{activity}\",matcher=\"{matcher}\",site=\"{site}\"}}"
    )
}

fn fallback(site: &str, kind: &str) -> String {
    format!("socialgate_activity_fallback_total{{kind=\"{kind}\",site=\"{site}\"}}")
}

async fn send_all(bob: &reqwest::Client, base: &str, requests: &[(&str, &str)]) {
    for (method, path) in requests {
        let r = bob
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .body(if *method == "GET" { "" } else { "x" })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method} {path}");
    }
}

fn audit_lines(fx: &Fixture) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_matcher_that_named_a_request_is_audited_and_counted() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let other = upstream_http("127.0.0.2").await;
    let gw = gateway(&fx, &settings(up.addr.port(), other.addr.port()), POLICY).await;

    // Before any traffic every matcher's series is there, at zero.
    let before = scrape(&admin_metrics(&gw).await);
    for (activity, n) in [
        ("read", "0"),
        ("post", "0"),
        ("post", "1"),
        ("comment", "0"),
    ] {
        assert_eq!(
            before.get(&matches("social", activity, n)),
            Some(&0.0),
            "{activity}#{n}"
        );
    }
    assert_eq!(before.get(&fallback("social", "write")), Some(&0.0));

    let bob = client(&gw, Some(("bob", "bob-pass")));
    let base = format!("http://www.social.test:{}", up.addr.port());
    send_all(
        &bob,
        &base,
        &[
            ("POST", "/api/v2/posts"),
            ("POST", "/api/v2/posts"),
            ("POST", "/api/v1/posts/12345/comments"),
            ("POST", "/api/feed"),
            ("POST", "/api/v3/things/12345"),
            ("GET", "/home"),
        ],
    )
    .await;
    // An unlisted host is not the catalogue's: no drift series.
    send_all(
        &bob,
        &format!("http://www.other.test:{}", other.addr.port()),
        &[("POST", "/api/v2/posts")],
    )
    .await;
    assert_eq!(
        (up.count(), other.count()),
        (6, 1),
        "every request reached its upstream"
    );

    let text = admin_metrics(&gw).await;
    let after = scrape(&text);
    assert_eq!(after[&matches("social", "post", "1")], 2.0, "{text}");
    assert_eq!(after[&matches("social", "post", "0")], 0.0);
    assert_eq!(after[&matches("social", "comment", "0")], 1.0);
    assert_eq!(after[&matches("social", "read", "0")], 1.0);
    assert_eq!(after[&fallback("social", "write")], 1.0);
    assert_eq!(after[&fallback("social", "read")], 1.0);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("socialgate_activity_fallback_total")
                && l.contains("site=\"unlisted\"")),
        "{text}"
    );

    gw.gateway.audit.flush().await;
    let lines = audit_lines(&fx);
    let got: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["activity"].as_str().unwrap().to_string(),
                l["matched"]
                    .as_str()
                    .expect("`matched` in every record")
                    .to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("/api/v2/posts", "post", "social/post#1"),
        ("/api/v2/posts", "post", "social/post#1"),
        (
            "/api/v1/posts/12345/comments",
            "comment",
            "social/comment#0",
        ),
        ("/api/feed", "read", "social/read#0"),
        ("/api/v3/things/12345", "write", ""),
        ("/home", "read", ""),
        ("/api/v2/posts", "write", ""),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_reload_retires_the_series_of_a_matcher_that_is_gone() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let gw = gateway(&fx, &settings(up.addr.port(), 1), POLICY).await;
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let base = format!("http://www.social.test:{}", up.addr.port());
    send_all(&bob, &base, &[("POST", "/api/v1/posts")]).await;

    // The v1 matcher is removed: v2 becomes post#0.
    let next = POLICY.replace("        - { method: POST, path: /api/v1/posts }\n", "");
    assert_ne!(next, POLICY);
    fx.write("policy.yaml", &next);
    assert!(gw.reload(), "the new policy loads");
    let m = scrape(&admin_metrics(&gw).await);
    assert_eq!(
        m.get(&matches("social", "post", "1")),
        None,
        "post#1 is gone"
    );
    assert_eq!(
        m.get(&matches("social", "post", "0")),
        Some(&1.0),
        "post#0 stays"
    );

    send_all(&bob, &base, &[("POST", "/api/v2/posts")]).await;
    let m = scrape(&admin_metrics(&gw).await);
    assert_eq!(m[&matches("social", "post", "0")], 2.0);
    gw.gateway.audit.flush().await;
    let lines = audit_lines(&fx);
    assert_eq!(lines.last().unwrap()["matched"], "social/post#0");
}

fn socialgate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_socialgate"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_report_reads_the_audit_log_of_a_real_gateway_run() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let gw = gateway(&fx, &settings(up.addr.port(), 1), POLICY).await;
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let base = format!("http://www.social.test:{}", up.addr.port());
    send_all(
        &bob,
        &base,
        &[
            ("POST", "/api/v2/posts"),
            ("POST", "/api/feed"),
            ("POST", "/api/v3/things/12345"),
            ("POST", "/api/v3/things/67890"),
            ("POST", "/api/v3/users/a1b2c3d4e5f6a7b8c9d0/block"),
            ("GET", "/home"),
        ],
    )
    .await;
    gw.gateway.audit.flush().await;
    let plain = fx.path("audit.jsonl");
    // Half of the period rotated and compressed, as logrotate leaves it (the
    // name says nothing: gzip is told by its magic bytes).
    let text = std::fs::read(&plain).unwrap();
    let split = text.iter().position(|b| *b == b'\n').unwrap() + 1;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text[..split]).unwrap();
    let rotated = fx.dir.path().join("audit.jsonl.1");
    std::fs::write(&rotated, gz.finish().unwrap()).unwrap();
    std::fs::write(&plain, &text[split..]).unwrap();
    let rotated = rotated.display().to_string();
    let policy = fx.path("policy.yaml");

    let out = socialgate(&[
        "catalogue",
        "report",
        "--policy",
        &policy,
        "--json",
        &rotated,
        &plain,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("--json parses");
    assert_eq!(report["records"], 6, "{report}");
    let site = report["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "social")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(site["requests"], 6);
    assert_eq!(
        site["activities"],
        serde_json::json!({"post": 1, "read": 2, "write": 3}),
        "{site}"
    );
    assert_eq!(
        site["fallback_write"],
        serde_json::json!([
            {"method": "POST", "host": "www.social.test", "template": "/api/v3/things/{id}", "count": 2},
            {"method": "POST", "host": "www.social.test", "template": "/api/v3/users/{id}/block", "count": 1},
        ]),
        "{site}"
    );
    // post#0 (v1) and comment#0 matched nothing in the period; post#1 and read#0 did.
    assert_eq!(
        site["unmatched"],
        serde_json::json!(["social/post#0", "social/comment#0"]),
        "{site}"
    );

    let out = socialgate(&["catalogue", "report", "--policy", &policy, &rotated, &plain]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for expected in [
        "social",
        "POST www.social.test/api/v3/things/{id}",
        "social/comment#0",
        "6 record(s)",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }

    // Not an audit log: a clear error naming the file and line, exit 1.
    let bad = fx.write(
        "not-audit.jsonl",
        "{\"site\":\"social\",\"activity\":\"read\"}\nnot json\n",
    );
    let out = socialgate(&[
        "catalogue",
        "report",
        "--policy",
        &policy,
        &bad.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-audit.jsonl:2"), "{err}");
}

/// The shipped Mastodon and Bluesky files, opted in by `api_path_sites` (or not).
fn fediverse_policy(opt_in: bool) -> String {
    let sites = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/sites");
    format!(
        r#"
version: 1
{}include: ["{}/mastodon.yaml", "{}/bluesky.yaml"]
roles:
  press-office: {{ groups: [communications] }}
  staff: {{ groups: [all-staff] }}
rules:
  - {{ name: press-fediverse, roles: [press-office], sites: [mastodon, bluesky], action: allow }}
  - {{ name: no-fediverse, sites: [mastodon, bluesky], action: deny }}
  - {{ name: other-websites, sites: [unlisted], action: allow }}
"#,
        if opt_in {
            "api_path_sites: [mastodon, bluesky]\n"
        } else {
            ""
        },
        sites.display(),
        sites.display()
    )
}

#[tokio::test]
async fn a_host_of_no_site_on_mastodon_or_bluesky_api_paths_gets_their_denials_only() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass"), ("alice", "alice-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let instance = upstream_http("127.0.0.2").await;
    let settings = settings(up.addr.port(), instance.addr.port()).replace(
        "group_members: { all-staff: [bob] }",
        "group_members: { all-staff: [bob, alice], communications: [alice] }",
    );
    let gw = gateway(&fx, &settings, &fediverse_policy(true)).await;
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let alice = client(&gw, Some(("alice", "alice-pass")));
    let base = format!("http://www.other.test:{}", instance.addr.port());
    let status = |r: reqwest::Response| r.status().as_u16();

    // Staff may not use Mastodon: on a host of no site, its API is refused too.
    let r = bob
        .post(format!("{base}/api/v1/statuses"))
        .form(&[("status", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403);
    // A Bluesky post, named by the body (read for the bluesky matchers).
    let r = bob
        .post(format!("{base}/xrpc/com.atproto.repo.createRecord"))
        .json(&serde_json::json!({"collection": "app.bsky.feed.post", "record": {"text": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403);
    assert_eq!(instance.count(), 0, "nothing refused reached the host");
    // Other paths of that host, and the press office (allowed on Mastodon), as before.
    assert_eq!(
        status(bob.get(format!("{base}/about")).send().await.unwrap()),
        200
    );
    let r = alice
        .post(format!("{base}/api/v1/statuses"))
        .form(&[("status", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    assert_eq!(instance.count(), 2);

    gw.gateway.audit.flush().await;
    let lines = audit_lines(&fx);
    let got: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (s("site"), s("activity"), s("rule"), s("matched"))
        })
        .collect();
    let want = [
        ("mastodon", "post", "no-fediverse", "mastodon/post#0"),
        ("bluesky", "post", "no-fediverse", "bluesky/post#0"),
        ("unlisted", "read", "other-websites", ""),
        ("unlisted", "write", "other-websites", ""),
    ];
    let want: Vec<(String, String, String, String)> = want
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    assert_eq!(got, want);

    // Without the opt-in the host is only unlisted: the same post goes through.
    fx.write("policy.yaml", &fediverse_policy(false));
    assert!(gw.reload());
    let r = bob
        .post(format!("{base}/api/v1/statuses"))
        .form(&[("status", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    assert_eq!(instance.count(), 3);
}

#[test]
fn catalogue_check_names_hosts_of_no_site_that_use_a_sites_api_paths() {
    let fx = Fixture::new();
    let entry = |method: &str, url: &str| serde_json::json!({"request": {"method": method, "url": url, "headers": []}});
    let har = serde_json::json!({"log": {"entries": [
        entry("POST", "https://social.council.example/api/v1/statuses"),
        entry("GET", "https://social.council.example/api/v1/timelines/home"),
        entry("POST", "https://pds.example.net/xrpc/com.atproto.repo.createRecord"),
        entry("GET", "https://www.example.org/api/v1/other"),
        entry("POST", "https://mastodon.social/api/v1/statuses"),
    ]}});
    let file = fx.write("fedi.har", &har.to_string());
    let policy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.yaml");
    let out = socialgate(&[
        "catalogue",
        "check",
        "--policy",
        &policy.display().to_string(),
        "--json",
        &file.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["api_path_hosts"],
        serde_json::json!([
            {"host": "pds.example.net", "looks_like": "bluesky", "count": 1},
            {"host": "social.council.example", "looks_like": "mastodon", "count": 2},
        ]),
        "{stdout}"
    );
    // The listed instance is the site itself, named by its matcher.
    let listed = &v["requests"][4];
    assert_eq!(
        (listed["site"].as_str(), listed["matched"].as_str()),
        (Some("mastodon"), Some("mastodon/post#0"))
    );
}
