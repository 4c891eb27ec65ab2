//! Naming a request's activity on a site.
//!
//! A site's activities are tried in file order; the first whose matcher matches
//! names the request. Otherwise it is `read` for GET, HEAD and OPTIONS and `write`
//! for everything else. `query`, `form` and `json` matchers fail when the field is
//! missing, not a string, or given twice: a client must not be able to dress a
//! post up as a read by adding a second field.

use std::cell::OnceCell;

use super::{ActivityId, Matcher, PathMatch, Site, ACTIVITY_READ, ACTIVITY_WRITE};
use crate::view::RequestView;

/// The body parsed at most once per request, and only when a matcher asks.
struct ParsedBody<'a> {
    raw: Option<&'a [u8]>,
    form: OnceCell<Option<Vec<(String, String)>>>,
    json: OnceCell<Option<serde_json::Value>>,
}

/// Names the activity of `req` on `site` (or the fallback when no site).
pub fn classify(site: Option<&Site>, req: &RequestView<'_>) -> ActivityId {
    if let Some(site) = site {
        let body = ParsedBody {
            raw: req.body,
            form: OnceCell::new(),
            json: OnceCell::new(),
        };
        for (id, matchers) in &site.activities {
            if matchers.iter().any(|m| matcher_matches(m, req, &body)) {
                return *id;
            }
        }
    }
    fallback(&req.method)
}

/// `read` for safe methods, `write` for the rest.
pub fn fallback(method: &str) -> ActivityId {
    if method.eq_ignore_ascii_case("GET")
        || method.eq_ignore_ascii_case("HEAD")
        || method.eq_ignore_ascii_case("OPTIONS")
    {
        ACTIVITY_READ
    } else {
        ACTIVITY_WRITE
    }
}

fn matcher_matches(m: &Matcher, req: &RequestView<'_>, body: &ParsedBody<'_>) -> bool {
    if !m.methods.is_empty()
        && !m
            .methods
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&req.method))
    {
        return false;
    }
    if let Some(ws) = m.websocket {
        if ws != req.websocket {
            return false;
        }
    }
    if let Some(h) = &m.host {
        match req.host.as_domain() {
            Some(d) if h.matches(d) => {}
            _ => return false,
        }
    }
    match &m.path {
        Some(PathMatch::Exact(p)) if *req.path != **p => return false,
        Some(PathMatch::Prefix(p)) if !req.path.starts_with(p.as_str()) => return false,
        _ => {}
    }
    if let Some(re) = &m.path_regex {
        if !re.is_match(&req.path) {
            return false;
        }
    }
    for (name, re) in &m.header {
        let mut values = req.headers.get_all(name).iter();
        let ok = match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().map(|s| re.is_match(s)).unwrap_or(false),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    if !m.query.is_empty() {
        let pairs = parse_form(req.query.unwrap_or("").as_bytes());
        if !fields_match(&m.query, &pairs) {
            return false;
        }
    }
    if !m.form.is_empty() {
        let form = body
            .form
            .get_or_init(|| body.raw.filter(|_| is_form(req)).map(parse_form));
        match form {
            Some(pairs) if fields_match(&m.form, pairs) => {}
            _ => return false,
        }
    }
    if !m.json.is_empty() {
        let json = body
            .json
            .get_or_init(|| body.raw.and_then(|b| serde_json::from_slice(b).ok()));
        let Some(doc) = json else { return false };
        for (path, re) in &m.json {
            match json_string_at(doc, path) {
                Some(s) if re.is_match(s) => {}
                _ => return false,
            }
        }
    }
    true
}

fn is_form(req: &RequestView<'_>) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
        .unwrap_or(false)
}

fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Each named field must be present exactly once and match.
fn fields_match(wanted: &[(String, regex::Regex)], pairs: &[(String, String)]) -> bool {
    wanted.iter().all(|(name, re)| {
        let mut found = pairs.iter().filter(|(k, _)| k == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => re.is_match(v),
            _ => false,
        }
    })
}

fn json_string_at<'a>(doc: &'a serde_json::Value, path: &[String]) -> Option<&'a str> {
    let mut cur = doc;
    for key in path {
        cur = match cur {
            serde_json::Value::Object(map) => map.get(key)?,
            serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    cur.as_str()
}
