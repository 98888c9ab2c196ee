"""Independent key/fingerprint computations (openssl, ssh-keygen, hashlib).

EC2 fingerprint rules (EC2 API reference, KeyPairInfo.keyFingerprint):
  * CreateKeyPair RSA:   SHA-1 of the DER-encoded private key in PKCS#8,
                         hex with colons (openssl pkcs8 -topk8 -nocrypt -outform DER | openssl sha1 -c)
  * ImportKeyPair RSA:   MD5 of the DER-encoded public key (SubjectPublicKeyInfo),
                         hex with colons (openssl rsa -pubout -outform DER | openssl md5 -c)
  * ED25519 (both):      base64 of the SHA-256 of the SSH public key blob
                         (what `ssh-keygen -l -E sha256` prints, without the SHA256: prefix)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import subprocess
import tempfile
from pathlib import Path


def _run(cmd, data: bytes | None = None) -> bytes:
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def openssl_digest_colon(alg: str, data: bytes) -> str:
    """`openssl <alg> -c` over data; returns the aa:bb:.. part."""
    out = _run(["openssl", alg, "-c"], data).decode().strip()
    return out.split("= ", 1)[-1].strip() if "= " in out else out.split()[-1]


def rsa_pem_private_to_pkcs8_der(pem: str) -> bytes:
    return _run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-inform", "PEM", "-outform", "DER"], pem.encode())


def created_rsa_fingerprint(private_pem: str) -> str:
    der = rsa_pem_private_to_pkcs8_der(private_pem)
    fp = openssl_digest_colon("sha1", der)
    assert fp == colon_hex(hashlib.sha1(der).digest())
    return fp


def imported_rsa_fingerprint_from_openssh_pub(pub_line: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".pub", delete=False) as f:
        f.write(pub_line + "\n")
        name = f.name
    try:
        pkcs8_pub_pem = _run(["ssh-keygen", "-e", "-m", "PKCS8", "-f", name])
    finally:
        Path(name).unlink()
    der = _run(["openssl", "pkey", "-pubin", "-inform", "PEM", "-outform", "DER"], pkcs8_pub_pem)
    return openssl_digest_colon("md5", der)


def rsa_spki_der_from_openssh_pub(pub_line: str) -> bytes:
    with tempfile.NamedTemporaryFile("w", suffix=".pub", delete=False) as f:
        f.write(pub_line + "\n")
        name = f.name
    try:
        pem = _run(["ssh-keygen", "-e", "-m", "PKCS8", "-f", name])
    finally:
        Path(name).unlink()
    return _run(["openssl", "pkey", "-pubin", "-inform", "PEM", "-outform", "DER"], pem)


def ssh_pub_blob(pub_line: str) -> bytes:
    return base64.b64decode(pub_line.split()[1])


def ed25519_fingerprint(pub_line: str) -> str:
    """base64(SHA-256(blob)) with padding; cross-checked against ssh-keygen."""
    digest = hashlib.sha256(ssh_pub_blob(pub_line)).digest()
    fp = base64.b64encode(digest).decode()
    with tempfile.NamedTemporaryFile("w", suffix=".pub", delete=False) as f:
        f.write(pub_line + "\n")
        name = f.name
    try:
        out = _run(["ssh-keygen", "-l", "-E", "sha256", "-f", name]).decode()
    finally:
        Path(name).unlink()
    sk = out.split()[1]
    assert sk == "SHA256:" + fp.rstrip("="), (sk, fp)
    return fp


def public_from_private(private_text: str, tmp_dir: Path) -> str:
    """`ssh-keygen -y` on a private key (PEM or OpenSSH format): 'type base64'."""
    p = Path(tmp_dir) / "priv.key"
    p.write_text(private_text if private_text.endswith("\n") else private_text + "\n")
    p.chmod(0o600)
    out = _run(["ssh-keygen", "-y", "-f", str(p)]).decode().strip()
    p.unlink()
    return " ".join(out.split()[:2])


def same_pub(a: str, b: str) -> bool:
    return a.split()[:2] == b.split()[:2]


# ---------------------------------------------------------------- PuTTY .ppk


def _read_string(buf: bytes, off: int) -> tuple[bytes, int]:
    (n,) = struct.unpack(">I", buf[off : off + 4])
    return buf[off + 4 : off + 4 + n], off + 4 + n


def _ssh_string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def parse_ppk(text: str) -> dict:
    """Parse an unencrypted PPK v2/v3 file and verify its MAC."""
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    hdr = {}

    def take_block(label):
        nonlocal i
        k, v = lines[i].split(": ", 1)
        assert k == label, (k, label)
        count = int(v)
        data = "".join(lines[i + 1 : i + 1 + count])
        i += 1 + count
        return base64.b64decode(data)

    first_k, first_v = lines[0].split(": ", 1)
    assert first_k in ("PuTTY-User-Key-File-2", "PuTTY-User-Key-File-3"), first_k
    version = int(first_k[-1])
    hdr["algorithm"] = first_v
    i = 1
    k, v = lines[i].split(": ", 1)
    assert k == "Encryption" and v == "none", lines[i]
    hdr["encryption"] = v
    i += 1
    k, v = lines[i].split(": ", 1)
    assert k == "Comment"
    hdr["comment"] = v
    i += 1
    public = take_block("Public-Lines")
    if version == 3:
        k, v = lines[i].split(": ", 1)
        assert k == "Key-Derivation" or k == "Private-Lines", k
        if k == "Key-Derivation":
            raise AssertionError("unencrypted v3 PPK must not carry Key-Derivation")
    private = take_block("Private-Lines")
    k, v = lines[i].split(": ", 1)
    assert k == "Private-MAC", k
    mac = bytes.fromhex(v.strip())
    macdata = b"".join(
        _ssh_string(x)
        for x in (hdr["algorithm"].encode(), b"none", hdr["comment"].encode(), public, private)
    )
    if version == 2:
        key = hashlib.sha1(b"putty-private-key-file-mac-key").digest()
        want = hmac.new(key, macdata, hashlib.sha1).digest()
    else:
        want = hmac.new(b"", macdata, hashlib.sha256).digest()
    assert hmac.compare_digest(mac, want), "PPK Private-MAC does not verify"
    return {"version": version, "public": public, "private": private, **hdr}


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_int(x: int) -> bytes:
    b = x.to_bytes(max(1, (x.bit_length() + 8) // 8), "big")
    return b"\x02" + _der_len(len(b)) + b


def _der_seq(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"\x30" + _der_len(len(body)) + body


def ppk_rsa_to_pkcs1_der(ppk: dict) -> bytes:
    pub = ppk["public"]
    alg, off = _read_string(pub, 0)
    assert alg == b"ssh-rsa"
    e, off = _read_string(pub, off)
    n, off = _read_string(pub, off)
    priv = ppk["private"]
    d, off = _read_string(priv, 0)
    p, off = _read_string(priv, off)
    q, off = _read_string(priv, off)
    iqmp, off = _read_string(priv, off)
    E, N, D, P, Q, IQ = (int.from_bytes(x, "big") for x in (e, n, d, p, q, iqmp))
    assert P * Q == N, "PPK p*q != n"
    return _der_seq(
        _der_int(0), _der_int(N), _der_int(E), _der_int(D), _der_int(P), _der_int(Q),
        _der_int(D % (P - 1)), _der_int(D % (Q - 1)), _der_int(IQ),
    )


def ppk_rsa_created_fingerprint(ppk: dict) -> str:
    pkcs1 = ppk_rsa_to_pkcs1_der(ppk)
    # let openssl check the key and produce the PKCS#8 DER
    _run(["openssl", "rsa", "-inform", "DER", "-check", "-noout"], pkcs1)
    der = _run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-inform", "DER", "-outform", "DER"], pkcs1)
    return openssl_digest_colon("sha1", der)


def ppk_public_line(ppk: dict) -> str:
    return f"{ppk['algorithm']} {base64.b64encode(ppk['public']).decode()}"
