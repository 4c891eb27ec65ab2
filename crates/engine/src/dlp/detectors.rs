//! Detectors: the built-in ones of `shared/DLP.md` and the custom ones of a policy.
//!
//! Job: over one normalised text, report every candidate value that passes its
//! detector's validator, as `(slot, canonical value)` to a sink. The work is
//! staged so that ordinary prose costs little: one byte pass finds digit
//! clusters (groups of ASCII digits joined by one dash, one dot, or any run of
//! whitespace: spaces, tabs, line breaks) and validates cards, NHS numbers,
//! passports and bank details straight from them; only "interesting" clusters
//! (six digits or more, or touching a capital) open a small window where the
//! alphanumeric regexes run (NI number, IBAN, driving licence, postcode, phone,
//! letter-prefixed passport), over a copy of the window with every whitespace
//! run read as one space when it has any other whitespace. Secrets and
//! protective markings come from one case-sensitive Aho-Corasick pass over their
//! literal prefixes, e-mail addresses from `memchr('@')`, custom keywords from
//! one ASCII-case-insensitive Aho-Corasick automaton over all keywords.
//!
//! Limits: text must already be normalised (ASCII digits, no invisibles, ASCII
//! whitespace). Distances (the window pad, "passport" and "sort code" nearby, a
//! sort code and its account) count a run of whitespace as one character, so
//! padding with blanks or blank lines does not push context away. Postcodes
//! match in capitals only. Card numbers are 13–19 digits in one run or groups
//! separated by spaces or dashes (any grouping), by dots or other whitespace
//! (tabs, line breaks, several spaces) only when grouped as cards are printed
//! (fours, or 4-6-5); a longer run of digits is not a card. NHS numbers and sort
//! codes are never dotted. Markings accept any whitespace between their words
//! (`TOP\tSECRET`, `UK EYES\nONLY`); custom keywords match their own spacing
//! only. The canonical value is the candidate with separators stripped (and
//! upper-cased where the detector is case-insensitive); it never leaves the scan.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use base64::Engine;
use regex::Regex;

use super::normalize::normalize;
use super::DlpError;

/// Built-in detector ids, a public contract (policy files name them).
pub const BUILTIN_DETECTORS: &[&str] = &[
    "payment-card",
    "uk-nino",
    "nhs-number",
    "uk-passport",
    "uk-driving-licence",
    "uk-bank-account",
    "iban",
    "protective-marking",
    "secrets",
    "email-address",
    "uk-phone",
    "uk-postcode",
];

/// A custom detector as written in the policy's `dlp.detectors` map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomDetectorSpec {
    /// The detector's name (the key in the policy map); must not be a built-in id.
    pub name: String,
    /// Whole words or phrases, matched case-insensitively.
    pub keywords: Vec<String>,
    /// A regular expression (Rust `regex` syntax).
    pub pattern: Option<String>,
    /// Context words: a match counts only with one of them within `within` chars.
    pub near: Vec<String>,
    /// Distance for `near`, in characters (bytes of normalised text); default 100.
    pub within: Option<usize>,
}

/// Default `within` for custom `near` words.
pub const DEFAULT_NEAR_WITHIN: usize = 100;
const PASSPORT_KEYWORD_WITHIN: usize = 100;
const BANK_PAIR_WITHIN: usize = 50;
const WINDOW_PAD: usize = 48;

/// One built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    PaymentCard,
    UkNino,
    NhsNumber,
    UkPassport,
    UkDrivingLicence,
    UkBankAccount,
    Iban,
    ProtectiveMarking,
    Secrets,
    EmailAddress,
    UkPhone,
    UkPostcode,
}

impl Builtin {
    pub(crate) const ALL: [Builtin; 12] = [
        Builtin::PaymentCard,
        Builtin::UkNino,
        Builtin::NhsNumber,
        Builtin::UkPassport,
        Builtin::UkDrivingLicence,
        Builtin::UkBankAccount,
        Builtin::Iban,
        Builtin::ProtectiveMarking,
        Builtin::Secrets,
        Builtin::EmailAddress,
        Builtin::UkPhone,
        Builtin::UkPostcode,
    ];

    pub(crate) fn id(self) -> &'static str {
        BUILTIN_DETECTORS[self as usize]
    }

    pub(crate) fn from_id(id: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.id() == id)
    }
}

/// Receives `(slot, canonical value)` for every validated match.
pub(crate) type Sink<'s> = dyn FnMut(usize, &str) + 's;

/// Literal prefixes found by the one case-sensitive automaton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    Aws,
    GitHub,
    GitHubPat,
    Slack,
    PrivateKey,
    Jwt,
    Official,
    Secret,
    UkEyesOnly,
    /// RESTRICTED, CONFIDENTIAL, PROTECT: only at the start or end of a line.
    LineMarking,
}

const SECRET_LITERALS: &[(&str, Literal)] = &[
    ("AKIA", Literal::Aws),
    ("ASIA", Literal::Aws),
    ("ghp_", Literal::GitHub),
    ("gho_", Literal::GitHub),
    ("ghs_", Literal::GitHub),
    ("github_pat_", Literal::GitHubPat),
    ("xoxa-", Literal::Slack),
    ("xoxb-", Literal::Slack),
    ("xoxp-", Literal::Slack),
    ("xoxr-", Literal::Slack),
    ("xoxs-", Literal::Slack),
    ("-----BEGIN", Literal::PrivateKey),
    ("eyJ", Literal::Jwt),
];

const MARKING_LITERALS: &[(&str, Literal)] = &[
    ("OFFICIAL", Literal::Official),
    ("SECRET", Literal::Secret),
    // "UK EYES ONLY" with any whitespace between the words: checked around EYES.
    ("EYES", Literal::UkEyesOnly),
    ("RESTRICTED", Literal::LineMarking),
    ("CONFIDENTIAL", Literal::LineMarking),
    ("PROTECT", Literal::LineMarking),
];

/// IBAN length per country (ISO 13616 registry, Europe complete plus common others).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// The window regexes of the built-ins (compiled once per scanner).
#[derive(Debug)]
struct WindowRegexes {
    nino: Regex,
    iban: Regex,
    driving_licence: Regex,
    postcode: Regex,
    phone: Regex,
    passport_letter: Regex,
    email: Regex,
}

impl WindowRegexes {
    fn compile() -> Result<WindowRegexes, DlpError> {
        let re = |id: &str, p: &str| {
            Regex::new(p).map_err(|e| DlpError::BadPattern {
                detector: id.to_string(),
                error: e.to_string(),
            })
        };
        Ok(WindowRegexes {
            // `[\t-\r ]` is one ASCII whitespace character (a longer run is
            // read as one space through `WindowView`).
            nino: re(
                "uk-nino",
                r"(?i)(?-u:\b)[A-Z]{2}[\t-\r -]?[0-9]{2}[\t-\r -]?[0-9]{2}[\t-\r -]?[0-9]{2}[\t-\r -]?[A-D](?-u:\b)",
            )?,
            iban: re(
                "iban",
                r"(?i)(?-u:\b)[A-Z]{2}[0-9]{2}(?:[\t-\r -]?[A-Z0-9]){10,32}",
            )?,
            driving_licence: re(
                "uk-driving-licence",
                r"(?i)(?-u:\b)[A-Z][A-Z9]{4}[\t-\r ]?[0-9]{6}[\t-\r ]?[A-Z][A-Z9][0-9][A-Z0-9]{2}(?-u:\b)",
            )?,
            postcode: re(
                "uk-postcode",
                r"(?-u:\b)(?:GIR[\t-\r ]?0AA|[A-PR-UWYZ](?:[0-9][0-9A-HJKPSTUW]?|[A-HK-Y][0-9][0-9ABEHMNPRVWXY]?)[\t-\r ]?[0-9][ABD-HJLNP-UW-Z]{2})(?-u:\b)",
            )?,
            phone: re(
                "uk-phone",
                r"(?:\+44[\t-\r ]?(?:\(0\)[\t-\r ]?)?|\(?0)[1-9](?:[\t-\r \-)]{0,2}[0-9]){8,9}(?-u:\b)",
            )?,
            passport_letter: re("uk-passport", r"(?i)(?-u:\b)[A-Z][0-9]{8}(?-u:\b)")?,
            email: re(
                "email-address",
                r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?-u:\b)",
            )?,
        })
    }
}

/// The enabled built-ins of one profile, compiled.
#[derive(Debug)]
pub(crate) struct BuiltinDetectors {
    /// Output slot of each built-in, `None` when the profile does not enable it.
    slots: [Option<usize>; 12],
    literals: Option<(AhoCorasick, Vec<Literal>)>,
    regexes: WindowRegexes,
}

/// A group of ASCII digits inside a cluster.
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

impl Group {
    fn len(self) -> usize {
        self.end - self.start
    }
}

impl BuiltinDetectors {
    pub(crate) fn new(slots: [Option<usize>; 12]) -> Result<BuiltinDetectors, DlpError> {
        let on = |b: Builtin| slots[b as usize].is_some();
        let mut table: Vec<(&str, Literal)> = Vec::new();
        if on(Builtin::Secrets) {
            table.extend_from_slice(SECRET_LITERALS);
        }
        if on(Builtin::ProtectiveMarking) {
            table.extend_from_slice(MARKING_LITERALS);
        }
        let literals = if table.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(table.iter().map(|(p, _)| p))
                .map_err(|e| DlpError::Keywords(e.to_string()))?;
            Some((ac, table.iter().map(|(_, k)| *k).collect()))
        };
        Ok(BuiltinDetectors {
            slots,
            literals,
            regexes: WindowRegexes::compile()?,
        })
    }

    fn slot(&self, b: Builtin) -> Option<usize> {
        self.slots[b as usize]
    }

    /// Runs every enabled built-in over one normalised text.
    pub(crate) fn detect(&self, text: &str, sink: &mut Sink<'_>) {
        if let Some((ac, kinds)) = &self.literals {
            self.detect_literals(text, ac, kinds, sink);
        }
        if let Some(slot) = self.slot(Builtin::EmailAddress) {
            self.detect_email(text, slot, sink);
        }
        if self.uses_digits() {
            self.detect_numeric(text, false, sink);
        }
    }

    /// Only the literal detectors (secrets, markings): for fields concatenated
    /// without a separator, where a token split mid-way is whole again.
    pub(crate) fn detect_literals_only(&self, text: &str, sink: &mut Sink<'_>) {
        if let Some((ac, kinds)) = &self.literals {
            self.detect_literals(text, ac, kinds, sink);
        }
    }

    /// Only the detectors that start from digits (cards, NI and NHS numbers,
    /// passports, licences, bank details, IBANs, phones, postcodes): for fields
    /// glued without a separator, where a digit group split mid-way is whole again.
    pub(crate) fn detect_numbers_only(&self, text: &str, sink: &mut Sink<'_>) {
        if self.uses_digits() {
            self.detect_numeric(text, false, sink);
        }
    }

    fn uses_digits(&self) -> bool {
        self.slots
            .iter()
            .enumerate()
            .any(|(i, s)| s.is_some() && uses_digits(i))
    }

    fn detect_literals(
        &self,
        text: &str,
        ac: &AhoCorasick,
        kinds: &[Literal],
        sink: &mut Sink<'_>,
    ) {
        let bytes = text.as_bytes();
        let secrets = self.slot(Builtin::Secrets);
        let marking = self.slot(Builtin::ProtectiveMarking);
        for m in ac.find_iter(text) {
            let (s, e) = (m.start(), m.end());
            let Some(kind) = kinds.get(m.pattern().as_usize()).copied() else {
                continue;
            };
            match kind {
                Literal::Aws => {
                    if let (Some(slot), true) = (secrets, !is_alnum_at(bytes, s.wrapping_sub(1))) {
                        let tail =
                            run_len(bytes, e, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
                        if tail == 16 && !is_alnum_at(bytes, e + 16) {
                            sink(slot, &text[s..e + 16]);
                        }
                    }
                }
                Literal::GitHub | Literal::GitHubPat | Literal::Slack => {
                    let Some(slot) = secrets else { continue };
                    if is_alnum_at(bytes, s.wrapping_sub(1)) {
                        continue;
                    }
                    let (tail, min) = match kind {
                        Literal::GitHub => (run_len(bytes, e, |b| b.is_ascii_alphanumeric()), 30),
                        Literal::GitHubPat => (
                            run_len(bytes, e, |b| b.is_ascii_alphanumeric() || b == b'_'),
                            22,
                        ),
                        _ => (
                            run_len(bytes, e, |b| b.is_ascii_alphanumeric() || b == b'-'),
                            10,
                        ),
                    };
                    if tail >= min {
                        sink(slot, &text[s..e + tail]);
                    }
                }
                Literal::PrivateKey => {
                    if let Some(slot) = secrets {
                        if let Some(value) = private_key_block(text, s, e) {
                            sink(slot, &value);
                        }
                    }
                }
                Literal::Jwt => {
                    if let Some(slot) = secrets {
                        if let Some(end) = jwt_end(bytes, s) {
                            sink(slot, &text[s..end]);
                        }
                    }
                }
                Literal::Official
                | Literal::Secret
                | Literal::UkEyesOnly
                | Literal::LineMarking => {
                    if let Some(slot) = marking {
                        if let Some(value) = marking_at(bytes, s, e, kind) {
                            sink(slot, value);
                        }
                    }
                }
            }
        }
    }

    fn detect_email(&self, text: &str, slot: usize, sink: &mut Sink<'_>) {
        let bytes = text.as_bytes();
        let mut done_until = 0;
        for at in memchr::memchr_iter(b'@', bytes) {
            if at < done_until || at == 0 {
                continue;
            }
            let before = bytes[at - 1];
            let after = bytes.get(at + 1).copied().unwrap_or(b' ');
            if !(before.is_ascii_alphanumeric() || b"._%+-".contains(&before))
                || !after.is_ascii_alphanumeric()
            {
                continue;
            }
            let (ws, we) = char_window(text, at.saturating_sub(64), at + 256);
            for m in self.regexes.email.find_iter(&text[ws..we]) {
                let (ms, me) = (ws + m.start(), ws + m.end());
                if ms <= at && at < me {
                    sink(slot, &m.as_str().to_ascii_lowercase());
                    done_until = me;
                }
            }
        }
    }

    /// The digit-cluster pass. `separator_view` is true over a rewritten
    /// window of [`separator_view`]: no further candidates are collected there,
    /// and a card cut into several groups must be grouped as cards are printed.
    fn detect_numeric(&self, text: &str, separator_view: bool, sink: &mut Sink<'_>) {
        let bytes = text.as_bytes();
        let mut candidates: Vec<(usize, usize)> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut seps: Vec<u8> = Vec::new();
        let mut odd: Vec<bool> = Vec::new();
        let mut windows: Vec<Window> = Vec::new();
        let mut bank = BankCandidates::default();
        let mut i = 0;
        while let Some(offset) = find_digit(&bytes[i..]) {
            i += offset;
            groups.clear();
            seps.clear();
            odd.clear();
            loop {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                groups.push(Group { start, end: i });
                // One dash or dot, or any run of whitespace (read as one space;
                // `odd` when it is not a single space).
                let (sep, next) = match bytes.get(i) {
                    Some(&sep @ (b'-' | b'.')) => (sep, i + 1),
                    Some(&b) if is_space(b) => (b' ', i + run_len(bytes, i, is_space)),
                    _ => break,
                };
                if !bytes.get(next).is_some_and(u8::is_ascii_digit) {
                    break;
                }
                seps.push(sep);
                odd.push(sep == b' ' && (next - i > 1 || bytes[i] != b' '));
                i = next;
            }
            self.on_cluster(text, &groups, &seps, &odd, separator_view, &mut bank, sink);
            let digits: usize = groups.iter().map(|g| g.len()).sum();
            let first = groups[0].start;
            let last = groups[groups.len() - 1].end;
            if !separator_view && is_separator_candidate(bytes, &groups, &seps) {
                candidates.push((first, last));
            }
            let touches_capital = first > 0 && bytes[first - 1].is_ascii_uppercase()
                || bytes.get(last).is_some_and(u8::is_ascii_uppercase);
            if digits >= 6 || touches_capital {
                push_window(
                    &mut windows,
                    text,
                    first,
                    last,
                    digits >= 6,
                    touches_capital,
                );
            }
        }
        if let Some(slot) = self.slot(Builtin::UkBankAccount) {
            bank.report(text, slot, sink);
        }
        for window in &windows {
            self.on_window(text, window, sink);
        }
        if !candidates.is_empty() {
            for view in separator_views(text, &candidates) {
                self.detect_numeric(&view, true, sink);
            }
        }
    }

    /// Validators that work straight from digit groups; `seps[i]` (`' '`, `'-'`
    /// or `'.'`) is between `groups[i]` and `groups[i + 1]`, `odd[i]` when it is
    /// whitespace other than a single space.
    #[allow(clippy::too_many_arguments)] // One cluster's parts, borrowed from the pass.
    fn on_cluster(
        &self,
        text: &str,
        groups: &[Group],
        seps: &[u8],
        odd: &[bool],
        strict_cards: bool,
        bank: &mut BankCandidates,
        sink: &mut Sink<'_>,
    ) {
        let bytes = text.as_bytes();
        if let Some(slot) = self.slot(Builtin::PaymentCard) {
            let mut i = 0;
            while i < groups.len() {
                let mut best = None;
                let mut buf = DigitBuf::default();
                // Dots only as in `4111.1111.1111.1111`: every separator a dot and
                // every group but the last four digits (not a price or a version).
                // Across tabs, line breaks or several spaces, only a card's own
                // grouping (not a table of numbers).
                let dotted = i + 1 < groups.len() && seps[i] == b'.';
                let mut odd_sep = strict_cards;
                for j in i..groups.len() {
                    if j > i {
                        if (seps[j - 1] == b'.') != dotted || (dotted && groups[j - 1].len() != 4) {
                            break;
                        }
                        odd_sep |= odd[j - 1];
                    }
                    if !buf.push(&bytes[groups[j].start..groups[j].end]) {
                        break;
                    }
                    if buf.len() >= 13
                        && is_card(buf.digits())
                        && (j == i || !(dotted || odd_sep) || card_grouping(&groups[i..=j]))
                    {
                        best = Some((j, buf));
                    }
                }
                match best {
                    Some((j, found)) => {
                        sink(slot, found.as_str());
                        i = j + 1;
                    }
                    None => i += 1,
                }
            }
        }
        if let Some(slot) = self.slot(Builtin::NhsNumber) {
            for i in 0..groups.len() {
                let mut buf = DigitBuf::default();
                let shaped = if groups[i].len() == 10 {
                    buf.push(&bytes[groups[i].start..groups[i].end])
                } else if i + 2 < groups.len()
                    && groups[i].len() == 3
                    && groups[i + 1].len() == 3
                    && groups[i + 2].len() == 4
                    && seps[i] != b'.'
                    && seps[i] == seps[i + 1]
                {
                    groups[i..i + 3]
                        .iter()
                        .all(|g| buf.push(&bytes[g.start..g.end]))
                } else {
                    false
                };
                if shaped && is_nhs_number(buf.digits()) {
                    sink(slot, buf.as_str());
                }
            }
        }
        if let Some(slot) = self.slot(Builtin::UkPassport) {
            for g in groups.iter().filter(|g| g.len() == 9) {
                let letter_before = g.start > 0 && bytes[g.start - 1].is_ascii_alphabetic();
                if !letter_before
                    && !is_alnum_at(bytes, g.end)
                    && keyword_near(text, g.start, g.end, "passport", PASSPORT_KEYWORD_WITHIN)
                {
                    sink(slot, &text[g.start..g.end]);
                }
            }
        }
        if self.slot(Builtin::UkBankAccount).is_some() {
            for (i, g) in groups.iter().enumerate() {
                if g.len() == 8
                    && !is_alnum_at(bytes, g.end)
                    && !is_alnum_at(bytes, g.start.wrapping_sub(1))
                {
                    bank.accounts.push((g.start, g.end));
                }
                if i + 2 < groups.len()
                    && groups[i..i + 3].iter().all(|g| g.len() == 2)
                    && seps[i] == seps[i + 1]
                    && seps[i] != b'.'
                    && (i + 3 == groups.len() || seps[i + 2] == b' ')
                    && (i == 0 || seps[i - 1] == b' ')
                {
                    bank.sort_codes
                        .push((groups[i].start, groups[i + 2].end, seps[i] == b'-'));
                }
            }
        }
    }

    /// The alphanumeric detectors, over one window around interesting digits.
    /// Postcodes need a digit touching a capital; the others six digits or more.
    fn on_window(&self, text: &str, w: &Window, sink: &mut Sink<'_>) {
        let view = WindowView::new(text, w.start, w.end, w.space_run);
        let window: &str = &view.text;
        let re = &self.regexes;
        if w.capital {
            if let Some(slot) = self.slot(Builtin::UkPostcode) {
                for m in re.postcode.find_iter(window) {
                    sink(slot, &strip_upper(m.as_str()));
                }
            }
        }
        if !w.many_digits {
            return;
        }
        if let Some(slot) = self.slot(Builtin::UkNino) {
            for m in re.nino.find_iter(window) {
                let value = strip_upper(m.as_str());
                if is_nino(&value) {
                    sink(slot, &value);
                }
            }
        }
        if let Some(slot) = self.slot(Builtin::Iban) {
            let mut at = 0;
            while let Some(m) = re.iban.find_at(window, at) {
                match iban_prefix(m.as_str()) {
                    Some((value, used)) => {
                        sink(slot, &value);
                        at = m.start() + used;
                    }
                    None => at = m.start() + 4,
                }
                if at >= window.len() {
                    break;
                }
            }
        }
        if let Some(slot) = self.slot(Builtin::UkDrivingLicence) {
            for m in re.driving_licence.find_iter(window) {
                let value = strip_upper(m.as_str());
                if is_driving_licence(&value) {
                    sink(slot, &value);
                }
            }
        }
        if let Some(slot) = self.slot(Builtin::UkPhone) {
            for m in re.phone.find_iter(window) {
                if let Some(national) = uk_phone(m.as_str()) {
                    sink(slot, &national);
                }
            }
        }
        if let Some(slot) = self.slot(Builtin::UkPassport) {
            for m in re.passport_letter.find_iter(window) {
                if keyword_near(
                    text,
                    view.original(m.start()),
                    view.original(m.end()),
                    "passport",
                    PASSPORT_KEYWORD_WITHIN,
                ) {
                    sink(slot, &m.as_str().to_ascii_uppercase());
                }
            }
        }
    }
}

/// A separator between the groups of an identifier in the separator view:
/// ASCII whitespace, `-` (Unicode dashes are `-` once normalised), `.`, `/`,
/// `\`, `_`, `+`, `,`, `|`.
fn is_group_separator(b: u8) -> bool {
    is_space(b) || matches!(b, b'-' | b'.' | b'/' | b'\\' | b'_' | b'+' | b',' | b'|')
}

/// The longest separator run read as one separator in the separator view.
const MAX_SEPARATOR_RUN: usize = 5;

/// Whether a digit cluster may be one group of an identifier written with
/// other separators than the digit pass reads (`JG.10.37.82.B`,
/// `943/476/5919`, `4111 - 1111`, `J G 1 0 3 7 8 2 B`): a separator run that
/// the cluster pass stopped at between the cluster and a letter or digit, or
/// four single-digit groups.
fn is_separator_candidate(bytes: &[u8], groups: &[Group], seps: &[u8]) -> bool {
    if groups.iter().filter(|g| g.len() == 1).count() >= 4 {
        return true;
    }
    // Dotted groups (`943.476.5919`): the digit pass reads dots for cards only.
    if groups.len() >= 3 && seps.contains(&b'.') {
        return true;
    }
    let first = groups[0].start;
    let last = groups[groups.len() - 1].end;
    // After the cluster: a separator run, then an alphanumeric.
    let run = run_len(bytes, last, is_group_separator).min(MAX_SEPARATOR_RUN + 1);
    if run > 0 && run <= MAX_SEPARATOR_RUN && is_alnum_at(bytes, last + run) {
        let sep = &bytes[last..last + run];
        let plain = sep.iter().all(|&b| is_space(b))
            || (run == 1 && matches!(sep[0], b'-' | b'.') && bytes[last + 1].is_ascii_digit());
        if !plain || bytes[last + run].is_ascii_alphabetic() && !sep.iter().all(|&b| is_space(b)) {
            return true;
        }
    }
    // Before it, likewise.
    let run = run_len_back(bytes, first, is_group_separator).min(MAX_SEPARATOR_RUN + 1);
    if run > 0 && run <= MAX_SEPARATOR_RUN && first > run && is_alnum_at(bytes, first - run - 1) {
        let sep = &bytes[first - run..first];
        if !sep.iter().all(|&b| is_space(b)) {
            return true;
        }
    }
    false
}

/// Context kept on each side of a separator-view candidate.
const SEPARATOR_CONTEXT: usize = 96;

/// The windows around the candidates, each rewritten so that every separator
/// run of at most [`MAX_SEPARATOR_RUN`] bytes between two alphanumerics is one
/// space, and a run of four or more one-character groups is glued into one
/// group (`J G 1 0 3 7 8 2 B` to `JG103782B`).
fn separator_views(text: &str, candidates: &[(usize, usize)]) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for &(first, last) in candidates {
        let mut start = first.saturating_sub(SEPARATOR_CONTEXT);
        let mut end = (last + SEPARATOR_CONTEXT).min(bytes.len());
        for _ in 0..32 {
            if start == 0 || is_space(bytes[start - 1]) {
                break;
            }
            start -= 1;
        }
        for _ in 0..32 {
            if end >= bytes.len() || is_space(bytes[end]) {
                break;
            }
            end += 1;
        }
        let (start, end) = char_window(text, start, end);
        match spans.last_mut() {
            Some(prev) if start <= prev.1 => prev.1 = prev.1.max(end),
            _ => spans.push((start, end)),
        }
    }
    spans
        .into_iter()
        .map(|(s, e)| rewrite_separators(&text[s..e]))
        .collect()
}

fn rewrite_separators(window: &str) -> String {
    let bytes = window.as_bytes();
    // Tokens: (start, end) of alphanumeric runs, and whether the gap before
    // each one is a short separator run after another alphanumeric token.
    let mut out = String::with_capacity(window.len());
    let mut i = 0;
    // Pending one-character groups, glued when four or more.
    let mut singles: Vec<u8> = Vec::new();
    let flush = |out: &mut String, singles: &mut Vec<u8>| {
        if singles.len() >= 4 {
            out.extend(singles.iter().map(|&b| b as char));
        } else {
            for (k, &b) in singles.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push(b as char);
            }
        }
        singles.clear();
    };
    let mut prev_alnum = false;
    while i < bytes.len() {
        let alnum = run_len(bytes, i, |b| b.is_ascii_alphanumeric());
        if alnum > 0 {
            if alnum == 1 {
                singles.push(bytes[i]);
            } else {
                if !singles.is_empty() {
                    flush(&mut out, &mut singles);
                    out.push(' ');
                }
                out.push_str(&window[i..i + alnum]);
            }
            i += alnum;
            prev_alnum = true;
            continue;
        }
        let sep = run_len(bytes, i, is_group_separator);
        if sep > 0 && sep <= MAX_SEPARATOR_RUN && prev_alnum && is_alnum_at(bytes, i + sep) {
            if singles.is_empty() {
                out.push(' ');
            }
            i += sep;
            continue;
        }
        flush(&mut out, &mut singles);
        prev_alnum = false;
        // Copy one character (or the whole separator run) as it is.
        let n = if sep > 0 {
            sep
        } else {
            window[i..].chars().next().map_or(1, char::len_utf8)
        };
        out.push_str(&window[i..i + n]);
        i += n;
    }
    flush(&mut out, &mut singles);
    out
}

/// Whether built-in number `index` needs the digit-cluster pass.
fn uses_digits(index: usize) -> bool {
    !matches!(
        Builtin::ALL.get(index),
        Some(Builtin::ProtectiveMarking | Builtin::Secrets | Builtin::EmailAddress) | None
    )
}

/// Position of the first ASCII digit, eight bytes at a time.
fn find_digit(bytes: &[u8]) -> Option<usize> {
    const HI: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // Per 7-bit lane: adding 0x50 sets bit 7 iff b >= 0x30; adding 0x46 iff b >= 0x3A.
    const GE_0: u64 = 0x5050_5050_5050_5050;
    const GE_COLON: u64 = 0x4646_4646_4646_4646;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let low = x & LOW7;
        let digit_lanes = (low + GE_0) & !(low + GE_COLON) & !x & HI;
        if digit_lanes != 0 {
            return Some(base + (digit_lanes.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| base + p)
}

/// A stretch of text around interesting digit clusters.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: usize,
    end: usize,
    /// Some cluster inside has six digits or more.
    many_digits: bool,
    /// Some cluster inside touches a capital letter.
    capital: bool,
    /// The window may hold a run of whitespace.
    space_run: bool,
}

/// Adds `[first-PAD, last+PAD]` (a run of whitespace counting as one byte),
/// widened to whitespace and char boundaries, merging overlaps. The walk back
/// stops at the previous window and the walk on starts at its end, so no byte is
/// walked twice however long the whitespace runs are.
fn push_window(
    windows: &mut Vec<Window>,
    text: &str,
    first: usize,
    last: usize,
    many_digits: bool,
    capital: bool,
) {
    let bytes = text.as_bytes();
    let widen = |mut start: usize, mut end: usize| {
        for _ in 0..64 {
            if start == 0 || is_space(bytes[start - 1]) {
                break;
            }
            start -= 1;
        }
        for _ in 0..64 {
            if end >= bytes.len() || is_space(bytes[end]) {
                break;
            }
            end += 1;
        }
        char_window(text, start, end)
    };
    // Bytes are units unless the window holds a whitespace run (the rare case).
    let (mut start, mut end) = widen(
        first.saturating_sub(WINDOW_PAD),
        (last + WINDOW_PAD).min(bytes.len()),
    );
    let space_run = has_space_run(&bytes[start..end]);
    if space_run {
        let floor = windows.last().map_or(0, |w| w.end);
        (start, end) = widen(
            walk_back(bytes, first, WINDOW_PAD, floor),
            walk_forward(bytes, last.max(floor), WINDOW_PAD),
        );
    }
    match windows.last_mut() {
        Some(prev) if start <= prev.end => {
            prev.end = prev.end.max(end);
            prev.many_digits |= many_digits;
            prev.capital |= capital;
            prev.space_run |= space_run;
        }
        _ => windows.push(Window {
            start,
            end,
            many_digits,
            capital,
            space_run,
        }),
    }
}

/// ASCII whitespace: space, tab, line feed, vertical tab, form feed, carriage return.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')
}

/// `from` moved back by `units` units (a byte, or a whole run of whitespace), not below `floor`.
fn walk_back(bytes: &[u8], from: usize, units: usize, floor: usize) -> usize {
    let mut i = from.min(bytes.len());
    for _ in 0..units {
        if i <= floor {
            return i;
        }
        i -= 1;
        if is_space(bytes[i]) {
            while i > floor && is_space(bytes[i - 1]) {
                i -= 1;
            }
        }
    }
    i
}

/// `from` moved on by `units` units (a byte, or a whole run of whitespace).
fn walk_forward(bytes: &[u8], from: usize, units: usize) -> usize {
    let mut i = from.min(bytes.len());
    for _ in 0..units {
        match bytes.get(i) {
            None => break,
            Some(&b) if is_space(b) => i += run_len(bytes, i, is_space),
            Some(_) => i += 1,
        }
    }
    i
}

/// Whether `[from, to)` spans at most `units` units (a run of whitespace counting as one).
fn within_units(bytes: &[u8], from: usize, to: usize, units: usize) -> bool {
    to.saturating_sub(from) <= units || walk_forward(bytes, from, units) >= to
}

/// Whether the bytes may hold a run of two or more whitespace characters (two
/// spaces, CR LF, blank lines): true for those, and for any two ASCII control
/// characters or spaces in a row. Eight bytes at a time.
fn has_space_run(bytes: &[u8]) -> bool {
    const HI: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // Per 7-bit lane, adding 0x5F sets bit 7 iff the lane is above 0x20; no
    // carry leaves a lane.
    const ABOVE_SPACE: u64 = 0x5F5F_5F5F_5F5F_5F5F;
    let mut prev = 0u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let blank = !(((x & LOW7) + ABOVE_SPACE) | x) & HI;
        if blank & ((blank << 8) | prev) != 0 {
            return true;
        }
        prev = blank >> 56;
    }
    let mut prev = prev != 0;
    for &b in chunks.remainder() {
        if b <= b' ' && prev {
            return true;
        }
        prev = b <= b' ';
    }
    false
}

/// A window of the text with every run of whitespace read as one space, so the
/// window regexes (which accept one whitespace character between parts) see
/// `JG\t10\n\n37  82 B` as `JG 10 37 82 B`. Borrowed when the window has no run.
struct WindowView<'t> {
    text: std::borrow::Cow<'t, str>,
    /// Offset of the window in the whole text.
    start: usize,
    /// For each byte of a collapsed `text` (and one past its end), the offset
    /// in the whole text; empty when `text` is borrowed.
    map: Vec<usize>,
}

impl<'t> WindowView<'t> {
    /// The window `[start, end)`; `space_run` false when it is known to hold
    /// no run of whitespace (then borrowed, without a look).
    fn new(text: &'t str, start: usize, end: usize, space_run: bool) -> WindowView<'t> {
        let raw = &text[start..end];
        let bytes = raw.as_bytes();
        if !space_run || !has_space_run(bytes) {
            return WindowView {
                text: std::borrow::Cow::Borrowed(raw),
                start,
                map: Vec::new(),
            };
        }
        let mut out = String::with_capacity(raw.len());
        let mut map = Vec::with_capacity(raw.len() + 1);
        let mut i = 0;
        while i < bytes.len() {
            let run = run_len(bytes, i, |b| !is_space(b));
            // Whitespace is ASCII: `i` and `i + run` are char boundaries.
            out.push_str(&raw[i..i + run]);
            map.extend(start + i..start + i + run);
            i += run;
            if i < bytes.len() {
                out.push(' ');
                map.push(start + i);
                i += run_len(bytes, i, is_space);
            }
        }
        map.push(end);
        WindowView {
            text: std::borrow::Cow::Owned(out),
            start,
            map,
        }
    }

    /// The offset in the whole text of byte `i` of the view.
    fn original(&self, i: usize) -> usize {
        if self.map.is_empty() {
            self.start + i
        } else {
            self.map.get(i).copied().unwrap_or(self.start + i)
        }
    }
}

/// `[start, end)` clamped to the text and moved outwards to char boundaries.
fn char_window(text: &str, mut start: usize, end: usize) -> (usize, usize) {
    let mut end = end.min(text.len());
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    (start.min(end), end)
}

fn is_alnum_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(u8::is_ascii_alphanumeric)
}

fn run_len(bytes: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(from..)
        .map_or(0, |rest| rest.iter().take_while(|&&b| pred(b)).count())
}

/// How many bytes right before `to` satisfy `pred`.
fn run_len_back(bytes: &[u8], to: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes.get(..to).map_or(0, |head| {
        head.iter().rev().take_while(|&&b| pred(b)).count()
    })
}

fn strip_upper(s: &str) -> String {
    s.chars()
        .filter(|&c| !matches!(c, '-' | '.' | ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r'))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Whether `word` (lower-case ASCII, words separated by one space) occurs,
/// case-insensitively, within `within` bytes before `start` or after `end`; a
/// run of whitespace counts as one byte and matches the space in `word`.
fn keyword_near(text: &str, start: usize, end: usize, word: &str, within: usize) -> bool {
    let bytes = text.as_bytes();
    let reach = within + word.len();
    let ws = walk_back(bytes, start, reach, 0);
    let we = walk_forward(bytes, end, reach);
    let mut hay: Vec<u8> = Vec::with_capacity(we - ws);
    let mut prev_space = false;
    for &b in &bytes[ws..we] {
        if is_space(b) {
            if !prev_space {
                hay.push(b' ');
            }
            prev_space = true;
        } else {
            hay.push(b.to_ascii_lowercase());
            prev_space = false;
        }
    }
    memchr::memmem::find(&hay, word.as_bytes()).is_some()
}

/// Up to 19 ASCII digits on the stack.
#[derive(Debug, Clone, Copy, Default)]
struct DigitBuf {
    buf: [u8; 19],
    len: usize,
}

impl DigitBuf {
    fn push(&mut self, digits: &[u8]) -> bool {
        let Some(dest) = self.buf.get_mut(self.len..self.len + digits.len()) else {
            return false;
        };
        dest.copy_from_slice(digits);
        self.len += digits.len();
        true
    }
    fn len(&self) -> usize {
        self.len
    }
    fn digits(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.digits()).unwrap_or_default()
    }
}

/// How cards are printed: groups of four (the last one to four digits), or the
/// 4-6-5 / 4-6-4 of American Express and Diners.
fn card_grouping(groups: &[Group]) -> bool {
    let Some((last, head)) = groups.split_last() else {
        return false;
    };
    let fours = head.iter().all(|g| g.len() == 4) && (1..=4).contains(&last.len());
    let amex =
        matches!(groups, [a, b, c] if a.len() == 4 && b.len() == 6 && matches!(c.len(), 4 | 5));
    fours || amex
}

/// Issuer prefix (4, 51–55, 2221–2720, 34/37, 6011/65, 35) and Luhn over 13–19 digits.
pub(crate) fn is_card(d: &[u8]) -> bool {
    if !(13..=19).contains(&d.len()) || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let prefix = |n: usize| -> u32 {
        d[..n]
            .iter()
            .fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'))
    };
    let issuer = d[0] == b'4'
        || (51..=55).contains(&prefix(2))
        || (2221..=2720).contains(&prefix(4))
        || matches!(prefix(2), 34 | 37 | 65 | 35)
        || prefix(4) == 6011;
    issuer && luhn(d)
}

pub(crate) fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let v = u32::from(b - b'0');
            if i % 2 == 1 {
                let dbl = v * 2;
                if dbl > 9 {
                    dbl - 9
                } else {
                    dbl
                }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Mod-11 over ten digits; all-same-digit dummies (0000000000, 1111111111) excluded.
pub(crate) fn is_nhs_number(d: &[u8]) -> bool {
    if d.len() != 10 || !d.iter().all(u8::is_ascii_digit) || d.iter().all(|&b| b == d[0]) {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &b)| u32::from(b - b'0') * (10 - i as u32))
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(d[9] - b'0')
}

/// Nine upper-case chars, separators stripped: prefix rules, six digits, suffix A–D.
pub(crate) fn is_nino(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 9 {
        return false;
    }
    let (first, second) = (b[0], b[1]);
    first.is_ascii_uppercase()
        && second.is_ascii_uppercase()
        && !b"DFIQUV".contains(&first)
        && !b"DFIOQUV".contains(&second)
        && !matches!(
            &b[..2],
            b"BG" | b"GB" | b"KN" | b"NK" | b"NT" | b"TN" | b"ZZ"
        )
        && b[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&b[8])
}

/// The validated IBAN at the start of a regex candidate and how many bytes of the
/// candidate it used: country length from the table, then mod-97 = 1.
fn iban_prefix(candidate: &str) -> Option<(String, usize)> {
    let upper = candidate.to_ascii_uppercase();
    let country = upper.get(..2)?;
    let length = IBAN_LENGTHS.iter().find(|(c, _)| *c == country)?.1;
    let mut value = String::with_capacity(length);
    let mut used = 0;
    for (i, c) in upper.char_indices() {
        if value.len() == length {
            break;
        }
        used = i + c.len_utf8();
        if c.is_ascii_alphanumeric() {
            value.push(c);
        }
    }
    // The IBAN must end at a word boundary, or where a separator starts the next group.
    let next = candidate.as_bytes().get(used).copied();
    let tail_ok = !next.is_some_and(|b| b.is_ascii_alphanumeric());
    (value.len() == length && tail_ok && is_iban(&value)).then_some((value, used))
}

pub(crate) fn is_iban(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() < 15
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// 16 chars: surname (letters, padded with 9), decade, month (+50), day, year
/// digit, initials, a digit, two check chars; the birth date must exist.
pub(crate) fn is_driving_licence(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 16 {
        return false;
    }
    let surname = &b[..5];
    let pad = surname.iter().position(|&c| c == b'9').unwrap_or(5);
    if pad == 0
        || !surname[..pad].iter().all(u8::is_ascii_uppercase)
        || !surname[pad..].iter().all(|&c| c == b'9')
    {
        return false;
    }
    if !b[5..11].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    let decade = num(5..6);
    let mut month = num(6..8);
    if month > 50 {
        month -= 50;
    }
    let day = num(8..10);
    let year = decade * 10 + num(10..11);
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let max_day = match month {
        2 if leap(1900 + year) || leap(2000 + year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= max_day
}

/// The national form (leading 0) of a UK number if its length is valid.
fn uk_phone(candidate: &str) -> Option<String> {
    let digits: String = candidate.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.strip_prefix("44") {
        Some(rest) if candidate.starts_with('+') => {
            if rest.starts_with('0') {
                rest.to_string()
            } else {
                format!("0{rest}")
            }
        }
        _ => digits,
    };
    let second = national.as_bytes().get(1).copied()?;
    let ok = match national.len() {
        11 => matches!(second, b'1' | b'2' | b'3' | b'5' | b'7' | b'8' | b'9'),
        10 => national.starts_with("01") || national.starts_with("0800"),
        _ => false,
    };
    ok.then_some(national)
}

/// A `-----BEGIN ... PRIVATE KEY-----` header; the value is the block (bounded).
fn private_key_block(text: &str, start: usize, after_begin: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let line_end = after_begin + run_len(bytes, after_begin, |b| b != b'\n').min(80);
    let header = text.get(after_begin..line_end)?;
    let label_end = header.find("PRIVATE KEY-----")?;
    if !header[..label_end]
        .bytes()
        .all(|b| b == b' ' || b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return None;
    }
    let limit = (start + 16 * 1024).min(text.len());
    let (_, limit) = char_window(text, limit, limit);
    let block = &text[start..limit];
    let end = block.find("-----END").map_or(block.len(), |e| e);
    Some(
        block[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    )
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// End of a JWT starting at `s` (`eyJ...`): three base64url parts, header JSON with `alg`.
fn jwt_end(bytes: &[u8], s: usize) -> Option<usize> {
    if s > 0 && (is_base64url(bytes[s - 1]) || bytes[s - 1] == b'.') {
        return None;
    }
    let header_len = run_len(bytes, s, is_base64url);
    let dot1 = s + header_len;
    if bytes.get(dot1) != Some(&b'.') {
        return None;
    }
    let payload_len = run_len(bytes, dot1 + 1, is_base64url);
    let dot2 = dot1 + 1 + payload_len;
    if payload_len == 0 || bytes.get(dot2) != Some(&b'.') {
        return None;
    }
    let sig_len = run_len(bytes, dot2 + 1, is_base64url);
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&bytes[s..dot1])
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&header).ok()?;
    json.get("alg")?;
    Some(dot2 + 1 + sig_len)
}

/// A protective marking at `[s, e)` in capitals as a whole word; the marking's canonical name.
fn marking_at(bytes: &[u8], s: usize, e: usize, kind: Literal) -> Option<&'static str> {
    if is_alnum_at(bytes, s.wrapping_sub(1)) {
        return None;
    }
    match kind {
        Literal::Official => {
            // Any short run of separators: `OFFICIAL-SENSITIVE`, `OFFICIAL
            // SENSITIVE`, `OFFICIAL - SENSITIVE`, `OFFICIAL-\nSENSITIVE`,
            // `OFFICIAL / SENSITIVE` (a longer run of whitespace too).
            let sep = run_len(bytes, e, is_group_separator);
            let short = (1..=MAX_SEPARATOR_RUN + 3).contains(&sep);
            if !(short || sep > 0 && bytes[e..e + sep].iter().all(|&b| is_space(b))) {
                return None;
            }
            let word = e + sep;
            (bytes.get(word..word + 9)? == b"SENSITIVE" && !is_alnum_at(bytes, word + 9))
                .then_some("OFFICIAL-SENSITIVE")
        }
        Literal::Secret => {
            if is_alnum_at(bytes, e) {
                return None;
            }
            let top = word_before(bytes, s) == Some(b"TOP".as_slice());
            Some(if top { "TOP SECRET" } else { "SECRET" })
        }
        Literal::UkEyesOnly => {
            let gap = run_len(bytes, e, is_space);
            let only = e + gap;
            let whole = word_before(bytes, s) == Some(b"UK".as_slice())
                && gap > 0
                && bytes.get(only..only + 4) == Some(b"ONLY".as_slice())
                && !is_alnum_at(bytes, only + 4);
            whole.then_some("UK EYES ONLY")
        }
        Literal::LineMarking => {
            if is_alnum_at(bytes, e) {
                return None;
            }
            let line_start = only_punctuation(bytes[..s].iter().rev());
            let line_end = only_punctuation(bytes[e..].iter());
            if !(line_start || line_end) {
                return None;
            }
            match &bytes[s..e] {
                b"RESTRICTED" => Some("RESTRICTED"),
                b"CONFIDENTIAL" => Some("CONFIDENTIAL"),
                _ => Some("PROTECT"),
            }
        }
        _ => None,
    }
}

/// The word (letters and digits) before the whitespace run that ends at `s`, if
/// there is such a run.
fn word_before(bytes: &[u8], s: usize) -> Option<&[u8]> {
    let gap = run_len_back(bytes, s, is_space);
    if gap == 0 {
        return None;
    }
    let end = s - gap;
    let len = run_len_back(bytes, end, |b| b.is_ascii_alphanumeric());
    bytes.get(end - len..end)
}

/// Whether the bytes up to the next line break (or the end of the text, within
/// 200 bytes) hold no letter or digit.
fn only_punctuation<'a>(mut bytes: impl Iterator<Item = &'a u8>) -> bool {
    for _ in 0..200 {
        match bytes.next() {
            None | Some(b'\n' | b'\r') => return true,
            Some(b) if b.is_ascii_alphanumeric() => return false,
            Some(_) => {}
        }
    }
    false
}

/// Sort codes and 8-digit accounts of one text, paired once all clusters are seen.
#[derive(Debug, Default)]
struct BankCandidates {
    /// `(start, end, dashed)`: `NN-NN-NN` or `NN NN NN`.
    sort_codes: Vec<(usize, usize, bool)>,
    accounts: Vec<(usize, usize)>,
}

impl BankCandidates {
    fn report(&self, text: &str, slot: usize, sink: &mut Sink<'_>) {
        for &(ss, se, dashed) in &self.sort_codes {
            let sort_code: String = text[ss..se]
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(char::from)
                .collect();
            // Accounts are in text order: the nearest one before, else after.
            let bytes = text.as_bytes();
            let next = self.accounts.partition_point(|&(a_s, _)| a_s < se);
            let before = self.accounts[..next]
                .iter()
                .rev()
                .find(|&&(_, a_e)| a_e <= ss)
                .filter(|&&(_, a_e)| within_units(bytes, a_e, ss, BANK_PAIR_WITHIN));
            let after = self
                .accounts
                .get(next)
                .filter(|&&(a_s, _)| within_units(bytes, se, a_s, BANK_PAIR_WITHIN));
            let paired = before.or(after);
            if let Some(&(a_s, a_e)) = paired {
                if dashed || keyword_near(text, ss, se, "sort code", BANK_PAIR_WITHIN) {
                    sink(slot, &format!("{sort_code}{}", &text[a_s..a_e]));
                    continue;
                }
            }
            let keyword = keyword_near(text, ss, se, "sort code", BANK_PAIR_WITHIN)
                || (dashed && keyword_near(text, ss, se, "account", BANK_PAIR_WITHIN));
            if keyword {
                sink(slot, &sort_code);
            }
        }
    }
}

/// The custom detectors of one profile, compiled.
#[derive(Debug)]
pub(crate) struct CustomDetectors {
    keywords: Option<AhoCorasick>,
    /// For each keyword pattern: the custom detectors that own it.
    owners: Vec<Vec<usize>>,
    detectors: Vec<CompiledCustom>,
}

#[derive(Debug)]
struct CompiledCustom {
    slot: usize,
    pattern: Option<Regex>,
    near: Vec<String>,
    within: usize,
}

impl CustomDetectors {
    /// Compiles `specs`, `slots[i]` being the output slot of `specs[i]`.
    pub(crate) fn new(specs: &[(&CustomDetectorSpec, usize)]) -> Result<CustomDetectors, DlpError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut detectors = Vec::new();
        for (index, (spec, slot)) in specs.iter().enumerate() {
            let pattern = match &spec.pattern {
                Some(p) => Some(
                    regex::RegexBuilder::new(p)
                        .size_limit(10 * 1024 * 1024)
                        .build()
                        .map_err(|e| DlpError::BadPattern {
                            detector: spec.name.clone(),
                            error: e.to_string(),
                        })?,
                ),
                None => None,
            };
            if pattern.is_none() && spec.keywords.is_empty() {
                return Err(DlpError::EmptyDetector(spec.name.clone()));
            }
            for keyword in &spec.keywords {
                let normal = normalize(keyword.trim()).into_owned();
                if normal.is_empty() {
                    return Err(DlpError::EmptyDetector(spec.name.clone()));
                }
                let variants = [normal.to_lowercase(), normal.to_uppercase(), normal];
                for v in variants {
                    match patterns.iter().position(|p| p.eq_ignore_ascii_case(&v)) {
                        Some(existing) => {
                            if !owners[existing].contains(&index) {
                                owners[existing].push(index);
                            }
                        }
                        None => {
                            patterns.push(v);
                            owners.push(vec![index]);
                        }
                    }
                }
            }
            detectors.push(CompiledCustom {
                slot: *slot,
                pattern,
                near: spec
                    .near
                    .iter()
                    .map(|w| normalize(w.trim()).to_lowercase())
                    .filter(|w| !w.is_empty())
                    .collect(),
                within: spec.within.unwrap_or(DEFAULT_NEAR_WITHIN),
            });
        }
        let keywords = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::DFA))
                    .prefilter(false)
                    .build(&patterns)
                    .or_else(|_| {
                        AhoCorasickBuilder::new()
                            .ascii_case_insensitive(true)
                            .match_kind(MatchKind::LeftmostLongest)
                            .build(&patterns)
                    })
                    .map_err(|e| DlpError::Keywords(e.to_string()))?,
            )
        };
        Ok(CustomDetectors {
            keywords,
            owners,
            detectors,
        })
    }

    pub(crate) fn detect(&self, text: &str, sink: &mut Sink<'_>) {
        if let Some(ac) = &self.keywords {
            for m in ac.find_iter(text) {
                let (s, e) = (m.start(), m.end());
                if !is_word_edge(text, s, e) {
                    continue;
                }
                let Some(owners) = self.owners.get(m.pattern().as_usize()) else {
                    continue;
                };
                for &owner in owners {
                    if let Some(d) = self.detectors.get(owner) {
                        if d.near_ok(text, s, e) {
                            sink(d.slot, &text[s..e].to_lowercase());
                        }
                    }
                }
            }
        }
        for d in &self.detectors {
            if let Some(re) = &d.pattern {
                for m in re.find_iter(text) {
                    if !m.is_empty() && d.near_ok(text, m.start(), m.end()) {
                        sink(d.slot, m.as_str());
                    }
                }
            }
        }
    }
}

impl CompiledCustom {
    fn near_ok(&self, text: &str, s: usize, e: usize) -> bool {
        if self.near.is_empty() {
            return true;
        }
        let (ws, we) = char_window(text, s.saturating_sub(self.within), e + self.within);
        let hay = text[ws..we].to_lowercase();
        self.near.iter().any(|word| {
            hay.match_indices(word.as_str())
                .any(|(i, w)| is_word_edge(&hay, i, i + w.len()))
        })
    }
}

/// No letter or digit right before `s` nor right after `e`.
fn is_word_edge(text: &str, s: usize, e: usize) -> bool {
    let before = text.get(..s).and_then(|t| t.chars().next_back());
    let after = text.get(e..).and_then(|t| t.chars().next());
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs every built-in over `text`, returning the distinct `(detector id,
    /// value)` pairs in the order found (the scanner's tally counts distinct
    /// values; the separator view may report a value again).
    fn run(text: &str) -> Vec<(&'static str, String)> {
        let mut slots = [None; 12];
        for (i, s) in slots.iter_mut().enumerate() {
            *s = Some(i);
        }
        let det = BuiltinDetectors::new(slots).unwrap();
        let mut out = Vec::new();
        det.detect(text, &mut |slot, value| {
            let pair = (BUILTIN_DETECTORS[slot], value.to_string());
            if !out.contains(&pair) {
                out.push(pair);
            }
        });
        out
    }

    fn found(text: &str, id: &str) -> Vec<String> {
        run(text)
            .into_iter()
            .filter(|(d, _)| *d == id)
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn payment_cards() {
        assert_eq!(
            found("card 4111 1111 1111 1111 exp", "payment-card"),
            vec!["4111111111111111"]
        );
        assert_eq!(
            found("4111-1111-1111-1111", "payment-card"),
            vec!["4111111111111111"]
        );
        assert_eq!(
            found("x 5555555555554444.", "payment-card"),
            vec!["5555555555554444"]
        );
        assert_eq!(
            found("amex 3782 822463 10005", "payment-card"),
            vec!["378282246310005"]
        );
        assert_eq!(
            found("2221 0000 0000 0009", "payment-card"),
            vec!["2221000000000009"]
        );
        assert_eq!(
            found("6011 1111 1111 1117", "payment-card"),
            vec!["6011111111111117"]
        );
        // Leading other numbers do not hide the card.
        assert_eq!(
            found("order 2024 4111 1111 1111 1111", "payment-card"),
            vec!["4111111111111111"]
        );
        // Bad Luhn, wrong issuer prefix, an order number, too long.
        assert!(found("4111 1111 1111 1112", "payment-card").is_empty());
        assert!(found("9111 1111 1111 1111 (order)", "payment-card").is_empty());
        assert!(found("Order number 1234 5678 9012 3456 shipped", "payment-card").is_empty());
        assert!(found("41111111111111111111111", "payment-card").is_empty());
    }

    #[test]
    fn dotted_cards() {
        // DLP.md: dots inside a candidate are stripped like spaces and dashes.
        assert_eq!(
            found("card 4111.1111.1111.1111 exp", "payment-card"),
            vec!["4111111111111111"]
        );
        assert_eq!(
            found("5555.5555.5555.4444.", "payment-card"),
            vec!["5555555555554444"]
        );
        // A card followed by a decimal part, or after a version number, is still found.
        assert_eq!(
            found("4111111111111111.00", "payment-card"),
            vec!["4111111111111111"]
        );
        assert_eq!(
            found("v1.4111.1111.1111.1111", "payment-card"),
            vec!["4111111111111111"]
        );
        // Dotted look-alikes: bad Luhn, groups not of four (prices, versions,
        // addresses), separators mixed with dots.
        assert!(found("4111.1111.1111.1112", "payment-card").is_empty());
        assert!(found("1234.5678.9012.3456", "payment-card").is_empty());
        assert!(found("41.11.1111.1111.1111", "payment-card").is_empty());
        assert!(found("4111111.111111111", "payment-card").is_empty());
        assert!(found("£4111.11 and 1111.1111 and 111.1", "payment-card").is_empty());
        // DLP v2: separators of every kind are read alike between groups
        // printed as a card's (the separator view), so mixed ones are found.
        assert_eq!(
            found("4111 1111.1111 1111", "payment-card"),
            vec!["4111111111111111"]
        );
        assert!(found("10.4.111.1111.1111.1111", "payment-card").is_empty());
    }

    /// The separators an evader can type between the groups of a number.
    const ODD_SPACES: &[&str] = &[
        "  ", "\t", "\n", "\r\n", " \t \n ", "\x0B", "\x0C", "\n\n\n",
    ];

    #[test]
    fn any_whitespace_run_separates_groups() {
        let long = " ".repeat(300);
        let cases = [
            (
                "payment-card",
                "card 4111 1111 1111 1111 exp",
                "4111111111111111",
            ),
            ("payment-card", "amex 3782 822463 10005", "378282246310005"),
            ("uk-nino", "NI: JG 10 37 82 B", "JG103782B"),
            ("nhs-number", "NHS 943 476 5919.", "9434765919"),
            (
                "iban",
                "IBAN GB82 WEST 1234 5698 7654 32 thanks",
                "GB82WEST12345698765432",
            ),
            (
                "uk-bank-account",
                "sort code 12-34-56 account 12345678",
                "12345612345678",
            ),
            ("uk-bank-account", "Sort Code: 20 00 00", "200000"),
            (
                "uk-driving-licence",
                "LI999 802120 L99AB",
                "LI999802120L99AB",
            ),
            ("uk-passport", "passport no 123456789", "123456789"),
            ("uk-passport", "Passport: A12345678 thanks", "A12345678"),
        ];
        for (id, text, value) in cases {
            for sep in ODD_SPACES.iter().copied().chain([long.as_str()]) {
                let evasive = text.replace(' ', sep);
                assert_eq!(found(&evasive, id), vec![value], "{id} {evasive:?}");
            }
        }
        // A form split that keeps the space in one half: the fields joined by a
        // space read with two spaces.
        assert_eq!(
            found("4111 1111  1111 1111", "payment-card"),
            vec!["4111111111111111"]
        );
        assert_eq!(found("943 476  5919", "nhs-number"), vec!["9434765919"]);
        // Across odd whitespace a card must be grouped like a card (a pasted
        // table of numbers is not); single spaces keep any grouping.
        assert_eq!(
            found("411 1111 1111 11111", "payment-card"),
            vec!["4111111111111111"]
        );
        assert!(found("411\t1111\t1111\t11111", "payment-card").is_empty());
        assert!(found("411\n1111\n1111\n11111", "payment-card").is_empty());
        assert!(found("Totals\n4111\n111\n111111\n111", "payment-card").is_empty());
        assert_eq!(
            found("3782\t822463\t10005", "payment-card"),
            vec!["378282246310005"]
        );
        assert_eq!(
            found("4222\n2222\n2222\n2", "payment-card"),
            vec!["4222222222222"]
        );
        assert_eq!(found("JG 10  37 82 B", "uk-nino"), vec!["JG103782B"]);
        assert_eq!(
            found("GB82 WEST 1234  5698 7654 32", "iban"),
            vec!["GB82WEST12345698765432"]
        );
    }

    #[test]
    fn whitespace_runs_keep_look_alikes_out() {
        for sep in ODD_SPACES {
            let t = |s: &str| s.replace(' ', sep);
            assert!(found(&t("QQ 12 34 56 C"), "uk-nino").is_empty(), "{sep:?}");
            assert!(found(&t("JG 10 37 82 E"), "uk-nino").is_empty(), "{sep:?}");
            assert!(found(&t("4111 1111 1111 1112"), "payment-card").is_empty());
            assert!(found(&t("Order number 1234 5678 9012 3456"), "payment-card").is_empty());
            assert!(
                found(&t("943 476 5918"), "nhs-number").is_empty(),
                "{sep:?}"
            );
            assert!(found(&t("call 0300 123 4567"), "nhs-number").is_empty());
            assert!(found(&t("GB83 WEST 1234 5698 7654 32"), "iban").is_empty());
            assert!(found(&t("on 12-03-24 at the hall"), "uk-bank-account").is_empty());
            assert!(found(&t("ticket 123456789"), "uk-passport").is_empty());
        }
        // Far is still far when the distance is made of words.
        let far = format!("12-34-56 {} 12345678", "word ".repeat(20));
        assert!(found(&far.replace(' ', "\n"), "uk-bank-account").is_empty());
        let far = format!("passport {} 123456789", "x ".repeat(75));
        assert!(found(&far.replace(' ', "\t\t"), "uk-passport").is_empty());
    }

    #[test]
    fn long_whitespace_runs_are_one_separator_for_context() {
        let gap = "\n".repeat(500);
        // The window around the digits reaches the letters across the run.
        assert_eq!(
            found(&format!("JG{gap}10{gap}37{gap}82{gap}B"), "uk-nino"),
            vec!["JG103782B"]
        );
        assert_eq!(
            found(
                &format!("GB82{gap}WEST{gap}1234{gap}5698{gap}7654{gap}32"),
                "iban"
            ),
            vec!["GB82WEST12345698765432"]
        );
        // Keywords and pairing distances count a run as one character.
        assert_eq!(
            found(&format!("passport{gap}123456789"), "uk-passport"),
            vec!["123456789"]
        );
        assert_eq!(
            found(&format!("passport{gap}A12345678"), "uk-passport"),
            vec!["A12345678"]
        );
        assert_eq!(
            found(&format!("12-34-56{gap}87654321"), "uk-bank-account"),
            vec!["12345687654321"]
        );
        assert_eq!(
            found(&format!("87654321{gap}12-34-56"), "uk-bank-account"),
            vec!["12345687654321"]
        );
        assert_eq!(
            found(&format!("sort{gap}code{gap}20 00 00"), "uk-bank-account"),
            vec!["200000"]
        );
    }

    #[test]
    fn whitespace_helpers() {
        let b = b"ab  \t cd\ne";
        assert_eq!(walk_back(b, 7, 1, 0), 6);
        assert_eq!(walk_back(b, 7, 2, 0), 2);
        assert_eq!(walk_back(b, 7, 3, 0), 1);
        assert_eq!(walk_back(b, 7, 3, 4), 4);
        assert_eq!(walk_back(b, 7, 100, 0), 0);
        assert_eq!(walk_forward(b, 1, 2), 6);
        assert_eq!(walk_forward(b, 0, 100), b.len());
        assert!(within_units(b, 2, 6, 1));
        assert!(!within_units(b, 1, 7, 2));
        assert!(within_units(b, 1, 7, 3));
        assert!(!has_space_run(b"a b c"));
        assert!(!has_space_run(b"a\nb\tc d"));
        assert!(has_space_run(b"a  b"));
        assert!(has_space_run(b"a\r\nb"));
        assert!(has_space_run(b"a \tb"));
        // Every position and both sides of a word boundary, against a byte loop.
        let exact = |b: &[u8]| b.windows(2).any(|w| w[0] <= b' ' && w[1] <= b' ');
        let base = "ab cd ef gh ij kl mn op qr st uv wx y! z~ \u{e9}\u{e9} 0123 4567 89";
        let base = base.as_bytes();
        for i in 0..base.len() {
            for odd in [
                b"  ".as_slice(),
                b"\t",
                b"\n\n",
                b"\r\n",
                b" \x0B",
                b"\x0C\x0C",
                b"\x00",
                b" ",
            ] {
                let mut v = base.to_vec();
                v.splice(i..i, odd.iter().copied());
                assert_eq!(
                    has_space_run(&v),
                    exact(&v),
                    "{:?}",
                    String::from_utf8_lossy(&v)
                );
            }
        }
        assert_eq!(word_before(b"TOP \n SECRET", 6), Some(b"TOP".as_slice()));
        assert_eq!(word_before(b"TOPSECRET", 3), None);
        let text = "x passport\t\tA12345678  end";
        let view = WindowView::new(text, 2, text.len(), true);
        assert_eq!(view.text, "passport A12345678 end");
        let at = view.text.find('A').unwrap();
        assert_eq!(view.original(at), text.find('A').unwrap());
        assert_eq!(view.original(view.text.len()), text.len());
        let plain = WindowView::new(text, 0, 10, true);
        assert!(matches!(
            plain.text,
            std::borrow::Cow::Borrowed("x passport")
        ));
        assert_eq!(plain.original(3), 3);
    }

    #[test]
    fn luhn_and_prefix_helpers() {
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
        assert!(is_card(b"4012888888881881"));
        assert!(!is_card(b"1234567812345670"));
    }

    #[test]
    fn nino() {
        assert_eq!(found("NI: JG 10 37 82 B", "uk-nino"), vec!["JG103782B"]);
        assert_eq!(found("jg103782b", "uk-nino"), vec!["JG103782B"]);
        assert_eq!(found("AB-12-34-56-C", "uk-nino"), vec!["AB123456C"]);
        assert!(found("QQ 12 34 56 C", "uk-nino").is_empty());
        assert!(found("DA123456A", "uk-nino").is_empty());
        assert!(found("AO123456A", "uk-nino").is_empty());
        for p in ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"] {
            assert!(found(&format!("{p}123456A"), "uk-nino").is_empty(), "{p}");
        }
        assert!(found("JG103782E", "uk-nino").is_empty());
        assert!(found("JG1037821B", "uk-nino").is_empty());
    }

    #[test]
    fn nhs_numbers() {
        assert_eq!(found("NHS 943 476 5919.", "nhs-number"), vec!["9434765919"]);
        assert_eq!(found("nhs no 9434765919", "nhs-number"), vec!["9434765919"]);
        assert_eq!(found("401-023-2137", "nhs-number"), vec!["4010232137"]);
        assert!(found("943 476 5918", "nhs-number").is_empty());
        assert!(found("0000000000 1111111111", "nhs-number").is_empty());
        // A check value of 10 is never valid.
        assert!(!is_nhs_number(b"1000000010"));
        assert!(found("call 0300 123 4567", "nhs-number").is_empty());
    }

    #[test]
    fn passports() {
        assert_eq!(
            found("passport no 123456789", "uk-passport"),
            vec!["123456789"]
        );
        assert_eq!(
            found("Passport: A12345678 thanks", "uk-passport"),
            vec!["A12345678"]
        );
        assert!(found("ticket 123456789", "uk-passport").is_empty());
        let far = format!("passport {} 123456789", "x".repeat(150));
        assert!(found(&far, "uk-passport").is_empty());
    }

    #[test]
    fn driving_licences() {
        assert_eq!(
            found("licence MORGA657054SM9IJ ok", "uk-driving-licence"),
            vec!["MORGA657054SM9IJ"]
        );
        assert_eq!(
            found("LI999 802120 L99AB", "uk-driving-licence"),
            vec!["LI999802120L99AB"]
        );
        // Female month (+50) and a leap day.
        assert!(is_driving_licence("SMITH562290JJ9AB"));
        assert!(is_driving_licence("SMITH502292JJ9AB"));
        assert!(!is_driving_licence("SMITH502293JJ9AB"));
        // 31 April and month 13 do not exist.
        assert!(found("MORGA604314SM9IJ", "uk-driving-licence").is_empty());
        assert!(found("MORGA613014SM9IJ", "uk-driving-licence").is_empty());
        assert!(!is_driving_licence("MO9GA657054SM9IJ"));
    }

    #[test]
    fn bank_accounts() {
        assert_eq!(
            found("sort code 12-34-56 account 12345678", "uk-bank-account"),
            vec!["12345612345678"]
        );
        assert_eq!(
            found("12-34-56 / 87654321", "uk-bank-account"),
            vec!["12345687654321"]
        );
        assert_eq!(
            found("Sort Code: 20 00 00", "uk-bank-account"),
            vec!["200000"]
        );
        // A date-like pair alone, or an 8-digit number alone, is not a bank account.
        assert!(found("on 12-03-24 at the hall", "uk-bank-account").is_empty());
        assert!(found("reference 12345678", "uk-bank-account").is_empty());
        let far = format!("12-34-56 {} 12345678", "word ".repeat(20));
        assert!(found(&far, "uk-bank-account").is_empty());
    }

    #[test]
    fn ibans() {
        assert_eq!(
            found("IBAN GB82 WEST 1234 5698 7654 32 thanks", "iban"),
            vec!["GB82WEST12345698765432"]
        );
        assert_eq!(
            found("de89370400440532013000", "iban"),
            vec!["DE89370400440532013000"]
        );
        assert_eq!(found("NO9386011117947", "iban"), vec!["NO9386011117947"]);
        assert!(found("GB83 WEST 1234 5698 7654 32", "iban").is_empty());
        assert!(found("GB82 WEST 1234 5698 7654 3", "iban").is_empty());
        assert!(found("ZZ82 WEST 1234 5698 7654 32", "iban").is_empty());
        assert!(is_iban("FR1420041010050500013M02606"));
    }

    #[test]
    fn protective_markings() {
        assert_eq!(
            found("OFFICIAL-SENSITIVE: draft", "protective-marking"),
            vec!["OFFICIAL-SENSITIVE"]
        );
        assert_eq!(
            found("marked OFFICIAL SENSITIVE here", "protective-marking"),
            vec!["OFFICIAL-SENSITIVE"]
        );
        assert_eq!(
            found("this is TOP SECRET stuff", "protective-marking"),
            vec!["TOP SECRET"]
        );
        assert_eq!(found("SECRET", "protective-marking"), vec!["SECRET"]);
        assert_eq!(
            found("UK EYES ONLY", "protective-marking"),
            vec!["UK EYES ONLY"]
        );
        assert_eq!(
            found("RESTRICTED\nminutes", "protective-marking"),
            vec!["RESTRICTED"]
        );
        assert_eq!(
            found("notes - CONFIDENTIAL", "protective-marking"),
            vec!["CONFIDENTIAL"]
        );
        assert_eq!(
            found("[PROTECT] budget", "protective-marking"),
            vec!["PROTECT"]
        );
        // Any whitespace between the words of a marking.
        for sep in ["  ", "\t", "\n", "\r\n", " \t "] {
            let t = |s: &str| s.replace(' ', sep);
            assert_eq!(
                found(&t("marked OFFICIAL SENSITIVE here"), "protective-marking"),
                vec!["OFFICIAL-SENSITIVE"],
                "{sep:?}"
            );
            assert_eq!(
                found(&t("this is TOP SECRET stuff"), "protective-marking"),
                vec!["TOP SECRET"]
            );
            assert_eq!(
                found(&t("for UK EYES ONLY ok"), "protective-marking"),
                vec!["UK EYES ONLY"]
            );
        }
        for benign in [
            "Join us for the official opening of the library",
            "Official figures show a rise",
            "Grandma's secret recipe wins",
            "OFFICIAL opening today",
            "Access is RESTRICTED to the car park during works",
            "We PROTECT our parks",
            "SECRETARY of the club",
            "The Secret Garden matinee",
            "EYES ONLY",
            "UK EYES",
            "the EYES of the UK ONLY",
            "UK EYESORE ONLY",
            "UKA EYES ONLY",
            "UK EYES ONLYX",
            "OFFICIAL  sensitive",
            "OFFICIAL\n\nSENSITIVEX",
        ] {
            assert!(found(benign, "protective-marking").is_empty(), "{benign}");
        }
    }

    #[test]
    fn secrets() {
        assert_eq!(
            found("key AKIAIOSFODNN7EXAMPLE here", "secrets"),
            vec!["AKIAIOSFODNN7EXAMPLE"]
        );
        assert_eq!(found("ASIAY34FZKBOKMUTVV7A", "secrets").len(), 1);
        assert!(found("AKIAIOSFODNN7EXAMPL", "secrets").is_empty());
        assert!(found("XAKIAIOSFODNN7EXAMPLE", "secrets").is_empty());
        let gh = format!("token ghp_{}", "a1B2c3D4e5".repeat(4));
        assert_eq!(found(&gh, "secrets").len(), 1);
        assert!(found("ghp_short", "secrets").is_empty());
        let pat = format!("github_pat_11ABCDEFG0{}", "x_Y1".repeat(15));
        assert_eq!(found(&pat, "secrets").len(), 1);
        assert_eq!(found("xoxb-123456789012-abcdefghijkl", "secrets").len(), 1);
        assert!(found("xoxz-123456789012-abcdefghijkl", "secrets").is_empty());
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        assert_eq!(found(pem, "secrets").len(), 1);
        assert_eq!(
            found("-----BEGIN PRIVATE KEY-----\nMIIE", "secrets").len(),
            1
        );
        assert!(found("-----BEGIN CERTIFICATE-----\nMIIE", "secrets").is_empty());
        // {"alg":"HS256","typ":"JWT"} . {"sub":"1"} . sig
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(found(&format!("Bearer {jwt}"), "secrets").len(), 1);
        // Header without alg: {"typ":"JWT"}
        assert!(found("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln", "secrets").is_empty());
    }

    #[test]
    fn emails_phones_postcodes() {
        assert_eq!(
            found("mail Jo.Bloggs+x@Example.gov.uk now", "email-address"),
            vec!["jo.bloggs+x@example.gov.uk"]
        );
        assert!(found("follow @council and @ home", "email-address").is_empty());
        assert_eq!(found("call 020 7946 0000", "uk-phone"), vec!["02079460000"]);
        assert_eq!(
            found("+44 (0)20 7946 0000", "uk-phone"),
            vec!["02079460000"]
        );
        assert_eq!(found("+447700900123", "uk-phone"), vec!["07700900123"]);
        assert_eq!(found("(01632) 960001", "uk-phone"), vec!["01632960001"]);
        assert!(found("0000 123 4567", "uk-phone").is_empty());
        assert_eq!(found("at SW1A 1AA today", "uk-postcode"), vec!["SW1A1AA"]);
        assert_eq!(found("B1 1AA", "uk-postcode"), vec!["B11AA"]);
        assert!(found("the A38 and M5", "uk-postcode").is_empty());
        assert!(found("QA1 1AA", "uk-postcode").is_empty());
    }

    #[test]
    fn digit_search_finds_every_digit() {
        let text = b"abcdefghijklmnopqrstuvwxyz:/9";
        assert_eq!(find_digit(text), Some(28));
        for i in 0..40 {
            let mut v = vec![b'x'; 40];
            v[i] = b'0' + (i % 10) as u8;
            assert_eq!(find_digit(&v), Some(i));
        }
        assert_eq!(find_digit("é£€/:;".as_bytes()), None);
    }

    #[test]
    fn custom_keywords_patterns_near() {
        let specs = [
            CustomDetectorSpec {
                name: "codenames".into(),
                keywords: vec!["Nightjar".into(), "Operation Kestrel".into()],
                ..Default::default()
            },
            CustomDetectorSpec {
                name: "staff-number".into(),
                pattern: Some(r"\bEMP-[0-9]{6}\b".into()),
                near: vec!["staff".into(), "employee".into()],
                within: Some(30),
                ..Default::default()
            },
        ];
        let det = CustomDetectors::new(&[(&specs[0], 0), (&specs[1], 1)]).unwrap();
        let run = |t: &str| {
            let mut out = Vec::new();
            det.detect(t, &mut |slot, v| out.push((slot, v.to_string())));
            out
        };
        assert_eq!(
            run("the NIGHTJAR plan and operation kestrel"),
            vec![(0, "nightjar".into()), (0, "operation kestrel".into())]
        );
        assert!(run("nightjars and xnightjar").is_empty());
        assert_eq!(run("staff id EMP-123456"), vec![(1, "EMP-123456".into())]);
        assert!(run("id EMP-123456").is_empty());
        assert!(run(&format!("staff {} EMP-123456", "z".repeat(40))).is_empty());
        assert!(run("staffroom EMP-123456").is_empty());
    }

    #[test]
    fn custom_errors() {
        let empty = CustomDetectorSpec {
            name: "e".into(),
            ..Default::default()
        };
        assert_eq!(
            CustomDetectors::new(&[(&empty, 0)]).unwrap_err(),
            DlpError::EmptyDetector("e".into())
        );
        let bad = CustomDetectorSpec {
            name: "b".into(),
            pattern: Some("(".into()),
            ..Default::default()
        };
        assert!(matches!(
            CustomDetectors::new(&[(&bad, 0)]),
            Err(DlpError::BadPattern { .. })
        ));
    }
}
