//! Table tests over policy fixtures in `tests/fixtures/policies/`: a complete policy
//! whose own tests pass, and broken ones with the exact `file:line:col` text of
//! every error they must produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use socialgate::policy::load_policy;
use socialgate::policy::sources::FsFiles;
use socialgate::verdict::run_tests;

fn errors_of(file: &str) -> Vec<String> {
    let path = format!("tests/fixtures/policies/{file}");
    match load_policy(&path, &FsFiles) {
        Ok(_) => panic!("{path} should not load"),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace("tests/fixtures/policies/", ""))
                .collect()
        }
    }
}

#[test]
fn broken_policies_report_every_error_with_its_position() {
    let table: &[(&str, &[&str])] = &[
        (
            "unknown_keys.yaml",
            &[
                "unknown_keys.yaml:3:33: unknown key `user` in role `staff`; did you mean `users`? (known keys: groups, users)",
                "unknown_keys.yaml:8:16: unknown key `methd` in site `social`; did you mean `method`? (known keys: method, host, path, path_regex, query, form, json, header, websocket)",
                "unknown_keys.yaml:12:5: unknown key `sitez` in rule #1; did you mean `sites`? (known keys: name, roles, sites, activities, when, action, warn_for, message, description, dlp, enforce, accounts)",
                "unknown_keys.yaml:15:13: `action`: unknown value `denied`, expected one of allow, deny, warn; did you mean `deny`?",
                "unknown_keys.yaml:16:1: unknown top-level key `polcy`",
            ],
        ),
        (
            "undefined_names.yaml",
            &[
                "undefined_names.yaml:2:11: `timezone`: unknown time zone `Europe/Londn`; did you mean `Europe/London`? (use an IANA name such as Europe/London)",
                "undefined_names.yaml:10:13: rule `staff-linkedin`: unknown role `staf`; did you mean `staff`?",
                "undefined_names.yaml:11:13: rule `staff-linkedin`: unknown site `linkedn`; did you mean `linkedin`?",
                "undefined_names.yaml:12:18: rule `staff-linkedin`: unknown activity `reed`; did you mean `read`?",
                "undefined_names.yaml:14:10: rule `staff-linkedin`: unknown DLP profile `oficial` (the policy defines no `dlp.profiles`)",
                "undefined_names.yaml:19:36: test `a test naming a rule that does not exist`: unknown rule `staff-linkedn`; did you mean `staff-linkedin`?",
            ],
        ),
        (
            "bad_values.yaml",
            &[
                "bad_values.yaml:1:10: `version`: only version 1 exists",
                "bad_values.yaml:4:23: site `a`: `a.*.test` is not a domain pattern: `*` is allowed only as a leading `*.`",
                "bad_values.yaml:4:35: site `a`: `10.0.0.1` is an IP address: sites are named by domain (an IP literal never matches a site)",
                "bad_values.yaml:6:42: `path_regex`: `/posts/(` is not a valid regex: error: unclosed group",
                "bad_values.yaml:7:7: `connect` cannot name a site activity: it is a keyword of rules (use read, post, comment, message, upload, react, login or your own name)",
                "bad_values.yaml:8:7: `write` cannot name a site activity: it is a keyword of rules (use read, post, comment, message, upload, react, login or your own name)",
                "bad_values.yaml:10:15: site `b`: domain `a.test` is also a domain of site `a` (in bad_values.yaml); a host must belong to one site",
                "bad_values.yaml:13:19: rule `lunch`: unknown day `funday`: use mon, tue, wed, thu, fri, sat, sun, weekdays or weekend",
                "bad_values.yaml:15:11: rule name `lunch` is used twice; rule names must be unique",
                "bad_values.yaml:16:12: rule `lunch`: `sites` is empty; leave it out to match every site",
                "bad_values.yaml:18:5: rule `lunch`: `warn_for` applies only to `action: warn`",
                "bad_values.yaml:18:15: rule `lunch`: `warn_for: forever` is not a duration such as 8h or 30m",
            ],
        ),
        (
            "method_override.yaml",
            &[
                "method_override.yaml:5:24: unknown key `quer` in site `graph`; did you mean `query`? (known keys: query)",
                "method_override.yaml:8:40: site `api`: `a=b` cannot name a query parameter",
                "method_override.yaml:11:22: site `empty`: `method_override` names no query parameter (give `query: [name, ...]`)",
            ],
        ),
        (
            "syntax.yaml",
            &["syntax.yaml:6:1: YAML syntax: while parsing a flow mapping, did not find expected ',' or '}'"],
        ),
    ];
    for (file, want) in table {
        let got = errors_of(file);
        assert_eq!(
            got,
            want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{file}"
        );
    }
}

#[test]
fn a_complete_policy_loads_and_its_tests_pass() {
    let policy = load_policy("tests/fixtures/policies/good.yaml", &FsFiles)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.roles, vec!["press-office", "staff", "contractors"]);
    assert_eq!(policy.rules.len(), 7);
    assert_eq!(policy.tests.len(), 9);
    let failures = run_tests(&policy);
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_failing_policy_test_names_the_test_and_what_happened() {
    let policy = load_policy("tests/fixtures/policies/failing_test.yaml", &FsFiles).unwrap();
    let failures: Vec<String> = run_tests(&policy).iter().map(ToString::to_string).collect();
    assert_eq!(
        failures,
        vec!["tests/fixtures/policies/failing_test.yaml:10:5: test \"staff may post (wrong on purpose)\" failed: expected action allow; got deny by rule everyone-else (site social, activity write)".to_string()]
    );
}

#[test]
fn the_shipped_default_policy_and_the_built_in_copy_agree() {
    use socialgate::policy::sources::{EmbeddedFiles, BUILTIN_POLICY};
    let on_disk = load_policy("policies/default.yaml", &FsFiles).unwrap_or_else(|e| panic!("{e}"));
    let built_in = load_policy(BUILTIN_POLICY, &EmbeddedFiles).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(on_disk.version, built_in.version);
    assert!(built_in.sites.len() >= 10, "the catalogue is included");
    let failures = run_tests(&built_in);
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
