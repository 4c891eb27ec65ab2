//! Catalogue drift: which matcher of the site catalogue named each request, as
//! the metrics `socialgate_catalogue_matches_total{site,activity,matcher}` and
//! `socialgate_activity_fallback_total{site,kind}` and the audit field `matched`
//! (`site/activity#N`).
//!
//! Job: [`DriftSeries::build`] resolves, once per policy (at start and at every
//! reload), one counter per matcher and two per site (fallback `read`, `write`),
//! all started at zero so a matcher that never matches is a visible 0 series;
//! [`DriftSeries::count`] then costs an index and an increment per request, no
//! label hashing or formatting. A reload retires the series of matchers that are
//! gone ([`DriftSeries::retire`]).
//!
//! Limits: a request decided on another policy than the series' (one in flight
//! across a reload) takes the slow path (labels looked up by name). Requests not
//! classified on a listed site (unlisted hosts, tunnels, refusals, requests
//! denied before their body was read) are not counted. Called by
//! `proxy::gateway` (build, retire) and `proxy::observe` (count).

use prometheus::IntCounter;

use crate::metrics::Metrics;
use crate::policy::{Decision, Matched, Policy};

/// The pre-resolved drift counters of one policy.
#[derive(Debug)]
pub struct DriftSeries {
    /// The policy these were built for.
    version: String,
    /// Per site, per activity slot, per matcher: its counter, its audit label
    /// (`site/activity#N`) and its metric labels.
    matchers: Vec<Vec<Vec<MatcherSeries>>>,
    /// Per site: the fallback `read` and `write` counters.
    fallback: Vec<[IntCounter; 2]>,
    /// Per site: its name (to retire its fallback series).
    sites: Vec<String>,
}

#[derive(Debug)]
struct MatcherSeries {
    counter: IntCounter,
    audit: String,
    labels: [String; 3],
}

impl DriftSeries {
    /// Resolves every series of `policy` (each at zero until counted).
    pub fn build(metrics: &Metrics, policy: &Policy) -> DriftSeries {
        let mut matchers = Vec::with_capacity(policy.sites.len());
        let mut fallback = Vec::with_capacity(policy.sites.len());
        for site in &policy.sites {
            let mut slots = Vec::with_capacity(site.activities.len());
            for (activity, list) in &site.activities {
                let activity = policy.activity_name(*activity);
                let series = (0..list.len())
                    .map(|i| {
                        let labels = [site.name.clone(), activity.to_string(), i.to_string()];
                        MatcherSeries {
                            counter: metrics.catalogue_matches.with_label_values(&[
                                labels[0].as_str(),
                                labels[1].as_str(),
                                labels[2].as_str(),
                            ]),
                            audit: format!("{}/{}#{}", site.name, activity, i),
                            labels,
                        }
                    })
                    .collect();
                slots.push(series);
            }
            matchers.push(slots);
            fallback.push(["read", "write"].map(|kind| {
                metrics
                    .activity_fallback
                    .with_label_values(&[site.name.as_str(), kind])
            }));
        }
        DriftSeries {
            version: policy.version.clone(),
            matchers,
            fallback,
            sites: policy.sites.iter().map(|s| s.name.clone()).collect(),
        }
    }

    /// Removes from `metrics` the series of this (old) policy that `next` does
    /// not have: matchers and sites that a reload took away.
    pub fn retire(&self, metrics: &Metrics, next: &DriftSeries) {
        let kept: std::collections::HashSet<&[String; 3]> = next
            .matchers
            .iter()
            .flatten()
            .flatten()
            .map(|m| &m.labels)
            .collect();
        for m in self.matchers.iter().flatten().flatten() {
            if !kept.contains(&m.labels) {
                let l = &m.labels;
                let _ = metrics.catalogue_matches.remove_label_values(&[
                    l[0].as_str(),
                    l[1].as_str(),
                    l[2].as_str(),
                ]);
            }
        }
        for site in &self.sites {
            if !next.sites.contains(site) {
                for kind in ["read", "write"] {
                    let _ = metrics
                        .activity_fallback
                        .remove_label_values(&[site.as_str(), kind]);
                }
            }
        }
    }

    /// Counts `decision` (decided on `policy`) and returns its audit `matched`.
    pub fn count(&self, metrics: &Metrics, policy: &Policy, decision: &Decision) -> String {
        let fast = self.version == policy.version;
        match decision.matched {
            Matched::Unclassified => String::new(),
            Matched::Fallback { site } => {
                let kind = usize::from(decision.activity != "read");
                match self.fallback.get(site as usize).filter(|_| fast) {
                    Some(pair) => pair[kind].inc(),
                    None => metrics
                        .activity_fallback
                        .with_label_values(&[decision.site.as_str(), ["read", "write"][kind]])
                        .inc(),
                }
                String::new()
            }
            Matched::Matcher { site, by } => {
                let resolved = self
                    .matchers
                    .get(site as usize)
                    .and_then(|s| s.get(by.slot as usize))
                    .and_then(|s| s.get(by.index as usize))
                    .filter(|_| fast);
                match resolved {
                    Some(m) => {
                        m.counter.inc();
                        m.audit.clone()
                    }
                    None => {
                        metrics
                            .catalogue_matches
                            .with_label_values(&[
                                decision.site.as_str(),
                                decision.activity.as_str(),
                                by.index.to_string().as_str(),
                            ])
                            .inc();
                        policy.matched_label(decision.matched)
                    }
                }
            }
        }
    }
}
