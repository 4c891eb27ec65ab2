//! The deployment assets stay in step with the code: every `socialgate_*` metric
//! that the Grafana dashboard (`deploy/grafana/socialgate-dashboard.json`) or the
//! Prometheus alerts (`deploy/prometheus/alerts.yml`) query is exported by a real
//! gateway, with the label names and label values the queries use; the settings and
//! the policy shipped in `deploy/` load (the policy's own tests included); the
//! compose file runs two replicas sharing the CA and warn key behind HAProxy
//! (whose configuration `haproxy -c` accepts); no key
//! material sits in `deploy/`; and `docs/operations.md` names every metric the
//! gateway exports and lists the same settings defaults as the code.
//!
//! Limits: the PromQL is not parsed, only scanned (metric names, `by (...)` label
//! lists and `label="value"` matchers); `promtool check rules` checks the syntax.
//! All traffic stays on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use regex::Regex;
use serde_yaml::Value as Yaml;
use support::*;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml_documents(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            <Yaml as serde::Deserialize>::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}"))
        })
        .collect()
}

fn dashboard() -> serde_json::Value {
    let rel = "deploy/grafana/socialgate-dashboard.json";
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every PromQL string in the dashboard: panel targets (`expr`) and template
/// variable queries (`query`, `definition`).
fn dashboard_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => dashboard_queries(child, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, out)),
        _ => {}
    }
}

/// The alerting rules of alerts.yml, as YAML mappings.
fn alert_rules() -> Vec<Yaml> {
    let doc = yaml("deploy/prometheus/alerts.yml");
    let groups = doc["groups"]
        .as_sequence()
        .expect("alerts.yml: `groups` list");
    assert!(!groups.is_empty(), "alerts.yml has no group");
    groups
        .iter()
        .flat_map(|g| {
            g["rules"]
                .as_sequence()
                .expect("each group has `rules`")
                .clone()
        })
        .collect()
}

/// Every PromQL expression of the dashboard and the alerts, with where it is.
fn all_queries() -> Vec<(String, String)> {
    let mut dash = Vec::new();
    dashboard_queries(&dashboard(), &mut dash);
    let mut out: Vec<(String, String)> = dash
        .into_iter()
        .map(|q| ("socialgate-dashboard.json".to_string(), q))
        .collect();
    for rule in alert_rules() {
        let name = rule["alert"].as_str().unwrap_or("?").to_string();
        let expr = rule["expr"].as_str().expect("every rule has an expr");
        out.push((format!("alerts.yml {name}"), expr.to_string()));
    }
    out
}

fn metric_names(query: &str) -> BTreeSet<String> {
    let re = Regex::new(r"socialgate_[a-z_]+").unwrap();
    re.find_iter(query)
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The samples of a Prometheus text exposition: metric name → label sets.
fn samples(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let pair = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..end];
        let labels: BTreeMap<String, String> = match line[end..].strip_prefix('{') {
            Some(rest) => {
                let inner = &rest[..rest.rfind('}').unwrap_or(rest.len())];
                pair.captures_iter(inner)
                    .map(|c| (c[1].to_string(), c[2].to_string()))
                    .collect()
            }
            None => BTreeMap::new(),
        };
        out.entry(name.to_string()).or_default().push(labels);
    }
    out
}

/// The series a query name stands for: itself, or a histogram's base name for
/// `_bucket`, `_count` and `_sum`.
fn series_of<'a>(
    exported: &'a BTreeMap<String, Vec<BTreeMap<String, String>>>,
    name: &str,
) -> Option<&'a Vec<BTreeMap<String, String>>> {
    if let Some(s) = exported.get(name) {
        return Some(s);
    }
    ["_bucket", "_count", "_sum"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find_map(|base| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| exported.get(&format!("{base}{s}")))
        })
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().unwrap_or(0) >= 36,
        "schemaVersion"
    );
    assert_eq!(d["uid"], "socialgate");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    assert!(
        vars.iter().any(|v| v["name"] == "DS_PROMETHEUS"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a datasource variable DS_PROMETHEUS"
    );
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "ids unique"
        );
        let title = p["title"].as_str().expect("panel title");
        titles.push(title.to_string());
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {title} uses the datasource variable"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has a query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
        }
    }
    for wanted in [
        "Decisions by action",
        "Decisions by site",
        "Decisions by role",
        "DLP findings by detector",
        "Authentication failures by reason",
        "Upstream errors by kind",
        "Latency p50 and p99",
        "Client connections",
        "Open tunnels",
        "Policy reloads by result",
        "Policy version per gateway",
        "Destination denials by reason",
        "Bytes up and down",
    ] {
        assert!(titles.iter().any(|t| t == wanted), "panel {wanted} missing");
    }
    let mut queries = Vec::new();
    dashboard_queries(&d, &mut queries);
    assert!(queries.iter().any(|q| q.contains("histogram_quantile(0.99")
        && q.contains("socialgate_request_duration_seconds_bucket")));
}

#[test]
fn every_alert_says_how_long_how_bad_and_what_to_do() {
    let rules = alert_rules();
    let mut names = BTreeSet::new();
    for r in &rules {
        let name = r["alert"].as_str().expect("alert name").to_string();
        assert!(names.insert(name.clone()), "{name} twice");
        assert!(r["for"].as_str().is_some(), "{name}: `for:`");
        let severity = r["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity `{severity}`"
        );
        for a in ["summary", "description"] {
            assert!(
                r["annotations"][a].as_str().is_some_and(|s| s.len() > 20),
                "{name}: annotation {a}"
            );
        }
    }
    let exprs: Vec<&str> = rules.iter().filter_map(|r| r["expr"].as_str()).collect();
    let uses = |needle: &str| exprs.iter().any(|e| e.contains(needle));
    assert!(uses(r#"up{job="socialgate"} == 0"#), "gateway down");
    assert!(uses("socialgate_dlp_findings_total"), "DLP findings spike");
    assert!(
        uses("socialgate_auth_failures_total"),
        "auth failures spike"
    );
    assert!(uses("socialgate_upstream_errors_total"), "upstream errors");
    assert!(
        uses("socialgate_policy_last_reload_successful == 0"),
        "policy files refused"
    );
    assert!(
        uses("socialgate_ca_expiry_timestamp_seconds - time()"),
        "CA expiring"
    );
    assert!(
        uses("socialgate_audit_dropped_total"),
        "audit records dropped"
    );

    let prom = yaml("deploy/prometheus/prometheus.yml");
    let rule_files: Vec<&str> = prom["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(rule_files.contains(&"alerts.yml"), "{rule_files:?}");
    let jobs = prom["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"] == "socialgate")
        .expect("a scrape job named socialgate (the alerts use up{job=\"socialgate\"})");
    let targets = format!("{:?}", job["static_configs"]);
    assert!(targets.contains(":9128"), "scrapes the admin port");
}

#[test]
fn deploy_files_parse_and_hold_no_key_material() {
    let compose = yaml("deploy/docker-compose.yml");
    for service in ["gw1", "gw2", "gateway", "prometheus", "grafana"] {
        assert!(
            compose["services"][service].is_mapping(),
            "compose service {service}"
        );
    }
    // The two replicas share the CA and the warn key as secrets (from the
    // `x-gateway` block both merge), and name themselves apart.
    let shared = format!("{:?}", compose["x-gateway"]["secrets"]);
    for secret in ["ca_crt", "ca_key", "warn_key"] {
        assert!(
            shared.contains(secret),
            "the replicas share {secret}: {shared}"
        );
        assert!(
            compose["secrets"][secret]["file"].is_string(),
            "secret {secret}"
        );
    }
    let compose_text = read("deploy/docker-compose.yml");
    assert_eq!(compose_text.matches("<<: *gateway").count(), 2);
    assert_eq!(compose["services"]["gw1"]["hostname"], "gw1");
    assert_eq!(compose["services"]["gw2"]["hostname"], "gw2");
    // HAProxy in front, checked by HAProxy itself when it is installed in CI
    // (Debian `haproxy`, in the test packages).
    let haproxy = socialgate_testkit::directory::require("haproxy", "haproxy");
    let check = std::process::Command::new(haproxy)
        .args(["-c", "-f"])
        .arg(repo_file("deploy/haproxy/haproxy.cfg"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c deploy/haproxy/haproxy.cfg: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    for rel in [
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/socialgate.yml",
    ] {
        assert_eq!(yaml(rel)["apiVersion"], 1, "{rel}");
    }
    let mut kinds = BTreeSet::new();
    for entry in std::fs::read_dir(repo_file("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") {
            continue;
        }
        for doc in yaml_documents(&format!("deploy/kubernetes/{name}")) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: kind"));
            kinds.insert(kind.to_string());
        }
    }
    for kind in ["ConfigMap", "Secret", "Deployment", "Service"] {
        assert!(
            kinds.contains(kind),
            "a Kubernetes {kind} in deploy/kubernetes"
        );
    }
    // No private key, not even an example one, anywhere under deploy/.
    let mut stack = vec![repo_file("deploy")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                !text.contains("PRIVATE KEY-----") && !text.contains("LS0tLS1CRUdJTi"),
                "{} holds key material",
                path.display()
            );
        }
    }
}

#[test]
fn the_shipped_settings_and_policy_load() {
    use socialgate::runtime::{load_checked_policy, PolicySource};
    use socialgate::settings::Settings;

    // The compose replicas read the warn key from a secret; a stand-in here.
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(
        secrets.path().join("warn.key"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let compose_text = read("deploy/socialgate.yaml")
        .replace("/run/secrets/", &format!("{}/", secrets.path().display()));
    let compose_settings = Settings::from_yaml("deploy/socialgate.yaml", &compose_text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(compose_settings.listen[0].port(), 3128);
    assert_eq!(compose_settings.admin_listen.map(|a| a.port()), Some(9128));
    // Two replicas share one CA and one warn key: neither may make its own.
    assert!(!compose_settings.ca_create_if_missing);
    assert!(compose_settings.warn_key.is_some());

    // The image's built-in settings serve a first `docker run`: a client on the
    // Docker bridge (or a private LAN) is the documented staff user.
    let container = Settings::from_yaml(
        "deploy/container/socialgate.yaml",
        &read("deploy/container/socialgate.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(container.listen[0].to_string(), "0.0.0.0:3128");
    for client in ["172.17.0.1", "10.20.4.17", "192.168.1.20"] {
        let ip: std::net::IpAddr = client.parse().unwrap();
        let n = container
            .identity
            .networks
            .iter()
            .find(|n| n.cidr.contains(&ip))
            .unwrap_or_else(|| panic!("{client} is identified by no network"));
        assert_eq!(
            (n.user.as_str(), n.groups.as_slice()),
            ("staff", &["all-staff".to_string()][..])
        );
    }

    let config = yaml("deploy/kubernetes/configmap-policy.yaml");
    let settings_text = config["data"]["socialgate.yaml"]
        .as_str()
        .expect("data.socialgate.yaml");
    // The warn key is read when the settings are parsed: stand in for the Secret.
    let key_dir = tempfile::tempdir().unwrap();
    let key = key_dir.path().join("warn.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    assert!(settings_text.contains("/etc/socialgate/warn/warn.key"));
    let settings_text =
        settings_text.replace("/etc/socialgate/warn/warn.key", &key.display().to_string());
    let k8s = Settings::from_yaml("configmap socialgate.yaml", &settings_text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(k8s.warn_key.is_some(), "replicas share the warn key");
    assert_eq!(k8s.admin_listen.map(|a| a.port()), Some(9128));
    assert_eq!(
        k8s.policy.as_deref(),
        Some(std::path::Path::new("/etc/socialgate/config/policy.yaml"))
    );

    // The operations guide's "every key and its default" block is the built-in default.
    let ops = read("docs/operations.md");
    let block = ops
        .split_once("### Every key and its default")
        .and_then(|(_, rest)| rest.split_once("```yaml\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(yaml, _)| yaml)
        .expect("docs/operations.md: the defaults block");
    let documented =
        Settings::from_yaml("docs/operations.md", block).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        format!("{documented:?}"),
        format!("{:?}", Settings::default()),
        "docs/operations.md lists other defaults than the code"
    );

    // The ConfigMap's policy includes the catalogue from the image; check it against
    // the catalogue of this checkout, tests included.
    let policy_text = config["data"]["policy.yaml"]
        .as_str()
        .expect("data.policy.yaml");
    assert!(policy_text.contains("/app/policies/sites/*.yaml"));
    // It is the shipped default policy, from its "How a request is decided" on,
    // with only the include line pointing into the image: a rule, an account set
    // or a test added to one and not the other is a deployment that differs from
    // what was checked.
    let default = read("policies/default.yaml");
    let from = |t: &str| {
        let at = t
            .find("# How a request is decided:")
            .expect("the \"How a request is decided\" comment");
        t[at..]
            .lines()
            .map(|l| {
                if l.starts_with("include:") {
                    "include: (the catalogue)"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        from(policy_text) == from(&default),
        "deploy/kubernetes/configmap-policy.yaml's policy.yaml differs from policies/default.yaml: \
         copy the default from \"# How a request is decided:\" on, indented, keeping the include line"
    );
    let catalogue = repo_file("policies/sites").display().to_string();
    let fx = Fixture::new();
    let path = fx.write(
        "policy.yaml",
        &policy_text.replace("/app/policies/sites", &catalogue),
    );
    let policy = load_checked_policy(&PolicySource::File(path)).unwrap_or_else(|errors| {
        panic!(
            "the ConfigMap's policy does not load:\n{}",
            errors.join("\n")
        )
    });
    assert!(!policy.tests.is_empty(), "the policy carries its tests");
}

const POLICY: &str = r#"
version: 1
roles:
  press-office: { groups: [communications] }
  staff: { groups: [all-staff] }
sites:
  social:
    domains: [www.social.test]
    intercept: false
    activities:
      post: [{ method: POST, path: /post }]
dlp:
  profiles:
    official: { detectors: [uk-nino], on_finding: block }
rules:
  - { name: try-blocking-social, sites: [social], action: deny, enforce: false }
  - { name: press-office-posts, roles: [press-office], sites: [social], activities: [post], action: allow, dlp: official }
  - { name: staff-read, roles: [staff], sites: [social], activities: [read], action: allow }
  - { name: other-websites, sites: [unlisted], action: allow }
  - { name: everyone-else, action: deny }
"#;

const BROKEN: &str = "version: 1\nrules:\n  - { name: oops, action: allow, sitez: [social] }\n";

fn settings(up_port: u16, closed_port: u16) -> String {
    format!(
        r#"
admin_listen: 127.0.0.1:0
identity:
  basic: {{ realm: "Test", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ all-staff: [bob], communications: [alice] }}
upstream:
  resolve: {{ www.social.test: 127.0.0.1, closed.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [80, 443, {up_port}, {closed_port}]
"#
    )
}

/// Drives traffic that makes every labelled series appear, then scrapes /metrics.
async fn exposition_after_traffic() -> String {
    let fx = Fixture::new();
    htpasswd(&fx, &[("bob", "bob-pass"), ("alice", "alice-pass")]);
    let up = upstream_http("127.0.0.1").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = gateway(&fx, &settings(up.addr.port(), closed), POLICY).await;
    let bob = client(&gw, Some(("bob", "bob-pass")));
    let alice = client(&gw, Some(("alice", "alice-pass")));
    let base = format!("http://www.social.test:{}", up.addr.port());
    let status = |r: reqwest::Result<reqwest::Response>| r.unwrap().status().as_u16();

    // Allowed, with a dry-run rule matching: requests, dry runs, duration, bytes.
    assert_eq!(status(bob.get(format!("{base}/feed")).send().await), 200);
    // Denied by policy.
    assert_eq!(
        status(bob.post(format!("{base}/post")).body("hi").send().await),
        403
    );
    // That denial was a background request (no navigation headers, no text/html):
    // bob's next page load of the site is the deferred notice.
    let notice = bob
        .get(format!("{base}/feed"))
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(notice.status().as_u16(), 200);
    assert!(
        notice.text().await.unwrap().contains("href=\"/feed\""),
        "the notice page links on to the page asked for"
    );
    // Denied by DLP: a finding of uk-nino under a block profile.
    let post = alice
        .post(format!("{base}/post"))
        .header("content-type", "text/plain")
        .body("Resident JG 10 37 82 B asked about parking")
        .send()
        .await;
    assert_eq!(status(post), 403);
    // No credentials, then wrong ones: 407 twice.
    assert_eq!(
        status(client(&gw, None).get(format!("{base}/")).send().await),
        407
    );
    assert_eq!(
        status(
            client(&gw, Some(("bob", "wrong")))
                .get(format!("{base}/"))
                .send()
                .await
        ),
        407
    );
    // A port that is not allowed: the destination guard.
    assert_eq!(
        status(bob.get("http://www.social.test:22/").send().await),
        403
    );
    // Nothing listens there: an upstream error.
    assert_eq!(
        status(
            bob.get(format!("http://closed.test:{closed}/"))
                .send()
                .await
        ),
        502
    );
    // A refused reload, then a good one.
    fx.write("policy.yaml", BROKEN);
    assert!(!gw.reload(), "the broken policy is refused");
    fx.write("policy.yaml", POLICY);
    assert!(gw.reload(), "the good policy loads again");

    admin_metrics(&gw).await
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let text = exposition_after_traffic().await;
    let exported = samples(&text);
    let by = Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").unwrap();
    let matcher = Regex::new(r#"(socialgate_[a-z_]+)\s*\{([^}]*)\}"#).unwrap();
    let equals = Regex::new(r#"([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)""#).unwrap();
    // Labels Prometheus adds at scrape time, and the histogram's bucket label.
    let scrape_labels = ["instance", "job", "le"];

    let mut problems = Vec::new();
    let mut referenced = BTreeSet::new();
    for (place, query) in all_queries() {
        let names = metric_names(&query);
        for name in &names {
            referenced.insert(name.clone());
            if series_of(&exported, name).is_none() {
                problems.push(format!("{place}: `{name}` is not exported"));
            }
        }
        // Every label a query groups by exists on one of the metrics it reads.
        for caps in by.captures_iter(&query) {
            for label in caps[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                let known = scrape_labels.contains(&label)
                    || names.iter().any(|n| {
                        series_of(&exported, n)
                            .is_some_and(|s| s.iter().any(|labels| labels.contains_key(label)))
                    });
                if !known {
                    problems.push(format!(
                        "{place}: no metric of `{query}` has a label `{label}`"
                    ));
                }
            }
        }
        // Every exact `label="value"` matcher names a label value the gateway exports.
        for caps in matcher.captures_iter(&query) {
            let name = &caps[1];
            for m in equals.captures_iter(&caps[2]) {
                let (label, op, value) = (&m[1], &m[2], &m[3]);
                if scrape_labels.contains(&label) {
                    continue;
                }
                let series = series_of(&exported, name).cloned().unwrap_or_default();
                let has_label = series.iter().any(|l| l.contains_key(label));
                let has_value = series
                    .iter()
                    .any(|l| l.get(label).map(String::as_str) == Some(value));
                if !has_label || (op == "=" && !has_value) {
                    problems.push(format!(
                        "{place}: `{name}` has no series with {label}{op}\"{value}\""
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nexposition:\n{text}",
        problems.join("\n")
    );
    // The assets use the metrics that matter to the people watching them.
    for name in [
        "socialgate_requests_total",
        "socialgate_dlp_findings_total",
        "socialgate_auth_failures_total",
        "socialgate_upstream_errors_total",
        "socialgate_request_duration_seconds_bucket",
        "socialgate_connections_active",
        "socialgate_tunnels_active",
        "socialgate_policy_reloads_total",
        "socialgate_policy_info",
        "socialgate_destination_denied_total",
        "socialgate_bytes_total",
        "socialgate_audit_dropped_total",
    ] {
        assert!(referenced.contains(name), "no query uses {name}");
    }

    // The operations guide documents every metric the gateway exports.
    let ops = read("docs/operations.md");
    let helps: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in helps {
        assert!(
            ops.contains(&format!("`{name}`")),
            "docs/operations.md does not document `{name}`"
        );
    }
}
