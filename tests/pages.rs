//! The pages people see, end to end through an intercepted TLS site on loopback:
//! Welsh chosen by `Accept-Language`, the organisation's name, the site's title
//! and the rule's description (escaped), DLP pages that name the kind of data in
//! words and never the value, the logo inlined under its own CSP, JSON for API
//! clients as before, and the deferred notice: a denied background request is
//! explained once, at the same user's next page load of that site, never to
//! another user, never planted by another website.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use socialgate_testkit::gateway::metric;
use support::*;

const POLICY: &str = r#"
version: 1
roles:
  staff: { groups: [all-staff] }
sites:
  social:
    title: "Social <Test> & Co"
    domains: [www.social.test]
    activities:
      post: [{ method: POST, path: /api/posts }]
      comment: [{ method: POST, path: /api/comments }]
dlp:
  profiles:
    official: { detectors: [uk-nino, payment-card], on_finding: block }
rules:
  - name: staff-read
    roles: [staff]
    sites: [social]
    activities: [read]
    action: allow
  - name: staff-comments-checked
    roles: [staff]
    sites: [social]
    activities: [comment]
    action: allow
    dlp: official
  - name: staff-no-posting
    roles: [staff]
    sites: [social]
    activities: [post]
    action: deny
    description: "Posts go through the <script>alert('press')</script> office & nobody else."
  - { name: everyone-else, action: deny }
"#;

/// A National Insurance number (the test one HMRC documents).
const NINO: &str = "JG 10 37 82 B";

struct Env {
    fx: Fixture,
    gw: socialgate::runtime::RunningGateway,
    up: TlsUpstream,
}

async fn env() -> Env {
    env_with("10m").await
}

async fn env_with(deferred_notice: &str) -> Env {
    let fx = Fixture::new();
    htpasswd(&fx, &[("alice", "alice-pass"), ("bob", "bob-pass")]);
    let up = tls_upstream("www.social.test", CertKind::Good).await;
    fx.write("upstream-ca.pem", &up.ca_pem);
    fx.write("cy.yaml", include_str!("../deploy/pages/cy.yaml"));
    let settings = format!(
        r#"
support_contact: "the IT service desk, ext. 4000"
identity:
  basic: {{ realm: "Test gateway", htpasswd: "{{dir}}/users.htpasswd" }}
  group_members: {{ all-staff: [alice, bob] }}
upstream:
  extra_roots: ["{{dir}}/upstream-ca.pem"]
  resolve: {{ www.social.test: 127.0.0.1 }}
  allow_destinations: [127.0.0.1/32]
  allowed_ports: [{}]
pages:
  organisation: "Example Council"
  strings: ["{{dir}}/cy.yaml"]
  deferred_notice: {}
"#,
        up.addr.port(),
        deferred_notice
    );
    let gw = gateway(&fx, &settings, POLICY).await;
    Env { fx, gw, up }
}

fn url(e: &Env, path: &str) -> String {
    format!("https://www.social.test:{}{path}", e.up.addr.port())
}

fn as_user(e: &Env, user: &str) -> reqwest::Client {
    let password = format!("{user}-pass");
    client_trusting_gateway(&e.gw, &e.fx, Some((user, &password)))
}

/// A page navigation, as a browser sends it.
fn navigate(c: &reqwest::Client, url: String) -> reqwest::RequestBuilder {
    c.get(url)
        .header("accept", "text/html,application/xhtml+xml")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
}

/// A script's `fetch()` POST.
fn background_post(c: &reqwest::Client, url: String) -> reqwest::RequestBuilder {
    c.post(url)
        .header("accept", "*/*")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-dest", "empty")
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/json")
        .body(r#"{"text":"hello"}"#)
}

#[tokio::test]
async fn welsh_is_chosen_by_accept_language_and_the_organisation_is_named() {
    let e = env().await;
    let bob = as_user(&e, "bob");
    let page = |lang: &'static str| {
        bob.post(url(&e, "/api/posts"))
            .header("accept", "text/html")
            .header("accept-language", lang)
            .body("hello")
            .send()
    };
    let r = page("cy-GB,cy;q=0.9,en;q=0.5").await.unwrap();
    assert_eq!(r.status(), 403);
    let reference = r.headers()["x-socialgate-reference"]
        .to_str()
        .unwrap()
        .to_string();
    let cy = r.text().await.unwrap();
    assert!(cy.contains("<html lang=\"cy\">"), "{cy}");
    assert!(
        cy.contains("<span>Porth gwe Example Council</span>"),
        "{cy}"
    );
    assert!(
        cy.contains("<h1>Ni chaniateir postio ar Social &lt;Test&gt; &amp; Co</h1>"),
        "{cy}"
    );
    assert!(
        cy.contains("Nid yw polisi cyfryngau cymdeithasol Example Council yn caniatáu hyn i chi."),
        "{cy}"
    );
    assert!(
        cy.contains(&format!("<tr><th>Cyfeirnod</th><td>{reference}</td></tr>")),
        "{cy}"
    );
    assert!(cy.contains("the IT service desk, ext. 4000"), "{cy}");

    let en = page("en-GB,en;q=0.9,cy;q=0.8")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("<html lang=\"en\">"), "{en}");
    assert!(
        en.contains("<span>Example Council web gateway</span>"),
        "{en}"
    );
    assert!(
        en.contains("<h1>Posting on Social &lt;Test&gt; &amp; Co is not allowed</h1>"),
        "{en}"
    );
    assert!(
        en.contains("The social media policy of Example Council does not allow this for you."),
        "{en}"
    );
    // A language the gateway does not have: English.
    let other = page("fr").await.unwrap().text().await.unwrap();
    assert!(other.contains("<html lang=\"en\">"), "{other}");
    assert_eq!(e.up.count(), 0, "nothing denied reached the site");
}

#[tokio::test]
async fn the_rule_description_is_shown_and_escaped() {
    let e = env().await;
    let bob = as_user(&e, "bob");
    let r = bob
        .post(url(&e, "/api/posts"))
        .header("accept", "text/html")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains(
            "<p>Posts go through the &lt;script&gt;alert(&#39;press&#39;)&lt;/script&gt; office &amp; nobody else.</p>"
        ),
        "{page}"
    );
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<Test>"), "{page}");
    assert_eq!(page.matches("<h1>").count(), 1, "{page}");
    assert!(page.contains("<meta name=\"viewport\""), "{page}");
    // API clients get the JSON answer, with its fields as before.
    let r = bob
        .post(url(&e, "/api/posts"))
        .header("accept", "application/json")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "blocked");
    assert_eq!(v["rule"], "staff-no-posting");
    assert_eq!(v["site"], "social");
    assert_eq!(v["activity"], "post");
    assert!(v["detectors"].as_array().unwrap().is_empty());
    assert!(v["reference"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn the_dlp_page_names_the_kind_of_data_in_words_never_the_value() {
    let e = env().await;
    let bob = as_user(&e, "bob");
    for (lang, kind) in [
        ("en", "It appears to contain a National Insurance number, which must not be shared on Social &lt;Test&gt; &amp; Co."),
        ("cy", "Mae&#39;n ymddangos ei bod yn cynnwys rhif Yswiriant Gwladol, na ddylid ei rannu ar Social &lt;Test&gt; &amp; Co."),
    ] {
        let r = bob
            .post(url(&e, "/api/comments"))
            .header("accept", "text/html")
            .header("accept-language", lang)
            .header("content-type", "text/plain")
            .body(format!("my NI number is {NINO}, thanks"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{lang}");
        let page = r.text().await.unwrap();
        assert!(page.contains(kind), "{lang}: {page}");
        for value in [NINO, "JG103782B", "JG 10", "37 82"] {
            assert!(!page.contains(value), "{lang}: the value {value:?} is on the page: {page}");
        }
    }
    assert_eq!(e.up.count(), 0, "the post never reached the site");
    // A clean comment passes.
    let r = bob
        .post(url(&e, "/api/comments"))
        .header("content-type", "text/plain")
        .body("nothing personal")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(e.up.count(), 1);
}

#[tokio::test]
async fn a_denied_background_request_is_explained_once_at_the_next_page_load() {
    let e = env().await;
    let (alice, bob) = (as_user(&e, "alice"), as_user(&e, "bob"));
    let notices = || metric(&e.gw, "socialgate_deferred_notices_total{site=\"social\"}");

    // bob's page posts in the background and is denied: JSON, as before.
    let r = background_post(&bob, url(&e, "/api/posts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["rule"].as_str()),
        (Some("blocked"), Some("staff-no-posting"))
    );
    let denied_ref = v["reference"].as_str().unwrap().to_string();

    // alice loads the site: her page, no notice of bob's.
    let r = navigate(&alice, url(&e, "/feed")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the social site");
    assert_eq!(e.up.count(), 1);

    // bob's own background reads are no navigation: they pass, the notice waits.
    let r = bob
        .get(url(&e, "/api/timeline"))
        .header("accept", "application/json")
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-dest", "empty")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(e.up.count(), 2);
    assert_eq!(notices(), 0.0);

    // bob reloads the page: the notice, once, naming the stopped request.
    let r = navigate(&bob, url(&e, "/feed?tab=latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let notice_ref = r.headers()["x-socialgate-reference"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(notice_ref, denied_ref);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<h1>Something on this page was stopped</h1>"),
        "{page}"
    );
    assert!(
        page.contains(
            "A moment ago the web gateway stopped posting on Social &lt;Test&gt; &amp; Co."
        ),
        "{page}"
    );
    assert!(
        page.contains("Posts go through the &lt;script&gt;"),
        "{page}"
    );
    assert!(page.contains("the IT service desk, ext. 4000"), "{page}");
    assert!(
        page.contains(&format!("<tr><th>Reference</th><td>{denied_ref}</td></tr>")),
        "{page}"
    );
    assert!(
        page.contains(r#"<a class="button" href="/feed?tab=latest">Continue to the page</a>"#),
        "{page}"
    );
    assert_eq!(e.up.count(), 2, "the notice is the gateway's own page");
    assert_eq!(notices(), 1.0);

    // The link on: the page itself, and no second notice.
    let r = navigate(&bob, url(&e, "/feed?tab=latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello from the social site");
    assert_eq!(e.up.count(), 3);
    assert_eq!(notices(), 1.0);

    // A denied navigation shows its block page at once and leaves no notice.
    let r = bob
        .post(url(&e, "/api/posts"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .body("text=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = navigate(&bob, url(&e, "/feed")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello from the social site");
    assert_eq!(notices(), 1.0);
}

#[tokio::test]
async fn a_notice_is_never_shown_to_another_user() {
    let e = env().await;
    let (alice, bob) = (as_user(&e, "alice"), as_user(&e, "bob"));
    let r = background_post(&bob, url(&e, "/api/posts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for _ in 0..2 {
        let r = navigate(&alice, url(&e, "/feed")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert_eq!(body, "hello from the social site");
    }
    assert_eq!(
        metric(&e.gw, "socialgate_deferred_notices_total{site=\"social\"}"),
        0.0
    );
    // bob still gets his.
    let page = navigate(&bob, url(&e, "/feed"))
        .header("accept-language", "cy")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<html lang=\"cy\">"), "{page}");
    assert!(
        page.contains("<h1>Cafodd rhywbeth ar y dudalen hon ei atal</h1>"),
        "{page}"
    );
    assert!(
        page.contains(r#"href="/feed">Ymlaen i&#39;r dudalen</a>"#),
        "{page}"
    );
}

#[tokio::test]
async fn another_website_cannot_plant_a_notice() {
    let e = env().await;
    let bob = as_user(&e, "bob");
    // Another site's page posts to this one: denied as before, never explained here.
    let r = bob
        .post(url(&e, "/api/posts"))
        .header("accept", "*/*")
        .header("sec-fetch-mode", "no-cors")
        .header("sec-fetch-dest", "empty")
        .header("sec-fetch-site", "cross-site")
        .body("text=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = navigate(&bob, url(&e, "/feed")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello from the social site");
    assert_eq!(
        metric(&e.gw, "socialgate_deferred_notices_total{site=\"social\"}"),
        0.0
    );
}

#[tokio::test]
async fn deferred_notice_0_turns_the_notice_off() {
    let e = env_with("0").await;
    let bob = as_user(&e, "bob");
    let r = background_post(&bob, url(&e, "/api/posts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = navigate(&bob, url(&e, "/feed")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello from the social site");
    assert_eq!(
        metric(&e.gw, "socialgate_deferred_notices_total{site=\"social\"}"),
        0.0
    );
}

#[tokio::test]
async fn a_computer_the_gateway_does_not_know_gets_a_page_in_its_language() {
    let fx = Fixture::new();
    fx.write("cy.yaml", include_str!("../deploy/pages/cy.yaml"));
    fx.write(
        "logo.svg",
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>"#,
    );
    let settings = r#"
support_contact: "the IT service desk, ext. 4000"
identity:
  networks:
    - { cidr: 192.0.2.0/24, user: kiosk, groups: [all-staff] }
pages:
  organisation: "Example Council"
  logo: "{dir}/logo.svg"
  strings: "{dir}/cy.yaml"
"#;
    let gw = gateway(&fx, settings, POLICY).await;
    let c = client(&gw, None);
    let r = c
        .get("http://www.social.test/feed")
        .header("accept", "text/html")
        .header("accept-language", "cy")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let reference = r.headers()["x-socialgate-reference"]
        .to_str()
        .unwrap()
        .to_string();
    // The logo is inlined, and only pages that show it allow `data:` images.
    assert_eq!(
        r.headers()["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
    );
    let page = r.text().await.unwrap();
    assert!(
        page.contains(r#"<img src="data:image/svg+xml;base64,"#),
        "{page}"
    );
    assert!(page.contains("<html lang=\"cy\">"), "{page}");
    assert!(
        page.contains("<h1>Nid yw&#39;r porth gwe yn adnabod y cyfrifiadur hwn</h1>"),
        "{page}"
    );
    assert!(page.contains(&format!("<td>{reference}</td>")), "{page}");
    // A client that does not ask for HTML keeps the short text.
    let r = c.get("http://www.social.test/feed").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .starts_with("The web gateway does not know this computer."));
}
