//! Prometheus metrics: every name here is part of the interface (docs/operations.md, "Metrics").
//! Labels take values only from the policy (role, site, activity, rule names) or
//! from fixed sets; never a user name, a path, a host outside the catalogue or
//! content. The struct is injected (no global registry).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// The fixed `reason` labels of `socialgate_signin_throttled_total`, started at
/// zero. `identity::throttle::ThrottleReason::label` gives exactly these (a unit
/// test there checks it), so the metrics need not know the identity types.
pub const SIGNIN_THROTTLE_REASONS: [&str; 3] = ["client", "user", "busy"];

/// The fixed `reason` labels of `socialgate_destination_denied_total`, started
/// at zero: a refused port, one of the gateway's own listeners, each non-public
/// address class, an IP literal, an address shared by several sites, and (in
/// transparent mode) a Host or SNI that does not lead to the original destination.
/// `net_guard::DestinationDenied::label` gives exactly these (a unit test there
/// checks it), so the metrics need not know the guard's types.
pub const DESTINATION_DENIED_REASONS: [&str; 12] = [
    "port",
    "gateway",
    "loopback",
    "private",
    "cgnat",
    "link_local",
    "multicast",
    "unspecified",
    "reserved",
    "ip-literal",
    "ambiguous-site",
    "host-mismatch",
];

/// The gateway's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Decided requests: `role` (first role or `none`), `site`, `activity`, `action`.
    pub requests: IntCounterVec,
    /// Dry-run rules that matched: `rule`, `action`.
    pub dry_run: IntCounterVec,
    /// DLP findings: `detector`, `on_finding` (`block`, `log`).
    pub dlp_findings: IntCounterVec,
    /// Failed identification: `reason` (`missing`, `malformed`, `bad_credentials`,
    /// `unsupported_scheme`, `throttled`, ...).
    pub auth_failures: IntCounterVec,
    /// Basic sign-ins refused before any password check, by `reason` (`client`:
    /// the address is backing off, `user`: the name is, `busy`: the bcrypt queue
    /// is full; see `identity::throttle`).
    pub signin_throttled: IntCounterVec,
    /// Refused destinations: `reason` ([`DESTINATION_DENIED_REASONS`]: `port`,
    /// `gateway`, an address class, `ip-literal`, `ambiguous-site`, `host-mismatch`).
    pub destination_denied: IntCounterVec,
    /// Upstream failures: `kind` (`dns`, `connect`, `timeout`, `tls`, `protocol`).
    pub upstream_errors: IntCounterVec,
    /// Time to the end of the response, by `site`.
    pub duration: HistogramVec,
    /// Body bytes by `direction` (`up` to the site, `down` to the client).
    pub bytes: IntCounterVec,
    /// `bytes` for `up` and `down`, looked up once (two label lookups fewer
    /// per request).
    pub bytes_up: IntCounter,
    pub bytes_down: IntCounter,
    pub connections_active: IntGauge,
    pub tunnels_active: IntGauge,
    pub certs_minted: IntCounter,
    pub cert_cache_hits: IntCounter,
    /// Policy reloads by `result` (`ok`, `error`).
    pub policy_reloads: IntCounterVec,
    /// 1 for the loaded policy's `version`.
    pub policy_info: IntGaugeVec,
    /// 1 when the last policy load (at start, SIGHUP or a file change) was
    /// accepted, 0 while the files on disk are refused (the old policy serves).
    pub policy_last_reload_successful: IntGauge,
    /// When that last load was tried (Unix seconds).
    pub policy_last_reload_timestamp: IntGauge,
    /// htpasswd file reloads (SIGHUP) by `result` (`ok`, `error`), counted
    /// apart from the policy's.
    pub htpasswd_reloads: IntCounterVec,
    /// When the interception CA's certificate expires (Unix seconds).
    pub ca_expiry: IntGauge,
    /// Audit records that could not be queued.
    pub audit_dropped: IntCounter,
    /// Negotiate tokens refused, by `reason` (see `identity::kerberos::KerberosFailure`).
    pub kerberos_failures: IntCounterVec,
    /// Kerberos handshakes run (one per connection, not per request), by `result`
    /// (`accepted`, `refused`).
    pub kerberos_handshakes: IntCounterVec,
    /// Directory group lookups by `result`: `cached` (a cache hit), `fetched`,
    /// `stale` (directory down, cached groups served), `unavailable` (directory
    /// down, nothing cached: no directory groups).
    pub directory_lookups: IntCounterVec,
    /// Directory failures by `kind` (`connect`, `tls`, `bind`, `search`, `timeout`).
    pub directory_errors: IntCounterVec,
    /// Time spent asking the directory, by `operation` (`groups`, `password`).
    pub directory_duration: HistogramVec,
    /// Requests each catalogue matcher named: `site`, `activity`, `matcher` (its
    /// 0-based index in file order within the activity), resolved per policy by the drift module.
    pub catalogue_matches: IntCounterVec,
    /// Requests on a listed site that no matcher named: `site`, `kind` (`read`, `write`).
    pub activity_fallback: IntCounterVec,
    /// Deferred notice pages shown, by `site`.
    pub deferred_notices: IntCounterVec,
    /// Decided requests to listed sites by the social account they were made
    /// as: `site`, `account` (a set name, `other`, `unknown`), `activity`, `action`.
    pub account_requests: IntCounterVec,
    minted_seen: AtomicU64,
    hits_seen: AtomicU64,
    /// Tells this instance's series apart in the per-thread cache of
    /// [`Metrics::count_decided`] (a process can hold several, as tests do).
    id: u64,
}

/// The labels of one decided request, as `socialgate_requests_total` and
/// `socialgate_account_requests_total` take them.
#[derive(Debug, Clone, Copy)]
pub struct DecidedLabels<'a> {
    pub role: &'a str,
    pub site: &'a str,
    pub activity: &'a str,
    pub action: &'a str,
    /// `None` for an unlisted site (no account series).
    pub account: Option<&'a str>,
}

/// The series a decided request counts into, resolved once per label set.
struct DecidedSeries {
    requests: IntCounter,
    duration: Histogram,
    account: Option<IntCounter>,
}

/// Label sets resolved on this thread, by metrics instance and labels.
/// Bounded: past [`DECIDED_CACHE_MAX`] entries it starts again empty (the
/// series stay registered; only the shortcut to them is forgotten).
struct DecidedCache {
    series: rustc_hash::FxHashMap<Box<[u8]>, DecidedSeries>,
    key: Vec<u8>,
}

const DECIDED_CACHE_MAX: usize = 4096;

thread_local! {
    static DECIDED: std::cell::RefCell<DecidedCache> = std::cell::RefCell::new(DecidedCache {
        series: rustc_hash::FxHashMap::default(),
        key: Vec::with_capacity(128),
    });
}

impl DecidedSeries {
    fn count(&self, seconds: f64) {
        self.requests.inc();
        self.duration.observe(seconds);
        if let Some(account) = &self.account {
            account.inc();
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Creates the registry with every series of a fixed label set at zero, so
    /// `increase()` sees the first event.
    pub fn new() -> prometheus::Result<Metrics> {
        let m = Metrics::empty()?;
        for result in ["ok", "error"] {
            m.policy_reloads.with_label_values(&[result]);
            m.htpasswd_reloads.with_label_values(&[result]);
        }
        for reason in [
            "missing",
            "malformed",
            "bad_credentials",
            "unsupported_scheme",
            "throttled",
        ] {
            m.auth_failures.with_label_values(&[reason]);
        }
        for reason in SIGNIN_THROTTLE_REASONS {
            m.signin_throttled.with_label_values(&[reason]);
        }
        for kind in ["dns", "connect", "timeout", "tls", "protocol"] {
            m.upstream_errors.with_label_values(&[kind]);
        }
        for reason in DESTINATION_DENIED_REASONS {
            m.destination_denied.with_label_values(&[reason]);
        }
        for direction in ["up", "down"] {
            m.bytes.with_label_values(&[direction]);
        }
        Ok(m)
    }

    fn empty() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "socialgate_request_duration_seconds",
                "Time from the request head to the end of the response, by site.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["site"],
        )?;
        r.register(Box::new(duration.clone()))?;
        let policy_info = IntGaugeVec::new(
            Opts::new(
                "socialgate_policy_info",
                "1 for the version (hash) of the loaded policy.",
            ),
            &["version"],
        )?;
        r.register(Box::new(policy_info.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "socialgate_build_info",
                "1, labelled with the version and commit of this binary.",
            ),
            &["version", "commit"],
        )?;
        r.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[crate::build_info::VERSION, crate::build_info::COMMIT])
            .set(1);
        let bytes = counter_vec(
            &r,
            "socialgate_bytes_total",
            "Body bytes relayed, up to sites and down to clients.",
            &["direction"],
        )?;
        Ok(Metrics {
            bytes_up: bytes.with_label_values(&["up"]),
            bytes_down: bytes.with_label_values(&["down"]),
            requests: counter_vec(&r, "socialgate_requests_total", "Decided requests by the user's first role, site, activity and action.", &["role", "site", "activity", "action"])?,
            dry_run: counter_vec(&r, "socialgate_dry_run_matches_total", "Rules with enforce: false that matched (would <action>).", &["rule", "action"])?,
            dlp_findings: counter_vec(&r, "socialgate_dlp_findings_total", "DLP findings by detector and what the profile does with them.", &["detector", "on_finding"])?,
            auth_failures: counter_vec(&r, "socialgate_auth_failures_total", "Clients that could not be identified, by reason.", &["reason"])?,
            signin_throttled: counter_vec(&r, "socialgate_signin_throttled_total", "Basic sign-ins refused before any password check, by reason (client, user, busy).", &["reason"])?,
            destination_denied: counter_vec(&r, "socialgate_destination_denied_total", "Destinations refused by the guard, by reason.", &["reason"])?,
            upstream_errors: counter_vec(&r, "socialgate_upstream_errors_total", "Failures reaching the real site, by kind.", &["kind"])?,
            duration,
            bytes,
            connections_active: gauge(&r, "socialgate_connections_active", "Client connections open on the proxy port.")?,
            tunnels_active: gauge(&r, "socialgate_tunnels_active", "CONNECT tunnels open (intercepted or not).")?,
            certs_minted: counter(&r, "socialgate_certs_minted_total", "Leaf certificates minted.")?,
            cert_cache_hits: counter(&r, "socialgate_cert_cache_hits_total", "Leaf certificates served from the cache.")?,
            policy_reloads: counter_vec(&r, "socialgate_policy_reloads_total", "Policy reloads by result.", &["result"])?,
            policy_info,
            policy_last_reload_successful: gauge(&r, "socialgate_policy_last_reload_successful", "1 when the last policy load was accepted; 0 while the policy files on disk are refused and the previous policy serves.")?,
            policy_last_reload_timestamp: gauge(&r, "socialgate_policy_last_reload_timestamp_seconds", "When the last policy load (start, SIGHUP or a file change) was tried, in Unix seconds.")?,
            ca_expiry: gauge(&r, "socialgate_ca_expiry_timestamp_seconds", "When the interception CA certificate expires, in Unix seconds; no host certificate outlives it.")?,
            htpasswd_reloads: counter_vec(&r, "socialgate_htpasswd_reloads_total", "htpasswd file reloads (SIGHUP) by result.", &["result"])?,
            audit_dropped: counter(&r, "socialgate_audit_dropped_total", "Audit records that could not be queued (requests under a dlp rule get 503 instead).")?,
            kerberos_failures: counter_vec(&r, "socialgate_kerberos_failures_total", "Negotiate (Kerberos) tokens refused, by reason.", &["reason"])?,
            kerberos_handshakes: counter_vec(&r, "socialgate_kerberos_handshakes_total", "Kerberos handshakes run (once per client connection), by result.", &["result"])?,
            directory_lookups: counter_vec(&r, "socialgate_directory_lookups_total", "Directory group lookups by result (cached = cache hit).", &["result"])?,
            directory_errors: counter_vec(&r, "socialgate_directory_errors_total", "Directory (LDAP) failures by kind.", &["kind"])?,
            directory_duration: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "socialgate_directory_request_duration_seconds",
                        "Time spent asking the directory (LDAP), by operation.",
                    )
                    .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
                    &["operation"],
                )?;
                r.register(Box::new(h.clone()))?;
                h
            },
            catalogue_matches: counter_vec(&r, "socialgate_catalogue_matches_total", "Requests each catalogue matcher named, by site, activity and matcher (its 0-based index in file order within the activity).", &["site", "activity", "matcher"])?,
            activity_fallback: counter_vec(&r, "socialgate_activity_fallback_total", "Requests on a listed site that no catalogue matcher named (the fallback read or write), by site and kind.", &["site", "kind"])?,
            deferred_notices: counter_vec(&r, "socialgate_deferred_notices_total", "Notice pages shown at a page load, explaining a background request that was denied, by site.", &["site"])?,
            account_requests: counter_vec(&r, "socialgate_account_requests_total", "Decided requests to listed sites by the social account used: a set of the policy's accounts, other (signed in, in no set) or unknown.", &["site", "account", "activity", "action"])?,
            registry: r,
            minted_seen: AtomicU64::new(0),
            hits_seen: AtomicU64::new(0),
            id: {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        })
    }

    /// Brings the certificate counters up to the issuer's totals.
    pub fn sync_cert_counters(&self, minted_total: u64, hits_total: u64) {
        let m = self.minted_seen.swap(minted_total, Ordering::Relaxed);
        self.certs_minted.inc_by(minted_total.saturating_sub(m));
        let h = self.hits_seen.swap(hits_total, Ordering::Relaxed);
        self.cert_cache_hits.inc_by(hits_total.saturating_sub(h));
    }

    /// Marks `version` as the loaded policy.
    pub fn set_policy_version(&self, version: &str) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[version]).set(1);
    }

    /// Records a policy load tried now: accepted or refused.
    pub fn record_policy_load(&self, accepted: bool) {
        self.policy_last_reload_successful.set(i64::from(accepted));
        self.policy_last_reload_timestamp
            .set(chrono::Utc::now().timestamp());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Counts one decided request: `socialgate_requests_total`, its duration
    /// in `socialgate_request_duration_seconds` and, for a listed site,
    /// `socialgate_account_requests_total`. The same as three
    /// `with_label_values` calls, without their hashing, lock and reference
    /// counting for a label set this thread has counted before (labels come
    /// from the policy and fixed sets, so the sets are few; no series of these
    /// three is ever removed, so a cached one is never stale).
    pub fn count_decided(&self, labels: DecidedLabels<'_>, seconds: f64) {
        DECIDED.with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return self.resolve_decided(labels).count(seconds);
            };
            let DecidedCache { series, key } = &mut *cache;
            key.clear();
            key.extend_from_slice(&self.id.to_le_bytes());
            // 0xFF never occurs in UTF-8: the parts cannot run into each other.
            for part in [labels.role, labels.site, labels.activity, labels.action] {
                key.extend_from_slice(part.as_bytes());
                key.push(0xFF);
            }
            // 0xFE (nor UTF-8 either) marks an account, so `Some("")` is not `None`.
            if let Some(account) = labels.account {
                key.push(0xFE);
                key.extend_from_slice(account.as_bytes());
            }
            if let Some(found) = series.get(key.as_slice()) {
                return found.count(seconds);
            }
            let resolved = self.resolve_decided(labels);
            resolved.count(seconds);
            if series.len() >= DECIDED_CACHE_MAX {
                series.clear();
            }
            series.insert(key.as_slice().into(), resolved);
        });
    }

    fn resolve_decided(&self, l: DecidedLabels<'_>) -> DecidedSeries {
        DecidedSeries {
            requests: self
                .requests
                .with_label_values(&[l.role, l.site, l.activity, l.action]),
            duration: self.duration.with_label_values(&[l.site]),
            account: l.account.map(|account| {
                self.account_requests
                    .with_label_values(&[l.site, account, l.activity, l.action])
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(site: &'a str, account: Option<&'a str>) -> DecidedLabels<'a> {
        DecidedLabels {
            role: "staff",
            site,
            activity: "read",
            action: "allow",
            account,
        }
    }

    #[test]
    fn decided_requests_count_into_their_own_instance_and_series() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        for _ in 0..3 {
            a.count_decided(labels("x", Some("unknown")), 0.002);
        }
        a.count_decided(labels("unlisted", None), 0.002);
        b.count_decided(labels("x", Some("unknown")), 0.002);
        let requests = |m: &Metrics, site| {
            m.requests
                .with_label_values(&["staff", site, "read", "allow"])
                .get()
        };
        assert_eq!(requests(&a, "x"), 3);
        assert_eq!(requests(&a, "unlisted"), 1);
        assert_eq!(
            requests(&b, "x"),
            1,
            "another instance's series are its own"
        );
        let accounts = |m: &Metrics, site| {
            m.account_requests
                .with_label_values(&[site, "unknown", "read", "allow"])
                .get()
        };
        assert_eq!(accounts(&a, "x"), 3);
        assert_eq!(accounts(&b, "x"), 1);
        // An unlisted site first, then an empty account name on the same
        // labels: the second has its account series all the same.
        a.count_decided(labels("y", None), 0.002);
        a.count_decided(labels("y", Some("")), 0.002);
        assert_eq!(
            a.account_requests
                .with_label_values(&["y", "", "read", "allow"])
                .get(),
            1,
            "no account and an empty account are two label sets"
        );
        assert!(
            !a.render().contains("socialgate_account_requests_total{account=\"unknown\",action=\"allow\",activity=\"read\",site=\"unlisted\"}"),
            "an unlisted site has no account series"
        );
        assert_eq!(a.duration.with_label_values(&["x"]).get_sample_count(), 3);
        // Another role on the same site is another series, cached apart.
        a.count_decided(
            DecidedLabels {
                role: "press",
                ..labels("x", Some("unknown"))
            },
            0.0,
        );
        assert_eq!(requests(&a, "x"), 3);
        assert_eq!(
            a.requests
                .with_label_values(&["press", "x", "read", "allow"])
                .get(),
            1
        );
        assert_eq!(accounts(&a, "x"), 4, "the account series has no role");
    }
}
