//! The policy's own `tests:`: each names a user, a request and the expected
//! outcome. This module compiles them (and parses `explain`'s request line);
//! `verdict::run_tests` runs them, for `socialgate check` and every reload (a
//! failing test keeps the running policy in place).
//!
//! Limits: no evaluation here, so that the policy does not depend on the
//! verdict. Callers: `policy::compile`, `verdict`, the CLI and the fuzz harness.

use chrono::{DateTime, Utc};

use super::host::{normalize_host, NormalHost};
use super::raw::Action;
use super::raw::{RawExpect, RawTest};
use crate::yaml_source::{child, ConfigError, YamlDoc};

/// A compiled policy test.
#[derive(Debug, Clone)]
pub struct PolicyTest {
    pub name: String,
    /// Where the test is written, for failure messages.
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub user: String,
    pub groups: Vec<String>,
    pub at: Option<DateTime<Utc>>,
    pub request: TestRequest,
    pub expect: Expectation,
}

/// A request as a test (or `explain`) describes it.
#[derive(Debug, Clone)]
pub struct TestRequest {
    pub method: String,
    pub host: NormalHost,
    pub port: u16,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Option<Vec<u8>>,
    /// `CONNECT host:port`.
    pub connect: bool,
    /// The social account's id as the test (or `explain --account`) gives it;
    /// `unknown` for none readable; `None`: read from the headers.
    pub account: Option<String>,
}

impl TestRequest {
    /// Parses `METHOD URL` (or `CONNECT host:port`) with optional headers and body.
    pub fn parse(
        line: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<TestRequest, String> {
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "`{line}` is not `METHOD URL`, e.g. `GET https://www.linkedin.com/feed/`"
            ));
        };
        let method = method.to_ascii_uppercase();
        if !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("`{method}` is not an HTTP method"));
        }
        let mut header_map = http::HeaderMap::new();
        for (k, v) in headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("`{k}` is not a header name"))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| format!("header `{k}` has a value that cannot be sent"))?;
            header_map.append(name, value);
        }
        if method == "CONNECT" {
            let uri: http::uri::Authority = target
                .parse()
                .map_err(|_| format!("`{target}` is not host:port"))?;
            let host = normalize_host(uri.host()).ok_or_else(|| format!("`{target}`: bad host"))?;
            let port = uri.port_u16().unwrap_or(443);
            return Ok(TestRequest {
                method,
                host,
                port,
                path: String::new(),
                query: None,
                headers: header_map,
                body: None,
                connect: true,
                account: None,
            });
        }
        let url = url::Url::parse(target).map_err(|e| format!("`{target}` is not a URL: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("`{target}`: only http and https URLs"));
        }
        let host = url
            .host_str()
            .and_then(normalize_host)
            .ok_or_else(|| format!("`{target}` has no valid host"))?;
        Ok(TestRequest {
            method,
            host,
            port: url.port_or_known_default().unwrap_or(443),
            path: url.path().to_string(),
            query: url.query().map(str::to_string),
            headers: header_map,
            body,
            connect: false,
            account: None,
        })
    }

    /// Is this a WebSocket upgrade?
    pub fn websocket(&self) -> bool {
        crate::view::is_websocket_upgrade(&self.headers)
    }
}

/// What a test expects.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub action: Action,
    pub rule: Option<String>,
    pub site: Option<String>,
    pub activity: Option<String>,
    pub dlp: Vec<String>,
}

pub(crate) fn compile_test(
    doc: &YamlDoc,
    path: &str,
    raw: RawTest,
    site_names: &[&str],
    rule_names: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<PolicyTest> {
    let before = errors.len();
    let what = format!("test `{}`", raw.name);
    let at =
        raw.at
            .as_ref()
            .and_then(|s| match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    errors.push(doc.error_at(
                &child(path, "at"),
                format!("{what}: `at: {s}` is not an RFC 3339 time such as 2026-07-01T12:30:00Z"),
            ));
                    None
                }
            });
    let headers: Vec<(String, String)> = raw.headers.into_iter().collect();
    let request = match TestRequest::parse(&raw.request, &headers, raw.body.map(String::into_bytes))
    {
        Ok(mut r) => {
            r.account = raw.account.clone();
            Some(r)
        }
        Err(e) => {
            errors.push(doc.error_at(&child(path, "request"), format!("{what}: {e}")));
            None
        }
    };
    let expect = match raw.expect {
        RawExpect::Action(a) => Expectation {
            action: a,
            rule: None,
            site: None,
            activity: None,
            dlp: Vec::new(),
        },
        RawExpect::Detailed(d) => Expectation {
            action: d.action,
            rule: d.rule,
            site: d.site,
            activity: d.activity,
            dlp: d.dlp.map(|x| x.to_vec()).unwrap_or_default(),
        },
    };
    let ep = child(path, "expect");
    if let Some(rule) = &expect.rule {
        let mut known = rule_names.to_vec();
        known.push(super::raw::DEFAULT_DENY);
        if !known.contains(&rule.as_str()) {
            let hint = crate::yaml_source::suggest(rule, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            errors.push(doc.error_at(
                &child(&ep, "rule"),
                format!("{what}: unknown rule `{rule}`{hint}"),
            ));
        }
    }
    if let Some(site) = &expect.site {
        let mut known: Vec<&str> = site_names.to_vec();
        known.push("unlisted");
        if !known.contains(&site.as_str()) {
            let hint = crate::yaml_source::suggest(site, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            errors.push(doc.error_at(
                &child(&ep, "site"),
                format!("{what}: unknown site `{site}`{hint}"),
            ));
        }
    }
    if errors.len() != before {
        return None;
    }
    let pos = doc.value_pos(path);
    Some(PolicyTest {
        name: raw.name,
        file: doc.file.clone(),
        line: pos.line,
        col: pos.col,
        user: raw.user,
        groups: raw.groups,
        at,
        request: request?,
        expect,
    })
}

/// One failed test, printed as `FILE:LINE:COL: test "name": expected …, got …`.
#[derive(Debug, Clone)]
pub struct TestFailure {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for TestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}
