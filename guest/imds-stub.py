#!/usr/bin/env python3
"""A one-connection stand-in for the instance metadata service, for guest/test-boot.sh.

QEMU's user-mode network runs it once per guest connection to
169.254.169.254:80 (-netdev user,...,guestfwd=tcp:169.254.169.254:80-cmd:...),
with the connection on stdin/stdout:

    imds-stub.py DIR

DIR holds the answers: DIR/meta-data/<path> files, DIR/user-data, and gets
DIR/requests.log (one line per request: method, path, token header used).
IMDSv2 as AWS: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
returns a token; a GET carrying a wrong token gets 401. GETs without a token
are answered (IMDSv1) unless DIR/v2-only exists.
"""
import os
import sys

TOKEN = "mallee-test-token-0123456789"


def main() -> None:
    root = sys.argv[1]
    rfile = sys.stdin.buffer
    wfile = sys.stdout.buffer
    line = rfile.readline().decode("latin-1").strip()
    headers = {}
    while True:
        h = rfile.readline()
        if not h or h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    parts = line.split()
    method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("?", "?")
    token = headers.get("x-aws-ec2-metadata-token", "")
    with open(os.path.join(root, "requests.log"), "a") as log:
        log.write(f"{method} {path} token={'yes' if token else 'no'}\n")

    def reply(status: str, body: bytes = b"") -> None:
        wfile.write(
            f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        wfile.flush()

    if method == "PUT" and path == "/latest/api/token":
        if "x-aws-ec2-metadata-token-ttl-seconds" not in headers:
            return reply("400 Bad Request")
        return reply("200 OK", TOKEN.encode())
    if method != "GET":
        return reply("405 Method Not Allowed")
    if token and token != TOKEN:
        return reply("401 Unauthorized")
    if not token and os.path.exists(os.path.join(root, "v2-only")):
        return reply("401 Unauthorized")
    if not path.startswith("/latest/"):
        return reply("404 Not Found")
    rel = os.path.normpath(path[len("/latest/"):]).lstrip("/")
    if rel.startswith(".."):
        return reply("404 Not Found")
    f = os.path.join(root, rel)
    if os.path.isdir(f):
        return reply("200 OK", "\n".join(sorted(os.listdir(f))).encode())
    if os.path.isfile(f):
        with open(f, "rb") as fh:
            return reply("200 OK", fh.read())
    return reply("404 Not Found")


if __name__ == "__main__":
    main()
