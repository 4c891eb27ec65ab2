//! Leaf certificate cost (workload W5 of docs/benchmarks.md): `mint_leaf` per call (goal ≤ 100 µs)
//! and a cache hit of `leaf_for`.
//!
//! Run: `cargo bench --bench leaf_mint`. Timings are wall clock on one thread;
//! minting is pure CPU, so they are also its CPU time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion};
use socialgate::tls::{CertificateAuthority, LeafIssuer};

fn leaf_mint(c: &mut Criterion) {
    let ca = Arc::new(CertificateAuthority::generate("bench CA").unwrap());
    let issuer = LeafIssuer::new(ca, 10_000);

    c.bench_function("mint_leaf", |b| {
        b.iter(|| {
            issuer
                .mint_leaf(black_box("www.social.test"), SystemTime::now())
                .unwrap()
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(issuer.leaf_for("www.social.test")).unwrap();
    c.bench_function("leaf_for_cache_hit", |b| {
        b.iter(|| {
            rt.block_on(issuer.leaf_for(black_box("www.social.test")))
                .unwrap()
        })
    });

    c.bench_function("server_config", |b| {
        let key = rt.block_on(issuer.leaf_for("www.social.test")).unwrap();
        b.iter(|| LeafIssuer::server_config(key.clone(), &[b"h2", b"http/1.1"]).unwrap())
    });
}

criterion_group!(benches, leaf_mint);
criterion_main!(benches);
