//! The API's XML answers as a tree of elements, read with quick-xml.
//!
//! Text is kept exactly as the server wrote it, once unescaped: no
//! whitespace is trimmed and line ends are not normalised, so an answer
//! file or a description reaches the terminal as it was stored.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::encoding::EncodingError;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, Event};

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML.
    #[error("malformed XML: {0}")]
    Syntax(#[from] quick_xml::Error),
    /// Text that is not UTF-8.
    #[error("malformed XML: {0}")]
    Encoding(#[from] EncodingError),
    /// Well-formed pieces that do not make one document.
    #[error("malformed XML: {0}")]
    Structure(String),
}

/// One element: its name, its text (the concatenated text directly in it)
/// and its child elements in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The tag name, as written.
    pub name: String,
    /// The element's own text, unescaped.
    pub text: String,
    /// The child elements.
    pub children: Vec<Element>,
}

/// An item of a result set: its fields by name.
pub type Item = BTreeMap<String, String>;

impl Element {
    fn new(name: &[u8]) -> Result<Self, XmlError> {
        let name =
            std::str::from_utf8(name).map_err(|e| XmlError::Structure(format!("tag name: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            ..Self::default()
        })
    }

    /// The first element named `name`: this one or a descendant, in
    /// document order.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// The text of the first element named `name` ([`Element::find`]).
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.find(name).map(|e| e.text.as_str())
    }

    /// The children as fields, by name (a later one of the same name
    /// wins).
    pub fn fields(&self) -> Item {
        fields(&self.children)
    }

    /// The items of the first set named `set` (`<set><item>…</item>…`),
    /// each as its fields; none when there is no such set.
    pub fn items(&self, set: &str) -> Vec<Item> {
        self.find(set).map_or_else(Vec::new, |s| {
            s.children
                .iter()
                .filter(|c| c.name == "item")
                .map(Element::fields)
                .collect()
        })
    }

    /// The fields of an answer after its `requestId` (what an action
    /// answers besides sets): none when it has no request id.
    pub fn answer_fields(&self) -> Item {
        match self.children.iter().position(|c| c.name == "requestId") {
            Some(i) => fields(&self.children[i + 1..]),
            None => Item::new(),
        }
    }
}

fn fields(elements: &[Element]) -> Item {
    elements
        .iter()
        .map(|c| (c.name.clone(), c.text.clone()))
        .collect()
}

/// The text a reference (`&amp;`, `&#38;`) stands for.
fn resolve(reference: &BytesRef<'_>) -> Result<String, XmlError> {
    if let Some(c) = reference.resolve_char_ref()? {
        return Ok(c.to_string());
    }
    let name = reference.decode()?;
    resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| XmlError::Structure(format!("unknown entity &{name};")))
}

/// Puts a finished element into its parent, or makes it the root.
fn attach(
    element: Element,
    open: &mut [Element],
    root: &mut Option<Element>,
) -> Result<(), XmlError> {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => {
            return Err(XmlError::Structure(format!(
                "a second root element <{}>",
                element.name
            )));
        }
    }
    Ok(())
}

/// Reads a document into its root element.
pub fn parse(doc: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(doc);
    let mut open: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        match reader.read_event()? {
            Event::Start(e) => open.push(Element::new(e.name().as_ref())?),
            Event::Empty(e) => attach(Element::new(e.name().as_ref())?, &mut open, &mut root)?,
            Event::End(_) => {
                let element = open
                    .pop()
                    .ok_or_else(|| XmlError::Structure("an end tag without a start".into()))?;
                attach(element, &mut open, &mut root)?;
            }
            // Text outside the root (the line after the declaration) is
            // not part of any element.
            Event::Text(t) => {
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&t.decode()?);
                }
            }
            Event::CData(t) => {
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&t.decode()?);
                }
            }
            Event::GeneralRef(r) => {
                let text = resolve(&r)?;
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&text);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if let Some(e) = open.last() {
        return Err(XmlError::Structure(format!("<{}> is not closed", e.name)));
    }
    root.ok_or_else(|| XmlError::Structure("no element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_unescaped_and_kept_as_written() {
        let doc = parse(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"urn:x\"><requestId>r</requestId>\
             <a>  a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#38;&#x41;  </a>\
             <answerFile>line 1\r\nline 2\n\n</answerFile><empty></empty><self/>\
             <c><![CDATA[<raw>]]></c></R>",
        )
        .expect("parse");
        assert_eq!(doc.name, "R");
        assert_eq!(
            doc.text_of("a"),
            Some("  a & b <c> \"d\" 'e' &A  "),
            "entities resolved, spaces kept"
        );
        assert_eq!(doc.text_of("answerFile"), Some("line 1\r\nline 2\n\n"));
        assert_eq!(doc.text_of("empty"), Some(""));
        assert_eq!(doc.text_of("self"), Some(""));
        assert_eq!(doc.text_of("c"), Some("<raw>"));
        assert_eq!(doc.text_of("missing"), None);
    }

    #[test]
    fn sets_items_and_answer_fields() {
        let doc = parse(
            "<DescribeSystemGroupsResponse><requestId>r</requestId>\
             <groupSet><item><name>g1</name><total>2</total></item></groupSet>\
             <systemSet><item><name>m1</name><owner>a:b</owner></item>\
             <item><name>m2</name><name>m2b</name></item></systemSet></DescribeSystemGroupsResponse>",
        )
        .expect("parse");
        let groups = doc.items("groupSet");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].get("total").map(String::as_str), Some("2"));
        let systems = doc.items("systemSet");
        assert_eq!(systems[0].get("owner").map(String::as_str), Some("a:b"));
        assert_eq!(
            systems[1].get("name").map(String::as_str),
            Some("m2b"),
            "a later field of the same name wins"
        );
        assert!(doc.items("instancesSet").is_empty());
        assert!(parse("<a></a>").expect("parse").items("a").is_empty());

        let doc = parse(
            "<AddProfileResponse><requestId>r</requestId><name>p</name><kind>image</kind></AddProfileResponse>",
        )
        .expect("parse");
        let fields = doc.answer_fields();
        assert_eq!(
            fields.into_iter().collect::<Vec<_>>(),
            [
                ("kind".to_owned(), "image".to_owned()),
                ("name".to_owned(), "p".to_owned())
            ]
        );
        assert!(
            parse("<R><x>1</x></R>")
                .expect("parse")
                .answer_fields()
                .is_empty()
        );
    }

    #[test]
    fn first_match_in_document_order() {
        let doc = parse("<R><a><Code>inner</Code></a><Code>outer</Code></R>").expect("parse");
        assert_eq!(doc.text_of("Code"), Some("inner"));
        assert_eq!(doc.text_of("R"), Some(""), "the root itself counts");
    }

    #[test]
    fn refuses_what_is_not_one_document() {
        for bad in [
            "",
            "not xml",
            "<a><b></a>",
            "<a>",
            "<a></a><b></b>",
            "<a>&nbsp;</a>",
            "</a>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
