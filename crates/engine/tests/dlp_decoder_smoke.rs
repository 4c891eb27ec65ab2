//! A stable-toolchain smoke fuzz of the DLP version 2 decoders (cargo-fuzz
//! needs nightly): bodies assembled at random from the pieces the new code
//! reads (byte order marks, null-byte patterns, charsets, multipart parts with
//! transfer encodings, magic numbers, separators, combining marks, look-alike
//! letters), then randomly mutated, through the whole scan. Nothing may panic,
//! and every result is findings or a refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use socialgate_engine::dlp::{ScanInput, ScanLimits, Scanner};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
}

const PIECES: &[&[u8]] = &[
    b"\xFF\xFE",
    b"\xFE\xFF",
    b"\xFF\xFE\x00\x00",
    b"\x00\x00\xFE\xFF",
    b"\xEF\xBB\xBF",
    b"{\x00\"\x00t\x00\"\x00:\x00",
    b"\x00{\x00\"",
    b"\x00\x00\x00{",
    b"{\x00\x00\x00",
    b"\x00\xD8",
    b"\x00\x00\x11\x00",
    b"JG 10 37 82 B",
    b"J G 1 0 3 7 8 2 B",
    b"4111.1111/1111_1111",
    b"943 - 476 - 5919",
    "OFFICIAL\u{2014}SENSITIVE\u{301}".as_bytes(),
    "\u{41E}FFICIAL".as_bytes(),
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"\x00\x00\x00\x18ftypheic",
    b"%PDF-1.7",
    b"\x1b$)C",
    b"~{",
    b"=?utf-8?B?QUJD?=",
    b"\r\n",
    b"\x00",
    b"\xFF",
    b"--B\r\n",
    b"Content-Type: text/plain; charset=utf-16\r\n",
    b"Content-Type: text/plain; charset=iso-2022-kr\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: form-data; name=\"t\"\r\n",
    b"QUtJQUlPU0ZPRE5ON0VYQU1QTEU=",
    b"=4A=47=20=31",
    b"--B--\r\n",
    b"%00%FF&amp;&#x41;",
    b"\\u0000\\ud800",
];

const TYPES: &[Option<&str>] = &[
    None,
    Some("text/plain"),
    Some("text/plain; charset=utf-16"),
    Some("text/plain; charset=utf-32"),
    Some("text/plain; charset=utf-16be"),
    Some("text/plain; charset=iso-8859-1"),
    Some("text/plain; charset=shift_jis"),
    Some("text/plain; charset=iso-2022-jp"),
    Some("application/json"),
    Some("application/json; charset=utf-16le"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=B"),
    Some("application/octet-stream"),
];

#[test]
fn random_bodies_never_panic() {
    let scanner = Scanner::all_builtins();
    let limits = ScanLimits {
        max_decoded_bytes: 64 * 1024,
    };
    let mut rng = Rng(0x0013_d1b2_f022_5eed);
    let (mut ok, mut refused) = (0usize, 0usize);
    for _ in 0..8_000 {
        let mut body = Vec::new();
        for _ in 0..(1 + rng.next() % 12) {
            let piece: &[u8] = PIECES[(rng.next() % PIECES.len() as u64) as usize];
            body.extend_from_slice(piece);
        }
        for _ in 0..(rng.next() % 4) {
            if body.is_empty() {
                break;
            }
            let at = (rng.next() % body.len() as u64) as usize;
            match rng.next() % 3 {
                0 => body[at] = rng.next() as u8,
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, rng.next() as u8),
            }
        }
        let input = ScanInput {
            content_type: *rng.pick(TYPES),
            content_encoding: None,
            body: &body,
            query: None,
        };
        match scanner.scan_request_report(&input, &limits) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    println!("decoder smoke: {ok} scanned, {refused} refused");
    assert!(ok > 0 && refused > 0);
}
