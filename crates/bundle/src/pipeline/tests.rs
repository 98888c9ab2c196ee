//! The pipeline against itself and against the shell tools euca2ools
//! drives (`tar`, `gzip`, `openssl enc`, `split`).

use std::process::Command;

use super::*;
use crate::keys::{certificate_key, new_certificate, private_key};
use crate::{Manifest, ManifestFields};

fn image(len: usize) -> Vec<u8> {
    // Pseudo-random bytes (an LCG), which gzip cannot shrink much.
    let mut x: u32 = 12345;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

struct Bundle {
    dir: tempfile::TempDir,
    manifest: Manifest,
    key: BundleKey,
    user_key: rsa::RsaPrivateKey,
    cloud_key: rsa::RsaPrivateKey,
}

fn bundle_of(data: &[u8]) -> Bundle {
    let dir = tempfile::tempdir().expect("dir");
    let (cloud_pem, cloud_cert) = new_certificate("cloud", 2048).expect("cloud");
    let (user_pem, user_cert) = new_certificate("user", 2048).expect("user");
    let key = BundleKey::random();
    let bundled = bundle(
        data,
        "disk.img",
        data.len() as u64,
        &key,
        dir.path(),
        "disk.img",
        |_| {},
    )
    .expect("bundle");
    let user_key = private_key(&user_pem).expect("user key");
    let manifest = Manifest::build(
        ManifestFields {
            architecture: "x86_64".into(),
            kernel_id: Some("aki-0123456789abcdef0".into()),
            ramdisk_id: None,
            block_device_mappings: vec![
                ("ami".into(), "sda1".into()),
                ("root".into(), "/dev/sda1".into()),
            ],
            name: "disk.img".into(),
            user: "123456789012".into(),
            image_type: "machine".into(),
            digest: bundled.digest,
            size: data.len() as u64,
            parts: bundled.parts,
        },
        &key,
        &certificate_key(&cloud_cert).expect("cloud cert"),
        &certificate_key(&user_cert).expect("user cert"),
        &user_key,
    )
    .expect("manifest");
    Bundle {
        dir,
        manifest,
        key,
        user_key,
        cloud_key: private_key(&cloud_pem).expect("cloud key"),
    }
}

#[test]
fn bundle_then_unbundle_gives_the_image_back_across_parts() {
    let data = image(21 * 1024 * 1024 + 5);
    let b = bundle_of(&data);
    assert!(!b.manifest.parts.is_empty());
    let xml = b.manifest.to_xml();
    let read = Manifest::parse(&xml).expect("parse");
    assert_eq!(read, Manifest::parse(&read.to_xml()).expect("again"));
    let user_public = rsa::RsaPublicKey::from(&b.user_key);
    assert!(read.verify(&user_public), "signature verifies");
    assert_eq!(read.cloud_key(&b.cloud_key).expect("cloud"), b.key);
    assert_eq!(read.user_key(&b.user_key).expect("user"), b.key);
    let mut out = Vec::new();
    let n = unbundle_files(&read, &b.key, b.dir.path(), &mut out, |_| {}).expect("unbundle");
    assert_eq!(n, data.len() as u64);
    assert!(out == data);
}

#[test]
fn a_tampered_part_or_digest_fails() {
    let data = image(300_000);
    let b = bundle_of(&data);
    // A changed manifest field breaks the signature.
    let mut changed =
        Manifest::parse(&b.manifest.to_xml().replace("x86_64", "i386")).expect("parse");
    assert!(!changed.verify(&rsa::RsaPublicKey::from(&b.user_key)));
    // A wrong image digest.
    changed = b.manifest.clone();
    changed.digest = "0".repeat(40);
    let err = unbundle_files(&changed, &b.key, b.dir.path(), &mut Vec::new(), |_| {})
        .expect_err("must fail");
    assert!(matches!(err, BundleError::ImageDigest { .. }), "{err}");
    // A flipped byte in the part.
    let path = b.dir.path().join(&b.manifest.parts[0].filename);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let err = unbundle_files(&b.manifest, &b.key, b.dir.path(), &mut Vec::new(), |_| {})
        .expect_err("must fail");
    assert!(matches!(err, BundleError::PartDigest { .. }), "{err}");
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_bundle_made_by_the_shell_tools_unbundles() {
    if !["tar", "gzip", "openssl", "split", "sha1sum"]
        .iter()
        .all(|t| have(t))
    {
        eprintln!("skipped: shell tools missing");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let data = image(1_500_000);
    std::fs::write(dir.path().join("guest.img"), &data).expect("write");
    let key = BundleKey::random();
    let script = format!(
        "set -e; cd {dir}; tar -c -f - guest.img | tee tarball | gzip -c | \
         openssl enc -e -aes-128-cbc -K {k} -iv {iv} | split -a 2 -d -b 500000 - guest.img.part.; \
         sha1sum tarball | cut -d' ' -f1",
        dir = dir.path().display(),
        k = hex::encode(key.key),
        iv = hex::encode(key.iv)
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let digest = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut parts = Vec::new();
    for i in 0.. {
        let filename = format!("guest.img.part.{i:02}");
        let Ok(bytes) = std::fs::read(dir.path().join(&filename)) else {
            break;
        };
        parts.push(Part {
            filename,
            digest: hex::encode(Sha1::digest(&bytes)),
        });
    }
    assert!(parts.len() > 1);
    let mut unbundler = Unbundler::new(&key, &parts);
    let mut out = Vec::new();
    for part in parts.clone() {
        unbundler.begin_part();
        let bytes = std::fs::read(dir.path().join(&part.filename)).expect("part");
        for chunk in bytes.chunks(7777) {
            unbundler.push(chunk, &mut out).expect("push");
        }
        unbundler.end_part().expect("part digest");
    }
    unbundler
        .finish(&digest, data.len() as u64, &mut out)
        .expect("finish");
    assert!(out == data);

    // And what mallee bundles, openssl and tar take apart.
    let b = bundle_of(&data);
    let script = format!(
        "set -e; cd {dir}; cat {parts} | openssl enc -d -aes-128-cbc -K {k} -iv {iv} | gunzip -c | \
         tee tarball | tar -x -O -f - disk.img | cmp - {src}; sha1sum tarball | cut -d' ' -f1",
        dir = b.dir.path().display(),
        parts = b
            .manifest
            .parts
            .iter()
            .map(|p| p.filename.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        k = hex::encode(b.key.key),
        iv = hex::encode(b.key.iv),
        src = dir.path().join("guest.img").display(),
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        b.manifest.digest
    );
}
