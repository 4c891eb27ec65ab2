//! The audit trail: one JSON object per line, one line per request, written by a
//! single task behind a bounded queue. serde_json escapes every string, so a user
//! name with CR/LF or quotes is still one record. DLP samples arrive masked.
//! SIGUSR1 reopens the file (log rotation); `-` writes to stdout. A file the
//! gateway creates gets mode 0640 (an existing file keeps its mode). With
//! `audit.syslog` each line is also handed to `crate::syslog` (never waiting).

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::policy::DryRun;
use crate::verdict::DlpFinding;

/// How many records may wait for the writer.
pub const QUEUE_CAPACITY: usize = 8192;

/// One request, as the security team sees it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditRecord {
    /// When the request arrived; written as RFC 3339 UTC with milliseconds
    /// (`2026-11-25T21:37:00.123Z`), formatted by the writer.
    #[serde(serialize_with = "rfc3339_millis")]
    pub ts: chrono::DateTime<chrono::Utc>,
    pub reference: String,
    /// The replica that answered (`instance` in the settings; the host name by
    /// default), filled in by the writer.
    pub instance: String,
    pub client_ip: String,
    pub user: Option<String>,
    pub roles: Vec<String>,
    /// The groups the user had when the request was decided (what the policy
    /// derived `roles` from), so `socialgate replay` can derive roles again
    /// under another policy. Empty for a client never identified.
    pub groups: Vec<String>,
    /// A standard method is a static string (no allocation per record).
    pub method: Cow<'static, str>,
    pub host: String,
    /// Without the query string.
    pub path: String,
    pub site: String,
    pub activity: String,
    /// The catalogue matcher that named the activity, `site/activity#N`; empty
    /// for the fallback `read`/`write` and for requests not classified on a site.
    pub matched: String,
    /// `allow`, `deny`, `warn`: static strings.
    pub action: Cow<'static, str>,
    pub rule: String,
    pub dry_run: Vec<DryRun>,
    pub dlp: Vec<DlpFinding>,
    /// The social account the request was made as: `SET:ID` for an account in
    /// one of the policy's `accounts:` sets, else `other` (signed in, in no
    /// set: its id is never written) or `unknown`. Empty when not decided.
    pub account: String,
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

fn rfc3339_millis<S: serde::Serializer>(
    ts: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&millis_utc(ts))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, written digit by digit: chrono's `format` parses
/// its pattern and goes through `fmt` for every record, several times the cost.
fn millis_utc(ts: &chrono::DateTime<chrono::Utc>) -> String {
    let mut out = Vec::with_capacity(24);
    millis_utc_into(ts, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`millis_utc`], appended to `out`.
fn millis_utc_into(ts: &chrono::DateTime<chrono::Utc>, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    fn digits(out: &mut Vec<u8>, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = (value / 10u32.pow(place)) % 10;
            out.push(b'0' + digit as u8);
        }
    }
    let year = ts.year();
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().as_bytes());
        return;
    }
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, ts.month(), 2);
    out.push(b'-');
    digits(out, ts.day(), 2);
    out.push(b'T');
    digits(out, ts.hour(), 2);
    out.push(b':');
    digits(out, ts.minute(), 2);
    out.push(b':');
    // A leap second is nanosecond 1_000_000_000 and more: shown as :60, as chrono does.
    let nanos = ts.nanosecond();
    digits(out, ts.second() + nanos / 1_000_000_000, 2);
    out.push(b'.');
    digits(out, (nanos % 1_000_000_000) / 1_000_000, 3);
    out.push(b'Z');
}

impl AuditRecord {
    /// Appends the record as one JSON object, byte for byte what serde_json
    /// writes for it (the fields in declaration order, the same escapes),
    /// written by hand: a string with nothing to escape, nearly all of them,
    /// is copied whole after one branch-free check rather than looked up byte
    /// by byte (serde_json's string escaping was the writer's main cost).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"ts\":\"");
        // Digits only: nothing to escape, written in place.
        millis_utc_into(&self.ts, out);
        out.push(b'"');
        for (key, value) in [
            ("reference", &self.reference),
            ("instance", &self.instance),
            ("client_ip", &self.client_ip),
        ] {
            json_key(out, key);
            json_str(out, value)?;
        }
        json_key(out, "user");
        match &self.user {
            Some(user) => json_str(out, user)?,
            None => out.extend_from_slice(b"null"),
        }
        json_key(out, "roles");
        json_str_list(out, &self.roles)?;
        json_key(out, "groups");
        json_str_list(out, &self.groups)?;
        for (key, value) in [
            ("method", &*self.method),
            ("host", &self.host),
            ("path", &self.path),
            ("site", &self.site),
            ("activity", &self.activity),
            ("matched", &self.matched),
            ("action", &self.action),
            ("rule", &self.rule),
        ] {
            json_key(out, key);
            json_str(out, value)?;
        }
        // Rare, and structs of their own: serde_json writes them (an empty
        // list is `[]` either way).
        json_key(out, "dry_run");
        match self.dry_run.is_empty() {
            true => out.extend_from_slice(b"[]"),
            false => serde_json::to_writer(&mut *out, &self.dry_run)?,
        }
        json_key(out, "dlp");
        match self.dlp.is_empty() {
            true => out.extend_from_slice(b"[]"),
            false => serde_json::to_writer(&mut *out, &self.dlp)?,
        }
        json_key(out, "account");
        json_str(out, &self.account)?;
        for (key, value) in [
            ("status", u64::from(self.status)),
            ("bytes_up", self.bytes_up),
            ("bytes_down", self.bytes_down),
            ("duration_ms", self.duration_ms),
        ] {
            json_key(out, key);
            out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
        out.push(b'}');
        Ok(())
    }
}

/// `,"key":` (keys are the field names: nothing to escape).
fn json_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string: copied whole when no byte needs an escape (a control
/// character, `"` or `\`: what serde_json escapes), else written by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if needs_escape(s.as_bytes()) {
        return serde_json::to_writer(&mut *out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Does any byte need an escape in JSON (below 0x20, `"`, `\\`)? Eight bytes
/// at a time: a byte below `n` leaves its top bit set in `(x - n·0x01…) & !x`
/// (exact for whether any does, for n ≤ 0x80), and `x ^ c` has a zero byte
/// where `x` has `c`. The last bytes are read as the word that ends the string
/// (overlapping the one before), a string shorter than a word padded with
/// spaces: no byte-by-byte tail.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & TOPS;
    let escapes = |x: u64| {
        below(x, 0x20)
            | below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
    };
    let mut word = [b' '; 8];
    if bytes.len() < 8 {
        word[..bytes.len()].copy_from_slice(bytes);
        return escapes(u64::from_le_bytes(word)) != 0;
    }
    let mut any = 0;
    for chunk in bytes.chunks_exact(8) {
        word.copy_from_slice(chunk);
        any |= escapes(u64::from_le_bytes(word));
    }
    word.copy_from_slice(&bytes[bytes.len() - 8..]);
    any |= escapes(u64::from_le_bytes(word));
    any != 0
}

fn json_str_list(out: &mut Vec<u8>, items: &[String]) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, item)?;
    }
    out.push(b']');
    Ok(())
}

enum Msg {
    /// Serialised by the writer, straight into its buffer.
    Record(Box<AuditRecord>),
    Reopen,
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The sending side; cheap to share.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

/// The writer's buffer. The records of a batch (what queued while the writer
/// slept, each batch flushed before it sleeps again) go out in a few large
/// writes: per write the kernel updates the file's times and journals them,
/// which with 8 KiB writes (15 records) cost more than copying the records.
const SINK_BUFFER: usize = 64 * 1024;

enum Sink {
    /// Buffered here too (std's stdout writes at each newline): whole records
    /// only, so each write carries complete lines.
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(std::io::BufWriter<std::fs::File>),
}

fn open(path: &str) -> std::io::Result<Sink> {
    if path == "-" {
        return Ok(Sink::Stdout(std::io::BufWriter::with_capacity(
            SINK_BUFFER,
            std::io::stdout(),
        )));
    }
    let p = PathBuf::from(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    // Records name people and what they did: owner and group only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    let f = options.open(&p)?;
    Ok(Sink::File(std::io::BufWriter::with_capacity(
        SINK_BUFFER,
        f,
    )))
}

impl Sink {
    /// Writes one serialised record, its newline included, in one call: the
    /// buffer takes it whole or writes out what it holds first, so no write
    /// ends inside a record.
    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout(out) => out.write_all(line),
            Sink::File(f) => f.write_all(line),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

impl AuditLog {
    /// Opens `path` and starts the writer; the handle ends when every sender is
    /// dropped and the queue is written out.
    pub fn start(path: &str) -> Result<(AuditLog, tokio::task::JoinHandle<()>), String> {
        AuditLog::start_with_syslog(path, None, &crate::settings::host_name())
    }

    /// [`AuditLog::start`], also handing every record to `syslog`, each record
    /// naming `instance` (this replica).
    pub fn start_with_syslog(
        path: &str,
        syslog: Option<crate::syslog::SyslogSender>,
        instance: &str,
    ) -> Result<(AuditLog, tokio::task::JoinHandle<()>), String> {
        let instance = instance.to_string();
        let mut sink = open(path).map_err(|e| format!("cannot open the audit log {path}: {e}"))?;
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE_CAPACITY);
        let path = path.to_string();
        let handle = tokio::task::spawn_blocking(move || {
            // One record serialised once (serde escapes every string, so it
            // stays one line), for the file and for syslog.
            let mut line = Vec::with_capacity(1024);
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Record(mut record) => {
                        record.instance.clone_from(&instance);
                        line.clear();
                        if let Err(e) = record.write_json(&mut line) {
                            tracing::error!(error = %e, "cannot serialise an audit record");
                            continue;
                        }
                        line.push(b'\n');
                        if let Err(e) = sink.write_line(&line) {
                            tracing::error!(error = %e, path = %path, "cannot write the audit log; check the disk");
                        }
                        if let Some(s) = &syslog {
                            let ts = millis_utc(&record.ts);
                            let record_only = &line[..line.len() - 1];
                            s.send(&ts, &String::from_utf8_lossy(record_only));
                        }
                    }
                    Msg::Flush(done) => {
                        let _ = sink.flush();
                        let _ = done.send(());
                    }
                    Msg::Reopen => {
                        let _ = sink.flush();
                        match open(&path) {
                            Ok(s) => {
                                sink = s;
                                tracing::info!(path = %path, "audit log reopened");
                            }
                            Err(e) => {
                                tracing::error!(error = %e, path = %path, "cannot reopen the audit log; still writing to the old file")
                            }
                        }
                    }
                }
                if rx.is_empty() {
                    let _ = sink.flush();
                    // Gather the next records for a few milliseconds rather than
                    // waking (and writing) once per request under load.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            let _ = sink.flush();
        });
        Ok((AuditLog { tx }, handle))
    }

    /// Can the queue take a record right now?
    pub fn has_room(&self) -> bool {
        self.tx.capacity() > 0
    }

    /// Queues a record; false when the queue is full (the caller counts it). The
    /// writer serialises it, off the request path.
    pub fn write(&self, record: AuditRecord) -> bool {
        self.tx.try_send(Msg::Record(Box::new(record))).is_ok()
    }

    /// Waits until every record queued so far is written and flushed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Asks the writer to reopen the file (SIGUSR1).
    pub fn reopen(&self) {
        let _ = self.tx.try_send(Msg::Reopen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_line_per_record_whatever_the_user_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (log, handle) = AuditLog::start(&path.display().to_string()).unwrap();
        let rec = AuditRecord {
            ts: chrono::DateTime::parse_from_rfc3339("2026-11-25T21:37:00.123456Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            user: Some("mallory\r\n{\"user\":\"admin\"}".into()),
            path: "/a\"b".into(),
            ..Default::default()
        };
        assert!(log.write(rec));
        assert!(log.write(AuditRecord::default()));
        drop(log);
        handle.await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["user"], "mallory\r\n{\"user\":\"admin\"}");
        // The audit timestamp (docs/operations.md, the audit log): RFC 3339, UTC, milliseconds.
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts, "2026-11-25T21:37:00.123Z");
    }

    /// The hand-written line is what serde_json writes for the record, for
    /// every kind of string and every optional part.
    #[test]
    fn the_written_line_is_serde_jsons() {
        let ts = chrono::DateTime::parse_from_rfc3339("2026-12-02T19:37:00.123456Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let plain = AuditRecord {
            ts,
            reference: "SG-7F3K2Q".into(),
            instance: "gw-1".into(),
            client_ip: "10.0.0.7".into(),
            user: Some("alice".into()),
            roles: vec!["press-office".into(), "staff".into()],
            groups: vec!["communications".into()],
            method: "POST".into(),
            host: "www.linkedin.com".into(),
            path: "/voyager/api/contentcreation/normShares".into(),
            site: "linkedin".into(),
            activity: "post".into(),
            matched: "linkedin/post#2".into(),
            action: "allow".into(),
            rule: "press-office-posts".into(),
            account: "press:42".into(),
            status: 201,
            bytes_up: 2048,
            bytes_down: u64::MAX,
            duration_ms: 17,
            ..Default::default()
        };
        let mut tricky = plain.clone();
        tricky.user = Some("mallory\r\n{\"user\":\"admin\"}\\".into());
        tricky.path = "/a\"b\u{1}\u{1f}\u{7f}/é/😀/\t".into();
        tricky.roles = vec![String::new(), "r\"1".into()];
        tricky.groups = Vec::new();
        // Each escape alone in a string.
        tricky.host = "a\u{1}b".into();
        tricky.site = "back\\slash".into();
        tricky.activity = "line\nbreak".into();
        tricky.matched = "quote\"d".into();
        tricky.dry_run = vec![DryRun {
            rule: "new-\"rule\"".into(),
            action: "deny",
        }];
        tricky.dlp = vec![DlpFinding {
            detector: "uk_ni_number".into(),
            count: 2,
            sample: "QQ••••••C".into(),
            on_finding: "block",
        }];
        let nobody = AuditRecord::default();
        for record in [plain, tricky, nobody] {
            let mut line = Vec::new();
            record.write_json(&mut line).unwrap();
            assert_eq!(
                String::from_utf8(line).unwrap(),
                serde_json::to_string(&record).unwrap()
            );
        }
    }

    /// Every byte value at every position of a word and of the tail.
    #[test]
    fn needs_escape_finds_each_escaped_byte_anywhere() {
        for len in 1usize..=25 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let want = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&bytes), want, "len {len}, byte {b:#x} at {at}");
                }
            }
        }
        assert!(!needs_escape(b""));
        assert!(!needs_escape("é😀 \u{7f}~".as_bytes()));
    }

    #[test]
    fn timestamps_read_as_chrono_writes_them() {
        for text in [
            "2026-11-25T21:37:00.123456Z",
            "2026-01-01T00:00:00Z",
            "1999-12-31T23:59:59.999999999Z",
            "0001-02-03T04:05:06.007Z",
            "2016-12-31T23:59:60.5Z",
        ] {
            let ts = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&chrono::Utc);
            assert_eq!(
                millis_utc(&ts),
                ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "{text}"
            );
        }
    }
}
