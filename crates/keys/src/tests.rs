//! Tests across modules: known answers from fixed keys in `testdata/`
//! (generated once with openssl and ssh-keygen, see `testdata/README.md`),
//! round trips of freshly created keys, import of every accepted format,
//! rejections, and cross-checks against the `openssl`, `ssh-keygen` and
//! `puttygen` command-line tools where they are installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPrivateKey};
use sha1::{Digest as _, Sha1};

use crate::ppk::tests::parse_and_verify;
use crate::wire::Reader;
use crate::*;

/// Fingerprints printed by the tools for the fixed test keys.
const RSA2048_CREATED_SHA1: &str = "47:25:04:49:44:a3:a8:21:94:e4:b5:1e:67:1a:c2:00:68:80:be:01";
const RSA2048_IMPORTED_MD5: &str = "48:04:a0:89:ae:2d:d4:b0:c0:69:b7:fd:48:de:98:61";
const RSA1024_IMPORTED_MD5: &str = "9b:63:ee:20:71:60:f1:03:70:93:51:b2:10:b8:d7:06";
const RSA4096_IMPORTED_MD5: &str = "c1:0a:e8:5e:7c:bb:82:df:50:15:4c:6e:c1:05:b6:43";
/// `ssh-keygen -lf ed25519.pub` prints this without the trailing `=`.
const ED25519_SHA256: &str = "IudsYo/Tkopq+zG9ne2mZM8Kmm7I+//yuIA5oHHaJPM=";

fn testdata(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first two words of an OpenSSH public key line (drops the comment).
fn without_comment(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn colon_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).expect("hex"))
        .collect::<Vec<_>>()
        .join(":")
}

fn fixed_rsa() -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs1_pem(&testdata("rsa2048.pem")).expect("rsa2048.pem")
}

fn fixed_ed25519_seed() -> [u8; 32] {
    let key = ssh_key::PrivateKey::from_openssh(testdata("ed25519")).expect("ed25519");
    key.key_data()
        .ed25519()
        .expect("ed25519 key")
        .private
        .to_bytes()
}

// ---------------------------------------------------------------- known answers

#[test]
fn created_rsa_fingerprint_matches_openssl_known_answer() {
    let created = create::from_rsa(fixed_rsa(), KeyFormat::Pem, "").expect("encode");
    assert_eq!(created.fingerprint, RSA2048_CREATED_SHA1);
    // The PKCS#1 PEM comes out byte for byte as openssl wrote it.
    assert_eq!(created.key_material, testdata("rsa2048.pem"));
    assert_eq!(
        created.public_key_openssh,
        without_comment(&testdata("rsa2048.pub"))
    );
}

#[test]
fn created_ed25519_fingerprint_matches_ssh_keygen_known_answer() {
    let seed = fixed_ed25519_seed();
    let created = create::from_ed25519_seed(&seed, KeyFormat::Pem, "mallee-test").expect("encode");
    assert_eq!(created.fingerprint, ED25519_SHA256);
    assert_eq!(
        created.public_key_openssh,
        without_comment(&testdata("ed25519.pub"))
    );
    // The checkint differs from ssh-keygen's random one; the key does not.
    let ours = ssh_key::PrivateKey::from_openssh(&created.key_material).expect("parse");
    let theirs = ssh_key::PrivateKey::from_openssh(testdata("ed25519")).expect("parse");
    assert_eq!(ours.key_data(), theirs.key_data());
    assert_eq!(ours.comment(), "mallee-test");
}

#[test]
fn import_rsa_every_format_gives_the_openssl_md5() {
    let expected = ImportedKey {
        key_type: KeyType::Rsa,
        public_key_openssh: without_comment(&testdata("rsa2048.pub")),
        fingerprint: RSA2048_IMPORTED_MD5.to_string(),
    };
    for file in [
        "rsa2048.pub",
        "rsa2048.der.b64",
        "rsa2048.rfc4716",
        "rsa2048.spki.pem",
        "rsa2048.pkcs1.pub.pem",
    ] {
        let got = import(testdata(file).as_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got, expected, "{file}");
    }
}

#[test]
fn import_rsa_sizes_1024_to_4096() {
    for (file, md5) in [
        ("rsa1024.pub", RSA1024_IMPORTED_MD5),
        ("rsa4096.pub", RSA4096_IMPORTED_MD5),
    ] {
        let text = testdata(file);
        let got = import(text.as_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got.key_type, KeyType::Rsa);
        assert_eq!(got.fingerprint, md5, "{file}");
        assert_eq!(got.public_key_openssh, without_comment(&text));
    }
}

#[test]
fn import_ed25519_openssh_and_rfc4716() {
    for file in ["ed25519.pub", "ed25519.rfc4716"] {
        let got = import(testdata(file).as_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got.key_type, KeyType::Ed25519);
        assert_eq!(got.fingerprint, ED25519_SHA256, "{file}");
        assert_eq!(
            got.public_key_openssh,
            without_comment(&testdata("ed25519.pub"))
        );
    }
}

#[test]
fn import_ed25519_spki_der_and_pem() {
    let seed = fixed_ed25519_seed();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let der = ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_der(&public).expect("der");
    let b64 = STANDARD.encode(der.as_bytes());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    for material in [b64, pem] {
        let got = import(material.as_bytes()).expect("import");
        assert_eq!(got.key_type, KeyType::Ed25519);
        assert_eq!(got.fingerprint, ED25519_SHA256);
    }
}

#[test]
fn import_tolerates_whitespace_and_line_wrapping() {
    let pub_line = testdata("rsa2048.pub");
    let padded = format!("  \r\n{}\r\n\r\n", pub_line.trim());
    assert_eq!(
        import(padded.as_bytes()).expect("padded").fingerprint,
        RSA2048_IMPORTED_MD5
    );
    let no_comment = without_comment(&pub_line);
    assert_eq!(
        import(no_comment.as_bytes())
            .expect("no comment")
            .fingerprint,
        RSA2048_IMPORTED_MD5
    );
    let der = testdata("rsa2048.der.b64");
    let wrapped: String = der
        .trim()
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", std::str::from_utf8(c).expect("ascii")))
        .collect();
    assert_eq!(
        import(wrapped.as_bytes()).expect("wrapped").fingerprint,
        RSA2048_IMPORTED_MD5
    );
}

#[test]
fn import_rfc4716_with_continued_headers() {
    let original = testdata("rsa2048.rfc4716");
    let body: String = original
        .lines()
        .filter(|l| !l.starts_with("----") && !l.contains(':'))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!(
        "---- BEGIN SSH2 PUBLIC KEY ----\nSubject: me\nComment: \"a long comment that \\\ncontinues: here\"\nx-Private: yes\n{body}---- END SSH2 PUBLIC KEY ----\n"
    );
    assert_eq!(
        import(text.as_bytes()).expect("rfc4716").fingerprint,
        RSA2048_IMPORTED_MD5
    );
}

// ---------------------------------------------------------------- rejections

fn assert_invalid_format(material: &[u8], what: &str) {
    let err = import(material).expect_err(what);
    assert_eq!(err, KeyError::InvalidKeyFormat, "{what}");
    assert_eq!(err.aws_code(), "InvalidKey.Format", "{what}");
    assert_eq!(
        err.to_string(),
        "Key is not in valid OpenSSH public key format",
        "{what}"
    );
}

#[test]
fn import_rejects_dsa_and_ecdsa() {
    assert_invalid_format(testdata("dsa.pub").as_bytes(), "dsa");
    assert_invalid_format(testdata("ecdsa.pub").as_bytes(), "ecdsa");
    // The same blobs in RFC 4716 and with a lying algorithm name.
    for file in ["dsa.pub", "ecdsa.pub"] {
        let line = testdata(file);
        let blob = line.split_whitespace().nth(1).expect("blob");
        let rfc =
            format!("---- BEGIN SSH2 PUBLIC KEY ----\n{blob}\n---- END SSH2 PUBLIC KEY ----\n");
        assert_invalid_format(rfc.as_bytes(), "rfc4716 dsa/ecdsa");
        assert_invalid_format(format!("ssh-rsa {blob}").as_bytes(), "renamed");
    }
}

#[test]
fn import_rejects_rsa_outside_1024_to_4096_bits() {
    assert_invalid_format(testdata("rsa512.der.b64").as_bytes(), "512");
    assert_invalid_format(testdata("rsa8192.der.b64").as_bytes(), "8192");
}

#[test]
fn import_rejects_garbage() {
    let rsa_line = testdata("rsa2048.pub");
    let rsa_blob = rsa_line.split_whitespace().nth(1).expect("blob");
    let truncated = &rsa_blob[..rsa_blob.len() - 8];
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("   \n".into(), "blank"),
        ("hello world".into(), "words"),
        ("ssh-rsa".into(), "no blob"),
        ("ssh-rsa !!!notbase64".into(), "bad base64"),
        (format!("ssh-rsa {truncated}"), "truncated blob"),
        (format!("ssh-ed25519 {rsa_blob}"), "mismatched algorithm"),
        (
            format!("no-pty {}", rsa_line.trim()),
            "authorized_keys options",
        ),
        (
            format!("{}\n{}", rsa_line.trim(), rsa_line.trim()),
            "two keys",
        ),
        ("QUJDRA==".into(), "base64 of nothing useful"),
        (
            "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n".into(),
            "unterminated rfc4716",
        ),
        (
            format!(
                "---- BEGIN SSH2 PUBLIC KEY ----\n{rsa_blob}\n---- END SSH2 PUBLIC KEY ----\nextra"
            ),
            "trailing data after rfc4716",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
            "bad pem",
        ),
        (testdata("rsa2048.pem"), "private key"),
    ];
    for (material, what) in cases {
        assert_invalid_format(material.as_bytes(), what);
    }
    // Trailing bytes inside the blob.
    let mut blob = STANDARD.decode(rsa_blob).expect("b64");
    blob.push(0);
    assert_invalid_format(
        format!("ssh-rsa {}", STANDARD.encode(&blob)).as_bytes(),
        "trailing",
    );
    // An ED25519 key that is not a curve point (about half of all 32-byte
    // strings are not).
    let not_a_point = (0u8..=255)
        .map(|i| [i; 32])
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .expect("some byte string is not a point");
    let mut w = wire::Writer::new();
    w.string(b"ssh-ed25519").string(&not_a_point);
    let bad = format!("ssh-ed25519 {}", STANDARD.encode(w.into_bytes()));
    assert_invalid_format(bad.as_bytes(), "not a point");
}

#[test]
fn import_length_and_charset_limits() {
    let long = vec![b'A'; 2049];
    let err = import(&long).expect_err("too long");
    assert_eq!(err, KeyError::MaterialTooLong);
    assert_eq!(err.aws_code(), "InvalidParameterValue");
    let err = import("ssh-rsa AAAA é".as_bytes()).expect_err("non-ascii");
    assert_eq!(err, KeyError::MaterialNotAscii);
    assert_eq!(err.aws_code(), "InvalidParameterValue");
}

#[test]
fn key_type_and_format_wire_values() {
    assert_eq!("rsa".parse::<KeyType>(), Ok(KeyType::Rsa));
    assert_eq!("ed25519".parse::<KeyType>(), Ok(KeyType::Ed25519));
    assert_eq!(KeyType::Ed25519.as_str(), "ed25519");
    assert_eq!(KeyType::default(), KeyType::Rsa);
    assert_eq!("pem".parse::<KeyFormat>(), Ok(KeyFormat::Pem));
    assert_eq!("ppk".parse::<KeyFormat>(), Ok(KeyFormat::Ppk));
    assert_eq!(KeyFormat::Ppk.to_string(), "ppk");
    assert_eq!(KeyFormat::default(), KeyFormat::Pem);
    let err = "dsa".parse::<KeyType>().expect_err("dsa");
    assert_eq!(err.aws_code(), "InvalidParameterValue");
    assert!(err.to_string().contains("KeyType"));
    assert!("PEM".parse::<KeyFormat>().is_err());
}

#[test]
fn created_key_debug_hides_private_key() {
    let created = create::from_ed25519_seed(&[7; 32], KeyFormat::Pem, "x").expect("encode");
    let shown = format!("{created:?}");
    assert!(!shown.contains("PRIVATE KEY"));
    assert!(shown.contains(&created.fingerprint));
}

// ---------------------------------------------------------------- fresh keys

/// Checks a PPK holding an RSA key: MAC, public blob, and the private blob's
/// `d, p, q, iqmp` against the public key.
fn check_rsa_ppk(text: &str, created: &CreatedKey, comment: &str) {
    let p = parse_and_verify(text);
    assert_eq!(p.version, ppk::PpkVersion::V2);
    assert_eq!(p.algorithm, "ssh-rsa");
    assert_eq!(p.comment, comment);
    assert_eq!(
        format!("ssh-rsa {}", STANDARD.encode(&p.public_blob)),
        created.public_key_openssh
    );
    let mut r = Reader::new(&p.public_blob);
    assert_eq!(r.string(), Some(&b"ssh-rsa"[..]));
    let e = BigUint::from_bytes_be(r.positive_mpint().expect("e"));
    let n = BigUint::from_bytes_be(r.positive_mpint().expect("n"));
    assert!(r.is_empty());
    let mut r = Reader::new(&p.private_blob);
    let d = BigUint::from_bytes_be(r.positive_mpint().expect("d"));
    let pp = BigUint::from_bytes_be(r.positive_mpint().expect("p"));
    let q = BigUint::from_bytes_be(r.positive_mpint().expect("q"));
    let iqmp = BigUint::from_bytes_be(r.positive_mpint().expect("iqmp"));
    assert!(r.is_empty());
    let one = BigUint::from(1u8);
    assert_eq!(&pp * &q, n);
    assert!(pp > q, "PuTTY wants p > q");
    assert_eq!((&iqmp * &q) % &pp, one);
    assert_eq!((&e * &d) % (&pp - &one), one);
    assert_eq!((&e * &d) % (&q - &one), one);
}

#[test]
fn created_rsa_round_trips_through_parsers() {
    let created = create(KeyType::Rsa, KeyFormat::Pem, "ignored").expect("create");
    assert!(
        created
            .key_material
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
    );
    let key = RsaPrivateKey::from_pkcs1_pem(&created.key_material).expect("pkcs1");
    assert_eq!(key.n().bits(), 2048);
    key.validate().expect("valid key");
    // Fingerprint recomputed independently of the crate's code path.
    let der = key.to_pkcs8_der().expect("pkcs8");
    assert_eq!(
        created.fingerprint,
        colon_hex(&Sha1::digest(der.as_bytes()))
    );
    // The public key parses with ssh-key and matches.
    let public = ssh_key::PublicKey::from_openssh(&created.public_key_openssh).expect("openssh");
    let ssh_rsa = public.key_data().rsa().expect("rsa");
    assert_eq!(
        ssh_rsa.n.as_positive_bytes(),
        Some(&key.n().to_bytes_be()[..])
    );
    assert_eq!(
        ssh_rsa.e.as_positive_bytes(),
        Some(&key.e().to_bytes_be()[..])
    );
    // The same key as PPK: fingerprint and public key unchanged.
    let as_ppk = create::from_rsa(key, KeyFormat::Ppk, "my key").expect("ppk");
    assert_eq!(as_ppk.fingerprint, created.fingerprint);
    assert_eq!(as_ppk.public_key_openssh, created.public_key_openssh);
    check_rsa_ppk(&as_ppk.key_material, &created, "my key");
    // Importing the public half of a created key gives the MD5 fingerprint.
    let imported = import(created.public_key_openssh.as_bytes()).expect("import");
    assert_eq!(imported.public_key_openssh, created.public_key_openssh);
    assert_eq!(imported.fingerprint.len(), 47);
    // Cross-check with the command-line tools.
    tools::check_rsa_pem(&created);
}

#[test]
fn fixed_rsa_as_ppk() {
    let pem = create::from_rsa(fixed_rsa(), KeyFormat::Pem, "").expect("pem");
    let created = create::from_rsa(fixed_rsa(), KeyFormat::Ppk, "rsa2048").expect("ppk");
    assert_eq!(created.fingerprint, RSA2048_CREATED_SHA1);
    check_rsa_ppk(&created.key_material, &pem, "rsa2048");
    tools::check_ppk(&created, "rsa2048");
}

#[test]
fn created_ed25519_round_trips_through_parsers() {
    let created = create(KeyType::Ed25519, KeyFormat::Pem, "key-name").expect("create");
    assert!(
        created
            .key_material
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    );
    let key = ssh_key::PrivateKey::from_openssh(&created.key_material).expect("openssh");
    assert_eq!(key.comment(), "key-name");
    assert_eq!(key.algorithm(), ssh_key::Algorithm::Ed25519);
    assert!(!key.is_encrypted());
    assert_eq!(
        key.public_key().to_openssh().expect("public"),
        format!("{} key-name", created.public_key_openssh)
    );
    let blob = key.public_key().to_bytes().expect("blob");
    let sha = sha2::Sha256::digest(&blob);
    assert_eq!(created.fingerprint, STANDARD.encode(sha));
    assert!(created.fingerprint.ends_with('='));
    // Same fingerprint on import.
    let imported = import(created.public_key_openssh.as_bytes()).expect("import");
    assert_eq!(imported.fingerprint, created.fingerprint);
    assert_eq!(imported.key_type, KeyType::Ed25519);
    tools::check_ed25519_pem(&created);
}

#[test]
fn created_ed25519_ppk() {
    let created = create(KeyType::Ed25519, KeyFormat::Ppk, "key-name").expect("create");
    let p = parse_and_verify(&created.key_material);
    assert_eq!(p.version, ppk::PpkVersion::V2);
    assert_eq!(p.algorithm, "ssh-ed25519");
    assert_eq!(p.comment, "key-name");
    assert_eq!(
        format!("ssh-ed25519 {}", STANDARD.encode(&p.public_blob)),
        created.public_key_openssh
    );
    let mut r = Reader::new(&p.private_blob);
    let seed: [u8; 32] = r.string().expect("seed").try_into().expect("32 bytes");
    assert!(r.is_empty());
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let public_key = ssh_key::PublicKey::from_bytes(&p.public_blob).expect("blob");
    assert_eq!(
        public_key.key_data().ed25519().expect("ed25519").0,
        public.to_bytes()
    );
    tools::check_ppk(&created, "key-name");
}

#[test]
fn fixed_ed25519_ppk_has_same_fingerprint_as_pem() {
    let seed = fixed_ed25519_seed();
    let created = create::from_ed25519_seed(&seed, KeyFormat::Ppk, "c").expect("ppk");
    assert_eq!(created.fingerprint, ED25519_SHA256);
    parse_and_verify(&created.key_material);
}

// ---------------------------------------------------------------- external tools

/// Cross-checks against the `openssl`, `ssh-keygen` and `puttygen` binaries.
/// A missing tool skips its check with a note on stderr.
mod tools {
    use super::*;

    /// A file in the temp directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "mallee-keys-{}-{:x}-{name}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::write(&path, contents).expect("write temp file");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
            }
            Self(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().expect("utf-8 temp path")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Runs `program args`, returning stdout, or `None` when the program is
    /// not installed.
    fn run(program: &str, args: &[&str]) -> Option<String> {
        match Command::new(program).args(args).output() {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "{program} {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(String::from_utf8(out.stdout).expect("utf-8 output"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("note: {program} not installed, skipping its cross-check");
                None
            }
            Err(e) => panic!("{program}: {e}"),
        }
    }

    /// The digest from `openssl <alg> -c FILE`, which prints `ALG(FILE)= xx:xx...`.
    fn openssl_digest(alg: &str, file: &str) -> Option<String> {
        let out = run("openssl", &[alg, "-c", file])?;
        let (_, digest) = out.trim().rsplit_once("= ").expect("openssl digest output");
        Some(digest.to_string())
    }

    pub(super) fn check_rsa_pem(created: &CreatedKey) {
        let pem = TempFile::new("key.pem", &created.key_material);
        let der = TempFile::new("key.pk8.der", "");
        // EC2's recipe for a created key's fingerprint.
        if run(
            "openssl",
            &[
                "pkcs8",
                "-in",
                pem.path(),
                "-inform",
                "PEM",
                "-outform",
                "DER",
                "-topk8",
                "-nocrypt",
                "-out",
                der.path(),
            ],
        )
        .is_some()
        {
            assert_eq!(
                openssl_digest("sha1", der.path()).as_deref(),
                Some(created.fingerprint.as_str())
            );
            // EC2's recipe for an imported key's fingerprint.
            let spki = TempFile::new("key.spki.der", "");
            run(
                "openssl",
                &[
                    "rsa",
                    "-in",
                    pem.path(),
                    "-pubout",
                    "-outform",
                    "DER",
                    "-out",
                    spki.path(),
                ],
            );
            let imported = import(created.public_key_openssh.as_bytes()).expect("import");
            assert_eq!(
                openssl_digest("md5", spki.path()).as_deref(),
                Some(imported.fingerprint.as_str())
            );
        }
        if let Some(out) = run("ssh-keygen", &["-y", "-f", pem.path()]) {
            assert_eq!(without_comment(&out), created.public_key_openssh);
        }
    }

    pub(super) fn check_ed25519_pem(created: &CreatedKey) {
        let key = TempFile::new("id_ed25519", &created.key_material);
        if let Some(out) = run("ssh-keygen", &["-y", "-f", key.path()]) {
            assert_eq!(without_comment(&out), created.public_key_openssh);
        }
        let public = TempFile::new("id_ed25519.pub", &created.public_key_openssh);
        if let Some(out) = run("ssh-keygen", &["-l", "-E", "sha256", "-f", public.path()]) {
            // "256 SHA256:<base64 without padding> no comment (ED25519)"
            let word = out.split_whitespace().nth(1).expect("fingerprint word");
            let unpadded = word.strip_prefix("SHA256:").expect("SHA256 prefix");
            assert_eq!(format!("{unpadded}="), created.fingerprint);
        }
    }

    pub(super) fn check_ppk(created: &CreatedKey, comment: &str) {
        let ppk = TempFile::new("key.ppk", &created.key_material);
        // puttygen checks the MAC when loading and fails on a mismatch.
        if let Some(out) = run(
            "puttygen",
            &[ppk.path(), "-O", "public-openssh", "-o", "/dev/stdout"],
        ) {
            assert_eq!(
                out.trim(),
                format!("{} {comment}", created.public_key_openssh)
            );
        }
    }
}
