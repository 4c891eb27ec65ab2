//! Basic sign-in cost through `IdentityResolver::identify` (issue 14): an unknown
//! name, a wrong password for a known one (both one bcrypt check at the file's
//! cost, 10 here, what `socialgate hash-password` writes) and a cached success
//! (no bcrypt). The first two should be equal; the third microseconds.
//!
//! Run: `cargo bench --bench signin`; read the medians from
//! `target/criterion/signin/*/new/estimates.json`. Each attempt comes from a new
//! client address (10.x.y.z), so the throttle, which would refuse a repeating
//! address after 20 failures, never answers instead of bcrypt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use socialgate::identity::IdentityResolver;
use socialgate::settings::{BasicSettings, IdentitySettings};

const COST: u32 = 10;

fn basic(user: &str, pass: &str) -> http::HeaderMap {
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::PROXY_AUTHORIZATION,
        format!("Basic {v}").parse().unwrap(),
    );
    h
}

/// A fresh client address per attempt.
fn peer(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)))
}

fn signin(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.htpasswd");
    let hash = bcrypt::hash("alice-pass", COST).unwrap();
    std::fs::write(&path, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
    let resolver = IdentityResolver::new(IdentitySettings {
        basic: Some(BasicSettings {
            realm: "bench".into(),
            htpasswd: path,
        }),
        ..Default::default()
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let mut n = 0u32;
    let mut group = c.benchmark_group("signin");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("unknown_user", |b| {
        b.iter(|| {
            n += 1;
            let h = basic(&format!("nobody{n}"), "guess");
            black_box(rt.block_on(resolver.identify(peer(n), &h))).unwrap_err()
        })
    });
    let wrong = basic("alice", "guess");
    group.bench_function("wrong_password", |b| {
        b.iter(|| {
            n += 1;
            black_box(rt.block_on(resolver.identify(peer(n), &wrong))).unwrap_err()
        })
    });
    let right = basic("bob", "alice-pass");
    rt.block_on(resolver.identify(peer(0), &right)).unwrap();
    group.sample_size(100);
    group.bench_function("cached_success", |b| {
        b.iter(|| black_box(rt.block_on(resolver.identify(peer(0), &right))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, signin);
criterion_main!(benches);
