#!/usr/bin/env python3
"""Rebuilds the encoded-word nested-multipart crash inputs of this directory.

    python3 fuzz/crashes-unfixed/make_encoded_word_multipart.py [depth]   # default 13000

Like `../regressions/make_nested_multipart.py`, but every nested part's
Content-Type is an RFC 2047 encoded word (`=?utf-8?b?...?=` or `=?utf-8?q?...?=`),
which mailparse decodes before parsing the type, so the body never contains the
literal `multipart/` that the nesting check in `src/dlp/extract.rs` counts.
Bodies are gzip-encoded (~65 KB on the wire, ~1 MB decoded, under the
harnesses' 1 MiB cap).
"""
import base64
import gzip
import io
import os
import sys


def b36(i):
    s = ""
    while True:
        s = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36] + s
        i //= 36
        if i == 0:
            return s


def b_word(value):
    return "=?utf-8?b?" + base64.b64encode(value.encode()).decode() + "?="


def q_word(value):
    return "=?utf-8?q?" + value.replace("=", "=3D").replace("/", "=2F").replace(" ", "_") + "?="


def nested(depth, encode):
    parts = [
        f"--{b36(i)}.\r\nContent-Type: {encode(f'multipart/mixed; boundary={b36(i + 1)}.')}\r\n\r\n"
        for i in range(depth)
    ]
    parts.append(f"--{b36(depth)}.\r\nContent-Type: text/plain\r\n\r\nJG103782B\r\n")
    return "".join(parts).encode()


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


depth = int(sys.argv[1]) if len(sys.argv) > 1 else 13000
here = os.path.dirname(os.path.abspath(__file__))
for name, encode in (("b", b_word), ("q", q_word)):
    body = gz(nested(depth, encode))
    write(
        os.path.join(here, "dlp_extract", f"nested-multipart-encoded-word-{name}-depth{depth}-gzip"),
        b"multipart/form-data; boundary=0.\ngzip\n\n" + body,
    )
    if name == "b":
        write(
            os.path.join(
                here,
                "request_decision",
                f"linkedin-post-nested-multipart-encoded-word-{name}-depth{depth}-gzip",
            ),
            b"POST /voyager/api/contentcreation/normShares HTTP/1.1\r\nHost: www.linkedin.com\r\n"
            b"Content-Type: multipart/form-data; boundary=0.\r\nContent-Encoding: gzip\r\n\r\n"
            + body,
        )
