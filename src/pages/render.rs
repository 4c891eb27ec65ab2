//! Renders the pages people see (block, DLP, warn, deferred notice, unknown
//! computer, destination guard, unreachable site) from a [`Catalogue`] and the
//! names the policy gives: plain HTML, one `h1`, `<html lang>`, no script, no
//! fixed widths, readable at 320 px and 200 % zoom, contrast at least 4.5:1.
//!
//! Every text that reaches the page (wording, site titles, rule descriptions,
//! the organisation, the support contact, references) is HTML-escaped here,
//! once, after placeholders are filled. Matched values and request content are
//! never passed in, so they cannot be shown. Pure: called by `proxy::respond`
//! (and its page shell by the admin listener).

use std::time::Duration;

use super::lang;
use super::strings::Catalogue;

/// How pages look for this gateway: `pages.organisation`, `pages.logo` and
/// the catalogues (English or its replacement first).
#[derive(Debug, Clone)]
pub struct Look {
    pub organisation: Option<String>,
    /// `data:` URI of `pages.logo`.
    pub logo: Option<String>,
    pub catalogues: Vec<Catalogue>,
}

impl Default for Look {
    fn default() -> Self {
        Look {
            organisation: None,
            logo: None,
            catalogues: vec![Catalogue::english()],
        }
    }
}

impl Look {
    /// The catalogue a browser sending `accept_language` reads.
    pub fn catalogue(&self, accept_language: Option<&str>) -> &Catalogue {
        lang::choose(&self.catalogues, accept_language)
    }
}

/// What a denial names, for its page: policy names only.
#[derive(Debug, Clone, Default)]
pub struct Stopped<'a> {
    /// The site's policy name (`unlisted` for any other website).
    pub site: &'a str,
    /// Its `title:`, when the policy gives one.
    pub title: Option<&'a str>,
    pub activity: &'a str,
    pub rule: &'a str,
    /// The rule's `description:`.
    pub description: Option<&'a str>,
    /// DLP detectors that blocked it (empty for a policy denial).
    pub detectors: &'a [String],
    /// The audit reference of the denied request.
    pub reference: &'a str,
}

/// The pieces of one page, before the shell.
struct Body {
    doc_title: String,
    heading: String,
    /// The warn rule's message, first of the lead.
    message: Option<PolicyText>,
    lead: Vec<String>,
    why: Option<PolicyText>,
    what: Vec<String>,
    /// Already-escaped HTML (a form or a link) after "what you can do".
    action_html: String,
    details: Vec<(String, String)>,
}

/// A text the policy gives (a description, a message): translated by the
/// catalogue, or as the policy says it, then marked with the language of the
/// default catalogue when the page is in another one (WCAG 3.1.2).
struct PolicyText {
    text: String,
    lang: Option<String>,
}

fn policy_text(
    look: &Look,
    c: &Catalogue,
    translated: Option<&str>,
    original: Option<&str>,
) -> Option<PolicyText> {
    if let Some(t) = translated {
        return Some(PolicyText {
            text: t.to_string(),
            lang: None,
        });
    }
    let base = look.catalogues.first().map_or("en", |b| b.lang.as_str());
    original.map(|t| PolicyText {
        text: t.to_string(),
        lang: (base != c.lang).then(|| base.to_string()),
    })
}

/// Escapes text for HTML (text and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The first letter in upper case (a phrase at the start of a sentence).
fn sentence(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The site as people know it.
fn site_words<'a>(c: &'a Catalogue, s: &Stopped<'a>) -> &'a str {
    match c.title(s.site).or(s.title) {
        Some(t) => t,
        None if s.site == "unlisted" || s.site.is_empty() => c.get("this_website"),
        None => s.site,
    }
}

/// "posting on X (Twitter)".
pub fn activity_words(c: &Catalogue, activity: &str, site: &str) -> String {
    if let Some(own) = c.activity(activity) {
        return super::strings::fill(own, &[("site", site)]);
    }
    let key = match activity {
        "read" | "connect" | "post" | "comment" | "message" | "upload" | "react" | "login"
        | "write" => format!("activity_{activity}"),
        _ => "activity_other".to_string(),
    };
    c.fill(&key, &[("site", site)])
}

/// "a National Insurance number and a payment card number".
pub fn kinds_words(c: &Catalogue, detectors: &[String]) -> String {
    let mut kinds: Vec<String> = Vec::new();
    for d in detectors {
        let key = format!("detector_{d}");
        let words = match c.detector(d) {
            Some(own) => own.to_string(),
            None if super::strings::KEYS.iter().any(|(k, _, _)| *k == key) => {
                c.get(&key).to_string()
            }
            None => c.get("detector_other").to_string(),
        };
        if !kinds.contains(&words) {
            kinds.push(words);
        }
    }
    match kinds.len() {
        0 => c.get("detector_other").to_string(),
        1 => kinds.remove(0),
        _ => {
            let last = kinds.pop().unwrap_or_default();
            format!("{} {} {last}", kinds.join(", "), c.get("and"))
        }
    }
}

/// "8 hours", "30 minutes".
fn duration_words(c: &Catalogue, d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        match secs / 3600 {
            1 => c.get("one_hour").to_string(),
            n => c.fill("hours", &[("n", &n.to_string())]),
        }
    } else {
        match secs.div_ceil(60).max(1) {
            1 => c.get("one_minute").to_string(),
            n => c.fill("minutes", &[("n", &n.to_string())]),
        }
    }
}

fn organisation<'a>(look: &'a Look, c: &'a Catalogue) -> &'a str {
    look.organisation
        .as_deref()
        .unwrap_or_else(|| c.get("your_organisation"))
}

/// The details rows every denial shows the service desk.
fn denial_details(c: &Catalogue, s: &Stopped<'_>) -> Vec<(String, String)> {
    let mut rows = vec![
        (c.get("reference").into(), s.reference.into()),
        (c.get("rule").into(), s.rule.into()),
        (c.get("site").into(), s.site.into()),
    ];
    if !s.detectors.is_empty() {
        rows.push((c.get("checks").into(), s.detectors.join(", ")));
    }
    rows
}

/// The block page (policy or DLP).
pub fn blocked(look: &Look, c: &Catalogue, s: &Stopped<'_>, contact: &str) -> String {
    let contact = c.contact(contact);
    let site = site_words(c, s);
    let org = organisation(look, c);
    let body = if s.detectors.is_empty() {
        Body {
            doc_title: c.get("page_title_blocked").into(),
            heading: sentence(&c.fill(
                "blocked_heading",
                &[("activity", &activity_words(c, s.activity, site))],
            )),
            lead: vec![c.fill("blocked_lead", &[("organisation", org)])],
            why: policy_text(look, c, c.description(s.rule), s.description),
            message: None,
            what: vec![c.fill("blocked_what_to_do", &[("contact", contact)])],
            action_html: String::new(),
            details: denial_details(c, s),
        }
    } else {
        Body {
            doc_title: c.get("page_title_blocked").into(),
            heading: c.get("dlp_heading").into(),
            lead: vec![c.fill(
                "dlp_lead",
                &[("kinds", &kinds_words(c, s.detectors)), ("site", site)],
            )],
            why: policy_text(look, c, c.description(s.rule), s.description),
            message: None,
            what: vec![
                c.get("dlp_what_to_do").into(),
                c.fill("dlp_mistake", &[("contact", contact)]),
            ],
            action_html: String::new(),
            details: denial_details(c, s),
        }
    };
    shell(look, c, &body)
}

/// What the warn interstitial adds to a denial: the rule's `message`, how long
/// an acknowledgement lasts, and where its Continue button posts which token.
#[derive(Debug, Clone, Copy)]
pub struct WarnForm<'a> {
    pub message: Option<&'a str>,
    pub remember_for: Option<Duration>,
    pub action: &'a str,
    pub token: &'a str,
}

/// The warn interstitial: the rule's `message` (or the built-in lead) and a
/// Continue button posting the token.
pub fn warn(
    look: &Look,
    c: &Catalogue,
    s: &Stopped<'_>,
    form: WarnForm<'_>,
    contact: &str,
) -> String {
    let WarnForm {
        message,
        remember_for,
        action,
        token,
    } = form;
    let contact = c.contact(contact);
    let site = site_words(c, s);
    let org = organisation(look, c);
    let message = policy_text(look, c, c.message(s.rule), message);
    let mut lead = Vec::new();
    if message.is_none() {
        lead.push(c.fill("warn_lead", &[("site", site), ("organisation", org)]));
    }
    if let Some(d) = remember_for {
        lead.push(c.fill("warn_asked_again", &[("duration", &duration_words(c, d))]));
    }
    let form = format!(
        r#"<form method="post" action="{}"><input type="hidden" name="token" value="{}"><button type="submit">{}</button></form>"#,
        escape(action),
        escape(token),
        escape(c.get("warn_continue"))
    );
    let body = Body {
        doc_title: c.get("warn_heading").into(),
        heading: c.get("warn_heading").into(),
        lead,
        why: policy_text(look, c, c.description(s.rule), s.description),
        message,
        what: vec![c.fill("warn_questions", &[("contact", contact)])],
        action_html: form,
        details: denial_details(c, s),
    };
    shell(look, c, &body)
}

/// The deferred notice: what was stopped in the background, why, whom to ask,
/// and a link on to `continue_to` (a path on this host, checked by the caller).
pub fn notice(
    look: &Look,
    c: &Catalogue,
    s: &Stopped<'_>,
    contact: &str,
    continue_to: &str,
) -> String {
    let contact = c.contact(contact);
    let site = site_words(c, s);
    let org = organisation(look, c);
    let mut lead = vec![c.fill(
        "notice_lead",
        &[("activity", &activity_words(c, s.activity, site))],
    )];
    let what = if s.detectors.is_empty() {
        lead.push(c.fill("blocked_lead", &[("organisation", org)]));
        vec![c.fill("blocked_what_to_do", &[("contact", contact)])]
    } else {
        lead.push(c.fill(
            "dlp_lead",
            &[("kinds", &kinds_words(c, s.detectors)), ("site", site)],
        ));
        vec![
            c.get("dlp_what_to_do").into(),
            c.fill("dlp_mistake", &[("contact", contact)]),
        ]
    };
    let link = format!(
        r#"<p><a class="button" href="{}">{}</a></p>"#,
        escape(continue_to),
        escape(c.get("notice_continue"))
    );
    let body = Body {
        doc_title: c.get("page_title_notice").into(),
        heading: c.get("notice_heading").into(),
        lead,
        why: policy_text(look, c, c.description(s.rule), s.description),
        message: None,
        what,
        action_html: link,
        details: denial_details(c, s),
    };
    shell(look, c, &body)
}

/// A computer no identity source knows, where no sign-in is offered.
pub fn unknown_computer(look: &Look, c: &Catalogue, contact: &str, reference: &str) -> String {
    let contact = c.contact(contact);
    let body = Body {
        doc_title: c.get("unknown_heading").into(),
        heading: c.get("unknown_heading").into(),
        lead: vec![c.fill("unknown_lead", &[("contact", contact)])],
        why: None,
        message: None,
        what: Vec::new(),
        action_html: String::new(),
        details: vec![(c.get("reference").into(), reference.into())],
    };
    shell(look, c, &body)
}

/// The destination guard's page; `what` ("port 8080 is not allowed") is for the
/// service desk.
pub fn guard(look: &Look, c: &Catalogue, what: &str, contact: &str, reference: &str) -> String {
    let contact = c.contact(contact);
    let body = Body {
        doc_title: c.get("page_title_blocked").into(),
        heading: c.get("page_title_blocked").into(),
        lead: vec![c.get("guard_lead").into()],
        why: None,
        message: None,
        what: vec![c.fill("blocked_what_to_do", &[("contact", contact)])],
        action_html: String::new(),
        details: vec![
            (c.get("reference").into(), reference.into()),
            (c.get("rule").into(), "destination-guard".into()),
            (c.get("problem").into(), what.into()),
        ],
    };
    shell(look, c, &body)
}

/// A site that could not be reached: `kind_key` is one of the `upstream_*`
/// keys, `detail` what the gateway saw.
pub fn upstream(
    look: &Look,
    c: &Catalogue,
    kind_key: &str,
    detail: &str,
    reference: &str,
) -> String {
    let body = Body {
        doc_title: c.get("upstream_heading").into(),
        heading: c.get("upstream_heading").into(),
        lead: vec![c.get(kind_key).into()],
        why: None,
        message: None,
        what: vec![c.get("upstream_not_policy").into()],
        action_html: String::new(),
        details: vec![
            (c.get("reference").into(), reference.into()),
            (c.get("problem").into(), detail.into()),
        ],
    };
    shell(look, c, &body)
}

/// The style every page shares (relative sizes only; the admin pages use it too).
pub const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;font-size:1rem;line-height:1.5;background:#f3f2f1;color:#0b0c0c}
header{background:#1d3557;color:#fff;padding:.75rem 1.5rem;font-weight:600;letter-spacing:.02em;display:flex;align-items:center;gap:.75rem;flex-wrap:wrap}
header img{max-height:2.5rem;max-width:12rem;height:auto;width:auto;background:#fff;padding:.15rem;border-radius:2px}
main{max-width:40rem;margin:2.5rem auto;background:#fff;border-top:.4rem solid #1d70b8;padding:1.75rem 2rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 .75rem}
h2{font-size:1.15rem;margin:1.5rem 0 .25rem}
p{margin:.5rem 0}
.lead{font-size:1.1rem}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
th{text-align:left;font-weight:600;padding:.35rem 1.25rem .35rem 0;vertical-align:top;color:#3d4448}
td{padding:.35rem 0;font-family:ui-monospace,Consolas,monospace;overflow-wrap:anywhere;word-break:break-word}
.foot{color:#3d4448;font-size:.9rem;border-top:1px solid #b1b4b6;padding-top:.75rem;margin-top:1.25rem}
button,a.button{display:inline-block;font:inherit;font-weight:600;background:#00703c;color:#fff;border:0;padding:.6rem 1.1rem;cursor:pointer;box-shadow:0 2px 0 #002d18;text-decoration:none}
button:hover,a.button:hover{background:#005a30}
button:focus-visible,a:focus-visible{outline:3px solid #ffdd00;outline-offset:0;box-shadow:0 0 0 6px #0b0c0c}
a{color:#1d5a96}
@media (max-width:40rem){main{margin:0 0 1.5rem;padding:1.25rem 1rem}header{padding:.75rem 1rem}}
"#;

fn paragraphs(text: &str, class: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("<p{class}>{}</p>", escape(l)))
        .collect()
}

/// A policy text's paragraphs, in a `div lang` when it is in another language
/// than the page.
fn policy_paragraphs(t: &PolicyText, class: &str) -> String {
    let class = if class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{class}\"")
    };
    let ps = paragraphs(&t.text, &class);
    match &t.lang {
        Some(lang) => format!("<div lang=\"{}\">{ps}</div>", escape(lang)),
        None => ps,
    }
}

fn shell(look: &Look, c: &Catalogue, b: &Body) -> String {
    let banner = match &look.organisation {
        Some(org) => c.fill("banner", &[("organisation", org)]),
        None => c.get("gateway_name").to_string(),
    };
    let logo = look
        .logo
        .as_deref()
        .map(|uri| format!(r#"<img src="{}" alt="">"#, escape(uri)))
        .unwrap_or_default();
    let mut html = String::with_capacity(4096);
    html.push_str(&format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<style>{STYLE}</style></head>\n<body><header>{logo}<span>{banner}</span></header>\n<main>\n<h1>{heading}</h1>\n",
        lang = escape(&c.lang),
        title = escape(&b.doc_title),
        banner = escape(&banner),
        heading = escape(&b.heading),
    ));
    if let Some(m) = &b.message {
        html.push_str(&policy_paragraphs(m, "lead"));
    }
    for l in &b.lead {
        html.push_str(&paragraphs(l, " class=\"lead\""));
    }
    if let Some(why) = &b.why {
        html.push_str(&format!("<h2>{}</h2>", escape(c.get("why_heading"))));
        html.push_str(&policy_paragraphs(why, ""));
    }
    if !b.what.is_empty() || !b.action_html.is_empty() {
        html.push_str(&format!("<h2>{}</h2>", escape(c.get("what_to_do_heading"))));
        for w in &b.what {
            html.push_str(&paragraphs(w, ""));
        }
        html.push_str(&b.action_html);
    }
    html.push_str(&format!(
        "\n<h2>{}</h2>\n<table>",
        escape(c.get("details_heading"))
    ));
    for (k, v) in &b.details {
        html.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    html.push_str("</table>\n</main></body></html>\n");
    html
}

/// A page in the gateway's style for the admin listener (English): `title`,
/// a lead, a table and a footer; `extra_html` is inserted as given.
pub fn admin_page(
    title: &str,
    lead: &str,
    details: &[(&str, String)],
    footer: &str,
    extra_html: &str,
) -> String {
    let mut rows = String::new();
    for (k, v) in details {
        rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<style>{STYLE}</style></head>\n<body><header>Web gateway</header><main>\n<h1>{title}</h1>\n<p>{lead}</p>\n<table>{rows}</table>\n{extra_html}\n<p class=\"foot\">{footer}</p>\n</main></body></html>\n",
        title = escape(title),
        lead = escape(lead),
        footer = escape(footer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped<'a>(detectors: &'a [String]) -> Stopped<'a> {
        Stopped {
            site: "tw",
            title: Some("<X> & \"Twitter\""),
            activity: "post",
            rule: "no-<b>posting</b>",
            description: Some("Ask the <script>alert(1)</script> press office.\nSecond line."),
            detectors,
            reference: "r-1",
        }
    }

    #[test]
    fn everything_shown_is_escaped() {
        let look = Look {
            organisation: Some("Evil <img src=x onerror=alert(1)> Council".into()),
            ..Look::default()
        };
        let c = &look.catalogues[0];
        let html = blocked(&look, c, &stopped(&[]), "desk <a href=x>");
        assert!(!html.contains("<script>") && !html.contains("<b>") && !html.contains("<img"));
        assert!(!html.contains("<a href"), "{html}");
        assert!(
            html.contains("Posting on &lt;X&gt; &amp; &quot;Twitter&quot; is not allowed"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("<p>Second line.</p>"), "{html}");
        assert_eq!(html.matches("<h1>").count(), 1);
        assert!(html.contains("<html lang=\"en\">"));
        let n = notice(&look, c, &stopped(&[]), "desk", "/a\"><script>");
        assert!(n.contains("href=\"/a&quot;&gt;&lt;script&gt;\""), "{n}");
    }

    #[test]
    fn dlp_names_kinds_in_words() {
        let look = Look::default();
        let c = &look.catalogues[0];
        let d = vec![
            "uk-nino".to_string(),
            "payment-card".into(),
            "my-codes".into(),
        ];
        let html = blocked(&look, c, &stopped(&d), "desk");
        assert!(html.contains("a National Insurance number, a payment card number and information that your organisation does not allow to be shared"), "{html}");
        // The detector ids are for the service desk, in its table only.
        assert_eq!(html.matches("uk-nino").count(), 1, "{html}");
        assert!(
            html.contains("<th>Data checks</th><td>uk-nino, payment-card, my-codes</td>"),
            "{html}"
        );
        assert_eq!(duration_words(c, Duration::from_secs(8 * 3600)), "8 hours");
        assert_eq!(duration_words(c, Duration::from_secs(90)), "2 minutes");
        assert_eq!(activity_words(c, "query", "X"), "using X this way");
    }

    #[test]
    fn policy_texts_are_translated_or_marked_with_their_language() {
        let cy = Catalogue::parse(
            "cy.yaml",
            "lang: cy\nsupport_contact: y ddesg\ntitles: { tw: Trydar }\ndescriptions: { other: Arall }\nmessages: { careful: \"Byddwch yn ofalus.\" }\n",
        )
        .unwrap();
        let look = Look {
            catalogues: vec![Catalogue::english(), cy],
            ..Look::default()
        };
        let c = &look.catalogues[1];
        let html = blocked(&look, c, &stopped(&[]), "the desk");
        assert!(html.contains("Posting on Trydar is not allowed"), "{html}");
        assert!(html.contains("<div lang=\"en\"><p>Ask the"), "{html}");
        assert!(
            html.contains("y ddesg") && !html.contains("the desk"),
            "{html}"
        );
        let mut s = stopped(&[]);
        s.rule = "other";
        let html = blocked(&look, c, &s, "the desk");
        assert!(
            html.contains("<p>Arall</p>") && !html.contains("lang=\"en\"><p>"),
            "{html}"
        );
        s.rule = "careful";
        let form = WarnForm {
            message: Some("Be careful."),
            remember_for: None,
            action: "/.socialgate/continue",
            token: "t",
        };
        let html = warn(&look, c, &s, form, "the desk");
        assert!(
            html.contains("<p class=\"lead\">Byddwch yn ofalus.</p>")
                && !html.contains("Be careful."),
            "{html}"
        );
        // In English the policy's own texts are not marked.
        let en = &look.catalogues[0];
        let html = warn(&look, en, &s, form, "the desk");
        assert!(html.contains("<p class=\"lead\">Be careful.</p>"), "{html}");
    }
}
