//! Naming a request's activity on a site.
//!
//! Job: [`classify`] reads the request view (normalised path, effective method)
//! and the site's matchers and names the activity.
//!
//! - The stricter activity wins: every activity of the site is tried in file
//!   order; the first write-kind activity (anything but `read`) whose matcher
//!   matches names the request, even when a `read` matcher matched too. `read` is
//!   named only when no write-kind activity matches.
//! - Nothing matches: `read` for GET, HEAD and OPTIONS, `write` for everything
//!   else, and `write` for a WebSocket upgrade (the catalogue names the sockets
//!   that only read: a `read` matcher names a socket only with `websocket: true`).
//! - `form` and `json` matchers see the body as DLP does: Content-Encoding undone
//!   (with the scanner's size cap), multipart/form-data fields, the declared
//!   charset. A field they look for is looked for in the query string as well.
//! - A field that is given twice (in the body, in the query, or once in each)
//!   makes the request `write`, whatever the method: the site might read either
//!   value, so no named activity, and never `read`, is picked silently. So does
//!   a query field that splitting the query at `;` as well as `&` (as some
//!   servers do) would change.
//! - A body a matcher needs but cannot decode (broken or unknown encoding, unknown
//!   charset, too large once decoded) fails that matcher, and the request can no
//!   longer be `read`.
//!
//! - [`classify_matched`] also says which matcher named the activity (its
//!   activity's place in the site and its 0-based index in file order within
//!   that activity), for the audit field `matched` and the drift metrics; the
//!   fallbacks (and a request made `write` because a field is ambiguous or a
//!   body undecodable) are named by no matcher.
//!
//! Limits: `query` matchers look only at the query string (the body is buffered
//! only for `form` and `json` matchers); a `json` matcher looks in the query
//! string only for a top-level key. Callers: `policy::decide`.

use std::borrow::Cow;
use std::cell::OnceCell;

use super::{ActivityId, Matcher, PathMatch, Site, ACTIVITY_READ, ACTIVITY_WRITE};
use crate::dlp::extract::{decode_content, form_data_fields, ScanLimits};
use crate::view::{is_safe_method, RequestView};

/// Why a matcher could not give a yes or a no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unclear {
    /// The body cannot be decoded for the matcher.
    Undecodable,
    /// A field the matcher looks for is given more than once.
    Ambiguous,
}

type Fields = Vec<(String, String)>;

/// The body decoded and parsed at most once per request, and only when a
/// matcher asks.
struct ParsedBody<'a> {
    req: &'a RequestView<'a>,
    decoded: OnceCell<Result<Cow<'a, [u8]>, Unclear>>,
    form: OnceCell<Result<Fields, Unclear>>,
    json: OnceCell<Result<Option<serde_json::Value>, Unclear>>,
    /// The query split at `&`, and (when it holds a `;`) at `&` and `;`.
    query: OnceCell<(Fields, Option<Fields>)>,
}

/// The matcher that named an activity: `slot` is the activity's place in
/// [`Site::activities`], `index` the matcher's 0-based place within it (file order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatcherRef {
    pub slot: u16,
    pub index: u16,
}

/// An activity and the matcher that named it (`None`: a fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub activity: ActivityId,
    pub matcher: Option<MatcherRef>,
}

/// Names the activity of `req` on `site` (or the fallback when no site).
pub fn classify(site: Option<&Site>, req: &RequestView<'_>) -> ActivityId {
    classify_matched(site, req).activity
}

/// [`classify`], saying which matcher named the activity.
pub fn classify_matched(site: Option<&Site>, req: &RequestView<'_>) -> Classified {
    let unnamed = |activity| Classified {
        activity,
        matcher: None,
    };
    let Some(site) = site else {
        return unnamed(fallback(&req.method));
    };
    let body = ParsedBody {
        req,
        decoded: OnceCell::new(),
        form: OnceCell::new(),
        json: OnceCell::new(),
        query: OnceCell::new(),
    };
    // The first `read` matcher that matched, if any.
    let mut read: Option<MatcherRef> = None;
    let mut undecodable = false;
    for (slot, (id, matchers)) in site.activities.iter().enumerate() {
        for (index, m) in matchers.iter().enumerate() {
            let here = MatcherRef {
                slot: slot as u16,
                index: index as u16,
            };
            match matcher_matches(m, req, &body) {
                Ok(false) => {}
                // A socket reads only where a matcher says so (`websocket: true`).
                Ok(true) if *id == ACTIVITY_READ && req.websocket && m.websocket != Some(true) => {}
                Ok(true) if *id == ACTIVITY_READ => {
                    read.get_or_insert(here);
                }
                Ok(true) => {
                    return Classified {
                        activity: *id,
                        matcher: Some(here),
                    }
                }
                Err(Unclear::Ambiguous) => return unnamed(ACTIVITY_WRITE),
                Err(Unclear::Undecodable) => undecodable = true,
            }
        }
    }
    if undecodable {
        return unnamed(ACTIVITY_WRITE);
    }
    if let Some(here) = read {
        return Classified {
            activity: ACTIVITY_READ,
            matcher: Some(here),
        };
    }
    if req.websocket {
        return unnamed(ACTIVITY_WRITE);
    }
    unnamed(fallback(&req.method))
}

/// `read` for safe methods, `write` for the rest.
pub fn fallback(method: &str) -> ActivityId {
    if is_safe_method(method) {
        ACTIVITY_READ
    } else {
        ACTIVITY_WRITE
    }
}

fn matcher_matches(
    m: &Matcher,
    req: &RequestView<'_>,
    body: &ParsedBody<'_>,
) -> Result<bool, Unclear> {
    if !m.methods.is_empty()
        && !m
            .methods
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&req.method))
    {
        return Ok(false);
    }
    if let Some(ws) = m.websocket {
        if ws != req.websocket {
            return Ok(false);
        }
    }
    if let Some(h) = &m.host {
        match req.host.as_domain() {
            Some(d) if h.matches(d) => {}
            _ => return Ok(false),
        }
    }
    match &m.path {
        Some(PathMatch::Exact(p)) if *req.path != **p => return Ok(false),
        Some(PathMatch::Prefix(p)) if !req.path.starts_with(p.as_str()) => return Ok(false),
        _ => {}
    }
    if let Some(re) = &m.path_regex {
        if !re.is_match(&req.path) {
            return Ok(false);
        }
    }
    for (name, re) in &m.header {
        let mut values = req.headers.get_all(name).iter();
        let ok = match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().map(|s| re.is_match(s)).unwrap_or(false),
            (None, _) => false,
            (Some(_), Some(_)) => return Err(Unclear::Ambiguous),
        };
        if !ok {
            return Ok(false);
        }
    }
    for (name, re) in &m.query {
        if !one_value(body.query_values(name)?)?.is_some_and(|v| re.is_match(v)) {
            return Ok(false);
        }
    }
    if !m.form.is_empty() {
        let form = body.form()?;
        for (name, re) in &m.form {
            let mut values: Vec<Option<&str>> = form
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| Some(v.as_str()))
                .collect();
            values.extend(body.query_values(name)?);
            if !one_value(values)?.is_some_and(|v| re.is_match(v)) {
                return Ok(false);
            }
        }
    }
    if !m.json.is_empty() {
        let doc = body.json()?;
        for (path, re) in &m.json {
            let mut values: Vec<Option<&str>> = Vec::new();
            if let Some(v) = doc.as_ref().and_then(|d| json_at(d, path)) {
                values.push(v.as_str());
            }
            if let [key] = path.as_slice() {
                values.extend(body.query_values(key)?);
            }
            if !one_value(values)?.is_some_and(|v| re.is_match(v)) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The one value of a field (`None` inside: present but not a string). Given
/// more than once: ambiguous.
fn one_value(values: Vec<Option<&str>>) -> Result<Option<&str>, Unclear> {
    match values.as_slice() {
        [] => Ok(None),
        [one] => Ok(*one),
        _ => Err(Unclear::Ambiguous),
    }
}

impl<'a> ParsedBody<'a> {
    /// The values of `name` in the query string. Some servers also split the
    /// query at `;` (Rack before 3, older Python): when that would change the
    /// values of `name`, it is ambiguous.
    fn query_values(&self, name: &str) -> Result<Vec<Option<&str>>, Unclear> {
        let (amp, semi) = self.query.get_or_init(|| {
            let q = self.req.query.unwrap_or("");
            let pairs = |q: &str| -> Fields {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            };
            let semi = q.contains(';').then(|| pairs(&q.replace(';', "&")));
            (pairs(q), semi)
        });
        fn of<'f>(pairs: &'f Fields, name: &str) -> Vec<&'f str> {
            pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
        let values = of(amp, name);
        if let Some(semi) = semi {
            if of(semi, name) != values {
                return Err(Unclear::Ambiguous);
            }
        }
        Ok(values.into_iter().map(Some).collect())
    }

    /// The body with its Content-Encoding undone (every `Content-Encoding`
    /// line counts, as for the scanner).
    fn decoded(&self) -> Result<&[u8], Unclear> {
        let decoded = self.decoded.get_or_init(|| {
            let raw = self.req.body.unwrap_or(&[]);
            let encoding = joined(self.req.headers, http::header::CONTENT_ENCODING);
            decode_content(raw, encoding.as_deref(), &ScanLimits::default())
                .map_err(|_| Unclear::Undecodable)
        });
        match decoded {
            Ok(b) => Ok(b),
            Err(e) => Err(*e),
        }
    }

    /// The media type, charset and whole header; two `Content-Type` lines
    /// cannot be decoded (the site might read either).
    fn content_type(&self) -> Result<Option<(String, Option<String>, String)>, Unclear> {
        let mut lines = self.req.headers.get_all(http::header::CONTENT_TYPE).iter();
        let value = match (lines.next(), lines.next()) {
            (None, _) => return Ok(None),
            (Some(v), None) => v,
            (Some(_), Some(_)) => return Err(Unclear::Undecodable),
        };
        let header = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let ct = mailparse::parse_content_type(&header);
        let charset = ct.params.get("charset").cloned();
        Ok(Some((ct.mimetype.to_ascii_lowercase(), charset, header)))
    }

    /// Form fields: a form-urlencoded or multipart/form-data body (by its
    /// Content-Type); none for any other body.
    fn form(&self) -> Result<&Fields, Unclear> {
        let form = self.form.get_or_init(|| {
            let Some((mime, charset, header)) = self.content_type()? else {
                return Ok(Vec::new());
            };
            match mime.as_str() {
                "application/x-www-form-urlencoded" => {
                    parse_form(self.decoded()?, charset.as_deref())
                }
                "multipart/form-data" => {
                    form_data_fields(self.decoded()?, &header).ok_or(Unclear::Undecodable)
                }
                _ => Ok(Vec::new()),
            }
        });
        form.as_ref().map_err(|e| *e)
    }

    /// The body as JSON (in its declared charset), whatever its Content-Type;
    /// `None` when it is not JSON. Duplicate keys are ambiguous.
    fn json(&self) -> Result<&Option<serde_json::Value>, Unclear> {
        let json = self.json.get_or_init(|| {
            let bytes = self.decoded()?;
            if bytes.is_empty() {
                return Ok(None);
            }
            let charset = self.content_type()?.and_then(|(_, c, _)| c);
            let text = decode_charset(bytes, charset.as_deref())?;
            match serde_json::from_str::<Strict>(&text) {
                Ok(Strict(v)) => Ok(Some(v)),
                Err(e) if e.to_string().starts_with(DUPLICATE) => Err(Unclear::Ambiguous),
                Err(_) => Ok(None),
            }
        });
        json.as_ref().map_err(|e| *e)
    }
}

/// Every line of a header, joined with `, ` (as the site would read them).
fn joined(headers: &http::HeaderMap, name: http::header::HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Text in the declared charset (UTF-8 when none); unknown charsets and bytes
/// that are not valid in it cannot be decoded.
fn decode_charset<'b>(bytes: &'b [u8], charset: Option<&str>) -> Result<Cow<'b, str>, Unclear> {
    let encoding = match charset {
        None => encoding_rs::UTF_8,
        Some(label) => {
            encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or(Unclear::Undecodable)?
        }
    };
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or(Unclear::Undecodable)
}

/// `application/x-www-form-urlencoded`, values percent-decoded then read in the
/// declared charset.
fn parse_form(bytes: &[u8], charset: Option<&str>) -> Result<Fields, Unclear> {
    let mut out = Vec::new();
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let k = decode_charset(&percent_decode(k), charset)?.into_owned();
        let v = decode_charset(&percent_decode(v), charset)?.into_owned();
        out.push((k, v));
    }
    Ok(out)
}

/// Form decoding of one key or value: `+` is a space, `%XX` a byte.
fn percent_decode(part: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        let hex = |j: usize| part.get(j).and_then(|b| (*b as char).to_digit(16));
        match part[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn json_at<'a>(doc: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    let mut cur = doc;
    for key in path {
        cur = match cur {
            serde_json::Value::Object(map) => map.get(key)?,
            serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The start of the error [`Strict`] gives for a key given twice.
const DUPLICATE: &str = "duplicate JSON key";

/// A JSON value whose objects never give a key twice (serde_json keeps the last
/// silently; a site may keep the first).
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE} `{key}`")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::policy::test_support::test_policy;
    use crate::policy::{normalize_host, Policy};
    use crate::view::RawRequest;

    // `read` is listed FIRST on purpose: file order must not let it win.
    const POLICY: &str = r#"
version: 1
sites:
  demo:
    domains: [demo.test]
    method_override: { query: [method] }
    activities:
      read:
        - { method: POST, path: /graphql, form: { op: '.+Query' } }
        - { method: POST, path: /graphql, header: { x-op: '.+Query' } }
        - { method: POST, path: /feed }
        - { method: GET, path: /feed }
        - { websocket: true, path: /live }
      post:
        - { method: POST, path: /graphql, form: { op: 'CreatePost' } }
        - { method: POST, path: /graphql, json: { op: 'CreatePost' } }
        - { method: POST, path: /statuses }
      message:
        - { websocket: true, path: /chat }
        - { method: POST, path: /statuses, json: { visibility: direct } }
rules:
  - { name: all, action: allow }
"#;

    fn name(policy: &Policy, line: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> String {
        let (method, target) = line.split_once(' ').unwrap();
        let host = normalize_host("demo.test").unwrap();
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let raw = RawRequest {
            method,
            host: &host,
            target,
            headers: &h,
            body,
            connect: false,
        };
        let view = RequestView::build(policy, &raw).unwrap();
        let site = policy.site_for(&host);
        policy.activity_name(classify(site, &view)).to_string()
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
    const JSON: (&str, &str) = ("content-type", "application/json");

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn the_stricter_activity_wins_whatever_the_file_order() {
        let p = test_policy(POLICY);
        assert_eq!(
            name(&p, "POST /graphql", &[("x-op", "FeedQuery")], None),
            "read"
        );
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[("x-op", "FeedQuery"), FORM],
                Some(b"op=CreatePost")
            ),
            "post"
        );
        assert_eq!(
            name(&p, "POST /graphql", &[FORM], Some(b"op=FeedQuery")),
            "read"
        );
        assert_eq!(name(&p, "POST /feed", &[], None), "read");
        // Among write-kind activities, file order decides.
        assert_eq!(
            name(
                &p,
                "POST /statuses",
                &[JSON],
                Some(br#"{"visibility":"direct"}"#)
            ),
            "post"
        );
    }

    #[test]
    fn fields_are_looked_for_in_the_query_too() {
        let p = test_policy(POLICY);
        assert_eq!(name(&p, "POST /graphql?op=CreatePost", &[], None), "post");
        assert_eq!(
            name(
                &p,
                "POST /graphql?op=CreatePost",
                &[("x-op", "FeedQuery")],
                None
            ),
            "post"
        );
        // Body and query disagree, or a field is given twice: `write`, never `read`.
        assert_eq!(
            name(
                &p,
                "POST /graphql?op=FeedQuery",
                &[FORM],
                Some(b"op=CreatePost")
            ),
            "write"
        );
        assert_eq!(
            name(
                &p,
                "POST /graphql?op=FeedQuery",
                &[FORM],
                Some(b"op=FeedQuery")
            ),
            "write"
        );
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[FORM],
                Some(b"op=FeedQuery&op=OtherQuery")
            ),
            "write"
        );
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[JSON],
                Some(br#"{"op":"FeedQuery","op":"CreatePost"}"#)
            ),
            "write"
        );
        assert_eq!(
            name(
                &p,
                "POST /graphql?op=FeedQuery",
                &[JSON],
                Some(br#"{"op":"CreatePost"}"#)
            ),
            "write"
        );
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[("x-op", "FeedQuery"), ("x-op", "AQuery")],
                None
            ),
            "write"
        );
        // A server that also splits the query at `;` would see another field.
        assert_eq!(
            name(
                &p,
                "POST /graphql?x=1;op=CreatePost",
                &[("x-op", "FeedQuery")],
                None
            ),
            "write"
        );
        assert_eq!(
            name(&p, "POST /graphql?x=a;b&op=CreatePost", &[], None),
            "post"
        );
    }

    #[test]
    fn matchers_see_the_decoded_body() {
        let p = test_policy(POLICY);
        let gz = gzip(b"op=CreatePost");
        let enc = ("content-encoding", "gzip");
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[("x-op", "FeedQuery"), FORM, enc],
                Some(&gz)
            ),
            "post"
        );
        let gz = gzip(br#"{"op":"CreatePost"}"#);
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[("x-op", "FeedQuery"), JSON, enc],
                Some(&gz)
            ),
            "post"
        );
        let multipart =
            b"--B\r\nContent-Disposition: form-data; name=\"op\"\r\n\r\nCreatePost\r\n--B--\r\n";
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[
                    ("x-op", "FeedQuery"),
                    ("content-type", "multipart/form-data; boundary=B")
                ],
                Some(multipart)
            ),
            "post"
        );
        // The declared charset.
        let utf16: Vec<u8> =
            r#"{"op":"CreatePost"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[
                    ("x-op", "FeedQuery"),
                    ("content-type", "application/json; charset=utf-16le")
                ],
                Some(&utf16)
            ),
            "post"
        );
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=iso-8859-1"
                )],
                Some(b"op=Caf%E9Query")
            ),
            "read"
        );
    }

    #[test]
    fn an_undecodable_body_is_never_a_read() {
        let p = test_policy(POLICY);
        for (enc, body) in [
            ("gzip", &b"not gzip"[..]),
            ("x-unknown", &b"op=CreatePost"[..]),
        ] {
            assert_eq!(
                name(
                    &p,
                    "POST /graphql",
                    &[("x-op", "FeedQuery"), FORM, ("content-encoding", enc)],
                    Some(body)
                ),
                "write",
                "{enc}"
            );
        }
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[
                    ("x-op", "FeedQuery"),
                    ("content-type", "application/json; charset=no-such")
                ],
                Some(b"{}")
            ),
            "write"
        );
        // Two Content-Type lines: the site might parse the body either way.
        assert_eq!(
            name(
                &p,
                "POST /graphql",
                &[("x-op", "FeedQuery"), FORM, ("content-type", "text/plain")],
                Some(b"op=FeedQuery")
            ),
            "write"
        );
    }

    #[test]
    fn overrides_count_for_classification() {
        let p = test_policy(POLICY);
        assert_eq!(name(&p, "GET /statuses", &[], None), "read");
        assert_eq!(
            name(
                &p,
                "GET /statuses",
                &[("x-http-method-override", "POST")],
                None
            ),
            "post"
        );
        assert_eq!(name(&p, "GET /statuses?method=post", &[], None), "post");
        assert_eq!(
            name(&p, "GET /graphql?op=CreatePost&method=POST", &[], None),
            "post"
        );
    }

    #[test]
    fn an_unnamed_websocket_is_a_write() {
        let p = test_policy(POLICY);
        let ws = [("connection", "Upgrade"), ("upgrade", "websocket")];
        assert_eq!(name(&p, "GET /chat", &ws, None), "message");
        assert_eq!(name(&p, "GET /other", &ws, None), "write");
        assert_eq!(name(&p, "GET /other", &[], None), "read");
        // A `read` matcher names a socket only when it says `websocket: true`.
        assert_eq!(name(&p, "GET /live", &ws, None), "read");
        assert_eq!(name(&p, "GET /feed", &ws, None), "write");
        // Unlisted hosts: no catalogue to name it, the method decides.
        assert_eq!(fallback("GET"), ACTIVITY_READ);
    }
}
