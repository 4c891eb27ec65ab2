//! Running socialgate as a service: `check --settings` refuses exactly what
//! `run` refuses, logs fit for a file or a shipper (no escape codes, JSON
//! lines), a refused reload visible on /metrics and the status page, a policy
//! version that depends on content only, quiet broken pipes, `hash-password
//! --user` lines the gateway accepts, and audit records for the responses a
//! person sees (an unknown client's 403, a budget refusal, an
//! acknowledgement), in a file created mode 0640.
//!
//! The commands run as the real binary (`CARGO_BIN_EXE_socialgate`) in
//! temporary directories; gateways listen on 127.0.0.1 only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use socialgate_testkit::gateway::metric;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_socialgate");

const POLICY: &str = r#"
version: 1
roles:
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [www.social.test]
    intercept: false
rules:
  - { name: staff-social, roles: [staff], sites: [social], action: allow }
  - { name: everyone-else, action: deny }
tests:
  - { name: staff read social, request: GET https://www.social.test/, user: bob, groups: [all-staff], expect: { action: allow, rule: staff-social } }
"#;

/// Runs the binary in `dir` with `args` (stdin closed), `NO_COLOR` unset.
fn sg(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A directory with a good policy, a CA made by `ca init` and settings that
/// name both (the proxy and the admin listener on port 0, so no fixed port is
/// taken: a gateway already running on this machine does not matter), plus
/// `extra` lines.
fn service_dir(extra: &str) -> Fixture {
    let fx = Fixture::new();
    fx.write("policy.yaml", POLICY);
    let o = sg(fx.dir.path(), &["ca", "init", "--dir", "certs"]);
    assert!(o.status.success(), "{}", text(&o));
    fx.write(
        "socialgate.yaml",
        &format!(
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\npolicy: policy.yaml\nca: {{ cert: certs/ca.crt, key: certs/ca.key }}\naudit: {{ path: logs/audit.jsonl }}\n{extra}"
        ),
    );
    fx
}

#[test]
fn check_settings_refuses_each_thing_run_refuses_and_names_it() {
    // All well: exit 0, and the checks were made.
    let fx = service_dir("");
    let o = sg(fx.dir.path(), &["check", "--settings", "socialgate.yaml"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for line in ["policy: OK", "ca: OK", "audit: OK"] {
        assert!(out.contains(line), "{line} in:\n{out}");
    }

    type Breaker = fn(&Fixture);
    let cases: &[(&str, Breaker, &[&str])] = &[
        (
            "a broken policy",
            |fx| {
                fx.write(
                    "policy.yaml",
                    "version: 1\nrules:\n  - { name: x, action: denied }\n",
                );
            },
            &["policy: FAIL", "policy.yaml:3:", "`action`"],
        ),
        (
            "a missing policy file",
            |fx| std::fs::remove_file(fx.dir.path().join("policy.yaml")).unwrap(),
            &["policy: FAIL", "cannot read the policy"],
        ),
        (
            "a missing CA key",
            |fx| std::fs::remove_file(fx.dir.path().join("certs/ca.key")).unwrap(),
            &["ca: FAIL", "certs/ca.crt exists but certs/ca.key does not"],
        ),
        (
            "an unwritable audit path",
            // `logs` is a file, so no audit log can be created under it.
            |fx| {
                fx.write("logs", "not a directory\n");
            },
            &[
                "audit: FAIL",
                "cannot create the audit log logs/audit.jsonl",
            ],
        ),
    ];
    for (what, break_it, expected) in cases {
        let fx = service_dir("");
        break_it(&fx);
        let o = sg(fx.dir.path(), &["check", "--settings", "socialgate.yaml"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{what}:\n{out}");
        for e in *expected {
            assert!(out.contains(e), "{what}: `{e}` in:\n{out}");
        }
        assert!(
            out.contains("`socialgate run` would refuse to start"),
            "{what}:\n{out}"
        );
        // `run` refuses the same, with the same words, before binding anything.
        let o = sg(fx.dir.path(), &["run", "--config", "socialgate.yaml"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "run with {what}:\n{out}");
        assert!(out.contains(expected[1]), "run with {what}:\n{out}");
    }
}

#[test]
fn missing_ca_files_stop_the_start_with_the_command_that_makes_them() {
    let fx = Fixture::new();
    fx.write("policy.yaml", POLICY);
    fx.write(
        "socialgate.yaml",
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\npolicy: policy.yaml\nca: { cert: pki/ca.crt, key: pki/ca.key }\naudit: { path: audit.jsonl }\n",
    );
    for args in [
        &["check", "--settings", "socialgate.yaml"][..],
        &["run", "--config", "socialgate.yaml"][..],
    ] {
        let o = sg(fx.dir.path(), args);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}:\n{out}");
        assert!(
            out.contains("`socialgate ca init --dir pki`"),
            "{args:?}:\n{out}"
        );
    }
    assert!(
        !fx.dir.path().join("pki").exists(),
        "no CA was made quietly"
    );
    // The command it names makes a CA the start then accepts.
    let o = sg(fx.dir.path(), &["ca", "init", "--dir", "pki"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sg(fx.dir.path(), &["check", "--settings", "socialgate.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Starts `run --config socialgate.yaml` in `dir` with stderr into `log`,
/// waits (bounded) until it logs that the proxy listens, then kills it and
/// returns the log.
fn run_until_listening(dir: &Path) -> String {
    let log_path = dir.join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", "socialgate.yaml"])
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut text = String::new();
    for _ in 0..300 {
        text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("proxy listening") || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("proxy listening"),
        "the gateway did not start:\n{text}"
    );
    text
}

#[test]
fn logs_redirected_to_a_file_have_no_escape_codes_and_json_lines_parse() {
    let fx = service_dir("");
    let log = run_until_listening(fx.dir.path());
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file:\n{log}"
    );
    assert!(log.contains("INFO"), "{log}");

    let fx = service_dir("log: { format: json }\n");
    let log = run_until_listening(fx.dir.path());
    assert!(!log.contains('\u{1b}'), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("proxy listening"))),
        "{log}"
    );

    // A format that does not exist is a settings error at its key.
    let fx = service_dir("log: { format: xml }\n");
    let o = sg(fx.dir.path(), &["check", "--settings", "socialgate.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("socialgate.yaml:6:16: `log.format`: unknown format `xml`"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn a_refused_reload_shows_on_metrics_and_on_the_status_page() {
    let fx = Fixture::new();
    let gw = gateway(&fx, "admin_listen: 127.0.0.1:0\n", POLICY).await;
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |path: &str| {
        let url = format!("http://{}{path}", gw.admin_addr.unwrap());
        let admin = admin.clone();
        async move {
            let r = admin.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let gauge = |m: &str, name: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{m}"))
    };
    let (_, m) = get("/metrics").await;
    assert_eq!(gauge(&m, "socialgate_policy_last_reload_successful"), 1.0);
    let started = gauge(&m, "socialgate_policy_last_reload_timestamp_seconds");
    assert!(started > 1.7e9, "{m}");
    // The CA made for this gateway is valid for years from now.
    let expiry = gauge(&m, "socialgate_ca_expiry_timestamp_seconds");
    assert!(expiry > started + 365.0 * 86400.0, "{m}");
    let (_, page) = get("/").await;
    assert!(!page.contains("refused"), "{page}");
    assert!(page.contains(&gw.gateway.policy().version), "{page}");
    assert!(page.contains(env!("CARGO_PKG_VERSION")), "{page}");

    let old_version = gw.gateway.policy().version.clone();
    fx.write(
        "policy.yaml",
        "version: 1\nrules:\n  - { name: x, action: denied }\n",
    );
    assert!(!gw.reload());
    let (_, m) = get("/metrics").await;
    assert_eq!(gauge(&m, "socialgate_policy_last_reload_successful"), 0.0);
    assert!(gauge(&m, "socialgate_policy_last_reload_timestamp_seconds") >= started);
    let (status, page) = get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Policy reload refused since"), "{page}");
    assert!(
        page.contains("policy.yaml:3:") && page.contains("unknown value `denied`"),
        "the error is on the page:\n{page}"
    );
    assert!(
        page.contains(&old_version),
        "the old policy serves:\n{page}"
    );
    let (status, ready) = get("/readyz").await;
    assert_eq!(status, 200, "{ready}");

    fx.write("policy.yaml", POLICY);
    assert!(gw.reload());
    let (_, m) = get("/metrics").await;
    assert_eq!(gauge(&m, "socialgate_policy_last_reload_successful"), 1.0);
    let (_, page) = get("/").await;
    assert!(!page.contains("refused"), "{page}");
    // The same content again is not counted as a policy reload.
    assert_eq!(
        metric(&gw, r#"socialgate_policy_reloads_total{result="ok"}"#),
        0.0
    );
    assert_eq!(
        metric(&gw, r#"socialgate_policy_reloads_total{result="error"}"#),
        1.0
    );
}

#[test]
fn the_same_policy_from_different_paths_has_one_version() {
    let fx = Fixture::new();
    let root = fx.dir.path();
    std::fs::create_dir_all(root.join("policies/sites")).unwrap();
    fx.write(
        "policies/x.yaml",
        "version: 1\ninclude: [sites/*.yaml]\nrules:\n  - { name: all, action: allow }\n",
    );
    fx.write(
        "policies/sites/social.yaml",
        "sites:\n  social: { domains: [www.social.test] }\n",
    );
    std::os::unix::fs::symlink(root.join("policies"), root.join("linked")).unwrap();
    let absolute = root.join("policies/x.yaml").display().to_string();
    let mut versions = Vec::new();
    for path in [
        "policies/x.yaml",
        "./policies/x.yaml",
        absolute.as_str(),
        "linked/x.yaml",
        "policies/sites/../x.yaml",
    ] {
        let o = sg(root, &["check", path]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{path}: {out}");
        let v = out
            .split("(version ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("{out}"))
            .to_string();
        versions.push((path.to_string(), v));
    }
    assert!(
        versions.iter().all(|(_, v)| *v == versions[0].1),
        "{versions:?}"
    );
    // The content decides: an edited include is another version.
    fx.write(
        "policies/sites/social.yaml",
        "sites:\n  social: { domains: [www.social.test, social.test] }\n",
    );
    let out = text(&sg(root, &["check", "policies/x.yaml"]));
    assert!(!out.contains(&versions[0].1), "{out}");
}

#[test]
fn a_closed_stdout_ends_explain_check_and_scan_quietly() {
    let fx = Fixture::new();
    fx.write("policy.yaml", POLICY);
    fx.write("body.txt", &"NI number AB123456C\n".repeat(50));
    let commands: &[&[&str]] = &[
        &[
            "explain",
            "--policy",
            "policy.yaml",
            "--user",
            "bob",
            "--group",
            "all-staff",
            "GET",
            "https://www.social.test/",
        ],
        &["check", "policy.yaml"],
        &["scan", "body.txt"],
    ];
    for args in commands {
        // The reader is gone before the command writes a byte.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(BIN)
            .args(*args)
            .current_dir(fx.dir.path())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(141), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn hash_password_with_user_prints_a_line_the_gateway_accepts() {
    let fx = Fixture::new();
    let mut child = Command::new(BIN)
        .args(["hash-password", "--user", "carol", "--cost", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"carol's pass\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(o.stderr.is_empty(), "no prompt on a pipe: {}", text(&o));
    let line = String::from_utf8(o.stdout).unwrap();
    assert!(line.starts_with("carol:$2b$04$"), "{line}");
    fx.write("users.htpasswd", &line);

    let up = upstream_http("127.0.0.1").await;
    let settings = format!(
        "identity:\n  basic: {{ realm: Test, htpasswd: \"{{dir}}/users.htpasswd\" }}\n  group_members: {{ all-staff: [carol] }}\nupstream:\n  resolve: {{ www.social.test: 127.0.0.1 }}\n  allow_destinations: [127.0.0.1/32]\n  allowed_ports: [{}]\n",
        up.addr.port()
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    let url = format!("http://www.social.test:{}/", up.addr.port());
    let ok = client(&gw, Some(("carol", "carol's pass")))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = client(&gw, Some(("carol", "carol's pass\n")))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 407, "the final newline is not part of it");
    assert_eq!(up.count(), 1);

    // A name that cannot be an htpasswd user is refused before any prompt.
    let o = sg(fx.dir.path(), &["hash-password", "--user", "a:b"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn check_warns_about_control_characters_and_reports_a_misspelt_key_alone() {
    let fx = Fixture::new();
    fx.write(
        "dlp.yaml",
        "version: 1\ndlp:\n  detectors:\n    case-ref: { pattern: \"\\bBDC-[0-9]{7}\\b\" }\nrules:\n  - { name: all, action: allow }\n",
    );
    let o = sg(fx.dir.path(), &["check", "dlp.yaml"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "a warning is not an error: {out}");
    assert!(
        out.contains("dlp.yaml:4:26: warning: `pattern` holds a backspace")
            && out.contains("single quotes"),
        "{out}"
    );

    fx.write(
        "misspelt.yaml",
        "version: 1\nsites: { social: { domains: [www.social.test] } }\nrule:\n  - { name: all, action: allow }\ntests:\n  - { name: t, request: GET https://www.social.test/, user: u, expect: { action: allow, rule: all } }\n",
    );
    let o = sg(fx.dir.path(), &["check", "misspelt.yaml"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        out,
        "misspelt.yaml:3:1: unknown top-level key `rule`; did you mean `rules`?\nmisspelt.yaml: 1 error(s); the policy was not accepted\n"
    );
}

#[test]
fn explain_explains_a_policy_whose_tests_fail_and_says_so() {
    let fx = Fixture::new();
    fx.write(
        "policy.yaml",
        &POLICY.replace(
            "expect: { action: allow, rule: staff-social }",
            "expect: { action: deny }",
        ),
    );
    let args = [
        "explain",
        "--policy",
        "policy.yaml",
        "--user",
        "bob",
        "--group",
        "all-staff",
        "GET",
        "https://www.social.test/",
    ];
    let o = sg(fx.dir.path(), &args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("action:   allow") && out.contains("rule:     staff-social"),
        "{out}"
    );
    assert!(
        out.contains("tests:    1 of 1 of the policy's own tests FAIL"),
        "{out}"
    );
    assert!(err.contains("1 of the policy's 1 own tests fail"), "{err}");
    // `check` still refuses it.
    assert_eq!(
        sg(fx.dir.path(), &["check", "policy.yaml"]).status.code(),
        Some(1)
    );
}

#[tokio::test]
async fn responses_a_person_sees_are_audited_with_site_and_roles_in_a_0640_file() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let up = upstream_http("127.0.0.1").await;
    let policy = r#"
version: 1
roles: { staff: { groups: [all-staff] } }
sites:
  social: { domains: [www.social.test], intercept: false }
dlp: { profiles: { official: { detectors: [uk-nino], on_finding: block } } }
rules:
  - { name: scanned-posts, roles: [staff], sites: [social], action: allow, dlp: official }
  - { name: everyone-else, action: deny }
"#;
    // Only 10.9.0.0/16 is known: a client from 127.0.0.1 is nobody.
    let settings = |networks: &str| {
        format!(
            "identity:\n  networks: [ {{ cidr: {networks}, user: tester, groups: [all-staff] }} ]\nupstream:\n  resolve: {{ www.social.test: 127.0.0.1 }}\n  allow_destinations: [127.0.0.1/32]\n  allowed_ports: [{}]\nlimits: {{ max_scan_bytes: 64KiB, max_buffered_bytes: 16KiB }}\n",
            up.addr.port()
        )
    };
    let url = format!("http://www.social.test:{}/post", up.addr.port());
    let reference = |r: &reqwest::Response| {
        r.headers()["x-socialgate-reference"]
            .to_str()
            .unwrap()
            .to_string()
    };

    let gw = gateway(&fx, &settings("10.9.0.0/16"), policy).await;
    let r = client(&gw, None).get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let unknown = reference(&r);
    gw.gateway.audit.flush().await;
    gw.stop().await;

    let gw = gateway(&fx, &settings("127.0.0.0/8"), policy).await;
    let c = client(&gw, None);
    // Within the scan limit but over what may be held at once: 503.
    let r = c.post(&url).body("x".repeat(30_000)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let budget = reference(&r);
    // An acknowledgement that does not hold: 403, audited for its site.
    let ack_url = format!(
        "http://www.social.test:{}/.socialgate/continue",
        up.addr.port()
    );
    let r = c
        .post(&ack_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let ack = reference(&r);
    gw.gateway.audit.flush().await;
    assert_eq!(up.count(), 0, "nothing reached the site");

    let path = fx.dir.path().join("audit.jsonl");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o037,
        0,
        "mode {mode:o}: no group write, nothing for others"
    );
    assert_eq!(mode & 0o600, 0o600, "mode {mode:o}");
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |reference: &str| {
        records
            .iter()
            .find(|r| r["reference"] == reference)
            .unwrap_or_else(|| panic!("{reference} is not in the audit log: {records:?}"))
            .clone()
    };
    let r = find(&unknown);
    assert_eq!(
        (
            r["status"].as_u64(),
            r["action"].as_str(),
            r["rule"].as_str()
        ),
        (Some(403), Some("deny"), Some("authentication")),
        "{r}"
    );
    assert!(r["user"].is_null(), "{r}");
    let r = find(&budget);
    assert_eq!(r["status"], 503, "{r}");
    assert_eq!(r["site"], "social", "{r}");
    assert_eq!(r["roles"], serde_json::json!(["staff"]), "{r}");
    let r = find(&ack);
    assert_eq!(
        (r["status"].as_u64(), r["site"].as_str()),
        (Some(403), Some("social")),
        "{r}"
    );
}

#[tokio::test]
async fn a_file_added_to_an_include_pattern_is_picked_up_without_a_signal() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.dir.path().join("sites")).unwrap();
    fx.write(
        "sites/a.yaml",
        "sites:\n  a: { domains: [www.a.test], intercept: false }\n",
    );
    let up = upstream_http("127.0.0.1").await;
    let settings = format!(
        "identity:\n  networks: [ {{ cidr: 127.0.0.0/8, user: tester, groups: [all-staff] }} ]\nupstream:\n  resolve: {{ www.b.test: 127.0.0.1 }}\n  allow_destinations: [127.0.0.1/32]\n  allowed_ports: [{}]\n",
        up.addr.port()
    );
    let policy = "version: 1\ninclude: [sites/*.yaml]\nrules:\n  - { name: other-websites, sites: [unlisted], action: allow }\n  - { name: everyone-else, action: deny }\n";
    let gw = gateway(&fx, &settings, policy).await;
    let url = format!("http://www.b.test:{}/", up.addr.port());
    let status = || async { client(&gw, None).get(&url).send().await.unwrap().status() };
    assert_eq!(status().await, 200, "www.b.test is unlisted: allowed");
    let before = gw.gateway.policy().version.clone();
    // A new catalogue file makes www.b.test a listed site, which is denied.
    fx.write(
        "sites/b.yaml",
        "sites:\n  b: { domains: [www.b.test], intercept: false }\n",
    );
    let mut now = status().await;
    for _ in 0..100 {
        if now == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = status().await;
    }
    assert_eq!(now, 403, "the watcher loaded the new include");
    assert_ne!(gw.gateway.policy().version, before);
    let reached = up.count();
    assert_eq!(status().await, 403);
    assert_eq!(up.count(), reached, "a denied request reaches nothing");
}

/// A free TCP port on 127.0.0.1 (and, for the test's purpose, UDP too).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// rsyslogd in the foreground on 127.0.0.1 (UDP and TCP on `port`), writing
/// what it parsed of each message into `received.log` as
/// `INPUT|VERSION|APP|MSGID|MSG`; killed when dropped.
struct Rsyslog {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsyslog(dir: &Path, port: u16) -> Rsyslog {
    let out = dir.join("received.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imudp")
module(load="imtcp")
template(name="fields" type="string" string="%inputname%|%protocol-version%|%app-name%|%msgid%|%msg%\n")
ruleset(name="audit") {{ action(type="omfile" file="{out}" template="fields") }}
input(type="imudp" address="127.0.0.1" port="{port}" ruleset="audit")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="audit")
"#,
            dir = dir.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd (Debian package rsyslog) must be installed");
    // Ready when its TCP input accepts (bounded wait).
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Rsyslog { child, out }
}

/// Waits (bounded) until `path` holds `n` lines, and returns them.
async fn lines_in(path: &Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lines
}

#[tokio::test]
async fn the_syslog_receiver_gets_one_rfc_5424_record_per_request() {
    let fx = Fixture::new();
    let port = free_port();
    let receiver = rsyslog(fx.dir.path(), port);
    let up = upstream_http("127.0.0.1").await;
    let settings = |url: &str| {
        format!(
            "identity:\n  networks: [ {{ cidr: 127.0.0.0/8, user: tester, groups: [all-staff] }} ]\nupstream:\n  resolve: {{ www.social.test: 127.0.0.1 }}\n  allow_destinations: [127.0.0.1/32]\n  allowed_ports: [{}]\naudit:\n  path: \"{{dir}}/audit.jsonl\"\n  syslog: {{ url: \"{url}\" }}\n",
            up.addr.port()
        )
    };
    let url = format!("http://www.social.test:{}/feed?q=secret", up.addr.port());
    for transport in ["udp", "tcp"] {
        let gw = gateway(
            &fx,
            &settings(&format!("{transport}://127.0.0.1:{port}")),
            POLICY,
        )
        .await;
        for _ in 0..3 {
            let r = client(&gw, None).get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = client(&gw, None)
            .get(format!("http://www.other.test:{}/", up.addr.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "unlisted is denied by everyone-else");
        gw.gateway.audit.flush().await;
        gw.stop().await;
    }
    // Every record of the audit file, and only those, reached the receiver.
    let file = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    let references: Vec<String> = file
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reference"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(references.len(), 8, "{file}");
    let lines = lines_in(&receiver.out, references.len()).await;
    assert_eq!(lines.len(), references.len(), "{lines:#?}");
    let mut by_input = std::collections::HashMap::new();
    for line in &lines {
        let parts: Vec<&str> = line.splitn(5, '|').collect();
        assert_eq!(
            &parts[1..4],
            ["1", "socialgate", "audit"],
            "parsed as RFC 5424: {line}"
        );
        *by_input.entry(parts[0].to_string()).or_insert(0) += 1;
        let record: serde_json::Value =
            serde_json::from_str(parts[4].trim_start()).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in [
            "ts",
            "reference",
            "client_ip",
            "user",
            "roles",
            "host",
            "path",
            "site",
            "action",
            "rule",
            "status",
        ] {
            assert!(record.get(field).is_some(), "{field} in {record}");
        }
        assert!(references.contains(&record["reference"].as_str().unwrap().to_string()));
        assert!(!line.contains("secret"), "no query string: {line}");
    }
    assert_eq!(by_input.get("imudp"), Some(&4), "{by_input:?}");
    assert_eq!(by_input.get("imtcp"), Some(&4), "{by_input:?}");
}

#[tokio::test]
async fn the_syslog_receiver_over_tls_gets_newline_delimited_records() {
    use socialgate_testkit::ca::{acceptor, TestCa};
    use tokio::io::AsyncBufReadExt;
    let fx = Fixture::new();
    let ca = TestCa::new("syslog test CA");
    fx.write("syslog-ca.pem", &ca.pem());
    let leaf = ca.leaf(&["127.0.0.1".into()]);
    let tls = acceptor(vec![leaf.der(), ca.der()], &leaf, &[]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = tls.accept(tcp).await.unwrap();
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = lines_tx.send(line);
        }
    });
    let up = upstream_http("127.0.0.1").await;
    let settings = format!(
        "identity:\n  networks: [ {{ cidr: 127.0.0.0/8, user: tester, groups: [all-staff] }} ]\nupstream:\n  extra_roots: [\"{{dir}}/syslog-ca.pem\"]\n  resolve: {{ www.social.test: 127.0.0.1 }}\n  allow_destinations: [127.0.0.1/32]\n  allowed_ports: [{}]\naudit:\n  path: \"{{dir}}/audit.jsonl\"\n  syslog: {{ url: \"tls://127.0.0.1:{port}\" }}\n",
        up.addr.port()
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    let url = format!("http://www.social.test:{}/", up.addr.port());
    for _ in 0..2 {
        let r = client(&gw, None).get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    gw.gateway.audit.flush().await;
    let file = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    let references: Vec<String> = file
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reference"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(references.len(), 2, "{file}");
    for reference in &references {
        let line = tokio::time::timeout(Duration::from_secs(10), lines_rx.recv())
            .await
            .expect("a record over TLS")
            .unwrap();
        assert!(line.starts_with("<110>1 "), "{line}");
        let (head, json) = line.split_once(" - ").unwrap();
        assert_eq!(head.split(' ').nth(3), Some("socialgate"), "{line}");
        assert_eq!(head.split(' ').nth(5), Some("audit"), "{line}");
        let record: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(record["reference"], reference.as_str());
        assert_eq!(record["site"], "social");
    }
}
