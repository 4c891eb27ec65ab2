//! Chooses the language of a page from the browser's `Accept-Language`
//! (RFC 9110 section 12.5.4): the most preferred tag that a catalogue has,
//! exactly or by its primary language (`cy-GB` finds `cy`), else the first
//! catalogue (the built-in English, or a file that replaces it).
//!
//! Limits: reads at most the first 1024 bytes and 32 entries of the header;
//! a tag with `q=0` is never chosen; `*` means the first catalogue. Pure:
//! called by the page renderer for every page.

use super::strings::Catalogue;

/// The catalogue for `accept_language` among `catalogues` (never empty: the
/// first is the default).
pub fn choose<'a>(catalogues: &'a [Catalogue], accept_language: Option<&str>) -> &'a Catalogue {
    let default = &catalogues[0];
    let Some(header) = accept_language else {
        return default;
    };
    let header = header.get(..header.len().min(1024)).unwrap_or("");
    let mut wanted: Vec<(u16, usize, String)> = Vec::new();
    for (i, item) in header.split(',').take(32).enumerate() {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if tag.is_empty() {
            continue;
        }
        let mut q = 1000u16;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = parse_q(v).unwrap_or(0);
            }
        }
        if q > 0 {
            wanted.push((q, i, tag));
        }
    }
    // Highest q first; equal q in the header's order.
    wanted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, tag) in &wanted {
        if tag == "*" {
            return default;
        }
        if let Some(c) = catalogues.iter().find(|c| c.lang == *tag) {
            return c;
        }
        let primary = tag.split('-').next().unwrap_or("");
        if let Some(c) = catalogues
            .iter()
            .find(|c| c.lang.split('-').next() == Some(primary))
        {
            return c;
        }
    }
    default
}

/// `q` in thousandths (`0.8` is 800); `None` for what is not a q-value.
fn parse_q(v: &str) -> Option<u16> {
    let v = v.trim();
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats() -> Vec<Catalogue> {
        let cy = Catalogue::parse("cy.yaml", "lang: cy\n").unwrap();
        vec![Catalogue::english(), cy]
    }

    #[test]
    fn the_most_preferred_language_we_have() {
        let c = cats();
        let lang = |h: Option<&str>| choose(&c, h).lang.clone();
        assert_eq!(lang(None), "en");
        assert_eq!(lang(Some("cy")), "cy");
        assert_eq!(lang(Some("cy-GB,cy;q=0.9,en;q=0.8")), "cy");
        assert_eq!(lang(Some("en-GB,en;q=0.9,cy;q=0.8")), "en");
        assert_eq!(lang(Some("fr, cy;q=0.5")), "cy");
        assert_eq!(lang(Some("de, fr")), "en");
        assert_eq!(lang(Some("cy;q=0, en;q=0.1")), "en");
        assert_eq!(lang(Some("en;q=0.2, cy;q=0.7")), "cy");
        assert_eq!(lang(Some("*")), "en");
        assert_eq!(lang(Some("cy;q=bogus")), "en");
        assert_eq!(lang(Some(&"x,".repeat(2000))), "en");
    }
}
