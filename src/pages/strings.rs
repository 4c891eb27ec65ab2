//! Every word the gateway's pages say: the built-in English, the keys a strings
//! file may replace (`pages.strings`), the placeholders each key may use, and
//! the parser of a strings file.
//!
//! A strings file is YAML: `lang:` (a language tag such as `cy`, required),
//! then any of the keys of [`KEYS`] with its text, and maps for what the
//! policy names: `activities:` (an activity name to its phrase, which may use
//! `{site}`), `detectors:` (a DLP detector to the kind of data in words),
//! `titles:` (a site to its title), `descriptions:` (a rule to its
//! description) and `messages:` (a warn rule to its message).
//! A key it does not give keeps the built-in English. Unknown keys, unknown
//! placeholders and empty texts are errors at their `FILE:LINE:COL`.
//!
//! Limits: texts are plain text (the renderer escapes them); a placeholder is
//! `{name}`, and braces have no other use. No plural rules: counts are written
//! the way both shipped languages allow ("8 hours" / "8 awr"). Called by
//! `settings::pages` (loading) and the page renderer (lookup).

use std::collections::BTreeMap;

use crate::yaml_source::{child, ConfigError, ConfigErrors, YamlDoc};

/// Each key, the placeholders it may use, and its built-in English.
pub const KEYS: &[(&str, &[&str], &str)] = &[
    // Around every page.
    ("gateway_name", &[], "Web gateway"),
    (
        "banner",
        &["organisation"],
        "{organisation} web gateway",
    ),
    ("page_title_blocked", &[], "Blocked by the web gateway"),
    ("page_title_notice", &[], "Stopped by the web gateway"),
    ("reference", &[], "Reference"),
    ("rule", &[], "Rule"),
    ("site", &[], "Site"),
    ("checks", &[], "Data checks"),
    ("details_heading", &[], "For the IT service desk"),
    ("why_heading", &[], "Why"),
    ("what_to_do_heading", &[], "What you can do"),
    ("your_organisation", &[], "your organisation"),
    ("this_website", &[], "this website"),
    ("and", &[], "and"),
    // `support_contact` in this language (none built in: the setting's text).
    ("support_contact", &[], ""),
    // Activities in plain words; `{site}` is the site's title.
    ("activity_read", &["site"], "reading {site}"),
    ("activity_connect", &["site"], "connecting to {site}"),
    ("activity_post", &["site"], "posting on {site}"),
    ("activity_comment", &["site"], "commenting on {site}"),
    ("activity_message", &["site"], "sending a message on {site}"),
    ("activity_upload", &["site"], "uploading to {site}"),
    ("activity_react", &["site"], "reacting to posts on {site}"),
    ("activity_login", &["site"], "signing in to {site}"),
    ("activity_write", &["site"], "making changes on {site}"),
    ("activity_other", &["site"], "using {site} this way"),
    // The block page.
    ("blocked_heading", &["activity"], "{activity} is not allowed"),
    (
        "blocked_lead",
        &["organisation"],
        "The social media policy of {organisation} does not allow this for you.",
    ),
    (
        "blocked_what_to_do",
        &["contact"],
        "If you need this for your work, ask {contact} and quote the reference below.",
    ),
    // The DLP page.
    ("dlp_heading", &[], "Your post was not sent"),
    (
        "dlp_lead",
        &["kinds", "site"],
        "It appears to contain {kinds}, which must not be shared on {site}.",
    ),
    (
        "dlp_what_to_do",
        &[],
        "Take it out of your post and try again. Nothing you wrote was sent or kept by the gateway.",
    ),
    (
        "dlp_mistake",
        &["contact"],
        "If you think this is a mistake, ask {contact} and quote the reference below.",
    ),
    // Kinds of data, for the DLP page.
    ("detector_payment-card", &[], "a payment card number"),
    ("detector_uk-nino", &[], "a National Insurance number"),
    ("detector_nhs-number", &[], "an NHS number"),
    ("detector_uk-passport", &[], "a passport number"),
    ("detector_uk-driving-licence", &[], "a driving licence number"),
    ("detector_uk-bank-account", &[], "a bank sort code and account number"),
    ("detector_iban", &[], "an international bank account number (IBAN)"),
    (
        "detector_protective-marking",
        &[],
        "a protective marking (a government security classification)",
    ),
    (
        "detector_secrets",
        &[],
        "a password, key or access token",
    ),
    ("detector_email-address", &[], "an email address"),
    ("detector_uk-phone", &[], "a phone number"),
    ("detector_uk-postcode", &[], "a postcode"),
    (
        "detector_other",
        &[],
        "information that your organisation does not allow to be shared",
    ),
    // The warn interstitial.
    ("warn_heading", &[], "Before you continue"),
    (
        "warn_lead",
        &["site", "organisation"],
        "Use of {site} is recorded. Follow the social media guidance of {organisation}.",
    ),
    ("warn_continue", &[], "Continue"),
    (
        "warn_asked_again",
        &["duration"],
        "After you continue, you will not be asked again for {duration}.",
    ),
    ("warn_questions", &["contact"], "Questions: {contact}."),
    ("hours", &["n"], "{n} hours"),
    ("one_hour", &[], "1 hour"),
    ("minutes", &["n"], "{n} minutes"),
    ("one_minute", &[], "1 minute"),
    // The deferred notice.
    (
        "notice_heading",
        &[],
        "Something on this page was stopped",
    ),
    (
        "notice_lead",
        &["activity"],
        "A moment ago the web gateway stopped {activity}. The page itself may only have shown an error.",
    ),
    ("notice_continue", &[], "Continue to the page"),
    // A computer the gateway does not know.
    (
        "unknown_heading",
        &[],
        "The web gateway does not know this computer",
    ),
    (
        "unknown_lead",
        &["contact"],
        "Ask {contact} to set this computer up for the web gateway, and quote the reference below.",
    ),
    // The destination guard.
    (
        "guard_lead",
        &[],
        "The web gateway does not connect to this address or port.",
    ),
    // A site that could not be reached.
    ("upstream_heading", &[], "The site could not be reached"),
    ("upstream_dns", &[], "The site's name could not be found."),
    ("upstream_refused", &[], "The site could not be reached."),
    ("upstream_timeout", &[], "The site took too long to answer."),
    (
        "upstream_tls",
        &[],
        "The site's security certificate is not valid, so the connection was stopped. There is no way to continue to this site.",
    ),
    (
        "upstream_protocol",
        &[],
        "The site sent an answer the gateway could not understand.",
    ),
    (
        "upstream_not_policy",
        &[],
        "This is not a policy decision. Try again later.",
    ),
    ("problem", &[], "Problem"),
];

/// The maps of names the policy defines, to texts.
const MAPS: &[&str] = &[
    "activities",
    "detectors",
    "titles",
    "descriptions",
    "messages",
];

/// The longest text a strings file may give one key.
const MAX_TEXT: usize = 1000;

/// One language's wording: the texts a strings file gave (the rest is English).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// The language tag, lowercase (`en`, `cy`, `cy-gb`).
    pub lang: String,
    /// The file it came from (empty for the built-in English).
    pub file: String,
    texts: BTreeMap<&'static str, String>,
    activities: BTreeMap<String, String>,
    detectors: BTreeMap<String, String>,
    titles: BTreeMap<String, String>,
    descriptions: BTreeMap<String, String>,
    messages: BTreeMap<String, String>,
}

impl Catalogue {
    /// The built-in English.
    pub fn english() -> Catalogue {
        Catalogue {
            lang: "en".into(),
            ..Default::default()
        }
    }

    /// The text of `key`: this file's, else the built-in English.
    pub fn get(&self, key: &str) -> &str {
        if let Some(t) = self.texts.get(key) {
            return t;
        }
        builtin(key)
    }

    /// The text of `key` with its placeholders filled in (plain text).
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        fill(self.get(key), values)
    }

    /// The phrase this file gives a policy activity of its own, if any.
    pub fn activity(&self, name: &str) -> Option<&str> {
        self.activities.get(name).map(String::as_str)
    }

    /// The kind of data this file names for a detector, if any.
    pub fn detector(&self, name: &str) -> Option<&str> {
        self.detectors.get(name).map(String::as_str)
    }

    /// The title this file gives a site, if any.
    pub fn title(&self, site: &str) -> Option<&str> {
        self.titles.get(site).map(String::as_str)
    }

    /// The description this file gives a rule, if any.
    pub fn description(&self, rule: &str) -> Option<&str> {
        self.descriptions.get(rule).map(String::as_str)
    }

    /// The message this file gives a warn rule, if any.
    pub fn message(&self, rule: &str) -> Option<&str> {
        self.messages.get(rule).map(String::as_str)
    }

    /// The support contact in this language, else `setting` (`support_contact`).
    pub fn contact<'a>(&'a self, setting: &'a str) -> &'a str {
        self.texts
            .get("support_contact")
            .map_or(setting, String::as_str)
    }

    /// The keys of [`KEYS`] this file does not give (they fall back to English).
    pub fn missing(&self) -> Vec<&'static str> {
        KEYS.iter()
            .map(|(k, _, _)| *k)
            .filter(|k| !self.texts.contains_key(k) && *k != "support_contact")
            .collect()
    }

    /// Parses a strings file (`file` names it in errors).
    pub fn parse(file: &str, text: &str) -> Result<Catalogue, ConfigErrors> {
        let doc = YamlDoc::parse(file, text)?;
        let mut errors = Vec::new();
        let mut cat = Catalogue {
            file: file.to_string(),
            ..Default::default()
        };
        let Some(map) = doc.root.as_mapping() else {
            return Err(ConfigErrors(vec![doc.error_at(
                "",
                "a strings file is a mapping: `lang:` and texts by key",
            )]));
        };
        let known: Vec<&str> = KEYS
            .iter()
            .map(|(k, _, _)| *k)
            .chain(MAPS.iter().copied())
            .chain(["lang"])
            .collect();
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                errors.push(doc.error_at("", "a key of a strings file must be text"));
                continue;
            };
            match key {
                "lang" => match v.as_str().filter(|l| valid_lang(l)) {
                    Some(l) => cat.lang = l.to_ascii_lowercase(),
                    None => errors.push(doc.error_at(
                        "lang",
                        "`lang` must be a language tag such as `en`, `cy` or `cy-GB`",
                    )),
                },
                _ if MAPS.contains(&key) => {
                    let Some(m) = v.as_mapping() else {
                        errors.push(
                            doc.error_at(key, format!("`{key}` is a mapping of names to texts")),
                        );
                        continue;
                    };
                    let allowed: &[&str] = if key == "activities" { &["site"] } else { &[] };
                    for (name, t) in m {
                        let name = name.as_str().unwrap_or_default().to_string();
                        let path = child(key, &name);
                        match checked(&doc, &path, t, allowed) {
                            Ok(t) => {
                                let map = match key {
                                    "activities" => &mut cat.activities,
                                    "detectors" => &mut cat.detectors,
                                    "titles" => &mut cat.titles,
                                    "descriptions" => &mut cat.descriptions,
                                    _ => &mut cat.messages,
                                };
                                map.insert(name, t);
                            }
                            Err(e) => errors.push(e),
                        }
                    }
                }
                _ => match KEYS.iter().find(|(k, _, _)| *k == key) {
                    Some((k, allowed, _)) => match checked(&doc, key, v, allowed) {
                        Ok(t) => {
                            cat.texts.insert(k, t);
                        }
                        Err(e) => errors.push(e),
                    },
                    None => {
                        let hint = crate::yaml_source::suggest(key, known.iter().copied())
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        errors.push(doc.error_at_key(
                            key,
                            format!("unknown key `{key}` in the strings file{hint}"),
                        ));
                    }
                },
            }
        }
        if cat.lang.is_empty() && errors.is_empty() {
            errors.push(doc.error_at("", "the strings file names no `lang:` (e.g. `lang: cy`)"));
        }
        if errors.is_empty() {
            Ok(cat)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// A text of a strings file at `path`: text, not empty, not too long, only
/// the placeholders in `allowed`.
fn checked(
    doc: &YamlDoc,
    path: &str,
    value: &serde_yaml::Value,
    allowed: &[&str],
) -> Result<String, ConfigError> {
    let Some(text) = value.as_str() else {
        return Err(doc.error_at(path, format!("`{path}` must be text")));
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(doc.error_at(path, format!("`{path}` is empty")));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(doc.error_at(
            path,
            format!("`{path}` is longer than {MAX_TEXT} characters"),
        ));
    }
    for name in placeholders(text) {
        if !allowed.contains(&name) {
            let can = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(doc.error_at(
                path,
                format!("`{path}`: unknown placeholder `{{{name}}}` (this text may use: {can})"),
            ));
        }
    }
    Ok(text.to_string())
}

/// The `{name}`s of a text.
fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => {
                out.push(after);
                break;
            }
        }
    }
    out
}

/// `en`, `cy`, `cy-GB`, `zh-Hant-TW`: letters, then subtags of letters and digits.
pub fn valid_lang(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The built-in English of `key` (empty for a key that does not exist).
fn builtin(key: &str) -> &'static str {
    KEYS.iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, t)| *t)
        .unwrap_or("")
}

/// Fills `{name}` placeholders with `values` (a value is never read for
/// placeholders itself).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match values.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_uses_only_its_placeholders() {
        for (k, allowed, text) in KEYS {
            for p in placeholders(text) {
                assert!(allowed.contains(&p), "{k}: {p}");
            }
        }
        let mut names: Vec<&str> = KEYS.iter().map(|(k, _, _)| *k).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len(), "a key is listed twice");
    }

    #[test]
    fn a_file_replaces_texts_and_errors_name_their_place() {
        let c = Catalogue::parse(
            "cy.yaml",
            "lang: cy\nwarn_continue: Parhau\nactivities: { query: \"darllen {site}\" }\n",
        )
        .unwrap();
        assert_eq!(c.lang, "cy");
        assert_eq!(c.get("warn_continue"), "Parhau");
        assert_eq!(c.get("warn_heading"), "Before you continue");
        assert_eq!(c.activity("query"), Some("darllen {site}"));
        let err = Catalogue::parse(
            "s.yaml",
            "lang: cy\nwarn_contnue: x\nblocked_heading: \"{actvity} no\"\nhours: \"\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("s.yaml:2:1: unknown key `warn_contnue` in the strings file; did you mean `warn_continue`?"),
            "{err}"
        );
        assert!(
            err.contains("s.yaml:3:18: `blocked_heading`: unknown placeholder `{actvity}` (this text may use: {activity})"),
            "{err}"
        );
        assert!(err.contains("s.yaml:4:8: `hours` is empty"), "{err}");
        let err = Catalogue::parse("s.yaml", "warn_continue: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no `lang:`"), "{err}");
        assert!(Catalogue::parse("s.yaml", "lang: \"c y\"\n").is_err());
    }

    #[test]
    fn the_shipped_welsh_gives_every_key() {
        let cy = Catalogue::parse("cy.yaml", include_str!("../../deploy/pages/cy.yaml")).unwrap();
        assert_eq!(cy.lang, "cy");
        assert_eq!(cy.missing(), Vec::<&str>::new());
    }

    #[test]
    fn fill_puts_values_in_once() {
        assert_eq!(
            fill("{a} and {b} {c}", &[("a", "{b}"), ("b", "x")]),
            "{b} and x {c}"
        );
        assert_eq!(fill("no { end", &[]), "no { end");
    }
}
