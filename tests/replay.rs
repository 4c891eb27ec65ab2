//! `socialgate replay`: a real gateway under policy A writes the audit log of
//! known traffic (several users, groups, sites and activities, one activity
//! named by the body); the `socialgate` binary replays that log under policy B,
//! which differs from A in four known ways, and the change table must be
//! exactly those four. Gzip input, `-` (stdin), `--current`, `--fail-on-change`
//! (4 on a change, 0 without) and a bad line (exit 1 naming FILE:LINE) too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_socialgate");

const SITES: &str = r#"
sites:
  social:
    domains: [www.social.test]
    activities:
      post: [{ method: POST, path: /post }]
      comment: [{ method: POST, path_regex: "/posts/[0-9]+/comments" }]
      message: [{ method: POST, path: /api, json: { op: "^SendMessage$" } }]
  forum:
    domains: [www.forum.test]
    activities:
      post: [{ method: POST, path: /new }]
"#;

const ROLES: &str = r#"
version: 1
roles:
  press-office: { groups: [communications] }
  staff: { groups: [all-staff] }
  contractors: { groups: [contractors] }
"#;

/// Policy A: what the gateway runs while the log is written.
const RULES_A: &str = r#"
rules:
  - { name: press-post, roles: [press-office], sites: [social], activities: [post, message], action: allow }
  - { name: staff-read, roles: [staff], sites: [listed], activities: [read], action: allow }
  - { name: staff-comment, roles: [staff], sites: [social], activities: [comment], action: allow }
  - { name: everyone-else, action: deny }
"#;

/// Policy B, the draft. Against A: (1) staff may no longer comment; (2)
/// contractors may read the forum; (3) the press office may no longer send
/// messages (an activity the body named); (4) staff may not read the forum at
/// weekends (a time rule: the record's `ts` decides).
const RULES_B: &str = r#"
rules:
  - { name: press-post, roles: [press-office], sites: [social], activities: [post], action: allow }
  - { name: staff-no-forum-weekends, roles: [staff], sites: [forum], activities: [read], action: deny,
      when: { days: weekend } }
  - { name: staff-read, roles: [staff], sites: [listed], activities: [read], action: allow }
  - { name: contractor-forum-read, roles: [contractors], sites: [forum], activities: [read], action: allow }
  - { name: everyone-else, action: deny }
"#;

fn settings(port: u16) -> String {
    format!(
        r#"
identity:
  basic: {{ realm: "Test", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ communications: [alice], all-staff: [alice, bob], contractors: [carol] }}
upstream:
  resolve: {{ www.social.test: 127.0.0.1, www.forum.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, 443, {port}]
"#
    )
}

/// A weekday (Wednesday) and a Saturday, in UTC (the policies' timezone).
const WEEKDAY: &str = "2026-07-01T10:00:00.000Z";
const SATURDAY: &str = "2026-07-04T10:00:00.000Z";

struct Logged {
    fx: Fixture,
    /// The audit log as the gateway wrote it, times moved to known days.
    lines: Vec<Value>,
}

impl Logged {
    fn reference(&self, user: &str, path: &str) -> String {
        self.lines
            .iter()
            .find(|l| l["user"] == user && l["path"] == path)
            .unwrap_or_else(|| panic!("no record of {user} {path}"))["reference"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Runs the traffic through a gateway under policy A and returns its audit log.
async fn traffic_under_a() -> Logged {
    let fx = Fixture::new();
    htpasswd(
        &fx,
        &[
            ("alice", "a-pass"),
            ("bob", "b-pass"),
            ("carol", "c-pass"),
            ("dave", "d-pass"),
        ],
    );
    let up = upstream_http("127.0.0.1").await;
    let port = up.addr.port();
    let policy_a = format!("{ROLES}{SITES}{RULES_A}");
    let gw = gateway(&fx, &settings(port), &policy_a).await;
    let social = format!("http://www.social.test:{port}");
    let forum = format!("http://www.forum.test:{port}");
    let as_user = |u: &'static str, p: &'static str| client(&gw, Some((u, p)));
    let (alice, bob, carol, dave) = (
        as_user("alice", "a-pass"),
        as_user("bob", "b-pass"),
        as_user("carol", "c-pass"),
        as_user("dave", "d-pass"),
    );
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(bob.get(format!("{social}/feed")).send().await.unwrap()),
        200
    );
    for n in [1, 2] {
        let r = bob
            .post(format!("{social}/posts/{n}/comments"))
            .body("nice")
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 200);
    }
    assert_eq!(
        status(bob.get(format!("{forum}/t/1")).send().await.unwrap()),
        200
    );
    assert_eq!(
        status(bob.get(format!("{forum}/t/2")).send().await.unwrap()),
        200
    );
    let r = alice
        .post(format!("{social}/post"))
        .body("news")
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    let r = alice
        .post(format!("{social}/api"))
        .header("content-type", "application/json")
        .body(r#"{"op":"SendMessage","text":"hello"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 200);
    assert_eq!(
        status(carol.get(format!("{forum}/t/1")).send().await.unwrap()),
        403
    );
    assert_eq!(
        status(dave.get(format!("{social}/feed")).send().await.unwrap()),
        403
    );
    // Wrong credentials: audited (rule `authentication`), never replayed.
    let wrong = client(&gw, Some(("bob", "wrong")));
    assert_eq!(
        status(wrong.get(format!("{social}/feed")).send().await.unwrap()),
        407
    );
    gw.gateway.audit.flush().await;

    let text = std::fs::read_to_string(fx.dir.path().join("audit.jsonl")).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "{text}");
    let mut saw_groups = false;
    for l in &mut lines {
        // The audit `groups` field: what roles were derived from.
        if l["user"] == "alice" {
            let mut groups: Vec<&str> = l["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap())
                .collect();
            groups.sort();
            assert_eq!(groups, ["all-staff", "communications"], "{l}");
            saw_groups = true;
        }
        if l["user"] == "dave" {
            assert_eq!(l["groups"], json!([]), "{l}");
        }
        let day = if l["user"] == "bob" && l["path"] == "/t/2" {
            SATURDAY
        } else {
            WEEKDAY
        };
        l["ts"] = json!(day);
    }
    assert!(saw_groups);
    Logged { fx, lines }
}

fn replay(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("replay")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn change(
    from: (&str, &str),
    to: (&str, &str),
    who: (&str, &str, &str),
    refs: Vec<String>,
) -> Value {
    json!({
        "from": { "action": from.0, "rule": from.1 },
        "to": { "action": to.0, "rule": to.1 },
        "role": who.0, "site": who.1, "activity": who.2,
        "count": refs.len(),
        "references": refs,
    })
}

/// The four known differences between A and B, as `--json` must print them.
fn expected(log: &Logged) -> Value {
    let r = |u, p| log.reference(u, p);
    let mut changes = vec![
        change(
            ("allow", "staff-comment"),
            ("deny", "everyone-else"),
            ("staff", "social", "comment"),
            vec![r("bob", "/posts/1/comments"), r("bob", "/posts/2/comments")],
        ),
        change(
            ("deny", "everyone-else"),
            ("allow", "contractor-forum-read"),
            ("contractors", "forum", "read"),
            vec![r("carol", "/t/1")],
        ),
        change(
            ("allow", "press-post"),
            ("deny", "everyone-else"),
            ("press-office", "social", "message"),
            vec![r("alice", "/api")],
        ),
        change(
            ("allow", "staff-read"),
            ("deny", "staff-no-forum-weekends"),
            ("staff", "forum", "read"),
            vec![r("bob", "/t/2")],
        ),
    ];
    changes.sort_by_key(|c| c.to_string());
    json!({ "records": 9, "changed": 5, "changes": changes })
}

/// The output with its changes in a canonical order (the command prints the
/// largest first; ties in its own order).
fn parsed(stdout: &str) -> Value {
    let mut v: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let counts: Vec<u64> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {counts:?}"
    );
    v["changes"]
        .as_array_mut()
        .unwrap()
        .sort_by_key(|c| c.to_string());
    v
}

#[tokio::test]
async fn replay_under_a_draft_shows_exactly_the_known_differences() {
    let log = traffic_under_a().await;
    let fx = &log.fx;
    let audit = fx.write("audit-known-days.jsonl", &log.text());
    let audit = audit.display().to_string();
    let a = fx
        .write("a.yaml", &format!("{ROLES}{SITES}{RULES_A}"))
        .display()
        .to_string();
    let b = fx
        .write("b.yaml", &format!("{ROLES}{SITES}{RULES_B}"))
        .display()
        .to_string();
    let want = expected(&log);

    // Plain file, before as recorded.
    let (code, out, err) = replay(&["--policy", &b, "--json", &audit], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(parsed(&out), want, "{out}");
    // The wrong-credentials record is skipped and said so; nothing approximate.
    assert!(err.contains("1 skipped"), "{err}");
    assert!(err.contains("0 approximate"), "{err}");

    // Before re-decided under A: the same table.
    let (code, out, err) = replay(&["--policy", &b, "--current", &a, "--json", &audit], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(parsed(&out), want, "{out}");

    // Gzip, told by its magic bytes (the name says nothing).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(log.text().as_bytes()).unwrap();
    let gz_path = fx.write("rotated.1", "");
    std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    let (code, out, err) = replay(
        &["--policy", &b, "--json", &gz_path.display().to_string()],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(parsed(&out), want, "{out}");

    // `-`: stdin.
    let (code, out, err) = replay(&["--policy", &b, "--json", "-"], Some(&log.text()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(parsed(&out), want, "{out}");

    // Two files: every record counted twice.
    let (code, out, err) = replay(&["--policy", &b, "--json", &audit, &audit], None);
    assert_eq!(code, 0, "{err}");
    let twice = parsed(&out);
    assert_eq!(twice["records"], 18);
    assert_eq!(twice["changed"], 10);

    // A CI gate: a change exits 4, no change exits 0.
    let (code, out, _) = replay(&["--policy", &b, "--fail-on-change", &audit], None);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("allow by staff-comment -> deny by everyone-else"),
        "{out}"
    );
    let (code, out, err) = replay(
        &["--policy", &a, "--fail-on-change", "--json", &audit],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap(),
        json!({ "records": 9, "changed": 0, "changes": [] })
    );
}

#[tokio::test]
async fn bad_input_is_an_error_naming_the_file_and_line() {
    let fx = Fixture::new();
    let policy = fx
        .write("a.yaml", &format!("{ROLES}{SITES}{RULES_A}"))
        .display()
        .to_string();
    let good = r#"{"ts":"2026-07-01T10:00:00.000Z","reference":"r1","user":"bob","groups":["all-staff"],"roles":["staff"],"method":"GET","host":"www.social.test","path":"/feed","site":"social","activity":"read","action":"allow","rule":"staff-read"}"#;
    let file = fx.write(
        "audit.jsonl",
        &format!("{good}\n\n{good}\nnot an audit record\n"),
    );
    let file = file.display().to_string();
    let (code, out, err) = replay(&["--policy", &policy, &file], None);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&format!("{file}:4: not an audit record")),
        "{err}"
    );
    // A record without `ts`, and one with a time that is not RFC 3339.
    let no_ts = good.replace(r#""ts":"2026-07-01T10:00:00.000Z","#, "");
    let file2 = fx
        .write("b.jsonl", &format!("{no_ts}\n"))
        .display()
        .to_string();
    let (code, _, err) = replay(&["--policy", &policy, &file2], None);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{file2}:1:")) && err.contains("ts"),
        "{err}"
    );
    let bad_ts = good.replace("2026-07-01T10:00:00.000Z", "yesterday");
    let file3 = fx
        .write("c.jsonl", &format!("{bad_ts}\n"))
        .display()
        .to_string();
    let (code, _, err) = replay(&["--policy", &policy, &file3], None);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{file3}:1:")) && err.contains("RFC 3339"),
        "{err}"
    );
    // A file that cannot be read.
    let missing = fx.path("missing.jsonl");
    let (code, _, err) = replay(&["--policy", &policy, &missing], None);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("cannot read {missing}")), "{err}");
    // An older record without `groups` is replayed, and counted approximate.
    let old = good.replace(r#""groups":["all-staff"],"#, "");
    let file4 = fx
        .write("d.jsonl", &format!("{old}\n"))
        .display()
        .to_string();
    let (code, out, err) = replay(&["--policy", &policy, "--json", &file4], None);
    assert_eq!(code, 0, "{err}");
    // Without groups bob holds no role under the draft: staff-read no longer matches.
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["changed"], 1, "{out}");
    assert_eq!(v["changes"][0]["role"], "none");
    assert!(err.contains("1 approximate (groups 1)"), "{err}");
}
