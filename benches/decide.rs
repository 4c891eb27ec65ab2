//! W7: the policy decision with 1,000 sites and 100 rules (goal ≤ 1 µs).
//! Run: `cargo bench --bench decide`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use socialgate::policy::selftest::TestRequest;
use socialgate::policy::sources::FsFiles;
use socialgate::policy::{load_policy, Facts};
use socialgate::view::{RawRequest, RequestView};

/// 1,000 sites (each with exact and wildcard domains and four activities) and
/// 100 rules over 20 roles, the deciding rule near the end.
fn big_policy() -> String {
    let mut p = String::from("version: 1\ntimezone: Europe/London\nroles:\n");
    for r in 0..20 {
        let _ = writeln!(p, "  role{r}: {{ groups: [group{r}] }}");
    }
    p.push_str("sites:\n");
    for s in 0..1000 {
        let _ = writeln!(
            p,
            "  site{s}:\n    domains: [site{s}.example, \"*.site{s}.example\", \"*.cdn{s}.example\"]\n    activities:\n      comment: [{{ method: POST, path_regex: \"/api/posts/[0-9]+/comments\" }}]\n      post: [{{ method: POST, path: /api/posts }}]\n      read: [{{ method: POST, path: /api/graphql, query: {{ op: \"(Feed|Profile)Query\" }} }}]\n      message: [{{ websocket: true, path: \"/chat*\" }}]"
        );
    }
    p.push_str("rules:\n");
    for r in 0..98 {
        let sites: Vec<String> = (0..10)
            .map(|i| format!("site{}", (r * 10 + i) % 1000))
            .collect();
        let _ = writeln!(
            p,
            "  - {{ name: rule{r}, roles: [role{}], sites: [{}], activities: [post, comment], when: {{ days: weekdays, between: [\"09:00\", \"17:00\"] }}, action: allow }}",
            r % 20,
            sites.join(", ")
        );
    }
    p.push_str("  - { name: staff-read, roles: [role7], sites: [listed], activities: [read], action: allow }\n");
    p.push_str("  - { name: everyone-else, action: deny }\n");
    p
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, big_policy()).unwrap();
    let policy =
        load_policy(&path.display().to_string(), &FsFiles).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.sites.len(), 1000);
    assert_eq!(policy.rules.len(), 100);
    let req = TestRequest::parse(
        "POST https://www.site917.example/api/graphql?op=FeedQuery",
        &[],
        None,
    )
    .unwrap();
    let groups = vec!["group7".to_string(), "group3".to_string()];
    let at = chrono::DateTime::parse_from_rfc3339("2026-07-01T11:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let facts = Facts {
        user: "bob",
        groups: &groups,
        request: RequestView::build(
            &policy,
            &RawRequest {
                method: &req.method,
                host: &req.host,
                target: "/api/graphql?op=FeedQuery",
                headers: &req.headers,
                body: None,
                connect: false,
            },
        )
        .unwrap(),
        at: Some(at),
        account: Default::default(),
    };
    let d = policy.decide(&facts);
    assert_eq!(
        (d.rule.as_str(), d.activity.as_str()),
        ("staff-read", "read")
    );
    c.bench_function("decide/1000-sites-100-rules", |b| {
        b.iter(|| policy.decide(black_box(&facts)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
