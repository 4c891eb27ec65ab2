//! Accounts: a real gateway reads which social account a request is made as
//! (the site's `account:` cookie) and the policy's `accounts:` rules decide on
//! it. The press office posts with the council account's session cookie and is
//! allowed; the same post from a personal account, or from no readable account,
//! is denied and never reaches the site; staff signed in as the council account
//! are refused even reading. The audit records `SET:ID` for the council's
//! account and `other`/`unknown` otherwise, never the personal id; the metric
//! `socialgate_account_requests_total` counts by set name. `explain --account`
//! and `replay` (which carries the recorded account) agree. The same inside an
//! intercepted TLS tunnel; and the catalogue's readers, through the default
//! policy, read each site's real cookie or token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;

use serde_json::Value;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_socialgate");
const COUNCIL: &str = "1450000000000000000";
const PERSONAL: &str = "998877665544332211";

fn policy(council_id: &str) -> String {
    format!(
        r#"
version: 1
roles:
  press-office: {{ groups: [communications] }}
  staff: {{ groups: [all-staff] }}
accounts:
  council-official: {{ social: ["{council_id}"] }}
sites:
  social:
    domains: [www.social.test]
    activities:
      post: [{{ method: POST, path: /post }}]
    account: {{ cookie: twid, pattern: 'u%3D([0-9]+)' }}
rules:
  - {{ name: press-posts-only-as-council, roles: [press-office], sites: [social], activities: [post],
      accounts: [other, unknown], action: deny }}
  - {{ name: press-office-posts, roles: [press-office], sites: [social], action: allow }}
  - {{ name: council-accounts-press-office-only, sites: [social], accounts: [council-official], action: deny }}
  - {{ name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }}
  - {{ name: everyone-else, action: deny }}
"#
    )
}

fn settings(port: u16) -> String {
    format!(
        r#"
admin_listen: 127.0.0.1:0
identity:
  basic: {{ realm: "Test", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [alice, bob] }}
upstream:
  resolve: {{ www.social.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, 443, {port}]
"#
    )
}

fn twid(id: &str) -> String {
    format!("lang=en; twid=u%3D{id}; ct0=abc")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_press_office_posts_only_as_the_council_and_personal_ids_are_never_recorded() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "a-pass"), ("bob", "b-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let port = up.addr.port();
    let gw = gateway(&fx, &settings(port), &policy(COUNCIL)).await;
    let base = format!("http://www.social.test:{port}");
    let alice = client(&gw, Some(("alice", "a-pass")));
    let bob = client(&gw, Some(("bob", "b-pass")));

    let post = |cookie: Option<String>| {
        let mut r = alice
            .post(format!("{base}/post"))
            .body("Bin collections resume on Monday");
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    // As the council's account: allowed, and the site receives it.
    let r = post(Some(twid(COUNCIL))).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.count(), 1);
    // The same post from a personal account, and from no readable account: denied.
    let r = post(Some(twid(PERSONAL))).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["rule"], "press-posts-only-as-council", "{body}");
    let r = post(None).await.unwrap();
    assert_eq!(r.status(), 403);
    // Two twid cookies: ambiguous, so unknown, so denied.
    let r = post(Some(format!("twid=u%3D{COUNCIL}; twid=u%3D{PERSONAL}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(up.count(), 1, "no denied post reached the site");
    // Staff signed in as the council's account: refused even reading; as
    // themselves they read.
    let read = |id: &str| {
        bob.get(format!("{base}/feed"))
            .header("cookie", twid(id))
            .send()
    };
    let r = read(COUNCIL).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["rule"], "council-accounts-press-office-only", "{body}");
    assert_eq!(read(PERSONAL).await.unwrap().status(), 200);
    gw.gateway.audit.flush().await;

    // The audit: the council's account by set and id, others only as a word.
    let text = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    assert!(
        !text.contains(PERSONAL),
        "a personal account id in the audit:\n{text}"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, &str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["user"].as_str().unwrap(),
                l["action"].as_str().unwrap(),
                l["rule"].as_str().unwrap(),
                l["account"].as_str().unwrap(),
            )
        })
        .collect();
    let council = format!("council-official:{COUNCIL}");
    assert_eq!(
        seen,
        vec![
            ("alice", "allow", "press-office-posts", council.as_str()),
            ("alice", "deny", "press-posts-only-as-council", "other"),
            ("alice", "deny", "press-posts-only-as-council", "unknown"),
            ("alice", "deny", "press-posts-only-as-council", "unknown"),
            (
                "bob",
                "deny",
                "council-accounts-press-office-only",
                council.as_str()
            ),
            ("bob", "allow", "staff-read", "other"),
        ]
    );

    // The metric, by set name, `other` and `unknown`; never an id.
    let metrics = admin_metrics(&gw).await;
    assert!(
        !metrics.contains(PERSONAL) && !metrics.contains(COUNCIL),
        "{metrics}"
    );
    let values: HashMap<&str, f64> = metrics
        .lines()
        .filter(|l| l.starts_with("socialgate_account_requests_total{"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let key = |account: &str, action: &str, activity: &str| {
        format!(
            r#"socialgate_account_requests_total{{account="{account}",action="{action}",activity="{activity}",site="social"}}"#
        )
    };
    let expected = [
        (key("council-official", "allow", "post"), 1.0),
        (key("other", "deny", "post"), 1.0),
        (key("unknown", "deny", "post"), 2.0),
        (key("council-official", "deny", "read"), 1.0),
        (key("other", "allow", "read"), 1.0),
    ];
    assert_eq!(values.len(), expected.len(), "{values:?}");
    for (k, v) in &expected {
        assert_eq!(values.get(k.as_str()), Some(v), "{k} in {values:?}");
    }

    // Replay carries the recorded account: under a draft whose council set holds
    // another id, the council's records become `other` and change; nothing else.
    let audit = fx.dir.path().join("audit.jsonl").display().to_string();
    let draft = fx.write("draft.yaml", &policy("111")).display().to_string();
    let (code, out, err) = run(&["replay", "--policy", &draft, "--json", &audit]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["records"], 6, "{out}");
    assert_eq!(v["changed"], 2, "{out}");
    let mut changes: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["from"]["rule"].to_string(), c["to"]["rule"].to_string()))
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            (
                "\"council-accounts-press-office-only\"".to_string(),
                "\"staff-read\"".to_string()
            ),
            (
                "\"press-office-posts\"".to_string(),
                "\"press-posts-only-as-council\"".to_string()
            ),
        ]
    );
}

#[test]
fn explain_takes_the_account_or_reads_it_from_the_headers() {
    let fx = Fixture::new();
    let p = fx
        .write("policy.yaml", &policy(COUNCIL))
        .display()
        .to_string();
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--policy",
            &p,
            "--user",
            "alice",
            "--group",
            "communications",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["POST", "https://www.social.test/post"]);
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        (
            v["action"].as_str().unwrap().to_string(),
            v["rule"].as_str().unwrap().to_string(),
            v["account"].as_str().unwrap().to_string(),
        )
    };
    let council = format!("council-official:{COUNCIL}");
    assert_eq!(
        explain(&["--account", COUNCIL]),
        ("allow".into(), "press-office-posts".into(), council.clone())
    );
    assert_eq!(
        explain(&["--account", PERSONAL]),
        (
            "deny".into(),
            "press-posts-only-as-council".into(),
            "other".into()
        )
    );
    assert_eq!(
        explain(&["--account", "unknown"]),
        (
            "deny".into(),
            "press-posts-only-as-council".into(),
            "unknown".into()
        )
    );
    let cookie = format!("cookie: {}", twid(COUNCIL));
    assert_eq!(
        explain(&["--header", &cookie]),
        ("allow".into(), "press-office-posts".into(), council)
    );
    // The text form names the account too.
    let (_, out, _) = run(&[
        "explain",
        "--policy",
        &p,
        "--user",
        "bob",
        "--group",
        "all-staff",
        "--account",
        PERSONAL,
        "GET",
        "https://www.social.test/feed",
    ]);
    assert!(out.contains("account:  other"), "{out}");
    assert!(!out.contains(PERSONAL), "{out}");
}

/// The catalogue's `account:` readers, through the default policy and its
/// example `council-official` ids: each site's real cookie or token names the
/// account; a site that cannot tell is `unknown`; a personal account is `other`.
#[test]
fn the_catalogue_reads_each_sites_signed_in_account() {
    use base64::Engine as _;
    use socialgate::policy::selftest::TestRequest;
    use socialgate::policy::{load_policy, sources::FsFiles};

    let policy = load_policy("policies/default.yaml", &FsFiles).unwrap_or_else(|e| panic!("{e}"));
    let token = |claims: String| {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
        format!("Bearer eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NksifQ.{payload}.c2lnbmF0dXJl")
    };
    let jwt = |sub: &str| token(format!(r#"{{"scope":"com.atproto.access","sub":"{sub}"}}"#));
    // A service-auth token (video uploads): the account is its issuer.
    let service = token(
        r#"{"iss":"did:plc:council-example","aud":"did:web:video.bsky.app","lxm":"app.bsky.video.uploadVideo"}"#
            .to_string(),
    );
    let cases: Vec<(&str, (&str, String), &str)> = vec![
        (
            "https://x.com/home",
            ("cookie", twid(COUNCIL)),
            "council-official:1450000000000000000",
        ),
        (
            "https://api.x.com/graphql/abc/UserByScreenName",
            ("cookie", twid(COUNCIL)),
            "council-official:1450000000000000000",
        ),
        ("https://x.com/home", ("cookie", twid(PERSONAL)), "other"),
        (
            "https://pro.x.com/",
            ("cookie", twid(COUNCIL)),
            "council-official:1450000000000000000",
        ),
        (
            "https://www.facebook.com/",
            ("cookie", "c_user=100064123456789; xs=1%3Aabc".into()),
            "council-official:100064123456789",
        ),
        // Switched into the Page: `i_user` is the Page, read before the person's `c_user`.
        (
            "https://www.facebook.com/",
            (
                "cookie",
                "c_user=100001234; i_user=100064123456789; xs=1%3Aabc".into(),
            ),
            "council-official:100064123456789",
        ),
        (
            "https://www.facebook.com/",
            ("cookie", "c_user=100001234; xs=1%3Aabc".into()),
            "other",
        ),
        (
            "https://business.facebook.com/latest/home",
            ("cookie", "c_user=100064123456789".into()),
            "council-official:100064123456789",
        ),
        (
            "https://www.instagram.com/",
            (
                "cookie",
                "csrftoken=x; sessionid=1234567890%3AAbCdEf%3A17%3AAYc; ds_user_id=1234567890"
                    .into(),
            ),
            "council-official:1234567890",
        ),
        // Only the session's own prefix counts, not `ds_user_id`.
        (
            "https://www.instagram.com/",
            (
                "cookie",
                "sessionid=555%3AAbCdEf%3A17; ds_user_id=1234567890".into(),
            ),
            "other",
        ),
        (
            "https://bsky.social/xrpc/app.bsky.feed.getTimeline",
            ("authorization", jwt("did:plc:council-example")),
            "council-official:did:plc:council-example",
        ),
        (
            "https://bsky.social/xrpc/app.bsky.feed.getTimeline",
            ("authorization", jwt("did:plc:someone")),
            "other",
        ),
        (
            "https://bsky.social/xrpc/app.bsky.feed.getTimeline",
            ("authorization", "Bearer opaque-oauth-token".into()),
            "unknown",
        ),
        (
            "https://video.bsky.app/xrpc/app.bsky.video.uploadVideo",
            ("authorization", service.clone()),
            "council-official:did:plc:council-example",
        ),
        // Sites that cannot tell their account.
        (
            "https://www.linkedin.com/feed/",
            ("cookie", "li_at=AQEDAR; JSESSIONID=\"ajax:1\"".into()),
            "unknown",
        ),
        (
            "https://www.reddit.com/",
            ("cookie", "reddit_session=abc".into()),
            "unknown",
        ),
    ];
    let groups = vec!["communications".to_string()];
    for (url, (name, value), want) in cases {
        let req = TestRequest::parse(
            &format!("GET {url}"),
            &[(name.to_string(), value.clone())],
            None,
        )
        .unwrap();
        let v = socialgate::verdict::evaluate_test_request(&policy, "alice", &groups, &req, None);
        assert_eq!(
            v.decision.account.audit(),
            want,
            "{url} with {name}: {value}"
        );
    }
}

/// Inside an intercepted TLS tunnel (the way browsers reach these sites), the
/// account cookie decides the same way, and the site receives the cookie
/// untouched.
#[tokio::test]
async fn inside_an_intercepted_tunnel_the_cookie_decides_too() {
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "a-pass")]);
    let up = tls_upstream("www.social.test", CertKind::Good).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    let port = up.addr.port();
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ www.social.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{port}]
"#
    );
    let gw = gateway(&fx, &settings, &policy(COUNCIL)).await;
    let alice = client_trusting_gateway(&gw, &fx, Some(("alice", "a-pass")));
    let url = format!("https://www.social.test:{port}/post");
    let r = alice
        .post(&url)
        .header("cookie", twid(COUNCIL))
        .body("Road works on the A38")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["cookie"], twid(COUNCIL).as_str());
    let r = alice
        .post(&url)
        .header("cookie", twid(PERSONAL))
        .body("Road works on the A38")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        up.count(),
        1,
        "the personal account's post never reached the site"
    );
    gw.gateway.audit.flush().await;
    let text = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    assert!(!text.contains(PERSONAL), "{text}");
    let accounts: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["account"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        accounts,
        [format!("council-official:{COUNCIL}"), "other".to_string()]
    );
}
