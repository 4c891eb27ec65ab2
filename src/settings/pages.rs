//! The `pages:` section: how the gateway's pages look and speak.
//!
//! `organisation` (shown in the page header and wording), `logo` (a PNG, JPEG
//! or SVG file, read now, at most 64 KiB, inlined in pages as a `data:` URI),
//! `strings` (one strings file or a list, each declaring its `lang:`; a file
//! with `lang: en` replaces built-in English wording, any other adds a
//! language chosen by `Accept-Language`) and `deferred_notice` (how long a
//! denied background request is remembered for the notice page; `0` is off,
//! default 10m).
//!
//! Limits: files are read when the settings are parsed (so `check --settings`
//! reports a missing or broken file at its key), not again on a policy
//! reload; relative paths are relative to the working directory, as for the
//! other file settings. Called by [`super::Settings::from_yaml`]; the proxy's
//! `respond` renders with [`PagesSettings::look`].

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::problems::Problems;
use super::values::parse_duration;
use crate::pages::{Catalogue, Look};
use crate::policy::raw::OneOrMany;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPages {
    organisation: Option<String>,
    logo: Option<String>,
    strings: Option<OneOrMany<String>>,
    deferred_notice: Option<TextOrNumber>,
}

/// `10m`, or a bare number (only `0` means something: off).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum TextOrNumber {
    Number(u64),
    Text(String),
}

/// The largest logo file accepted.
pub const MAX_LOGO_BYTES: usize = 64 * 1024;

/// The default `pages.deferred_notice`.
pub const DEFAULT_DEFERRED_NOTICE: Duration = Duration::from_secs(600);

/// The longest `pages.organisation`.
const MAX_ORGANISATION: usize = 120;

/// The `pages:` settings.
#[derive(Debug, Clone)]
pub struct PagesSettings {
    /// Organisation, logo and catalogues (English, or its replacement, first).
    pub look: Look,
    /// `deferred_notice`; zero: no notices.
    pub deferred_notice: Duration,
}

impl Default for PagesSettings {
    fn default() -> Self {
        PagesSettings {
            look: Look::default(),
            deferred_notice: DEFAULT_DEFERRED_NOTICE,
        }
    }
}

impl PagesSettings {
    /// For each strings file of another language than English: the keys it
    /// leaves to the built-in English (the start-up log names them).
    pub fn untranslated(&self) -> Vec<(&str, &str, Vec<&'static str>)> {
        self.look
            .catalogues
            .iter()
            .filter(|c| !c.file.is_empty() && c.lang.split('-').next() != Some("en"))
            .map(|c| (c.file.as_str(), c.lang.as_str(), c.missing()))
            .filter(|(_, _, missing)| !missing.is_empty())
            .collect()
    }

    /// Logs a warning for each strings file that leaves keys in English.
    pub fn warn_untranslated(&self) {
        for (file, lang, missing) in self.untranslated() {
            tracing::warn!(file, lang, keys = %missing.join(", "), "this strings file leaves {} texts in English; pages in this language show them in English", missing.len());
        }
    }
}

/// Parses `pages:`, reading the logo and strings files; problems at their keys.
pub(super) fn parse(raw: RawPages, problems: &mut Problems<'_>) -> PagesSettings {
    let mut s = PagesSettings::default();
    if let Some(org) = raw.organisation {
        let org = org.trim().to_string();
        if org.is_empty()
            || org.chars().count() > MAX_ORGANISATION
            || org.chars().any(char::is_control)
        {
            problems.at(
                "pages.organisation",
                format!("`pages.organisation`: give the organisation's name on one line, at most {MAX_ORGANISATION} characters"),
            );
        } else {
            s.look.organisation = Some(org);
        }
    }
    if let Some(path) = raw.logo {
        match read_logo(&path) {
            Ok(uri) => s.look.logo = Some(uri),
            Err(e) => problems.at("pages.logo", format!("`pages.logo`: {e}")),
        }
    }
    if let Some(files) = raw.strings {
        let list = matches!(files, OneOrMany::Many(_));
        for (i, path) in files.to_vec().iter().enumerate() {
            let key = if list {
                format!("pages.strings[{i}]")
            } else {
                "pages.strings".to_string()
            };
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    problems.at(&key, format!("`pages.strings`: cannot read {path}: {e}"));
                    continue;
                }
            };
            match Catalogue::parse(path, &text) {
                Ok(cat) => {
                    if s.look.catalogues.iter().skip(1).any(|c| c.lang == cat.lang) {
                        problems.at(
                            &key,
                            format!("`pages.strings`: {path} is a second file for `lang: {}`; give each language once", cat.lang),
                        );
                    } else if cat.lang == "en" {
                        s.look.catalogues[0] = cat;
                    } else {
                        s.look.catalogues.push(cat);
                    }
                }
                Err(errors) => {
                    for e in errors.0 {
                        problems.at(&key, format!("`pages.strings`: {e}"));
                    }
                }
            }
        }
    }
    if let Some(d) = raw.deferred_notice {
        let text = match d {
            TextOrNumber::Number(n) => n.to_string(),
            TextOrNumber::Text(t) => t,
        };
        match text.trim() {
            "0" => s.deferred_notice = Duration::ZERO,
            other => match parse_duration(other) {
                Ok(d) => s.deferred_notice = d,
                Err(e) => problems.at(
                    "pages.deferred_notice",
                    format!("`pages.deferred_notice`: {e} (or 0 to turn the notice off)"),
                ),
            },
        }
    }
    s
}

/// Reads a logo file into a `data:` URI, by what its bytes are (not its name).
fn read_logo(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(format!(
            "{path} is {} bytes; a logo may be at most {MAX_LOGO_BYTES} bytes (64 KiB)",
            bytes.len()
        ));
    }
    let mime =
        logo_type(&bytes).ok_or_else(|| format!("{path} is not a PNG, JPEG or SVG image"))?;
    Ok(format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    ))
}

/// The image type of a logo's bytes.
fn logo_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("image/jpeg");
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.trim_start_matches('\u{feff}').trim_start();
    let svg =
        (start.starts_with("<?xml") || start.starts_with("<svg") || start.starts_with("<!--"))
            && text.contains("<svg");
    svg.then_some("image/svg+xml")
}

#[cfg(test)]
mod tests {
    use super::super::Settings;

    #[test]
    fn pages_settings_read_their_files_and_name_their_keys() {
        let dir = std::env::temp_dir().join(format!("sg-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let logo = dir.join("logo.svg");
        std::fs::write(
            &logo,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>",
        )
        .unwrap();
        let cy = dir.join("cy.yaml");
        std::fs::write(&cy, "lang: cy\nwarn_continue: Parhau\n").unwrap();
        let text = format!(
            "pages:\n  organisation: Example Council\n  logo: {}\n  strings: [{}]\n  deferred_notice: 0\n",
            logo.display(),
            cy.display()
        );
        let s = Settings::from_yaml("s.yaml", &text).unwrap();
        assert_eq!(
            s.pages.look.organisation.as_deref(),
            Some("Example Council")
        );
        assert!(s
            .pages
            .look
            .logo
            .as_deref()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,"));
        assert_eq!(s.pages.look.catalogues.len(), 2);
        let untranslated = s.pages.untranslated();
        assert_eq!(untranslated.len(), 1);
        assert!(
            untranslated[0].2.contains(&"warn_heading")
                && !untranslated[0].2.contains(&"warn_continue")
        );
        assert_eq!(s.pages.deferred_notice, std::time::Duration::ZERO);
        assert_eq!(
            Settings::from_yaml("s.yaml", "")
                .unwrap()
                .pages
                .deferred_notice,
            super::DEFAULT_DEFERRED_NOTICE
        );
        let notpng = dir.join("logo.png");
        std::fs::write(&notpng, "hello").unwrap();
        let broken = dir.join("broken.yaml");
        std::fs::write(&broken, "lang: cy\nwarn_heading: \"{site}\"\n").unwrap();
        let text = format!(
            "pages:\n  logo: {}\n  strings: {}\n  deferred_notice: soon\n",
            notpng.display(),
            broken.display()
        );
        let err = Settings::from_yaml("s.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:2:9: `pages.logo`:") && err.contains("not a PNG, JPEG or SVG"),
            "{err}"
        );
        assert!(
            err.contains("s.yaml:3:12: `pages.strings`:")
                && err.contains("broken.yaml:2:15: `warn_heading`: unknown placeholder `{site}`"),
            "{err}"
        );
        assert!(
            err.contains("s.yaml:4:20: `pages.deferred_notice`"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
