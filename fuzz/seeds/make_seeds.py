#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz corpora (fuzz/corpus/<target>/seed-*).

Run from the repository root: `python3 fuzz/seeds/make_seeds.py`. Deterministic
(fixed gzip mtime), so rerunning it rewrites the same files. The fuzzer adds its
own inputs next to these (named by content hash); `cargo fuzz cmin` may drop
seeds that add no coverage.
"""
import glob
import gzip
import io
import os
import zlib

ROOT = "fuzz/corpus"


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


# --- policy_loader: real policies, catalogue files, fixtures, include splitting.
for path in ["policies/default.yaml"] + sorted(glob.glob("policies/sites/*.yaml")) + sorted(
    glob.glob("tests/fixtures/policies/*.yaml")
):
    put("policy_loader", path.replace("/", "_"), open(path, "rb").read())
put(
    "policy_loader",
    "include-split",
    b"version: 1\ninclude: [fuzz/*.yaml]\nroles: { r: { groups: [g] } }\n"
    b"rules:\n  - { name: a, roles: [r], sites: [mine], activities: [post], action: allow, dlp: p }\n"
    b"  - { name: z, action: deny }\n"
    b"dlp:\n  detectors: { code: { keywords: [Nightjar] } }\n"
    b"  profiles: { p: { detectors: [code, secrets], on_finding: block } }\n"
    b"\0sites:\n  mine:\n    domains: [mine.example, '*.mine.example']\n"
    b"    activities:\n      post: [{ method: POST, path_regex: '/p/.*', json: { a.b: '.+' } }]\n",
)
put(
    "policy_loader",
    "when-and-tests",
    "version: 1\ntimezone: Europe/London\nroles: { s: { users: [bob] } }\n"
    "rules:\n  - name: lunch\n    roles: [s]\n    sites: [listed]\n    activities: [read]\n"
    "    when: { days: [mon, tue, wed], between: ['12:00', '14:00'] }\n    action: allow\n"
    "  - { name: rest, action: deny }\n"
    "tests:\n  - name: t\n    user: bob\n    at: 2026-07-01T11:30:00Z\n"
    "    request: GET https://www.facebook.com/\n    expect: { action: allow, rule: lunch }\n",
)
put("policy_loader", "anchors", "a: &x [1, 2]\nb: *x\nversion: 1\nrules: []\n")

# --- settings_loader: the shipped settings files.
for path in ["deploy/socialgate.yaml", "deploy/container/socialgate.yaml"]:
    if os.path.exists(path):
        put("settings_loader", path.replace("/", "_"), open(path, "rb").read())
put(
    "settings_loader",
    "limits",
    "listen: 127.0.0.1:3128\nlimits: { max_scan_bytes: 10MiB }\n",
)

# --- request_decision: request heads (and bodies) as the proxy receives them.
R = "request_decision"
put(R, "get-linkedin-feed", "GET /feed/ HTTP/1.1\r\nHost: www.linkedin.com\r\n\r\n")
put(R, "get-absolute", "GET https://www.facebook.com/?a=1 HTTP/1.1\r\nHost: www.facebook.com\r\nx-fuzz-at: 2026-07-01T11:30:00Z\r\n\r\n")
put(R, "connect", "CONNECT www.gov.uk:443 HTTP/1.1\r\nHost: www.gov.uk:443\r\n\r\n")
put(R, "connect-lookalike", "CONNECT evillinkedin.com:443 HTTP/1.1\r\n\r\n")
put(
    R,
    "post-linkedin-json-nino",
    "POST /voyager/api/contentcreation/normShares HTTP/1.1\r\nHost: www.linkedin.com\r\n"
    "Content-Type: application/json\r\n\r\n"
    '{"commentary":"Resident JG 10 37 82 B asked about parking"}',
)
put(
    R,
    "post-x-reply",
    "POST https://x.com/i/api/graphql/abc123/CreateTweet HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
    '{"variables":{"tweet_text":"card 4111 1111 1111 1111","reply":{"in_reply_to_tweet_id":"1"}}}',
)
put(
    R,
    "post-facebook-form",
    "POST /api/graphql/ HTTP/1.1\r\nHost: www.facebook.com\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
    "fb_api_req_friendly_name=ComposerStoryCreateMutation&variables=%7B%22text%22%3A%22OFFICIAL-SENSITIVE%22%7D",
)
put(
    R,
    "post-bluesky-gzip",
    b"POST /xrpc/com.atproto.repo.createRecord HTTP/1.1\r\nHost: bsky.social\r\nContent-Type: application/json\r\n"
    b"Content-Encoding: gzip\r\n\r\n"
    + gz(b'{"collection":"app.bsky.feed.post","record":{"text":"NHS 943 476 5919"}}'),
)
put(
    R,
    "websocket",
    "GET /ws HTTP/1.1\r\nHost: chat-ws.x.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
)
put(
    R,
    "multipart-upload",
    "POST /i/media/upload.json HTTP/1.1\r\nHost: upload.x.com\r\n"
    "Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n"
    "--XyZ\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nsort code 12-34-56 acct 12345678\r\n"
    "--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    "\x89PNG\r\n\x1a\n\x00\x00\r\n--XyZ--\r\n",
)
put(R, "lf-only", "DELETE /x?y HTTP/1.0\nHost: [::1]:8080\n\n")

# --- dlp_extract: `content-type \n content-encoding \n query \n body`.
D = "dlp_extract"
put(D, "json", 'application/json\n\n\n{"a":"4111 1111 1111 1111","b":[1,2.5,{"nino":"JG103782B"}],"c":null}')
put(D, "json-deep", "application/json\n\n\n" + "[" * 200 + '"GB82 WEST 1234 5698 7654 32"' + "]" * 200)
put(D, "json-escapes", 'application/vnd.api+json\n\n\n{"k\\u0041":"\\u0034\\u0031\\u0031\\u0031 1111 1111 1111"}')
put(D, "form", "application/x-www-form-urlencoded\n\nq=JG%2010%2037%2082%20B\ntext=sort+code+12-34-56&acct=12345678&x=%E2%80%8B")
put(
    D,
    "multipart",
    'multipart/form-data; boundary="b1"\n\n\n'
    "--b1\r\nContent-Disposition: form-data; name=\"t\"\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nOFFICIAL-SENSITIVE caf\xe9\r\n"
    "--b1\r\nContent-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nJG=2010=2037 82 B\r\n"
    "--b1\r\nContent-Disposition: form-data; name=\"b\"\r\nContent-Transfer-Encoding: base64\r\n\r\nNDExMSAxMTExIDExMTEgMTExMQ==\r\n"
    "--b1\r\nContent-Type: multipart/mixed; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nAKIAIOSFODNN7EXAMPLE\r\n--b2--\r\n"
    "--b1--\r\n",
)
put(D, "gzip", b"application/json\ngzip\n\n" + gz(b'{"text":"943 476 5919"}'))
put(D, "gzip-gzip", b"text/plain\ngzip, gzip\n\n" + gz(gz(b"ghp_" + b"a" * 36)))
put(D, "deflate-zlib", b"text/plain\ndeflate\n\n" + zlib.compress(b"sk_live_" + b"4" * 24))
raw = zlib.compressobj(wbits=-15)
put(D, "deflate-raw", b"\ndeflate\n\n" + raw.compress(b"password=hunter2 JG103782B") + raw.flush())
put(D, "sniffed-json", '\n\n\n{"x":"IBAN GB82WEST12345698765432"}')
put(D, "sniffed-form", "\n\nquery=1\na=b&c=4111111111111111")
put(D, "unknown-encoding", "text/plain\ncompress\n\nabc")
put(D, "text-html", "text/html; charset=utf-8\n\n\n<p>&#52;111&nbsp;1111 1111 1111 &amp; more</p>")
put(D, "charset-utf16", "text/plain; charset=utf-16le\n\n\n".encode() + "JG 10 37 82 B".encode("utf-16le"))
# brotli/zstd frames for the decoders (tiny hand-made / library-free blobs):
# an empty zstd frame and an uncompressed brotli meta-block.
put(D, "zstd-empty", b"text/plain\nzstd\n\n" + bytes.fromhex("28b52ffd2000010000"))
put(D, "br-raw", b"text/plain\nbr\n\n" + bytes.fromhex("0b028068656c6c6f03"))

# --- dlp_normalize: one text field each.
N = "dlp_normalize"
put(N, "fullwidth", "ＪＧ １０ ３７ ８２ Ｂ")
put(N, "zero-width", "4\u200b1\u200c1\u200d1\u2060 1111\ufeff 1111 \u00ad1111")
put(N, "arabic-digits", "٤١١١ ١١١١ ١١١١ ١١١١")
put(N, "dashes", "12\u201334\u201456 12345678")
put(N, "percent-entities", "JG%2010%2037&#x20;82&nbsp;B %252F &amp;amp; &lt;tag&gt;")
put(N, "tags", "OFFICIAL\U000e0041-SENSITIVE")
put(N, "ligature", "\ufb01le \u2460\u2461 GB82\u00a0WEST\u00a01234\u00a05698\u00a07654\u00a032")
put(N, "ascii", "nothing to see here")
put(N, "invalid-utf8", b"\xff\xfe4111\xc3(1111 1111 1111")
# DLP version 2 disguises: separators of every kind, one character per group,
# combining marks, look-alike letters, line breaks and dashes inside a marking.
put(N, "v2-dots", "JG.10.37.82.B and 943.476.5919")
put(N, "v2-separators", "JG/10/37/82/B JG_10_37_82_B JG+10+37+82+B JG - 10 - 37 - 82 - B")
put(N, "v2-one-per-group", "J G 1 0 3 7 8 2 B")
put(N, "v2-combining", "J\u0307G103782B OFFICIAL-SENSITIVE\u0301")
put(N, "v2-cyrillic", "\u041eFFICIAL-SENSITIVE")
put(N, "v2-marking-breaks", "OFFICIAL\n-SENSITIVE OFFICIAL\u2014SENSITIVE")
put(N, "v2-benign", "Meeting 12.03.2026 in room 10/37, ref 1234-5678-9012, v2.10.37, \u00a312.50")


# --- dlp_charset: mime, label, transfer encoding, flags, canary position, body
# (indexes into the tables of `src/fuzz_harness.rs`). Flags: 1 wrap in a
# multipart part, 2 plant a canary, 4/8 which canary.
C = "dlp_charset"
MIME = {"text": 0, "json": 1, "form": 2, "octet": 3, "csv": 4, "none": 7, "multipart": 8}
LABEL = {"": 0, "utf-8": 1, "utf-16": 2, "utf-16le": 3, "utf-16be": 4, "utf-32": 5,
         "utf-32le": 6, "utf-32be": 7, "iso-8859-1": 11, "shift_jis": 13, "iso-2022-jp": 15,
         "iso-2022-kr": 22, "free": 200}
CTE = {"": 0, "base64": 1, "qp": 2, "binary": 5, "x-uuencode": 6}


def charset_seed(name, mime, label, cte, flags, at, body):
    if isinstance(body, str):
        body = body.encode()
    put(C, name, bytes([MIME[mime], LABEL[label], CTE[cte], flags, at]) + body)


post = '{"text":"see you at 10:30 in room 12"}'
charset_seed("utf16le-label", "text", "utf-16le", "", 2, 128, "hello there".encode("utf-16le"))
charset_seed("utf16le-json-null-pattern", "json", "", "", 0, 0, post.encode("utf-16le"))
charset_seed("utf16be-json-null-pattern", "json", "", "", 2, 255, post.encode("utf-16be"))
charset_seed("utf32be-json", "json", "", "", 0, 0, post.encode("utf-32-be"))
charset_seed("utf32le-bom", "none", "", "", 2, 64, b"\xff\xfe\x00\x00" + "hi".encode("utf-32-le"))
charset_seed("utf16-bom-csv", "csv", "", "", 2, 200, b"\xff\xfe" + "a,b\n1,2\n".encode("utf-16-le"))
charset_seed("utf16-label-ascii", "text", "utf-16", "", 2, 0, "plain ascii text")
charset_seed("utf16-parity", "none", "", "", 0, 0, "no label at all".encode("utf-16-le"))
charset_seed("latin1", "text", "iso-8859-1", "", 2, 128, b"caf\xe9 cr\xe8me")
charset_seed("shift-jis", "text", "shift_jis", "", 2, 128, "\u3053\u3093\u306b\u3061\u306f".encode("shift_jis"))
charset_seed("iso-2022-jp", "text", "iso-2022-jp", "", 2, 255, "\u65e5\u672c".encode("iso2022_jp"))
charset_seed("iso-2022-kr", "text", "iso-2022-kr", "", 2, 128, "plain ascii")
charset_seed("free-label", "text", "free", "", 2, 128, b"windows-1251\n\xcf\xf0\xe8\xe2\xe5\xf2")
charset_seed("part-base64", "text", "utf-8", "base64", 3, 255, "c2VlIHlvdSBhdCAxMDozMA==")
charset_seed("part-base64-raw-is-base64", "text", "", "base64", 1, 0, "QUtJQUlPU0ZPRE5ON0VYQU1QTEU=")
charset_seed("part-qp", "text", "iso-8859-1", "qp", 3, 128, "caf=E9 =\r\nsoft break")
charset_seed("part-octet-nul", "octet", "", "", 3, 0, b"field text\x00")
charset_seed("part-utf16-ascii", "text", "utf-16", "binary", 3, 0, "ascii in a utf-16 part")
charset_seed("part-png", "octet", "", "", 3, 255, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
charset_seed("part-uuencode", "text", "", "x-uuencode", 3, 0, "begin 644 a\n")
charset_seed("multipart-top", "multipart", "", "", 2, 0,
             "--B0undary\r\nContent-Disposition: form-data; name=\"t\"\r\n"
             "Content-Type: text/plain; charset=utf-16le\r\n\r\nhi\x00\r\n--B0undary--\r\n")

# --- dlp_extract, DLP version 2 decoders.
put(D, "v2-utf32le-bom", "text/plain\n\n\n".encode() + b"\xff\xfe\x00\x00" + "JG 10 37 82 B".encode("utf-32-le"))
put(D, "v2-utf16be-json", "application/json\n\n\n".encode() + '{"t":"JG 10 37 82 B"}'.encode("utf-16-be"))
put(D, "v2-iso-2022-kr", "text/plain; charset=iso-2022-kr\n\n\nJG 10 37 82 B")
put(
    D,
    "v2-multipart-octet-nul-and-base64",
    'multipart/form-data; boundary=b1\n\n\n'
    "--b1\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\nJG 10 37 82 B\x00\r\n"
    "--b1\r\nContent-Disposition: form-data; name=\"b\"\r\nContent-Transfer-Encoding: base64\r\n\r\nQUtJQUlPU0ZPRE5ON0VYQU1QTEU=\r\n"
    "--b1\r\nContent-Disposition: form-data; name=\"c\"\r\nContent-Type: text/plain; charset=utf-16\r\n\r\nOFFICIAL-SENSITIVE\r\n"
    "--b1--\r\n",
)
