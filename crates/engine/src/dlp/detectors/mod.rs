//! Detectors: the registry of the built-ins and the staged pass that runs them.
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
//! run read as one space when it has any other whitespace. A cluster next to
//! another separator (`.`, `/`, `\`, `_`, `+`, `,`, `|`, a spaced dash), dotted
//! in three groups or more, or made of one-digit groups also opens a window
//! of the separator view ([`text::rewrite_separators`]): every short separator run
//! there is one space and one-character groups are glued, and the digit pass
//! runs again over it (cards then need a card's grouping). Secrets and
//! protective markings come from one case-sensitive Aho-Corasick pass over their
//! literal prefixes, e-mail addresses from `memchr('@')`, custom keywords from
//! one ASCII-case-insensitive whole-word trie tried only at word starts
//! (`keywords`).
//!
//! The families live in submodules: `numbers` (cards, NI, NHS, bank details,
//! IBAN), `documents` (passport, driving licence), `markings`, `secrets`,
//! `contact` (phone; e-mail is matched here), `custom` (the policy's own
//! detectors) and `keywords` (their keyword search), `text` (byte-level helpers, windows and the separator view).
//!
//! Limits: text must already be normalised (ASCII digits, no invisibles, ASCII
//! whitespace); look-alike letters and combining marks are undone by the
//! caller's fold view (`normalize::fold_view`). Distances (the window pad,
//! "passport" and "sort code" nearby, a sort code and its account) count a run
//! of whitespace as one character, so padding with blanks or blank lines does
//! not push context away. Postcodes match in capitals only. Card numbers are
//! 13–19 digits in one run or groups separated by spaces or dashes (any
//! grouping), by dots, other whitespace or other separators only when grouped as
//! cards are printed (fours, or 4-6-5); a longer run of digits is not a card.
//! NHS numbers and sort codes are dotted only in the separator view. Markings
//! accept any short separator run between their words (`TOP\tSECRET`,
//! `OFFICIAL - SENSITIVE`, `OFFICIAL-\nSENSITIVE`); custom keywords match their
//! own spacing only. The canonical value is the candidate with separators
//! stripped (and upper-cased where the detector is case-insensitive); it never
//! leaves the scan. Callers: `scan.rs` (`Scanner`).

mod contact;
mod custom;
mod documents;
mod keywords;
mod markings;
mod numbers;
mod quiet;
mod secrets;
mod text;

use aho_corasick::{AhoCorasick, Input, MatchKind};
use regex::Regex;

use super::normalize::normalize;
use super::DlpError;

use contact::*;
pub(crate) use custom::CustomDetectors;
pub use custom::{CustomDetectorSpec, DEFAULT_NEAR_WITHIN};
use documents::*;
use markings::*;
use numbers::*;
pub(crate) use quiet::literal_interior;
use quiet::QuietTracker;
use secrets::*;
use text::*;

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

/// The buffers of the digit-cluster pass, kept by the caller across the texts
/// of one scan so that a pass allocates only when a buffer must grow. Holds
/// offsets and the separator view's text, only for the duration of one scan.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    candidates: Vec<(usize, usize)>,
    groups: Vec<Group>,
    seps: Vec<u8>,
    odd: Vec<bool>,
    windows: Vec<Window>,
    bank: BankCandidates,
    /// The separator view being read.
    view: String,
    /// Whether a pass over a whole text finds its quiet interior (set by the
    /// scanner while it reads fields that a joined view will hold).
    pub(crate) track_quiet: bool,
    /// The quiet interior (`detectors/quiet.rs`) of the last text the digit
    /// pass read whole with `track_quiet`, as `[first quiet point, last quiet point)`.
    pub(crate) quiet: Option<(usize, usize)>,
    /// Where the literal pass over the last text it read found the first
    /// private key header (`-----BEGIN`), if it did.
    pub(crate) key_header: Option<usize>,
}

/// The enabled built-ins of one profile, compiled.
#[derive(Debug)]
pub(crate) struct BuiltinDetectors {
    /// Output slot of each built-in, `None` when the profile does not enable it.
    slots: [Option<usize>; 12],
    /// Some enabled built-in starts from digits (the digit-cluster pass runs).
    uses_digits: bool,
    /// Some enabled built-in reads the windows (NI, IBAN, licence, postcode,
    /// phone, letter-prefixed passport).
    uses_windows: bool,
    literals: Option<(AhoCorasick, Vec<Literal>)>,
    regexes: WindowRegexes,
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
            uses_digits: (0..slots.len()).any(|i| slots[i].is_some() && uses_digits(i)),
            uses_windows: [
                Builtin::UkNino,
                Builtin::Iban,
                Builtin::UkDrivingLicence,
                Builtin::UkPostcode,
                Builtin::UkPhone,
                Builtin::UkPassport,
            ]
            .into_iter()
            .any(on),
            literals,
            regexes: WindowRegexes::compile()?,
        })
    }

    fn slot(&self, b: Builtin) -> Option<usize> {
        self.slots[b as usize]
    }

    /// Runs every enabled built-in over one normalised text.
    #[cfg(test)]
    pub(crate) fn detect(&self, text: &str, sink: &mut Sink<'_>) {
        self.detect_skipping(text, &[], &[], &mut Scratch::default(), sink);
    }

    /// As `detect`, with the buffers of the digit pass borrowed from `scratch`
    /// (kept by the caller across the texts of one scan), the digit pass
    /// jumping over each `skip` range and the literal and e-mail detectors
    /// over each `literal_skip` range: in a space-joined view of texts already
    /// read alone, the quiet interiors of those texts and their literal
    /// interiors, placed in the view, in order (see `detectors/quiet.rs`);
    /// none for a text read whole.
    pub(crate) fn detect_skipping(
        &self,
        text: &str,
        skip: &[(usize, usize)],
        literal_skip: &[(usize, usize)],
        scratch: &mut Scratch,
        sink: &mut Sink<'_>,
    ) {
        if let Some((ac, kinds)) = &self.literals {
            scratch.key_header = self.detect_literals(text, literal_skip, ac, kinds, sink);
        }
        if let Some(slot) = self.slot(Builtin::EmailAddress) {
            self.detect_email(text, literal_skip, slot, sink);
        }
        if self.uses_digits {
            self.detect_numeric(text, false, skip, scratch, sink);
        }
    }

    /// Only the literal detectors (secrets, markings): for fields concatenated
    /// without a separator, where a token split mid-way is whole again.
    /// The literal pass skips each `skip` range (the fields' literal
    /// interiors, placed in the concatenation).
    pub(crate) fn detect_literals_only(
        &self,
        text: &str,
        skip: &[(usize, usize)],
        sink: &mut Sink<'_>,
    ) {
        if let Some((ac, kinds)) = &self.literals {
            self.detect_literals(text, skip, ac, kinds, sink);
        }
    }

    /// Only the detectors that start from digits (cards, NI and NHS numbers,
    /// passports, licences, bank details, IBANs, phones, postcodes): for fields
    /// glued without a separator, where a digit group split mid-way is whole again.
    pub(crate) fn detect_numbers_only(
        &self,
        text: &str,
        scratch: &mut Scratch,
        sink: &mut Sink<'_>,
    ) {
        if self.uses_digits {
            self.detect_numeric(text, false, &[], scratch, sink);
        }
    }

    /// The literal pass: each match of the shared automaton outside the `skip`
    /// ranges, checked by its kind. Each range starts at a whitespace and ends
    /// after one, and no literal holds whitespace, so no match crosses an end
    /// of a range and the automaton, restarted after one, finds the matches
    /// a pass over the whole text would. Returns where the first private key
    /// header matched (see `quiet::literal_interior`).
    fn detect_literals(
        &self,
        text: &str,
        skip: &[(usize, usize)],
        ac: &AhoCorasick,
        kinds: &[Literal],
        sink: &mut Sink<'_>,
    ) -> Option<usize> {
        let mut key_header = None;
        if skip.is_empty() {
            for m in ac.find_iter(text) {
                self.check_literal(text, m, kinds, &mut key_header, sink);
            }
            return key_header;
        }
        let mut from = 0;
        for &(to, next) in skip.iter().chain([(text.len(), text.len())].iter()) {
            if from < to {
                for m in ac.find_iter(Input::new(text).range(from..to)) {
                    self.check_literal(text, m, kinds, &mut key_header, sink);
                }
            }
            from = next;
        }
        key_header
    }

    /// One match of the literal pass, checked by its kind.
    #[inline]
    fn check_literal(
        &self,
        text: &str,
        m: aho_corasick::Match,
        kinds: &[Literal],
        key_header: &mut Option<usize>,
        sink: &mut Sink<'_>,
    ) {
        let bytes = text.as_bytes();
        let secrets = self.slot(Builtin::Secrets);
        let marking = self.slot(Builtin::ProtectiveMarking);
        let (s, e) = (m.start(), m.end());
        let Some(kind) = kinds.get(m.pattern().as_usize()).copied() else {
            return;
        };
        match kind {
            Literal::Aws => {
                if let (Some(slot), true) = (secrets, !is_alnum_at(bytes, s.wrapping_sub(1))) {
                    let tail = run_len(bytes, e, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
                    if tail == 16 && !is_alnum_at(bytes, e + 16) {
                        sink(slot, &text[s..e + 16]);
                    }
                }
            }
            Literal::GitHub | Literal::GitHubPat | Literal::Slack => {
                let Some(slot) = secrets else { return };
                if is_alnum_at(bytes, s.wrapping_sub(1)) {
                    return;
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
                key_header.get_or_insert(s);
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
            Literal::Official | Literal::Secret | Literal::UkEyesOnly | Literal::LineMarking => {
                if let Some(slot) = marking {
                    if let Some(value) = marking_at(bytes, s, e, kind) {
                        sink(slot, value);
                    }
                }
            }
        }
    }

    /// Each `@` outside the `skip` ranges (as for [`Self::detect_literals`]:
    /// an address holds no whitespace), read by the e-mail pattern in a window
    /// around it.
    fn detect_email(&self, text: &str, skip: &[(usize, usize)], slot: usize, sink: &mut Sink<'_>) {
        let bytes = text.as_bytes();
        let mut done_until = 0;
        let mut from = 0;
        for &(to, next) in skip.iter().chain([(bytes.len(), bytes.len())].iter()) {
            if from < to {
                for at in memchr::memchr_iter(b'@', &bytes[from..to]) {
                    self.email_at(text, from + at, slot, &mut done_until, sink);
                }
            }
            from = next;
        }
    }

    /// The address around the `@` at `at`, unless an address found before
    /// (ending at `done_until`) holds it.
    #[inline]
    fn email_at(
        &self,
        text: &str,
        at: usize,
        slot: usize,
        done_until: &mut usize,
        sink: &mut Sink<'_>,
    ) {
        let bytes = text.as_bytes();
        if at < *done_until || at == 0 {
            return;
        }
        let before = bytes[at - 1];
        let after = bytes.get(at + 1).copied().unwrap_or(b' ');
        if !(before.is_ascii_alphanumeric() || b"._%+-".contains(&before))
            || !after.is_ascii_alphanumeric()
        {
            return;
        }
        let (ws, we) = char_window(text, at.saturating_sub(64), at + 256);
        for m in self.regexes.email.find_iter(&text[ws..we]) {
            let (ms, me) = (ws + m.start(), ws + m.end());
            if ms <= at && at < me {
                sink(slot, &m.as_str().to_ascii_lowercase());
                *done_until = me;
            }
        }
    }

    /// The digit-cluster pass. `separator_view` is true over a rewritten
    /// window of [`separator_view`]: no further candidates are collected there,
    /// and a card cut into several groups must be grouped as cards are printed.
    /// Clusters starting in a `skip` range (sorted, apart) are not read. A
    /// pass over a whole text (not a view, nothing skipped) with
    /// `scratch.track_quiet` leaves the text's quiet interior in `scratch.quiet`.
    fn detect_numeric(
        &self,
        text: &str,
        separator_view: bool,
        skip: &[(usize, usize)],
        scratch: &mut Scratch,
        sink: &mut Sink<'_>,
    ) {
        let bytes = text.as_bytes();
        let mut quiet = if scratch.track_quiet && !separator_view && skip.is_empty() {
            scratch.quiet = None;
            QuietTracker::new(bytes)
        } else {
            None
        };
        let Some(first_digit) = find_digit(bytes) else {
            scratch.quiet = quiet.and_then(|q| q.finish(bytes));
            return;
        };
        let Scratch {
            candidates,
            groups,
            seps,
            odd,
            windows,
            bank,
            view,
            track_quiet: _,
            quiet: _,
            key_header: _,
        } = scratch;
        // The next skip range, and where it starts (checked once per cluster).
        let mut next_skip = 0;
        let mut skip_from = skip.first().map_or(usize::MAX, |r| r.0);
        if !separator_view {
            candidates.clear();
        }
        windows.clear();
        bank.sort_codes.clear();
        bank.accounts.clear();
        let mut i = first_digit;
        while let Some(offset) = find_digit(&bytes[i..]) {
            i += offset;
            if i >= skip_from {
                // In a skip range: on from its end (rare, so out of line).
                let end = skip_ahead(skip, &mut next_skip, i);
                skip_from = skip.get(next_skip).map_or(usize::MAX, |r| r.0);
                if let Some(end) = end {
                    i = end;
                    continue;
                }
            }
            groups.clear();
            seps.clear();
            odd.clear();
            // Counted as the groups are read, for the tests below.
            let (mut digits, mut singles, mut dotted) = (0, 0, false);
            loop {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                groups.push(Group { start, end: i });
                digits += i - start;
                singles += usize::from(i - start == 1);
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
                dotted |= sep == b'.';
                odd.push(sep == b' ' && (next - i > 1 || bytes[i] != b' '));
                i = next;
            }
            let shape = ClusterShape {
                digits,
                singles,
                dotted,
            };
            // Every validator of a cluster needs six digits or more (a sort
            // code's three pairs; accounts, passports, NHS numbers and cards
            // more), so shorter clusters (dates, times, prices) skip them.
            if digits >= 6 {
                self.on_cluster(text, groups, seps, odd, shape, separator_view, bank, sink);
            }
            let first = groups[0].start;
            let last = groups[groups.len() - 1].end;
            let candidate = !separator_view && is_separator_candidate(bytes, groups, shape);
            if candidate {
                candidates.push((first, last));
            }
            let touches_capital = first > 0 && bytes[first - 1].is_ascii_uppercase()
                || bytes.get(last).is_some_and(u8::is_ascii_uppercase);
            if let Some(q) = quiet.as_mut() {
                q.cluster(
                    bytes,
                    first,
                    last,
                    digits >= 6 || touches_capital || candidate,
                );
            }
            // Windows only when one of their detectors is enabled (a window
            // that touches a capital still widens a merged six-digit one).
            if self.uses_windows && (digits >= 6 || touches_capital) {
                push_window(windows, text, first, last, digits >= 6, touches_capital);
            }
        }
        if let Some(slot) = self.slot(Builtin::UkBankAccount) {
            bank.report(text, slot, sink);
        }
        for window in windows.iter() {
            self.on_window(text, window, sink);
        }
        if !separator_view && !candidates.is_empty() {
            let mut buf = std::mem::take(view);
            let spans = separator_spans(text, candidates);
            for (s, e) in spans {
                buf.clear();
                rewrite_separators(&text[s..e], &mut buf);
                self.detect_numeric(&buf, true, &[], scratch, sink);
            }
            scratch.view = buf;
        }
        if let Some(q) = quiet {
            scratch.quiet = q.finish(bytes);
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
        shape: ClusterShape,
        strict_cards: bool,
        bank: &mut BankCandidates,
        sink: &mut Sink<'_>,
    ) {
        let bytes = text.as_bytes();
        // One digit per group (`4 1 1 1 ...`): read only whole, glued, in the
        // separator view (a sub-run of one-digit groups is no card).
        let spread = shape.singles >= 4;
        if let Some(slot) = self
            .slot(Builtin::PaymentCard)
            .filter(|_| strict_cards || !spread)
        {
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

/// For a cluster found at `at`, at or past the start of `skip[*next]`: the end
/// of the range that holds it (then `*next` is the range after), or `None`
/// when it lies past every range it reached (`*next` moved on).
#[cold]
fn skip_ahead(skip: &[(usize, usize)], next: &mut usize, at: usize) -> Option<usize> {
    while skip.get(*next).is_some_and(|r| at >= r.1) {
        *next += 1;
    }
    match skip.get(*next) {
        Some(&(start, end)) if at >= start => {
            *next += 1;
            Some(end)
        }
        _ => None,
    }
}

/// Whether built-in number `index` needs the digit-cluster pass.
fn uses_digits(index: usize) -> bool {
    !matches!(
        Builtin::ALL.get(index),
        Some(Builtin::ProtectiveMarking | Builtin::Secrets | Builtin::EmailAddress) | None
    )
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
        // Dots inside a candidate are stripped like spaces and dashes (docs/dlp.md).
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
        // Across the 64-byte blocks: a digit at every offset, after non-ASCII
        // and the bytes either side of the digits ('/', ':'), or at the very end.
        for len in [0, 1, 8, 15, 16, 23, 24, 31, 63, 64, 65, 127, 128, 129, 200] {
            let filler: Vec<u8> = "é/:£x".bytes().cycle().take(len).collect();
            assert_eq!(find_digit(&filler), None, "{len}");
            for i in 0..len {
                for digit in [b'0', b'9'] {
                    let mut v = filler.clone();
                    v[i] = digit;
                    assert_eq!(find_digit(&v), v.iter().position(u8::is_ascii_digit));
                    if i + 1 < len {
                        v[i + 1] = b'5';
                        assert_eq!(find_digit(&v), v.iter().position(u8::is_ascii_digit));
                    }
                }
            }
        }
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
