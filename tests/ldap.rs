//! Directory groups end to end against a real OpenLDAP server (Debian `slapd`)
//! started by each test on 127.0.0.1 from a configuration file in a temporary
//! directory: rights follow the directory group, a change shows once the cache
//! expires, a stopped directory leaves cached users served and new users in no
//! directory group, passwords checked by binding, LDAPS trusting
//! `upstream.extra_roots`, and `socialgate check --settings`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use socialgate_testkit::directory::*;
use socialgate_testkit::gateway::*;
use socialgate_testkit::upstream::*;

struct Env {
    _fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: Upstream,
}

/// A gateway whose users come from an htpasswd file (alice, carol, dave) and
/// whose groups come from `slapd`, with `ldap_extra` added to the `ldap` section.
async fn env(slapd: &Slapd, ldap_extra: &str, extra_roots: &str) -> Env {
    env_under(slapd, BASE, ldap_extra, extra_roots).await
}

/// As [`env`], with users searched for under `user_base`.
async fn env_under(slapd: &Slapd, user_base: &str, ldap_extra: &str, extra_roots: &str) -> Env {
    let fx = Fixture::new();
    htpasswd(
        &fx,
        &[
            ("alice", "alice-pass"),
            ("carol", "carol-pass"),
            ("dave", "dave-pass"),
        ],
    );
    let up = upstream_http("127.0.0.1").await;
    let settings = format!(
        r#"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  ldap:
    url: "{url}"
    bind_dn: "{ADMIN_DN}"
    bind_password_file: "{pw}"
    user_base: "{user_base}"
    user_filter: "(uid={{user}})"
    group_name: cn
{ldap_extra}
upstream:
  extra_roots: [{extra_roots}]
  resolve: {{ www.social.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, {port}]
"#,
        url = slapd.url,
        pw = slapd.password_file().display(),
        port = up.addr.port(),
    );
    let gw = gateway(&fx, &settings, IDENTITY_POLICY).await;
    Env { _fx: fx, gw, up }
}

fn url(e: &Env, path: &str) -> String {
    format!("http://www.social.test:{}{path}", e.up.addr.port())
}

async fn post(e: &Env, user: &str, pass: &str) -> u16 {
    client(&e.gw, Some((user, pass)))
        .post(url(e, "/post"))
        .body("hello")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get(e: &Env, user: &str, pass: &str) -> u16 {
    client(&e.gw, Some((user, pass)))
        .get(url(e, "/feed"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A directory of `people()` with `groups`, over plain LDAP.
fn directory(groups: &[(&str, &[&str])]) -> Slapd {
    Slapd::start(&people(), groups, None)
}

fn people() -> Vec<DirUser<'static>> {
    vec![
        DirUser {
            uid: "alice",
            password: "alice-ldap",
        },
        DirUser {
            uid: "bob",
            password: "bob-ldap",
        },
        DirUser {
            uid: "carol",
            password: "carol-ldap",
        },
        DirUser {
            uid: "dave",
            password: "dave-ldap",
        },
    ]
}

/// OpenLDAP style (a group search): rights follow the directory group, a
/// change shows only after `cache_for`, lookups of one user share one query,
/// and metrics name no user.
#[tokio::test]
async fn rights_follow_the_directory_group_after_the_cache_expires() {
    let slapd = directory(&[
        ("communications", &["alice"]),
        ("all-staff", &["alice", "carol"]),
    ]);
    let e = env(
        &slapd,
        "    group_filter: \"(&(objectClass=groupOfNames)(member={dn}))\"\n    cache_for: 3s\n",
        "",
    )
    .await;
    // alice is in communications: she may post. Twenty requests at once ask the
    // directory once.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = client(&e.gw, Some(("alice", "alice-pass")));
        let u = url(&e, "/post");
        tasks.push(tokio::spawn(async move {
            c.post(u).body("x").send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let filled = Instant::now();
    assert_eq!(
        metric(
            &e.gw,
            "socialgate_directory_request_duration_seconds_count{operation=\"groups\"}"
        ),
        1.0,
        "one directory query for twenty concurrent requests"
    );
    // alice leaves communications; the cached answer holds until cache_for.
    slapd.remove_member("communications", "alice");
    assert_eq!(post(&e, "alice", "alice-pass").await, 200, "still cached");
    assert!(
        filled.elapsed() < Duration::from_secs(3),
        "the test ran too slowly to tell"
    );

    // carol is staff only: she may read but not post.
    assert_eq!(get(&e, "carol", "carol-pass").await, 200);
    assert_eq!(post(&e, "carol", "carol-pass").await, 403);
    // dave is in no directory group.
    assert_eq!(get(&e, "dave", "dave-pass").await, 403);

    tokio::time::sleep(Duration::from_millis(3300).saturating_sub(filled.elapsed())).await;
    assert_eq!(
        post(&e, "alice", "alice-pass").await,
        403,
        "the change shows after cache_for"
    );
    assert_eq!(get(&e, "alice", "alice-pass").await, 200, "still staff");
    // carol joins communications.
    slapd.add_member("communications", "carol");
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert_eq!(post(&e, "carol", "carol-pass").await, 200);

    assert!(
        metric(
            &e.gw,
            "socialgate_directory_lookups_total{result=\"cached\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &e.gw,
            "socialgate_directory_lookups_total{result=\"fetched\"}"
        ) >= 4.0
    );
    let text = e.gw.gateway.metrics.render();
    for name in ["alice", "carol", "dave"] {
        assert!(!text.contains(name), "metrics name a user: {name}");
    }
    e.gw.stop().await;
}

/// OpenLDAP keeps groups in `ou=groups`, beside `ou=people`: with `user_base`
/// at `ou=people`, a group search finds them only under `group_base`. Without
/// it the search runs under `user_base`, finds no group, and the press office
/// may not post (nor staff read).
#[tokio::test]
async fn group_base_finds_groups_kept_outside_user_base() {
    let slapd = directory(&[
        ("communications", &["alice"]),
        ("all-staff", &["alice", "carol"]),
    ]);
    let people = format!("ou=people,{BASE}");
    let filter = "    group_filter: \"(&(objectClass=groupOfNames)(member={dn}))\"\n";

    let e = env_under(
        &slapd,
        &people,
        &format!("{filter}    group_base: \"ou=groups,{BASE}\"\n"),
        "",
    )
    .await;
    assert_eq!(post(&e, "alice", "alice-pass").await, 200, "communications");
    assert_eq!(get(&e, "carol", "carol-pass").await, 200, "all-staff");
    assert_eq!(
        post(&e, "carol", "carol-pass").await,
        403,
        "staff may not post"
    );
    assert_eq!(get(&e, "dave", "dave-pass").await, 403, "in no group");
    let seen: Vec<String> = e.up.requests().into_iter().map(|r| r.uri).collect();
    assert!(
        seen.len() == 2 && seen[0].ends_with("/post") && seen[1].ends_with("/feed"),
        "only the allowed requests reach the site: {seen:?}"
    );
    e.gw.stop().await;

    // The same directory without group_base: the groups are not found.
    let e = env_under(&slapd, &people, filter, "").await;
    assert_eq!(post(&e, "alice", "alice-pass").await, 403);
    assert_eq!(get(&e, "carol", "carol-pass").await, 403);
    assert!(e.up.requests().is_empty(), "the site received nothing");
    e.gw.stop().await;
}

/// Active Directory style (`memberOf` on the user), and Basic passwords checked
/// by binding to the directory as the user.
#[tokio::test]
async fn member_of_groups_and_directory_passwords() {
    let slapd = directory(&[
        ("communications", &["alice"]),
        ("all-staff", &["alice", "bob"]),
    ]);
    let e = env(
        &slapd,
        "    groups_from: memberOf\n    verify_basic_passwords: true\n",
        "",
    )
    .await;
    // bob is not in the htpasswd file: his directory password works.
    assert_eq!(get(&e, "bob", "bob-ldap").await, 200);
    assert_eq!(post(&e, "bob", "bob-ldap").await, 403, "staff may not post");
    // Wrong or empty passwords, and unknown users, are refused.
    assert_eq!(get(&e, "bob", "wrong").await, 407);
    assert_eq!(get(&e, "bob", "").await, 407);
    assert_eq!(get(&e, "nobody", "x").await, 407);
    // htpasswd users keep their htpasswd password and get memberOf groups.
    assert_eq!(post(&e, "alice", "alice-pass").await, 200);
    e.gw.stop().await;
}

/// A stopped directory: cached users keep their groups (even past cache_for),
/// users never seen are in no directory group, and nothing waits on time-outs.
#[tokio::test]
async fn a_stopped_directory_serves_cached_users_and_no_groups_to_new_ones() {
    let mut slapd = directory(&[
        ("communications", &["alice"]),
        ("all-staff", &["alice", "carol"]),
    ]);
    let e = env(&slapd, "    groups_from: memberOf\n    cache_for: 1s\n", "").await;
    assert_eq!(post(&e, "alice", "alice-pass").await, 200);
    slapd.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let t = Instant::now();
    assert_eq!(
        post(&e, "alice", "alice-pass").await,
        200,
        "cached groups are served"
    );
    // carol is staff in the directory, but was never looked up.
    assert_eq!(
        get(&e, "carol", "carol-pass").await,
        403,
        "no directory group"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "an outage must not stall requests"
    );
    assert!(
        metric(
            &e.gw,
            "socialgate_directory_lookups_total{result=\"stale\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &e.gw,
            "socialgate_directory_lookups_total{result=\"unavailable\"}"
        ) >= 1.0
    );
    assert!(metric(&e.gw, "socialgate_directory_errors_total{kind=\"connect\"}") >= 1.0);
    e.gw.stop().await;
}

/// LDAPS: the directory's certificate is trusted through `upstream.extra_roots`;
/// without it the TLS handshake fails and users are in no directory group.
#[tokio::test]
async fn ldaps_trusts_extra_roots() {
    let (ca, cert, key) = tls_for_localhost();
    let slapd = Slapd::start(
        &people(),
        &[("communications", &["alice"])],
        Some((&cert, &key)),
    );
    assert!(slapd.url.starts_with("ldaps://localhost:"));
    let ca_file = slapd.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let e = env(
        &slapd,
        "    groups_from: memberOf\n",
        &format!("\"{}\"", ca_file.display()),
    )
    .await;
    assert_eq!(post(&e, "alice", "alice-pass").await, 200);
    e.gw.stop().await;

    let e = env(&slapd, "    groups_from: memberOf\n", "").await;
    assert_eq!(
        post(&e, "alice", "alice-pass").await,
        403,
        "untrusted directory: no groups"
    );
    assert!(metric(&e.gw, "socialgate_directory_errors_total{kind=\"tls\"}") >= 1.0);
    e.gw.stop().await;
}

/// Plain ldap:// is refused to anything but loopback.
#[test]
fn plain_ldap_only_to_loopback() {
    let yaml =
        |url: &str| format!("identity:\n  ldap:\n    url: \"{url}\"\n    user_base: \"dc=x\"\n");
    let err =
        socialgate::settings::Settings::from_yaml("s.yaml", &yaml("ldap://dc1.council.example"))
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("s.yaml:3:10:") && err.contains("use ldaps://"),
        "{err}"
    );
    for ok in [
        "ldap://127.0.0.1:389",
        "ldap://localhost",
        "ldap://[::1]",
        "ldaps://dc1.council.example",
    ] {
        assert!(
            socialgate::settings::Settings::from_yaml("s.yaml", &yaml(ok)).is_ok(),
            "{ok}"
        );
    }
}

/// `socialgate check --settings` reports the directory and a user's groups;
/// `explain --settings` uses them unless groups are given on the command line.
#[test]
fn check_settings_reports_the_directory_and_groups() {
    let mut slapd = directory(&[("communications", &["alice"]), ("all-staff", &["alice"])]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, IDENTITY_POLICY).unwrap();
    let settings = dir.path().join("socialgate.yaml");
    std::fs::write(
        &settings,
        format!(
            "policy: {policy}\nca: {{ cert: \"{dir}/ca.crt\", key: \"{dir}/ca.key\", create_if_missing: true }}\naudit: {{ path: \"{dir}/audit.jsonl\" }}\nidentity:\n  group_members: {{ contractors: [alice] }}\n  ldap:\n    url: \"{url}\"\n    bind_dn: \"{ADMIN_DN}\"\n    bind_password_file: \"{pw}\"\n    user_base: \"{BASE}\"\n    user_filter: \"(uid={{user}})\"\n",
            policy = policy.display(),
            dir = settings.parent().unwrap().display(),
            url = slapd.url,
            pw = slapd.password_file().display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_socialgate");
    let check = |user: &str| {
        std::process::Command::new(bin)
            .args(["check", "--settings"])
            .arg(&settings)
            .args(["--user", user])
            .output()
            .unwrap()
    };
    let out = check("alice");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ldap: OK connected to"), "{text}");
    assert!(
        text.contains("ldap: directory groups of alice: all-staff, communications"),
        "{text}"
    );
    assert!(
        text.contains("groups of alice: contractors, all-staff, communications"),
        "{text}"
    );
    let out = check("nobody");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("WARNING no single entry"), "{text}");

    let explain = |groups: &[&str]| {
        let mut c = std::process::Command::new(bin);
        c.args(["explain", "--json", "--settings"])
            .arg(&settings)
            .args(["--user", "alice"]);
        for g in groups {
            c.args(["--group", g]);
        }
        let out = c
            .args(["POST", "https://www.social.test/post"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["action"].as_str().unwrap().to_string()
    };
    assert_eq!(
        explain(&[]),
        "allow",
        "directory groups make alice press office"
    );
    assert_eq!(
        explain(&["all-staff"]),
        "deny",
        "groups on the command line win"
    );

    slapd.stop();
    let out = check("alice");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("ldap: FAIL"), "{text}");
    // Without a directory, explain still works (alice then has no directory group).
    assert_eq!(explain(&["communications"]), "allow");
    assert_eq!(explain(&[]), "deny");
}
