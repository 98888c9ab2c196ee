//! PuTTY private key files (`.ppk`), unencrypted, as described in appendix C
//! of the PuTTY manual (<https://tartarus.org/~simon/putty-snapshots/htmldoc/AppendixC.html>).
//!
//! A file is a few text headers, the public key blob and the private key blob
//! in base64 lines of 64 characters, and a MAC over algorithm, encryption,
//! comment and both blobs:
//!
//! - version 2: HMAC-SHA-1 keyed with SHA-1("putty-private-key-file-mac-key"
//!   followed by the passphrase, empty here);
//! - version 3: HMAC-SHA-256; for an unencrypted file the key is empty and
//!   there are no `Key-Derivation` headers.
//!
//! EC2 returns an "unencrypted PPK formatted private key"; this crate writes
//! version 2, which every PuTTY since 0.52 reads (version 3 needs 0.75+).

use base64::Engine as _;
use hmac::Hmac;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::wire::Writer;

/// PPK file format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PpkVersion {
    /// `PuTTY-User-Key-File-2`, HMAC-SHA-1.
    V2,
    /// `PuTTY-User-Key-File-3`, HMAC-SHA-256.
    #[cfg_attr(not(test), allow(dead_code))]
    V3,
}

/// The private blob of an RSA key: `mpint d, mpint p, mpint q, mpint iqmp`
/// where `iqmp = q^-1 mod p` (big-endian magnitudes).
pub(crate) fn rsa_private_blob(d: &[u8], p: &[u8], q: &[u8], iqmp: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.mpint(d).mpint(p).mpint(q).mpint(iqmp);
    w.into_bytes()
}

/// The private blob of an ED25519 key: the 32-byte seed as a `string`.
pub(crate) fn ed25519_private_blob(seed: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(seed);
    w.into_bytes()
}

/// The `Private-MAC` of an unencrypted file.
pub(crate) fn mac(
    version: PpkVersion,
    algorithm: &str,
    comment: &str,
    public_blob: &[u8],
    private_blob: &[u8],
) -> Vec<u8> {
    let mut data = Writer::new();
    data.string(algorithm.as_bytes())
        .string(b"none")
        .string(comment.as_bytes())
        .string(public_blob)
        .string(private_blob);
    let data = data.into_bytes();
    match version {
        PpkVersion::V2 => {
            let key = Sha1::digest(b"putty-private-key-file-mac-key");
            mac_with::<Hmac<Sha1>>(&key, &data)
        }
        PpkVersion::V3 => mac_with::<Hmac<Sha256>>(&[], &data),
    }
}

fn mac_with<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this never falls back.
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Encodes an unencrypted PPK file with LF line endings (as PuTTYgen 0.75+
/// writes them). CR and LF in `comment` are replaced by spaces: the format
/// cannot carry them.
pub(crate) fn encode(
    version: PpkVersion,
    algorithm: &str,
    comment: &str,
    public_blob: &[u8],
    private_blob: &[u8],
) -> String {
    let comment = comment.replace(['\r', '\n'], " ");
    let number = match version {
        PpkVersion::V2 => 2,
        PpkVersion::V3 => 3,
    };
    let mac = mac(version, algorithm, &comment, public_blob, private_blob);
    let mut out = format!(
        "PuTTY-User-Key-File-{number}: {algorithm}\nEncryption: none\nComment: {comment}\n"
    );
    push_lines(&mut out, "Public", public_blob);
    push_lines(&mut out, "Private", private_blob);
    out.push_str("Private-MAC: ");
    out.push_str(&hex::encode(mac));
    out.push('\n');
    out
}

/// Appends `<label>-Lines: N` and the blob in base64 lines of 64 characters.
fn push_lines(out: &mut String, label: &str, blob: &[u8]) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(blob);
    // base64 output is ASCII, so byte chunks are valid UTF-8.
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    out.push_str(&format!("{label}-Lines: {}\n", lines.len()));
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use hmac::Mac as _;

    /// The fields of a parsed unencrypted PPK file.
    #[derive(Debug)]
    pub(crate) struct Parsed {
        pub(crate) version: PpkVersion,
        pub(crate) algorithm: String,
        pub(crate) comment: String,
        pub(crate) public_blob: Vec<u8>,
        pub(crate) private_blob: Vec<u8>,
        pub(crate) mac: Vec<u8>,
    }

    /// A strict parser for unencrypted PPK files, written from the PuTTY
    /// manual independently of the encoder above. Accepts LF or CRLF.
    pub(crate) fn parse(text: &str) -> Parsed {
        let mut lines = text.lines();
        let mut header = |name: &str| -> String {
            let line = lines.next().expect("truncated ppk");
            let (k, v) = line.split_once(": ").expect("header line");
            assert_eq!(k, name, "header order");
            v.to_string()
        };
        let first_line = text.lines().next().expect("empty");
        let version = if first_line.starts_with("PuTTY-User-Key-File-2:") {
            PpkVersion::V2
        } else if first_line.starts_with("PuTTY-User-Key-File-3:") {
            PpkVersion::V3
        } else {
            panic!("not a ppk: {first_line}")
        };
        let algorithm = header(match version {
            PpkVersion::V2 => "PuTTY-User-Key-File-2",
            PpkVersion::V3 => "PuTTY-User-Key-File-3",
        });
        assert_eq!(header("Encryption"), "none");
        let comment = header("Comment");
        let public_lines: usize = header("Public-Lines").parse().expect("count");
        let mut public_b64 = String::new();
        for _ in 0..public_lines {
            let l = lines.next().expect("public line");
            assert!(l.len() <= 64);
            public_b64.push_str(l);
        }
        let mut header = |name: &str| -> String {
            let line = lines.next().expect("truncated ppk");
            let (k, v) = line.split_once(": ").expect("header line");
            assert_eq!(k, name, "header order");
            v.to_string()
        };
        let private_lines: usize = header("Private-Lines").parse().expect("count");
        let mut private_b64 = String::new();
        for _ in 0..private_lines {
            let l = lines.next().expect("private line");
            assert!(l.len() <= 64);
            private_b64.push_str(l);
        }
        let line = lines.next().expect("mac line");
        let mac_hex = line.strip_prefix("Private-MAC: ").expect("mac header");
        assert_eq!(lines.next(), None, "trailing data");
        Parsed {
            version,
            algorithm,
            comment,
            public_blob: STANDARD.decode(public_b64).expect("public base64"),
            private_blob: STANDARD.decode(private_b64).expect("private base64"),
            mac: hex::decode(mac_hex).expect("mac hex"),
        }
    }

    /// Parses `text` and checks its MAC, computed here from scratch with the
    /// `hmac` crate rather than through [`mac`].
    pub(crate) fn parse_and_verify(text: &str) -> Parsed {
        let p = parse(text);
        let mut data = Vec::new();
        for field in [
            p.algorithm.as_bytes(),
            b"none",
            p.comment.as_bytes(),
            &p.public_blob,
            &p.private_blob,
        ] {
            data.extend_from_slice(&u32::try_from(field.len()).expect("len").to_be_bytes());
            data.extend_from_slice(field);
        }
        match p.version {
            PpkVersion::V2 => {
                let key = Sha1::digest(b"putty-private-key-file-mac-key");
                let mut m = <Hmac<Sha1> as hmac::Mac>::new_from_slice(&key).expect("key");
                m.update(&data);
                m.verify_slice(&p.mac).expect("v2 MAC mismatch");
            }
            PpkVersion::V3 => {
                let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&[]).expect("key");
                m.update(&data);
                m.verify_slice(&p.mac).expect("v3 MAC mismatch");
            }
        }
        p
    }

    /// Reference files written by PuTTYgen, published as test data by other
    /// projects; the MAC of each is recomputed with [`mac`].
    const PUTTYGEN_ED25519_V2: &str = "PuTTY-User-Key-File-2: ssh-ed25519\r\nEncryption: none\r\nComment: ed25519-key-20240418\r\nPublic-Lines: 2\r\nAAAAC3NzaC1lZDI1NTE5AAAAILMyy5tkHvvUqRtQYHzOzkyR4PYwj1P284HBQXHv\r\nrKeh\r\nPrivate-Lines: 1\r\nAAAAIBwepG2OCCnYICCmTXNuDk6Hl/xdjPbNGY3CQlTLGBo4\r\nPrivate-MAC: 53075221be556e89770351391573dbb7dba661d2\r\n";
    const PUTTYGEN_ED25519_V3: &str = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: eddsa-key-20240414\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAILd1uFfzk6dLkf9HbdczyiLRnIz5d0fq0mRS5Nvp\ne9w7\nPrivate-Lines: 1\nAAAAICRy3RnrtQkRZx8kOEI9KHvTFEMmgOfBq2WdFCrRpIE6\nPrivate-MAC: acc8030afe46301f01e7eb8d3cda38ae54ddd219adfefe32548569b4ac107784\n";
    const PUTTYGEN_RSA_V2: &str = "PuTTY-User-Key-File-2: ssh-rsa\r\nEncryption: none\r\nComment: rsa-key-20141021\r\nPublic-Lines: 6\r\nAAAAB3NzaC1yc2EAAAABJQAAAQEAkr6tlPb0QODfJJRhwsSsN88TSB6pgk/6x1KM\r\nyVuDE6SeKz5sB4iaQfPleLSaWxuQEKkoa4sLAROy18lSk0PMioQHM6tgXbOcpTbS\r\nYf6uf1wtAMeFTO7vP0ZuIXbYmBmsK4DK1GWQq3Db5+Q/xbDp20dlCvCPMdokhYFr\r\nN2B9G0C4AKgXRMS+loEXwOeQiupfYcUXfZiCOoviArCcLgRsUNZTeTbP03skLBDr\r\n2xMdpaGx8QgSylz+yGeXRNjXaxE2mnwwVkBnNYsInZhw4/OdxddyilDealpcwp7x\r\nenAwWsoLd9NlpskNCEQsznPMAe66/PKvRGl22+8tpNBzDbnZsw==\r\nPrivate-Lines: 14\r\nAAABABPUk/9fpHd4VYF71dwMvVOmXI00k3J5gsD9UUuklSwrAJ4PWrTo8kBDjbZd\r\nmFGAQ+aTZlO41/k6A2lEuCG9Dc2HdphHl2abuzjru5CztrdDzrrqh6Kc1Dj7rgSF\r\nrpEYOdxdgzF1gkCuYuf8P/ge035/RQF6dDcrUQsfU62JlF2gwQpVbQZ97DC9uGtt\r\nktYY0pSVU36xty4uQ148mOC8TXWFOxaGPOFq14sxmBUFVhHsmHnytQULIkibRCze\r\nbfkpJNAizNKTNCfupd3aub205kzG48blZ3eWxYtK3mreiSDvhdWNWiyVhTajkXGQ\r\nr3a+AqE/8e5Qks7ekzbpKk388a0AAACBAOftyBzFLENp3ccimF7ctlS44H2hfas4\r\n2PQVbDpCKrY1u0XC+vn/GqgAVq/hcHeK6DrkaEK23Q30phNN7+8BDzR1VxO27TLg\r\nUdwFE0z/0jnTuwkJcusO7bCb3dGGUX4ENSyRpNJVyu4X4iKuz03+ccPD3utkTIMI\r\nzCskK5VQT0MBAAAAgQCh+ZsG6SfakMD76b3zF3xaw8bJmPe+q/YumlDDbM6sG9q+\r\n3Fp5trBBJbGjXhTCyUkOuWiUh8cmVBFYRHrtz9GLVCOXVd6yYOzHlTKSNRnu7Slt\r\njdX1s0QphmPlQ6/uyUIAhrIrOkVFKNrV10Kex/7jwwdfL8i1cecng+dxfE4AswAA\r\nAIEAiWClSrfWJTIKa3CZtIxlbHFHNLAVEuDjGeyKIMZ96qDEM7jDQ4vUzAagw60D\r\nqUsJQMyx9RFfSLDYE3TZaXGrGdSXcFBz9f9xLcWLe/2LH7NUmjpUf5GnlMSs7+Br\r\nET2wiPd6NDf1kka+4+zMOgFqJF44xgDuNLnM3ty4EFlfzlY=\r\nPrivate-MAC: 6e0ff7c94a3253c5e45b3e06951e04d2b06e6262\r\n";

    #[test]
    fn mac_matches_puttygen_files() {
        for text in [PUTTYGEN_ED25519_V2, PUTTYGEN_ED25519_V3, PUTTYGEN_RSA_V2] {
            let p = parse_and_verify(text);
            assert_eq!(
                mac(
                    p.version,
                    &p.algorithm,
                    &p.comment,
                    &p.public_blob,
                    &p.private_blob
                ),
                p.mac,
                "{}",
                p.comment
            );
        }
    }

    #[test]
    fn encode_reproduces_puttygen_files_byte_for_byte() {
        for text in [PUTTYGEN_ED25519_V2, PUTTYGEN_ED25519_V3, PUTTYGEN_RSA_V2] {
            let p = parse(text);
            let ours = encode(
                p.version,
                &p.algorithm,
                &p.comment,
                &p.public_blob,
                &p.private_blob,
            );
            assert_eq!(ours, text.replace("\r\n", "\n"));
        }
    }

    #[test]
    fn ed25519_private_blob_layout_matches_puttygen() {
        // The seed in PuTTYgen's private blob derives the public key it stores.
        let p = parse(PUTTYGEN_ED25519_V2);
        let seed: [u8; 32] = p.private_blob[4..].try_into().expect("32 bytes");
        assert_eq!(ed25519_private_blob(&seed), p.private_blob);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        assert_eq!(
            &p.public_blob[p.public_blob.len() - 32..],
            public.as_bytes()
        );
    }

    #[test]
    fn comment_newlines_are_flattened() {
        let text = encode(PpkVersion::V2, "ssh-ed25519", "a\r\nb", b"x", b"y");
        let p = parse_and_verify(&text);
        assert_eq!(p.comment, "a  b");
    }
}
