//! The bundle manifest, version 2007-10-10, as euca2ools'
//! `BundleManifest.dump_to_str` and ec2-ami-tools write it: the
//! `machine_configuration` (architecture, block device mappings, kernel
//! and ramdisk), the `image` (name, then `user` immediately followed by
//! `type`, as EC2 requires; the SHA-1 of the tar stream; size and bundled
//! size; the AES key and IV wrapped for the cloud and for the user; the
//! parts with their SHA-1) and the hex RSA-SHA1 `signature` of the two
//! elements' text exactly as written.
//!
//! Verification takes the signed text from the document itself, from
//! `<machine_configuration>` to `</machine_configuration>` and from
//! `<image>` to `</image>`, as Eucalyptus' `ImageManifests` does, so a
//! manifest another tool wrote (other spacing, other attribute quotes)
//! verifies as long as those bytes are untouched.

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::BundleError;
use crate::keys::{self, BundleKey};

/// The manifest version euca2ools and ec2-ami-tools write.
pub const VERSION: &str = "2007-10-10";
/// The cipher named in `*_encrypted_key/@algorithm`.
pub const CIPHER: &str = "AES-128-CBC";

/// One part of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's file (object) name, `PREFIX.part.NN`.
    pub filename: String,
    /// Its SHA-1, hex.
    pub digest: String,
}

/// A bundle manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `x86_64` or `i386`.
    pub architecture: String,
    /// The machine image's kernel (`aki-`); `true` in a kernel's own
    /// manifest, as euca2ools marks it for Eucalyptus.
    pub kernel_id: Option<String>,
    /// Its ramdisk (`ari-`); `true` in a ramdisk's own manifest.
    pub ramdisk_id: Option<String>,
    /// Block device mappings, (virtual name, device), in document order.
    pub block_device_mappings: Vec<(String, String)>,
    /// The image's name (the bundled file's name).
    pub name: String,
    /// The bundling account's id.
    pub user: String,
    /// `machine`, `kernel` or `ramdisk`.
    pub image_type: String,
    /// SHA-1 of the tar stream, hex.
    pub digest: String,
    /// The image file's size.
    pub size: u64,
    /// The parts' total size.
    pub bundled_size: u64,
    /// The key's hex text wrapped for the cloud, hex.
    pub ec2_encrypted_key: String,
    /// The IV's, for the cloud.
    pub ec2_encrypted_iv: String,
    /// The key's, for the user.
    pub user_encrypted_key: String,
    /// The IV's, for the user.
    pub user_encrypted_iv: String,
    /// The parts in order.
    pub parts: Vec<Part>,
    /// Hex RSA-SHA1 signature of `machine_configuration` + `image`.
    pub signature: String,
    /// The signed text as the document holds it (empty for a manifest not
    /// read from a document nor yet rendered).
    signed_text: String,
}

/// What a manifest is made from before it is wrapped and signed.
#[derive(Debug, Clone)]
pub struct ManifestFields {
    /// `x86_64` or `i386`.
    pub architecture: String,
    /// Kernel id (or `true`).
    pub kernel_id: Option<String>,
    /// Ramdisk id (or `true`).
    pub ramdisk_id: Option<String>,
    /// Block device mappings (virtual, device).
    pub block_device_mappings: Vec<(String, String)>,
    /// Image name.
    pub name: String,
    /// Account id.
    pub user: String,
    /// `machine`, `kernel` or `ramdisk`.
    pub image_type: String,
    /// SHA-1 of the tar stream.
    pub digest: String,
    /// Image size.
    pub size: u64,
    /// Parts with their sizes.
    pub parts: Vec<(Part, u64)>,
}

impl Manifest {
    /// A manifest of `fields`, its key wrapped for `cloud` and `user`
    /// (public keys of the cloud's and the user's certificates) and
    /// signed with `signer` (the user's private key).
    pub fn build(
        fields: ManifestFields,
        key: &BundleKey,
        cloud: &RsaPublicKey,
        user: &RsaPublicKey,
        signer: &RsaPrivateKey,
    ) -> Result<Self, BundleError> {
        let mut manifest = Self {
            architecture: fields.architecture,
            kernel_id: fields.kernel_id,
            ramdisk_id: fields.ramdisk_id,
            block_device_mappings: fields.block_device_mappings,
            name: fields.name,
            user: fields.user,
            image_type: fields.image_type,
            digest: fields.digest,
            size: fields.size,
            bundled_size: fields.parts.iter().map(|(_, n)| n).sum(),
            ec2_encrypted_key: keys::wrap(cloud, &key.key)?,
            ec2_encrypted_iv: keys::wrap(cloud, &key.iv)?,
            user_encrypted_key: keys::wrap(user, &key.key)?,
            user_encrypted_iv: keys::wrap(user, &key.iv)?,
            parts: fields.parts.into_iter().map(|(p, _)| p).collect(),
            signature: String::new(),
            signed_text: String::new(),
        };
        manifest.sign(signer)?;
        Ok(manifest)
    }

    /// Signs the manifest as it now is (after a change of its fields, as
    /// migrating it to another cloud makes).
    pub fn sign(&mut self, signer: &RsaPrivateKey) -> Result<(), BundleError> {
        self.signed_text = self.render_signed();
        self.signature = keys::sign(signer, self.signed_text.as_bytes())?;
        Ok(())
    }

    /// Whether `public` signed this manifest.
    pub fn verify(&self, public: &RsaPublicKey) -> bool {
        !self.signed_text.is_empty()
            && keys::verify(public, self.signed_text.as_bytes(), &self.signature)
    }

    /// The key and IV, unwrapped with the cloud's private key.
    pub fn cloud_key(&self, cloud: &RsaPrivateKey) -> Result<BundleKey, BundleError> {
        Ok(BundleKey {
            key: keys::unwrap(cloud, &self.ec2_encrypted_key)?,
            iv: keys::unwrap(cloud, &self.ec2_encrypted_iv)?,
        })
    }

    /// The key and IV, unwrapped with the user's private key (what
    /// ec2-unbundle does).
    pub fn user_key(&self, user: &RsaPrivateKey) -> Result<BundleKey, BundleError> {
        Ok(BundleKey {
            key: keys::unwrap(user, &self.user_encrypted_key)?,
            iv: keys::unwrap(user, &self.user_encrypted_iv)?,
        })
    }

    /// Wraps `key` for another cloud's certificate, as
    /// ec2-migrate-manifest does; the caller signs the result again.
    pub fn rewrap_for_cloud(
        &mut self,
        key: &BundleKey,
        cloud: &RsaPublicKey,
    ) -> Result<(), BundleError> {
        self.ec2_encrypted_key = keys::wrap(cloud, &key.key)?;
        self.ec2_encrypted_iv = keys::wrap(cloud, &key.iv)?;
        Ok(())
    }

    /// `machine_configuration` then `image`, one line each side by side,
    /// as lxml's `tostring` writes them.
    fn render_signed(&self) -> String {
        let mut s = String::from("<machine_configuration>");
        element(&mut s, "architecture", &self.architecture);
        if !self.block_device_mappings.is_empty() {
            s.push_str("<block_device_mapping>");
            for (virtual_name, device) in &self.block_device_mappings {
                s.push_str("<mapping>");
                element(&mut s, "virtual", virtual_name);
                element(&mut s, "device", device);
                s.push_str("</mapping>");
            }
            s.push_str("</block_device_mapping>");
        }
        if let Some(kernel) = &self.kernel_id {
            element(&mut s, "kernel_id", kernel);
        }
        if let Some(ramdisk) = &self.ramdisk_id {
            element(&mut s, "ramdisk_id", ramdisk);
        }
        s.push_str("</machine_configuration><image>");
        element(&mut s, "name", &self.name);
        element(&mut s, "user", &self.user);
        element(&mut s, "type", &self.image_type);
        s.push_str(&format!(
            "<digest algorithm=\"SHA1\">{}</digest>",
            escape(&self.digest)
        ));
        element(&mut s, "size", &self.size.to_string());
        element(&mut s, "bundled_size", &self.bundled_size.to_string());
        let algorithm = format!(" algorithm=\"{CIPHER}\"");
        for (tag, value, attr) in [
            (
                "ec2_encrypted_key",
                &self.ec2_encrypted_key,
                algorithm.as_str(),
            ),
            (
                "user_encrypted_key",
                &self.user_encrypted_key,
                algorithm.as_str(),
            ),
            ("ec2_encrypted_iv", &self.ec2_encrypted_iv, ""),
            ("user_encrypted_iv", &self.user_encrypted_iv, ""),
        ] {
            s.push_str(&format!("<{tag}{attr}>{}</{tag}>", escape(value.as_str())));
        }
        s.push_str(&format!("<parts count=\"{}\">", self.parts.len()));
        for (index, part) in self.parts.iter().enumerate() {
            s.push_str(&format!("<part index=\"{index}\">"));
            element(&mut s, "filename", &part.filename);
            s.push_str(&format!(
                "<digest algorithm=\"SHA1\">{}</digest></part>",
                escape(&part.digest)
            ));
        }
        s.push_str("</parts></image>");
        s
    }

    /// The document: the declaration, then `manifest` on one line.
    pub fn to_xml(&self) -> String {
        let signed = if self.signed_text.is_empty() {
            self.render_signed()
        } else {
            self.signed_text.clone()
        };
        let (machine, image) = signed
            .split_once("</machine_configuration>")
            .map(|(m, i)| (format!("{m}</machine_configuration>"), i.to_owned()))
            .unwrap_or_default();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<manifest><version>{VERSION}</version>\
             <bundler><name>mallee</name><version>{}</version><release>0</release></bundler>\
             {machine}{image}<signature>{}</signature></manifest>\n",
            env!("CARGO_PKG_VERSION"),
            escape(&self.signature)
        )
    }

    /// Reads a manifest document.
    pub fn parse(doc: &str) -> Result<Self, BundleError> {
        let root = parse_tree(doc)?;
        if root.name != "manifest" {
            return Err(invalid(format!(
                "the root element is <{}>, not <manifest>",
                root.name
            )));
        }
        let version = root.text_of("version").unwrap_or_default();
        if version != VERSION {
            return Err(invalid(format!(
                "manifest version {version:?} is not {VERSION}"
            )));
        }
        let machine = root.child("machine_configuration")?;
        let image = root.child("image")?;
        let mappings = machine
            .children
            .iter()
            .filter(|c| c.name == "block_device_mapping" || c.name == "block_device_mappings")
            .flat_map(|m| m.children.iter())
            .filter(|m| m.name == "mapping" || m.name == "block_device_mapping")
            .map(|m| {
                Ok((
                    m.required("virtual")?.to_owned(),
                    m.required("device")?.to_owned(),
                ))
            })
            .collect::<Result<Vec<_>, BundleError>>()?;
        let number = |name: &str| -> Result<u64, BundleError> {
            image
                .required(name)?
                .parse()
                .map_err(|_| invalid(format!("<{name}> is not a number")))
        };
        let parts_element = image.child("parts")?;
        let mut parts: Vec<Option<Part>> = vec![None; parts_element.children.len()];
        for part in parts_element.children.iter().filter(|c| c.name == "part") {
            let index: usize = part
                .attribute("index")
                .and_then(|i| i.parse().ok())
                .filter(|i| *i < parts.len())
                .ok_or_else(|| invalid("a <part> has no valid index".into()))?;
            parts[index] = Some(Part {
                filename: part.required("filename")?.to_owned(),
                digest: part.required("digest")?.to_lowercase(),
            });
        }
        let parts = parts
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid("the parts are not numbered 0 to count - 1".into()))?;
        if let Some(count) = parts_element.attribute("count")
            && count.parse() != Ok(parts.len())
        {
            return Err(invalid(format!(
                "<parts count=\"{count}\"> but {} parts",
                parts.len()
            )));
        }
        // The signed text is the document's own, from the first start tag
        // to the matching end tag of each element.
        let signed_text = format!(
            "{}{}",
            between(doc, "<machine_configuration>", "</machine_configuration>")?,
            between(doc, "<image>", "</image>")?
        );
        Ok(Self {
            architecture: machine.required("architecture")?.to_owned(),
            kernel_id: machine.text_of("kernel_id").map(str::to_owned),
            ramdisk_id: machine.text_of("ramdisk_id").map(str::to_owned),
            block_device_mappings: mappings,
            name: image.required("name")?.to_owned(),
            user: image.required("user")?.to_owned(),
            image_type: image.required("type")?.to_owned(),
            digest: image.required("digest")?.to_lowercase(),
            size: number("size")?,
            bundled_size: number("bundled_size")?,
            ec2_encrypted_key: image.required("ec2_encrypted_key")?.to_owned(),
            ec2_encrypted_iv: image.required("ec2_encrypted_iv")?.to_owned(),
            user_encrypted_key: image
                .text_of("user_encrypted_key")
                .unwrap_or_default()
                .to_owned(),
            user_encrypted_iv: image
                .text_of("user_encrypted_iv")
                .unwrap_or_default()
                .to_owned(),
            parts,
            signature: root.required("signature")?.to_owned(),
            signed_text,
        })
    }
}

fn invalid(message: String) -> BundleError {
    BundleError::Manifest(message)
}

fn element(s: &mut String, tag: &str, text: &str) {
    s.push_str(&format!("<{tag}>{}</{tag}>", escape(text)));
}

/// `doc` from the first `start` to the first `end` after it, inclusive.
fn between<'a>(doc: &'a str, start: &str, end: &str) -> Result<&'a str, BundleError> {
    let from = doc
        .find(start)
        .ok_or_else(|| invalid(format!("no {start} to sign")))?;
    let to = doc[from..]
        .find(end)
        .ok_or_else(|| invalid(format!("no {end}")))?;
    Ok(&doc[from..from + to + end.len()])
}

/// An element of the document: name, attributes, trimmed text, children.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Result<&Node, BundleError> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| invalid(format!("<{}> has no <{name}>", self.name)))
    }

    fn text_of(&self, name: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.text.trim())
    }

    fn required(&self, name: &str) -> Result<&str, BundleError> {
        self.text_of(name)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(format!("<{}> has no <{name}>", self.name)))
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_tree(doc: &str) -> Result<Node, BundleError> {
    let syntax = |e: &dyn std::fmt::Display| invalid(format!("malformed XML: {e}"));
    let node = |e: &quick_xml::events::BytesStart<'_>| -> Result<Node, BundleError> {
        let mut attributes = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| syntax(&e))?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::default())
                .map_err(|e| syntax(&e))?;
            attributes.push((
                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                value.into_owned(),
            ));
        }
        Ok(Node {
            name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
            attributes,
            ..Node::default()
        })
    };
    let mut reader = Reader::from_str(doc);
    let mut open: Vec<Node> = Vec::new();
    let mut root = None;
    let attach = |n: Node, open: &mut Vec<Node>, root: &mut Option<Node>| match open.last_mut() {
        Some(parent) => parent.children.push(n),
        None => *root = Some(n),
    };
    loop {
        match reader.read_event().map_err(|e| syntax(&e))? {
            Event::Start(e) => open.push(node(&e)?),
            Event::Empty(e) => attach(node(&e)?, &mut open, &mut root),
            Event::End(_) => {
                let n = open
                    .pop()
                    .ok_or_else(|| invalid("an end tag without a start".into()))?;
                attach(n, &mut open, &mut root);
            }
            Event::Text(t) => {
                if let Some(n) = open.last_mut() {
                    n.text.push_str(&t.decode().map_err(|e| syntax(&e))?);
                }
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| syntax(&e))?;
                let text = match r.resolve_char_ref().map_err(|e| syntax(&e))? {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&name)
                        .ok_or_else(|| invalid(format!("unknown entity &{name};")))?
                        .to_owned(),
                };
                if let Some(n) = open.last_mut() {
                    n.text.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err(invalid("the document ends inside an element".into()));
    }
    root.ok_or_else(|| invalid("the document is empty".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{new_certificate, private_key};

    /// A manifest of a kernel as euca2ools 3 writes it (lxml, single
    /// quotes in the declaration, `kernel_id` `true`), signed over the
    /// two elements' text.
    #[test]
    fn reads_and_verifies_a_euca2ools_manifest() {
        let (pem, _) = new_certificate("user", 2048).expect("cert");
        let private = private_key(&pem).expect("key");
        let machine = "<machine_configuration><architecture>x86_64</architecture><kernel_id>true</kernel_id></machine_configuration>";
        let image = "<image><name>vmlinuz</name><user>000000000001</user><type>kernel</type>\
            <digest algorithm=\"SHA1\">DA39A3EE5E6B4B0D3255BFEF95601890AFD80709</digest><size>10</size>\
            <bundled_size>32</bundled_size><ec2_encrypted_key algorithm=\"AES-128-CBC\">aa</ec2_encrypted_key>\
            <user_encrypted_key algorithm=\"AES-128-CBC\">bb</user_encrypted_key><ec2_encrypted_iv>cc</ec2_encrypted_iv>\
            <user_encrypted_iv>dd</user_encrypted_iv><parts count=\"2\"><part index=\"1\"><filename>vmlinuz.part.01</filename>\
            <digest algorithm=\"SHA1\">02</digest></part><part index=\"0\"><filename>vmlinuz.part.00</filename>\
            <digest algorithm=\"SHA1\">01</digest></part></parts></image>";
        let signature = keys::sign(&private, format!("{machine}{image}").as_bytes()).expect("sign");
        let doc = format!(
            "<?xml version='1.0' encoding='ASCII'?>\n<manifest><version>2007-10-10</version><bundler>\
             <name>euca2ools</name><version>3.4.1</version><release>0</release></bundler>{machine}{image}\
             <signature>{signature}</signature></manifest>"
        );
        let m = Manifest::parse(&doc).expect("parse");
        assert_eq!(m.kernel_id.as_deref(), Some("true"));
        assert_eq!(m.image_type, "kernel");
        assert_eq!(m.user, "000000000001");
        assert_eq!(m.digest, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!((m.size, m.bundled_size), (10, 32));
        assert_eq!(m.parts[0].filename, "vmlinuz.part.00");
        assert_eq!(m.parts[1].digest, "02");
        assert!(m.verify(&rsa::RsaPublicKey::from(&private)));
        let tampered = Manifest::parse(&doc.replace("<size>10<", "<size>11<")).expect("parse");
        assert!(!tampered.verify(&rsa::RsaPublicKey::from(&private)));
        // Ours renders `user` immediately followed by `type`.
        assert!(
            m.to_xml()
                .contains("<user>000000000001</user><type>kernel</type>")
        );
    }

    #[test]
    fn refuses_what_is_not_a_bundle_manifest() {
        for doc in [
            "<manifest><version>2011-01-01</version></manifest>",
            "<notamanifest/>",
            "<manifest><version>2007-10-10</version><image/></manifest>",
            "not xml <",
        ] {
            assert!(
                matches!(Manifest::parse(doc), Err(BundleError::Manifest(_))),
                "{doc}"
            );
        }
    }
}
