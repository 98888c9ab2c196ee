"""Kept-alive connections: a request with an empty body must leave the
connection usable (or closed, and said so) for the client's next request."""

import socket
import time
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import REGION, etag_of, s3_client


def test_boto3_empty_put_then_more_requests_on_one_client(server, bucket):
    """boto3 sends an empty PutObject with `Expect: 100-continue`; the server
    answers it without a 100. botocore before 1.43.77 then misreads the next
    response on that connection and waits for it until the read timeout."""
    s3 = s3_client(server, read_timeout=3)
    s3.put_object(Bucket=bucket, Key="warm", Body=b"warm")
    steps = [("empty", b""), ("after", b"<x/>"), ("empty2", b""), ("empty3", b""), ("last", b"data")]
    for key, body in steps:
        t0 = time.monotonic()
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert put["ETag"] == etag_of(body), key
        assert time.monotonic() - t0 < 2, f"PutObject {key} took {time.monotonic() - t0:.1f} s"
    for key, body in steps:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == sorted(["warm", *(k for k, _ in steps)])


# ---------------------------------------------------------------- raw sockets


def signed_bytes(server, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    """One SigV4-signed HTTP/1.1 request, as sent on the wire."""
    netloc = urlsplit(server.endpoint).netloc
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers={"Host": netloc})
    creds = Credentials(server.admin["access_key_id"], server.admin["secret_access_key"])
    S3SigV4Auth(creds, "s3", REGION).add_auth(req)
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Wire:
    """Reads HTTP/1.1 responses off a socket, framed by Content-Length."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict, bytes]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError(f"connection closed mid-response: {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill():
                raise AssertionError(f"connection closed mid-body: {self.buf!r}")
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def final_response(self) -> tuple[int, dict, bytes, bool]:
        """The final response, and whether a 100 Continue came before it."""
        continued = False
        while True:
            status, headers, body = self.response()
            if status != 100:
                return status, headers, body, continued
            continued = True

    def closed_by_server(self, timeout: float = 2) -> bool:
        self.sock.settimeout(timeout)
        try:
            return not self._fill() and not self.buf
        except (TimeoutError, socket.timeout):
            return False

    def nothing_more(self, timeout: float = 0.3) -> bool:
        """No stray bytes after the last response (and no close)."""
        self.sock.settimeout(timeout)
        try:
            self._fill()
        except (TimeoutError, socket.timeout):
            pass
        return self.buf == b""


def connect(server) -> socket.socket:
    u = urlsplit(server.endpoint)
    return socket.create_connection((u.hostname, u.port), timeout=5)


def test_raw_empty_put_then_get_on_one_connection(server, s3, bucket):
    """Without `Expect`, an empty PUT keeps the connection: the PUT's and the
    next GET's responses both arrive on it, each exactly framed."""
    s3.put_object(Bucket=bucket, Key="full", Body=b"full body")
    with connect(server) as sock:
        wire = Wire(sock)
        sock.sendall(signed_bytes(server, "PUT", f"/{bucket}/empty"))
        status, headers, body = wire.response()
        assert status == 200, (headers, body)
        assert headers["etag"] == etag_of(b"")
        assert headers.get("connection", "").lower() != "close", headers
        assert wire.nothing_more()
        sock.sendall(signed_bytes(server, "GET", f"/{bucket}/empty"))
        status, headers, body = wire.response()
        assert (status, body) == (200, b""), headers
        assert headers["content-length"] == "0"
        # Both in one write (pipelined): still two whole responses.
        sock.sendall(signed_bytes(server, "PUT", f"/{bucket}/empty") + signed_bytes(server, "GET", f"/{bucket}/full"))
        assert wire.response()[0] == 200
        status, headers, body = wire.response()
        assert (status, body) == (200, b"full body"), headers
        assert wire.nothing_more()


def test_raw_empty_put_expecting_continue(server, s3, bucket):
    """An empty PUT with `Expect: 100-continue` is answered; unless a 100
    Continue came first, the answer says `Connection: close` and the server
    closes, so a client waiting for a 100 cannot mistake the next response."""
    s3.put_object(Bucket=bucket, Key="full", Body=b"full body")
    with connect(server) as sock:
        wire = Wire(sock)
        sock.sendall(signed_bytes(server, "PUT", f"/{bucket}/empty", headers={"Expect": "100-continue"}))
        status, headers, body, continued = wire.final_response()
        assert status == 200, (headers, body)
        assert headers["etag"] == etag_of(b"")
        if not continued:
            assert headers.get("connection", "").lower() == "close", headers
            assert wire.closed_by_server()
    with connect(server) as sock:
        wire = Wire(sock)
        sock.sendall(signed_bytes(server, "GET", f"/{bucket}/empty"))
        status, headers, body = wire.response()
        assert (status, body) == (200, b""), headers
        # A non-empty body with Expect gets its 100 and keeps the connection.
        sock.sendall(signed_bytes(server, "PUT", f"/{bucket}/k", b"abc", headers={"Expect": "100-continue"}))
        status, headers, body, continued = wire.final_response()
        assert (status, continued) == (200, True), headers
        assert headers.get("connection", "").lower() != "close", headers
        sock.sendall(signed_bytes(server, "GET", f"/{bucket}/full"))
        assert wire.response()[2] == b"full body"
        assert wire.nothing_more()
