//! Sites recognised by their API paths on hosts that belong to no site: the
//! federated networks (Mastodon, Bluesky) whose servers can be anywhere.
//!
//! Job: a site file may give `api_paths:` (paths that are its API's and
//! nobody else's: `/xrpc/*`, `/api/v1/statuses`); a policy opts in with the
//! top-level `api_path_sites: [mastodon, bluesky]`. A request to a host of no
//! site whose path matches one of those is then decided twice: as the unlisted
//! host it is (as without the option), and as that site (its matchers name the
//! activity, its rules apply). It gets the site's decision only when that is a
//! `deny` and the unlisted one is not: recognition can only take rights away,
//! never give any, so a host cannot become more allowed by claiming to be
//! Mastodon. Otherwise the unlisted decision stands unchanged (`warn` and `dlp`
//! of the site's rules do not carry over: an acknowledgement belongs to a
//! listed site's hosts, and an unlisted host is not scanned).
//!
//! Limits: only requests whose path the gateway sees: plain HTTP, and requests
//! inside intercepted tunnels (whose hosts are listed, so not these). HTTPS to
//! an unlisted host is a tunnel decided at CONNECT time, by host alone: its
//! paths are never seen, and a self-hosted instance reached over HTTPS is
//! governed only once its host is added to the site's `domains`. The first
//! opted-in site (in `api_path_sites` order) whose paths match is the one tried.
//! Callers: `policy::compile` (parsing), `policy::decide` (the second decision).

use super::{PathMatch, Policy, Site};
use crate::yaml_source::{child, index, suggest, ConfigError, YamlDoc};

/// Top-level key: the sites whose `api_paths` apply on hosts of no site.
pub const TOP_KEY: &str = "api_path_sites";

/// Compiles a site's `api_paths` (exact paths, or prefixes ending in `*`).
pub(super) fn compile_site_paths(
    doc: &YamlDoc,
    site_path: &str,
    site: &str,
    raw: &[String],
    errors: &mut Vec<ConfigError>,
) -> Vec<PathMatch> {
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let at = index(&child(site_path, "api_paths"), i);
        let prefix = p.strip_suffix('*');
        let stem = prefix.unwrap_or(p);
        let segments = stem.split('/').filter(|s| !s.is_empty()).count();
        if !p.starts_with('/') || stem.contains('*') {
            errors.push(doc.error_at(
                &at,
                format!(
                    "site `{site}`: `api_paths`: `{p}` must start with `/` (a `*` only at the end)"
                ),
            ));
        } else if segments == 0 {
            errors.push(doc.error_at(
                &at,
                format!("site `{site}`: `api_paths`: `{p}` would claim every path of every host; name the API's own paths (`/xrpc/*`, `/api/v1/statuses`)"),
            ));
        } else {
            out.push(match prefix {
                Some(prefix) => PathMatch::Prefix(prefix.to_string()),
                None => PathMatch::Exact(p.clone()),
            });
        }
    }
    out
}

/// Compiles the top-level `api_path_sites`: each a site (with `api_paths`) of
/// the policy. Returns their indices in the order given.
pub(super) fn compile_opt_in(
    doc: &YamlDoc,
    value: &serde_yaml::Value,
    sites: &[Site],
    errors: &mut Vec<ConfigError>,
) -> Vec<u32> {
    let names: Vec<String> = doc
        .typed(value, TOP_KEY, &format!("`{TOP_KEY}`"), errors)
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let at = index(TOP_KEY, i);
        match sites.iter().position(|s| s.name == *name) {
            None => {
                let hint = suggest(name, sites.iter().map(|s| s.name.as_str()))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                errors.push(doc.error_at(&at, format!("`{TOP_KEY}`: no site `{name}`{hint}")));
            }
            Some(s) if sites[s].api_paths.is_empty() => errors.push(doc.error_at(
                &at,
                format!("`{TOP_KEY}`: site `{name}` gives no `api_paths`, so nothing recognises it on other hosts"),
            )),
            Some(s) if out.contains(&(s as u32)) => {}
            Some(s) => out.push(s as u32),
        }
    }
    out
}

impl Policy {
    /// The opted-in site whose `api_paths` match `path` (a normalised path of a
    /// request to a host of no site), if any.
    pub fn api_site_for(&self, path: &str) -> Option<u32> {
        self.api_path_sites.iter().copied().find(|&i| {
            self.sites
                .get(i as usize)
                .is_some_and(|s| on_api_path(s, path))
        })
    }

    /// Any site whose `api_paths` match `path`, opted in or not (for
    /// `catalogue check`, which points out hosts to add to `domains`).
    pub fn site_by_api_path(&self, path: &str) -> Option<&Site> {
        self.sites.iter().find(|s| on_api_path(s, path))
    }
}

fn on_api_path(site: &Site, path: &str) -> bool {
    site.api_paths.iter().any(|p| match p {
        PathMatch::Exact(e) => path == e,
        PathMatch::Prefix(pre) => path.starts_with(pre.as_str()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::policy::test_support::{test_policy, OneFile};
    use crate::policy::{load_policy, normalize_host, Action, Decision, Facts, Policy};
    use crate::view::{RawRequest, RequestView};

    const POLICY: &str = r#"
version: 1
api_path_sites: [fedi]
roles:
  press: { groups: [press] }
  contractors: { groups: [contractors] }
sites:
  fedi:
    domains: [fedi.test]
    api_paths: [/api/v1/statuses, '/xrpc/*']
    activities:
      post: [{ method: POST, path: /api/v1/statuses }]
rules:
  - { name: press-posts, roles: [press], sites: [fedi], activities: [post], action: allow }
  - { name: fedi-read, sites: [fedi], activities: [read], action: allow }
  - { name: warn-fedi, roles: [press], sites: [fedi], action: warn }
  - { name: no-fedi, sites: [fedi], action: deny }
  - { name: other-websites, sites: [unlisted], action: allow }
"#;

    fn decide(policy: &Policy, group: &str, method: &str, url: &str) -> Decision {
        let (host, target) = url.split_once('/').unwrap();
        let host = normalize_host(host).unwrap();
        let headers = http::HeaderMap::new();
        let target = format!("/{target}");
        let raw = RawRequest {
            method,
            host: &host,
            target: &target,
            headers: &headers,
            body: None,
            connect: method == "CONNECT",
        };
        let request = if method == "CONNECT" {
            RequestView::tunnel(&host, &headers)
        } else {
            RequestView::build(policy, &raw).unwrap()
        };
        let groups = vec![group.to_string()];
        policy.decide(&Facts {
            user: "u",
            groups: &groups,
            request,
            at: None,
            account: Default::default(),
        })
    }

    fn rank(a: Action) -> u8 {
        match a {
            Action::Deny => 0,
            Action::Warn => 1,
            Action::Allow => 2,
        }
    }

    #[test]
    fn a_host_of_no_site_on_the_api_paths_gets_the_sites_denial() {
        let p = test_policy(POLICY);
        let d = decide(
            &p,
            "contractors",
            "POST",
            "social.other.test/api/v1/statuses",
        );
        assert_eq!(
            (
                d.action,
                d.rule.as_str(),
                d.site.as_str(),
                d.activity.as_str()
            ),
            (Action::Deny, "no-fedi", "fedi", "post")
        );
        assert!(d.reason.contains("by its API path"), "{}", d.reason);
        // The API's reads are the site's too: allowed there, so the unlisted decision stands.
        let d = decide(
            &p,
            "contractors",
            "GET",
            "pds.other.test/xrpc/app.bsky.feed.getTimeline",
        );
        assert_eq!(
            (d.action, d.rule.as_str(), d.site.as_str()),
            (Action::Allow, "other-websites", "unlisted")
        );
        let d = decide(
            &p,
            "contractors",
            "POST",
            "pds.other.test/xrpc/com.atproto.repo.createRecord",
        );
        assert_eq!((d.action, d.rule.as_str()), (Action::Deny, "no-fedi"));
        // Allowed on the site: nothing changes (site `unlisted`, the unlisted rule).
        let d = decide(&p, "press", "POST", "social.other.test/api/v1/statuses");
        assert_eq!(
            (d.action, d.rule.as_str(), d.site.as_str()),
            (Action::Allow, "other-websites", "unlisted")
        );
        // A warn of the site does not carry over (its acknowledgement is the site's hosts').
        let d = decide(&p, "press", "POST", "social.other.test/xrpc/x.y");
        assert_eq!(
            (d.action, d.rule.as_str()),
            (Action::Allow, "other-websites")
        );
        // Other paths, and tunnels (whose paths are never seen), as before.
        let d = decide(
            &p,
            "contractors",
            "POST",
            "social.other.test/api/v2/statuses",
        );
        assert_eq!((d.action, d.site.as_str()), (Action::Allow, "unlisted"));
        let d = decide(&p, "contractors", "CONNECT", "social.other.test/");
        assert_eq!((d.action, d.activity.as_str()), (Action::Allow, "connect"));
    }

    #[test]
    fn recognition_never_allows_more_than_the_host_gets_without_it() {
        let strict = format!("{POLICY}  - {{ name: everyone-else, action: deny }}\n")
            .replace(
                "other-websites, sites: [unlisted], action: allow",
                "other-websites, sites: [unlisted], activities: [read], action: allow",
            )
            .replace(
                "no-fedi, sites: [fedi], action: deny",
                "fedi-all, sites: [fedi], action: allow",
            );
        let strict: &'static str = Box::leak(strict.into_boxed_str());
        for yaml in [POLICY, strict] {
            let with = test_policy(yaml);
            let without_yaml: &'static str = Box::leak(
                yaml.replace("api_path_sites: [fedi]\n", "")
                    .into_boxed_str(),
            );
            let without = test_policy(without_yaml);
            assert!(without.api_path_sites.is_empty());
            for group in ["press", "contractors", "nobody"] {
                for method in ["GET", "POST", "PUT", "CONNECT"] {
                    for url in [
                        "social.other.test/api/v1/statuses",
                        "social.other.test/xrpc/com.atproto.repo.createRecord",
                        "social.other.test/xrpc/app.bsky.feed.getTimeline",
                        "social.other.test/elsewhere",
                        "10.1.2.3/api/v1/statuses",
                        "fedi.test/api/v1/statuses",
                    ] {
                        let a = decide(&with, group, method, url);
                        let b = decide(&without, group, method, url);
                        assert!(
                            rank(a.action) <= rank(b.action),
                            "{group} {method} {url}: {:?} with, {:?} without",
                            a.action,
                            b.action
                        );
                        if a.action != Action::Deny {
                            assert_eq!(
                                a, b,
                                "{group} {method} {url}: only a denial changes anything"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_option_and_the_paths_are_checked() {
        let errors = |yaml: &'static str| -> String {
            match load_policy("test.yaml", &OneFile(yaml)) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            }
        };
        let e = errors(
            "version: 1\napi_path_sites: [fedl]\nsites:\n  fedi: { domains: [fedi.test], api_paths: ['/xrpc/*'] }\nrules: []\n",
        );
        assert!(
            e.contains("test.yaml:2:") && e.contains("did you mean `fedi`"),
            "{e}"
        );
        let e = errors("version: 1\napi_path_sites: [fedi]\nsites:\n  fedi: { domains: [fedi.test] }\nrules: []\n");
        assert!(e.contains("gives no `api_paths`"), "{e}");
        for bad in ["'/'", "'/*'", "'xrpc/*'", "'/a*b'"] {
            let yaml: &'static str = Box::leak(
                format!("version: 1\nsites:\n  fedi: {{ domains: [fedi.test], api_paths: [{bad}] }}\nrules: []\n")
                    .into_boxed_str(),
            );
            let e = errors(yaml);
            assert!(
                e.contains("test.yaml:3:") && e.contains("`api_paths`"),
                "{bad}: {e}"
            );
        }
    }
}
