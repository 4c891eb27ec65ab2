//! Raw YAML → compiled policy. Every error is collected with `file:line:col` and
//! the key it concerns; names that are not defined get the nearest defined name
//! as a suggestion. Nothing is compiled lazily: a policy that loads is complete.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;
use rustc_hash::FxHashMap;
use serde_yaml::Value;

use super::raw::{RawDlp, RawMatcher, RawRole, RawRule, RawSite, RawTest};
use super::selftest::compile_test;
use super::sources::{clean, PolicyFiles};
use super::when::{parse_clock, parse_days, TimeWindow};
use super::{
    Action, ActivityId, ActivitySelector, CustomDetector, DlpProfile, DlpSettings, DomainPattern,
    HostTable, IpNetwork, Matcher, PathMatch, Policy, Rule, Site, SiteSelector, BUILTIN_ACTIVITIES,
};
use crate::yaml_source::{child, index, suggest, ConfigError, ConfigErrors, YamlDoc};

use crate::dlp::BUILTIN_DETECTORS;

const TOP_KEYS: &[&str] = &[
    "version",
    "timezone",
    "roles",
    "include",
    "sites",
    "dlp",
    "rules",
    "tests",
    super::api_paths::TOP_KEY,
    "accounts",
];

/// A site definition with the document and path it came from.
struct SiteEntry {
    name: String,
    raw: RawSite,
    doc: usize,
    path: String,
}

/// Loads, parses and compiles the policy at `path`, with its includes.
pub fn load_policy(path: &str, files: &dyn PolicyFiles) -> Result<Policy, ConfigErrors> {
    let text = files.read(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_string(),
            line: 1,
            col: 1,
            message: format!("cannot read the policy: {e}"),
        }])
    })?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    hash.update(text.as_bytes());
    let main = YamlDoc::parse(path, &text)?;
    let mut docs = vec![main];
    let mut errors = Vec::new();
    let mut c = Compiler::default();

    let root = match &docs[0].root {
        Value::Mapping(m) => m.clone(),
        _ => {
            return Err(ConfigErrors(vec![docs[0].error_at(
            "",
            "a policy is a mapping with the keys version, roles, sites, rules (see docs/policy.md)",
        )]))
        }
    };
    let get = |k: &str| root.get(Value::String(k.to_string()));
    // A misspelt top-level key whose right spelling is missing (`rule:` for
    // `rules:`) is the root cause of everything that follows (missing rules,
    // tests naming rules that "do not exist"): report it alone.
    let mut root_causes = Vec::new();
    for key in root.keys() {
        let name = key.as_str().unwrap_or("");
        if !TOP_KEYS.contains(&name) {
            let meant = suggest(name, TOP_KEYS.iter().copied());
            let hint = meant
                .as_ref()
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let e = docs[0].error_at_key(name, format!("unknown top-level key `{name}`{hint}"));
            if meant.as_deref().is_some_and(|m| get(m).is_none()) {
                root_causes.push(e.clone());
            }
            errors.push(e);
        }
    }
    if !root_causes.is_empty() {
        return Err(ConfigErrors(root_causes));
    }
    match get("version") {
        None => errors.push(docs[0].error_at("", "missing key `version`: write `version: 1`")),
        Some(v) if v.as_u64() == Some(1) => {}
        Some(_) => errors.push(docs[0].error_at("version", "`version`: only version 1 exists")),
    }
    let timezone = match get("timezone") {
        None => chrono_tz::UTC,
        Some(v) => {
            let name = v.as_str().unwrap_or("");
            match name.parse::<chrono_tz::Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    let hint = suggest(name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    errors.push(docs[0].error_at(
                        "timezone",
                        format!("`timezone`: unknown time zone `{name}`{hint} (use an IANA name such as Europe/London)"),
                    ));
                    chrono_tz::UTC
                }
            }
        }
    };

    // Roles.
    let mut raw_roles: Vec<(String, RawRole)> = Vec::new();
    if let Some(v) = get("roles") {
        for (name, value) in mapping_entries(&docs[0], v, "roles", &mut errors) {
            let p = child("roles", &name);
            if let Some(r) =
                docs[0].typed::<RawRole>(&value, &p, &format!("role `{name}`"), &mut errors)
            {
                raw_roles.push((name, r));
            }
        }
    }

    // Sites: included catalogue files first, then the policy's own.
    let mut site_entries: Vec<SiteEntry> = Vec::new();
    let mut include_patterns: Vec<String> = Vec::new();
    if let Some(v) = get("include") {
        let patterns: Vec<String> = docs[0]
            .typed(v, "include", "`include`", &mut errors)
            .unwrap_or_default();
        for (i, pattern) in patterns.iter().enumerate() {
            let full = files.join(path, pattern);
            include_patterns.push(full.clone());
            let found = match files.expand(&full) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(docs[0].error_at(
                        &index("include", i),
                        format!("`include`: bad pattern `{pattern}`: {e}"),
                    ));
                    continue;
                }
            };
            if found.is_empty() {
                errors.push(docs[0].error_at(
                    &index("include", i),
                    format!("`include`: `{pattern}` matches no file (looked for {full})"),
                ));
            }
            for file in found {
                let text = match files.read(&file) {
                    Ok(t) => t,
                    Err(e) => {
                        errors.push(docs[0].error_at(
                            &index("include", i),
                            format!("cannot read included file {file}: {e}"),
                        ));
                        continue;
                    }
                };
                // Named relative to the policy file, so the version is the same
                // whichever path (relative, absolute, `./`, a symlink) loads it.
                let relative = relative_name(path, &file);
                hash.update(&(relative.len() as u64).to_le_bytes());
                hash.update(relative.as_bytes());
                hash.update(&(text.len() as u64).to_le_bytes());
                hash.update(text.as_bytes());
                let doc = match YamlDoc::parse(&file, &text) {
                    Ok(d) => d,
                    Err(e) => {
                        errors.extend(e.0);
                        continue;
                    }
                };
                let doc_index = docs.len();
                docs.push(doc);
                let doc = &docs[doc_index];
                let Value::Mapping(m) = &doc.root else {
                    errors.push(
                        doc.error_at("", "a catalogue file is a mapping with one key, `sites`"),
                    );
                    continue;
                };
                for key in m.keys() {
                    let name = key.as_str().unwrap_or("");
                    if name != "sites" {
                        errors.push(doc.error_at_key(name, format!("unknown key `{name}` in a catalogue file: it may hold only `sites`")));
                    }
                }
                if let Some(sites) = m.get(Value::String("sites".into())) {
                    for (name, value) in mapping_entries(doc, sites, "sites", &mut errors) {
                        let p = child("sites", &name);
                        if let Some(prev) = site_entries.iter().find(|s| s.name == name) {
                            let prev_file = docs[prev.doc].file.clone();
                            errors.push(doc.error_at_key(
                                &p,
                                format!("site `{name}` is already defined in {prev_file}"),
                            ));
                            continue;
                        }
                        if let Some(raw) =
                            doc.typed::<RawSite>(&value, &p, &format!("site `{name}`"), &mut errors)
                        {
                            site_entries.push(SiteEntry {
                                name,
                                raw,
                                doc: doc_index,
                                path: p,
                            });
                        }
                    }
                }
            }
        }
    }
    if let Some(v) = get("sites") {
        for (name, value) in mapping_entries(&docs[0], v, "sites", &mut errors) {
            let p = child("sites", &name);
            if let Some(raw) =
                docs[0].typed::<RawSite>(&value, &p, &format!("site `{name}`"), &mut errors)
            {
                let entry = SiteEntry {
                    name: name.clone(),
                    raw,
                    doc: 0,
                    path: p,
                };
                match site_entries.iter().position(|s| s.name == name) {
                    Some(i) if site_entries[i].doc != 0 => site_entries[i] = entry,
                    Some(_) => {}
                    None => site_entries.push(entry),
                }
            }
        }
    }

    let raw_dlp: RawDlp = match get("dlp") {
        Some(v) => docs[0]
            .typed(v, "dlp", "`dlp`", &mut errors)
            .unwrap_or_default(),
        None => RawDlp::default(),
    };
    let mut raw_rules: Vec<(usize, RawRule)> = Vec::new();
    if let Some(v) = get("rules") {
        for (i, value) in sequence_items(&docs[0], v, "rules", &mut errors) {
            let p = index("rules", i);
            if let Some(r) =
                docs[0].typed::<RawRule>(&value, &p, &format!("rule #{}", i + 1), &mut errors)
            {
                raw_rules.push((i, r));
            }
        }
    } else {
        errors.push(docs[0].error_at(
            "",
            "missing key `rules`: without rules every request is denied",
        ));
    }
    let mut raw_tests: Vec<(usize, RawTest)> = Vec::new();
    if let Some(v) = get("tests") {
        for (i, value) in sequence_items(&docs[0], v, "tests", &mut errors) {
            let p = index("tests", i);
            if let Some(t) =
                docs[0].typed::<RawTest>(&value, &p, &format!("test #{}", i + 1), &mut errors)
            {
                raw_tests.push((i, t));
            }
        }
    }

    // Compile.
    let (roles, role_by_group, role_by_user) = c.compile_roles(&docs[0], &raw_roles, &mut errors);
    let (sites, hosts) = c.compile_sites(&docs, &site_entries, &mut errors);
    let api_path_sites = get(super::api_paths::TOP_KEY)
        .map(|v| super::api_paths::compile_opt_in(&docs[0], v, &sites, &mut errors))
        .unwrap_or_default();
    let dlp = c.compile_dlp(&docs[0], &raw_dlp, &mut errors);
    let account_sets = match get("accounts") {
        Some(v) => {
            let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
            super::accounts::compile_sets(&docs[0], v, &names, &mut errors)
        }
        None => Vec::new(),
    };
    let mut rules = c.compile_rules(&docs[0], &raw_rules, &roles, &sites, &dlp, &mut errors);
    for (rule, (i, raw)) in rules.iter_mut().zip(&raw_rules) {
        if let Some(list) = &raw.accounts {
            let p = child(&index("rules", *i), "accounts");
            let what = format!("rule `{}`", rule.name);
            rule.accounts = Some(super::accounts::compile_selector(
                &docs[0],
                &p,
                &what,
                list,
                &account_sets,
                &mut errors,
            ));
        }
    }
    let account_warnings =
        unseen_account_warnings(&docs[0], &account_sets, &rules, &raw_rules, &sites);

    let digest = hash.finish();
    let version: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut policy = Policy {
        source: path.to_string(),
        version,
        timezone,
        roles,
        role_by_group,
        role_by_user,
        sites,
        hosts,
        activity_names: c.activity_names.clone(),
        rules,
        account_sets,
        dlp,
        tests: Vec::new(),
        files: docs.iter().map(|d| d.file.clone()).collect(),
        warnings: docs
            .iter()
            .flat_map(control_character_warnings)
            .chain(account_warnings)
            .collect(),
        include_patterns,
        api_path_sites,
    };
    let rule_names: Vec<&str> = policy.rules.iter().map(|r| r.name.as_str()).collect();
    let site_names: Vec<&str> = policy.sites.iter().map(|s| s.name.as_str()).collect();
    let mut tests = Vec::new();
    for (i, raw) in raw_tests {
        let p = index("tests", i);
        if let Some(t) = compile_test(&docs[0], &p, raw, &site_names, &rule_names, &mut errors) {
            tests.push(t);
        }
    }
    policy.tests = tests;

    if errors.is_empty() {
        Ok(policy)
    } else {
        errors.sort_by(|a, b| {
            (a.file != path, &a.file, a.line, a.col).cmp(&(b.file != path, &b.file, b.line, b.col))
        });
        errors.dedup();
        Err(ConfigErrors(errors))
    }
}

/// `file` (an include found from the policy at `policy_path`) named relative
/// to the policy's directory (`sites/x.yaml`, `../catalogue/x.yaml`), so the
/// version does not depend on how the policy's path was spelt. An absolute
/// include of a relative policy keeps its own name.
fn relative_name(policy_path: &str, file: &str) -> String {
    fn parts(p: &str) -> (bool, Vec<&str>) {
        let mut out: Vec<&str> = Vec::new();
        for seg in p.split('/') {
            match seg {
                "" | "." => {}
                ".." if out.last().is_some_and(|l| *l != "..") => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        (p.starts_with('/'), out)
    }
    let (policy_abs, mut dir) = parts(policy_path);
    dir.pop();
    let (file_abs, file_parts) = parts(file);
    if policy_abs != file_abs {
        return clean(file);
    }
    let common = dir
        .iter()
        .zip(&file_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out: Vec<&str> = vec![".."; dir.len() - common];
    out.extend(&file_parts[common..]);
    out.join("/")
}

/// Keys whose value is a regex (`pattern`, `path_regex`) or a map of regexes
/// (`query`, `form`, `json`, `header` in a matcher).
const REGEX_KEYS: &[&str] = &["pattern", "path_regex"];
const REGEX_MAP_KEYS: &[&str] = &["query", "form", "json", "header"];

/// Warnings for regexes holding a control character: in a double-quoted YAML
/// string `"\bword\b"` turns `\b` into a backspace, so the regex silently never
/// matches. Each names the key and suggests single quotes.
/// Account ids and rules that can never take effect because their sites cannot
/// tell the signed-in account (no `account:`): likely mistakes, so warnings.
fn unseen_account_warnings(
    doc: &YamlDoc,
    sets: &[super::accounts::AccountSet],
    rules: &[Rule],
    raw_rules: &[(usize, RawRule)],
    sites: &[Site],
) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let readable: Vec<&str> = sites
        .iter()
        .filter(|s| !s.account.is_empty())
        .map(|s| s.name.as_str())
        .collect();
    let readable = if readable.is_empty() {
        "none".to_string()
    } else {
        readable.join(", ")
    };
    for set in sets {
        let mut ids: Vec<&u32> = set.by_site.keys().collect();
        ids.sort();
        for id in ids {
            if let Some(site) = sites.get(*id as usize).filter(|s| s.account.is_empty()) {
                out.push(doc.error_at_key(
                    &child(&child("accounts", &set.name), &site.name),
                    format!(
                        "warning: account set `{}`: site `{}` has no `account:` reader, so the gateway never sees these ids (only tests and `explain --account` use them); sites that can tell their account: {readable}",
                        set.name, site.name
                    ),
                ));
            }
        }
    }
    for (rule, (i, _)) in rules.iter().zip(raw_rules) {
        let Some(sel) = &rule.accounts else { continue };
        let s = &rule.sites;
        if sel.sets == 0 || s.any || s.listed || s.unlisted || s.ids.is_empty() {
            continue;
        }
        let unreadable = s.ids.iter().all(|id| {
            sites
                .get(*id as usize)
                .is_none_or(|site| site.account.is_empty())
        });
        if unreadable {
            out.push(doc.error_at(
                &child(&index("rules", *i), "accounts"),
                format!(
                    "warning: rule `{}` names account sets, but none of its sites has an `account:` reader: on the gateway it never matches a set's account; sites that can tell their account: {readable}",
                    rule.name
                ),
            ));
        }
    }
    out
}

fn control_character_warnings(doc: &YamlDoc) -> Vec<ConfigError> {
    fn check(doc: &YamlDoc, path: &str, key: &str, text: &str, out: &mut Vec<ConfigError>) {
        let Some(c) = text.chars().find(|c| c.is_control()) else {
            return;
        };
        let what = match c {
            '\u{8}' => "a backspace (`\\b` inside double quotes)".to_string(),
            '\t' => "a tab (`\\t` inside double quotes)".to_string(),
            '\n' => "a line break".to_string(),
            '\r' => "a carriage return".to_string(),
            c => format!("the control character U+{:04X}", c as u32),
        };
        out.push(doc.error_at(
            path,
            format!(
                "warning: `{key}` holds {what}, which a request never contains; write the regex in single quotes ('\\bBDC-[0-9]{{7}}\\b') or as a plain scalar so backslashes stay backslashes"
            ),
        ));
    }
    fn walk(doc: &YamlDoc, v: &Value, path: &str, out: &mut Vec<ConfigError>) {
        match v {
            Value::Mapping(m) => {
                for (k, child_value) in m {
                    let Some(k) = k.as_str() else { continue };
                    let p = child(path, k);
                    match child_value {
                        Value::String(text) if REGEX_KEYS.contains(&k) => {
                            check(doc, &p, k, text, out)
                        }
                        Value::Mapping(fields) if REGEX_MAP_KEYS.contains(&k) => {
                            for (name, re) in fields {
                                if let (Some(name), Value::String(text)) = (name.as_str(), re) {
                                    check(doc, &child(&p, name), k, text, out);
                                }
                            }
                        }
                        other => walk(doc, other, &p, out),
                    }
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(doc, item, &index(path, i), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &doc.root, "", &mut out);
    out
}

/// The entries of a mapping, with string keys; anything else is an error.
fn mapping_entries(
    doc: &YamlDoc,
    v: &Value,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Value)> {
    match v {
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| match k.as_str() {
                Some(s) => Some((s.to_string(), v.clone())),
                None => {
                    errors.push(doc.error_at(path, format!("`{path}`: every key must be a name")));
                    None
                }
            })
            .collect(),
        Value::Null => Vec::new(),
        _ => {
            errors.push(doc.error_at(
                path,
                format!("`{path}` must be a mapping of names to entries"),
            ));
            Vec::new()
        }
    }
}

fn sequence_items(
    doc: &YamlDoc,
    v: &Value,
    path: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(usize, Value)> {
    match v {
        Value::Sequence(s) => s.iter().cloned().enumerate().collect(),
        Value::Null => Vec::new(),
        _ => {
            errors.push(doc.error_at(
                path,
                format!("`{path}` must be a list (each entry starting with `- `)"),
            ));
            Vec::new()
        }
    }
}

/// The longest site `title:` and rule `description:` a page shows.
const TITLE_MAX: usize = 80;
const DESCRIPTION_MAX: usize = 600;

/// Text a page shows (a site's title, a rule's description), trimmed: not
/// empty, at most `max` characters, no control characters (line breaks only
/// where `lines`). The page escapes it; this keeps it readable.
fn shown_text(text: &str, max: usize, lines: bool) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    if t.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if t.chars()
        .any(|c| c.is_control() && !(lines && (c == '\n' || c == '\t')))
    {
        return Err("holds a control character".into());
    }
    Ok(t.to_string())
}

fn hint(name: &str, known: &[&str]) -> String {
    suggest(name, known.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Compiles `^(?:pat)$`: a matcher regex must match the whole value.
fn whole_regex(pat: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pat})$")).map_err(|e| {
        let text = e.to_string();
        let last = text.lines().last().unwrap_or(&text).trim().to_string();
        format!("`{pat}` is not a valid regex: {last}")
    })
}

#[derive(Default)]
struct Compiler {
    activity_names: Vec<String>,
}

impl Compiler {
    fn activity_id(&mut self, name: &str) -> ActivityId {
        if self.activity_names.is_empty() {
            self.activity_names = BUILTIN_ACTIVITIES.iter().map(|s| s.to_string()).collect();
        }
        match self.activity_names.iter().position(|a| a == name) {
            Some(i) => i as ActivityId,
            None => {
                self.activity_names.push(name.to_string());
                (self.activity_names.len() - 1) as ActivityId
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn compile_roles(
        &mut self,
        doc: &YamlDoc,
        raw: &[(String, RawRole)],
        errors: &mut Vec<ConfigError>,
    ) -> (
        Vec<String>,
        FxHashMap<String, u128>,
        FxHashMap<String, u128>,
    ) {
        let mut names = Vec::new();
        let mut by_group: FxHashMap<String, u128> = FxHashMap::default();
        let mut by_user: FxHashMap<String, u128> = FxHashMap::default();
        for (i, (name, role)) in raw.iter().enumerate() {
            let p = child("roles", name);
            if i >= 128 {
                errors.push(doc.error_at_key(
                    &p,
                    "more than 128 roles: merge some (a role may list many groups)",
                ));
                break;
            }
            if ["any", "none"].contains(&name.as_str()) {
                errors.push(doc.error_at_key(
                    &p,
                    format!("`{name}` is a reserved word and cannot name a role"),
                ));
            }
            if role.groups.is_empty() && role.users.is_empty() {
                errors.push(doc.error_at(
                    &p,
                    format!("role `{name}` grants nothing: give it `groups:` and/or `users:`"),
                ));
            }
            let bit = 1u128 << i;
            for g in &role.groups {
                *by_group.entry(g.clone()).or_default() |= bit;
            }
            for u in &role.users {
                *by_user.entry(u.clone()).or_default() |= bit;
            }
            names.push(name.clone());
        }
        (names, by_group, by_user)
    }

    fn compile_sites(
        &mut self,
        docs: &[YamlDoc],
        entries: &[SiteEntry],
        errors: &mut Vec<ConfigError>,
    ) -> (Vec<Site>, HostTable) {
        let mut sites = Vec::new();
        let mut hosts = HostTable::default();
        let mut owner: HashMap<String, String> = HashMap::new();
        let reserved = ["any", "listed", "unlisted"];
        for entry in entries {
            let doc = &docs[entry.doc];
            let name = &entry.name;
            if reserved.contains(&name.as_str()) {
                errors.push(doc.error_at_key(
                    &entry.path,
                    format!("`{name}` is a reserved word and cannot name a site"),
                ));
            }
            let site_id = sites.len() as u32;
            let mut domains = Vec::new();
            if entry.raw.domains.is_empty() {
                errors
                    .push(doc.error_at(&entry.path, format!("site `{name}`: `domains` is empty")));
            }
            for (i, d) in entry.raw.domains.iter().enumerate() {
                let dp = index(&child(&entry.path, "domains"), i);
                match DomainPattern::parse(d) {
                    Ok(p) => {
                        if let Some(other) = hosts.insert(&p, site_id) {
                            let other_name = sites
                                .get(other as usize)
                                .map(|s: &Site| s.name.clone())
                                .unwrap_or_default();
                            let where_ = owner.get(&other_name).cloned().unwrap_or_default();
                            errors.push(doc.error_at(&dp, format!(
                                "site `{name}`: domain `{d}` is also a domain of site `{other_name}`{where_}; a host must belong to one site"
                            )));
                        }
                        domains.push(p);
                    }
                    Err(e) => errors.push(doc.error_at(&dp, format!("site `{name}`: {e}"))),
                }
            }
            owner.insert(name.clone(), format!(" (in {})", doc.file));
            let mut networks = Vec::new();
            for (i, n) in entry.raw.networks.iter().enumerate() {
                let np = index(&child(&entry.path, "networks"), i);
                match IpNetwork::parse(n) {
                    Ok(net) => networks.push(net),
                    Err(e) => {
                        errors.push(doc.error_at(&np, format!("site `{name}`: `networks`: {e}")))
                    }
                }
            }
            let mut activities = Vec::new();
            let mut needs_body = false;
            for (act, matchers) in &entry.raw.activities {
                let ap = child(&child(&entry.path, "activities"), act);
                if ["any", "connect", "write", "listed", "unlisted"].contains(&act.as_str()) {
                    errors.push(doc.error_at_key(&ap, format!(
                        "`{act}` cannot name a site activity: it is a keyword of rules (use read, post, comment, message, upload, react, login or your own name)"
                    )));
                    continue;
                }
                if !act
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
                    || act.is_empty()
                {
                    errors.push(doc.error_at_key(
                        &ap,
                        format!(
                            "activity name `{act}`: use lowercase letters, digits, `-` and `_`"
                        ),
                    ));
                    continue;
                }
                let id = self.activity_id(act);
                let mut compiled = Vec::new();
                if matchers.is_empty() {
                    errors.push(doc.error_at(
                        &ap,
                        format!("activity `{act}` of site `{name}` has no matcher"),
                    ));
                }
                for (i, m) in matchers.iter().enumerate() {
                    let mp = index(&ap, i);
                    if let Some(m) = compile_matcher(doc, &mp, m, errors) {
                        needs_body |= !m.form.is_empty() || !m.json.is_empty();
                        compiled.push(m);
                    }
                }
                activities.push((id, compiled));
            }
            let mut method_override_query = Vec::new();
            if let Some(mo) = &entry.raw.method_override {
                let mp = child(&child(&entry.path, "method_override"), "query");
                if mo.query.is_empty() {
                    errors.push(doc.error_at(
                        &child(&entry.path, "method_override"),
                        format!("site `{name}`: `method_override` names no query parameter (give `query: [name, ...]`)"),
                    ));
                }
                for (i, q) in mo.query.iter().enumerate() {
                    if q.is_empty()
                        || q.bytes()
                            .any(|b| b.is_ascii_whitespace() || b"&=?#".contains(&b))
                    {
                        errors.push(doc.error_at(
                            &index(&mp, i),
                            format!("site `{name}`: `{q}` cannot name a query parameter"),
                        ));
                    } else {
                        method_override_query.push(q.clone());
                    }
                }
            }
            let api_paths = super::api_paths::compile_site_paths(
                doc,
                &entry.path,
                name,
                &entry.raw.api_paths,
                errors,
            );
            let title = entry.raw.title.as_ref().and_then(|t| {
                shown_text(t, TITLE_MAX, false)
                    .map_err(|e| {
                        errors.push(doc.error_at(
                            &child(&entry.path, "title"),
                            format!("site `{name}`: `title` {e}"),
                        ))
                    })
                    .ok()
            });
            let account = match &entry.raw.account {
                None => Vec::new(),
                Some(super::raw::OneOrMany::One(a)) => {
                    let ap = child(&entry.path, "account");
                    super::accounts::compile_reader(doc, &ap, name, a, errors)
                        .into_iter()
                        .collect()
                }
                Some(super::raw::OneOrMany::Many(list)) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| {
                        let ap = index(&child(&entry.path, "account"), i);
                        super::accounts::compile_reader(doc, &ap, name, a, errors)
                    })
                    .collect(),
            };
            sites.push(Site {
                api_paths,
                name: name.clone(),
                title,
                domains,
                networks,
                intercept: entry.raw.intercept.unwrap_or(true),
                activities,
                needs_body,
                method_override_query,
                account,
            });
        }
        (sites, hosts)
    }

    fn compile_dlp(
        &mut self,
        doc: &YamlDoc,
        raw: &RawDlp,
        errors: &mut Vec<ConfigError>,
    ) -> DlpSettings {
        let mut custom = Vec::new();
        for (name, d) in &raw.detectors {
            let p = child(&child("dlp", "detectors"), name);
            if BUILTIN_DETECTORS.contains(&name.as_str()) {
                errors.push(doc.error_at_key(
                    &p,
                    format!("`{name}` is a built-in detector: give your detector another name"),
                ));
                continue;
            }
            if d.keywords.is_empty() && d.pattern.is_none() {
                errors.push(doc.error_at(
                    &p,
                    format!("detector `{name}` needs `keywords` or `pattern`"),
                ));
                continue;
            }
            if let Some(pat) = &d.pattern {
                if let Err(e) = Regex::new(pat) {
                    let text = e.to_string();
                    let last = text.lines().last().unwrap_or(&text).trim().to_string();
                    errors.push(doc.error_at(
                        &child(&p, "pattern"),
                        format!("detector `{name}`: `pattern` is not a valid regex: {last}"),
                    ));
                    continue;
                }
            }
            if d.within.is_some() && d.near.is_empty() {
                errors.push(doc.error_at_key(
                    &child(&p, "within"),
                    format!("detector `{name}`: `within` needs `near` words"),
                ));
            }
            custom.push(CustomDetector {
                name: name.clone(),
                keywords: d.keywords.clone(),
                pattern: d.pattern.clone(),
                near: d.near.clone(),
                within: d.within,
            });
        }
        let mut known: Vec<&str> = BUILTIN_DETECTORS.to_vec();
        known.extend(custom.iter().map(|d| d.name.as_str()));
        let mut profiles = IndexMap::new();
        for (name, prof) in &raw.profiles {
            let p = child(&child("dlp", "profiles"), name);
            for (i, det) in prof.detectors.iter().enumerate() {
                if !known.contains(&det.as_str()) {
                    errors.push(doc.error_at(
                        &index(&child(&p, "detectors"), i),
                        format!(
                            "profile `{name}`: unknown detector `{det}`{}",
                            hint(det, &known)
                        ),
                    ));
                }
            }
            if prof.detectors.is_empty() {
                errors.push(doc.error_at(&p, format!("profile `{name}` lists no detectors")));
            }
            let specs: Vec<crate::dlp::CustomDetectorSpec> = custom
                .iter()
                .filter(|c| prof.detectors.contains(&c.name))
                .map(|c| crate::dlp::CustomDetectorSpec {
                    name: c.name.clone(),
                    keywords: c.keywords.clone(),
                    pattern: c.pattern.clone(),
                    near: c.near.clone(),
                    within: c.within,
                })
                .collect();
            let scanner = match crate::dlp::Scanner::new(&prof.detectors, &specs) {
                Ok(s) => Some(std::sync::Arc::new(s)),
                Err(e) => {
                    if errors
                        .iter()
                        .all(|x| !x.message.starts_with(&format!("profile `{name}`")))
                    {
                        errors.push(doc.error_at(&p, format!("profile `{name}`: {e}")));
                    }
                    None
                }
            };
            profiles.insert(
                name.clone(),
                DlpProfile {
                    name: name.clone(),
                    detectors: prof.detectors.clone(),
                    on_finding: prof.on_finding,
                    scanner,
                },
            );
        }
        DlpSettings { profiles, custom }
    }

    fn compile_rules(
        &mut self,
        doc: &YamlDoc,
        raw: &[(usize, RawRule)],
        roles: &[String],
        sites: &[Site],
        dlp: &DlpSettings,
        errors: &mut Vec<ConfigError>,
    ) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let role_names: Vec<&str> = roles.iter().map(String::as_str).chain(["any"]).collect();
        let site_names: Vec<&str> = sites
            .iter()
            .map(|s| s.name.as_str())
            .chain(["any", "listed", "unlisted"])
            .collect();
        // Every activity name a rule may use.
        for a in BUILTIN_ACTIVITIES {
            self.activity_id(a);
        }
        let activity_names: Vec<String> = self.activity_names.clone();
        let activity_known: Vec<&str> = activity_names
            .iter()
            .map(String::as_str)
            .chain(["any"])
            .collect();
        let profile_names: Vec<&str> = dlp.profiles.keys().map(String::as_str).collect();

        for (i, r) in raw {
            let p = index("rules", *i);
            let name = r.name.trim().to_string();
            if name.is_empty() {
                errors.push(doc.error_at(&child(&p, "name"), "a rule needs a non-empty `name`"));
            } else if name == super::decide::DEFAULT_DENY {
                errors.push(doc.error_at(
                    &child(&p, "name"),
                    format!("`{name}` is the name of the implicit last rule; choose another"),
                ));
            } else if !seen.insert(name.clone()) {
                errors.push(doc.error_at(
                    &child(&p, "name"),
                    format!("rule name `{name}` is used twice; rule names must be unique"),
                ));
            }
            let what = format!("rule `{name}`");

            let roles_sel = match &r.roles {
                None => None,
                Some(list) => {
                    let rp = child(&p, "roles");
                    if list.is_empty() {
                        errors.push(doc.error_at(
                            &rp,
                            format!("{what}: `roles` is empty; leave it out to match every role"),
                        ));
                    }
                    let mut mask = 0u128;
                    let mut any = false;
                    for (j, role) in list.iter().enumerate() {
                        if role == "any" {
                            any = true;
                        } else if let Some(k) = roles.iter().position(|x| x == role) {
                            mask |= 1u128 << k;
                        } else {
                            errors.push(doc.error_at(
                                &index(&rp, j),
                                format!("{what}: unknown role `{role}`{}", hint(role, &role_names)),
                            ));
                        }
                    }
                    (!any).then_some(mask)
                }
            };

            let mut site_sel = SiteSelector::default();
            match &r.sites {
                None => site_sel.any = true,
                Some(list) => {
                    let sp = child(&p, "sites");
                    if list.is_empty() {
                        errors.push(doc.error_at(
                            &sp,
                            format!("{what}: `sites` is empty; leave it out to match every site"),
                        ));
                    }
                    for (j, s) in list.iter().enumerate() {
                        match s.as_str() {
                            "any" => site_sel.any = true,
                            "listed" => site_sel.listed = true,
                            "unlisted" => site_sel.unlisted = true,
                            other => match sites.iter().position(|x| x.name == other) {
                                Some(k) => site_sel.ids.push(k as u32),
                                None => errors.push(doc.error_at(
                                    &index(&sp, j),
                                    format!(
                                        "{what}: unknown site `{other}`{}",
                                        hint(other, &site_names)
                                    ),
                                )),
                            },
                        }
                    }
                }
            }

            let mut act_sel = ActivitySelector::default();
            match &r.activities {
                None => act_sel.any = true,
                Some(list) => {
                    let ap = child(&p, "activities");
                    if list.is_empty() {
                        errors.push(doc.error_at(&ap, format!("{what}: `activities` is empty; leave it out to match every activity")));
                    }
                    for (j, a) in list.iter().enumerate() {
                        match a.as_str() {
                            "any" => act_sel.any = true,
                            "read" => act_sel.read_kind = true,
                            "write" => act_sel.write_kind = true,
                            other => match activity_names.iter().position(|x| x == other) {
                                Some(k) => act_sel.ids.push(k as ActivityId),
                                None => errors.push(doc.error_at(
                                    &index(&ap, j),
                                    format!(
                                        "{what}: unknown activity `{other}`{}",
                                        hint(other, &activity_known)
                                    ),
                                )),
                            },
                        }
                    }
                }
            }

            let when = r.when.as_ref().and_then(|w| {
                let wp = child(&p, "when");
                let days = match &w.days {
                    None => Ok([true; 7]),
                    Some(d) => parse_days(&d.to_vec()),
                };
                let days = match days {
                    Ok(d) => d,
                    Err(e) => {
                        errors.push(doc.error_at(&child(&wp, "days"), format!("{what}: {e}")));
                        return None;
                    }
                };
                let between = match &w.between {
                    None => None,
                    Some(b) if b.len() == 2 => match (parse_clock(&b[0]), parse_clock(&b[1])) {
                        (Ok(s), Ok(e)) if s != e => Some((s, e)),
                        (Ok(_), Ok(_)) => {
                            errors.push(doc.error_at(&child(&wp, "between"), format!("{what}: `between` start and end are equal; the window would be empty")));
                            return None;
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            errors.push(doc.error_at(&child(&wp, "between"), format!("{what}: {e}")));
                            return None;
                        }
                    },
                    Some(_) => {
                        errors.push(doc.error_at(&child(&wp, "between"), format!("{what}: `between` takes two times, e.g. [\"12:00\", \"14:00\"]")));
                        return None;
                    }
                };
                if w.days.is_none() && between.is_none() {
                    errors.push(doc.error_at(&wp, format!("{what}: `when` needs `days` and/or `between`")));
                    return None;
                }
                Some(TimeWindow { days, between })
            });

            let warn_for = match &r.warn_for {
                None => Duration::from_secs(8 * 3600),
                Some(s) => {
                    if r.action != Action::Warn {
                        errors.push(doc.error_at_key(
                            &child(&p, "warn_for"),
                            format!("{what}: `warn_for` applies only to `action: warn`"),
                        ));
                    }
                    match humantime::parse_duration(s) {
                        Ok(d) if d.as_secs() > 0 => d,
                        _ => {
                            errors.push(doc.error_at(
                                &child(&p, "warn_for"),
                                format!(
                                    "{what}: `warn_for: {s}` is not a duration such as 8h or 30m"
                                ),
                            ));
                            Duration::from_secs(8 * 3600)
                        }
                    }
                }
            };
            if let Some(profile) = &r.dlp {
                if !dlp.profiles.contains_key(profile) {
                    let known = if profile_names.is_empty() {
                        " (the policy defines no `dlp.profiles`)".to_string()
                    } else {
                        hint(profile, &profile_names)
                    };
                    errors.push(doc.error_at(
                        &child(&p, "dlp"),
                        format!("{what}: unknown DLP profile `{profile}`{known}"),
                    ));
                }
            }
            let description = r.description.as_ref().and_then(|d| {
                shown_text(d, DESCRIPTION_MAX, true)
                    .map_err(|e| {
                        errors.push(doc.error_at(
                            &child(&p, "description"),
                            format!("{what}: `description` {e}"),
                        ))
                    })
                    .ok()
            });
            rules.push(Rule {
                name,
                description,
                roles: roles_sel,
                sites: site_sel,
                activities: act_sel,
                when,
                action: r.action,
                warn_for,
                message: r.message.clone(),
                dlp: r.dlp.clone(),
                enforce: r.enforce.unwrap_or(true),
                accounts: None,
            });
        }
        rules
    }
}

fn compile_matcher(
    doc: &YamlDoc,
    p: &str,
    m: &RawMatcher,
    errors: &mut Vec<ConfigError>,
) -> Option<Matcher> {
    let before = errors.len();
    let mut out = Matcher::default();
    if let Some(methods) = &m.method {
        for (i, method) in methods.to_vec().iter().enumerate() {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                errors.push(doc.error_at(
                    &index(&child(p, "method"), i),
                    format!("`method`: `{method}` is not an HTTP method"),
                ));
            }
            out.methods.push(method.to_ascii_uppercase());
        }
    }
    if let Some(h) = &m.host {
        match DomainPattern::parse(h) {
            Ok(d) => out.host = Some(d),
            Err(e) => errors.push(doc.error_at(&child(p, "host"), format!("`host`: {e}"))),
        }
    }
    if let Some(path) = &m.path {
        if !path.starts_with('/') {
            errors.push(doc.error_at(
                &child(p, "path"),
                format!("`path`: `{path}` must start with `/`"),
            ));
        }
        out.path = Some(match path.strip_suffix('*') {
            Some(prefix) => PathMatch::Prefix(prefix.to_string()),
            None => PathMatch::Exact(path.clone()),
        });
    }
    if let Some(re) = &m.path_regex {
        match whole_regex(re) {
            Ok(r) => out.path_regex = Some(r),
            Err(e) => {
                errors.push(doc.error_at(&child(p, "path_regex"), format!("`path_regex`: {e}")))
            }
        }
    }
    let fields = |key: &str,
                  map: &Option<IndexMap<String, String>>,
                  errors: &mut Vec<ConfigError>|
     -> Vec<(String, Regex)> {
        let mut v = Vec::new();
        for (name, re) in map.iter().flatten() {
            match whole_regex(re) {
                Ok(r) => v.push((name.clone(), r)),
                Err(e) => errors.push(
                    doc.error_at(&child(&child(p, key), name), format!("`{key}.{name}`: {e}")),
                ),
            }
        }
        v
    };
    out.query = fields("query", &m.query, errors);
    out.form = fields("form", &m.form, errors);
    out.json = fields("json", &m.json, errors)
        .into_iter()
        .map(|(k, r)| (k.split('.').map(str::to_string).collect(), r))
        .collect();
    for (name, r) in fields("header", &m.header, errors) {
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => out.header.push((h, r)),
            Err(_) => errors.push(doc.error_at_key(
                &child(&child(p, "header"), &name),
                format!("`header`: `{name}` is not a header name"),
            )),
        }
    }
    out.websocket = m.websocket;
    let empty = out.methods.is_empty()
        && out.host.is_none()
        && out.path.is_none()
        && out.path_regex.is_none()
        && out.query.is_empty()
        && out.form.is_empty()
        && out.json.is_empty()
        && out.header.is_empty()
        && out.websocket.is_none();
    if empty && errors.len() == before {
        errors.push(doc.error_at(
            p,
            "an empty matcher would match every request: give it method, path, path_regex, ...",
        ));
    }
    (errors.len() == before).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::relative_name;
    use crate::policy::load_policy;
    use crate::policy::test_support::OneFile;

    #[test]
    fn includes_are_named_relative_to_the_policy_whatever_its_spelling() {
        for (policy, file) in [
            ("policies/x.yaml", "policies/sites/a.yaml"),
            ("./policies/x.yaml", "./policies/./sites/a.yaml"),
            ("/srv/gw/policies/x.yaml", "/srv/gw/policies/sites/a.yaml"),
            ("x.yaml", "sites/a.yaml"),
        ] {
            assert_eq!(relative_name(policy, file), "sites/a.yaml", "{policy}");
        }
        assert_eq!(
            relative_name("/srv/p/x.yaml", "/srv/p/../catalogue/a.yaml"),
            "../catalogue/a.yaml"
        );
        assert_eq!(relative_name("p/x.yaml", "/etc/a.yaml"), "etc/a.yaml");
    }

    #[test]
    fn a_misspelt_top_level_key_is_reported_alone() {
        let text = "version: 1\nrule:\n  - { name: all, action: allow }\ntests:\n  - { request: GET https://a.test/, user: u, expect: allow, rule: all }\n";
        let errors = load_policy("p.yaml", &OneFile(text)).unwrap_err().0;
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            ["p.yaml:2:1: unknown top-level key `rule`; did you mean `rules`?"]
        );
    }

    #[test]
    fn a_control_character_in_a_regex_is_a_warning() {
        let text = "version: 1\ndlp:\n  detectors:\n    ref: { pattern: \"\\bBDC-[0-9]{7}\\b\" }\n    ok: { pattern: '\\bBDC-[0-9]{7}\\b' }\nrules:\n  - { name: all, action: allow }\n";
        let policy = load_policy("p.yaml", &OneFile(text)).unwrap();
        let lines: Vec<String> = policy.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("p.yaml:4:21: warning: `pattern` holds a backspace"),
            "{lines:?}"
        );
        assert!(lines[0].contains("single quotes"), "{lines:?}");
    }

    #[test]
    fn titles_and_descriptions_are_kept_and_checked_with_their_position() {
        let text = "version: 1\nsites:\n  tw:\n    title: \" X (Twitter) \"\n    domains: [x.test]\nrules:\n  - name: no-x\n    description: \"Posting from work accounts\\ngoes through the press office.\"\n    action: deny\n";
        let policy = load_policy("p.yaml", &OneFile(text)).unwrap();
        assert_eq!(policy.sites[0].title.as_deref(), Some("X (Twitter)"));
        assert_eq!(
            policy.rules[0].description.as_deref(),
            Some("Posting from work accounts\ngoes through the press office.")
        );
        let bad = "version: 1\nsites:\n  tw:\n    title: \"\"\n    domains: [x.test]\nrules:\n  - name: no-x\n    action: deny\n    description: \"a\\u0007b\"\n";
        let errors = load_policy("p.yaml", &OneFile(bad)).unwrap_err().0;
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "p.yaml:4:12: site `tw`: `title` is empty",
                "p.yaml:9:18: rule `no-x`: `description` holds a control character"
            ]
        );
        let unknown = "version: 1\nsites:\n  tw:\n    titel: X\n    domains: [x.test]\nrules:\n  - { name: all, action: allow }\n";
        let errors = load_policy("p.yaml", &OneFile(unknown)).unwrap_err().0;
        assert!(errors[0].to_string().starts_with("p.yaml:4:"), "{errors:?}");
        assert!(errors[0].to_string().contains("titel"), "{errors:?}");
    }
}
