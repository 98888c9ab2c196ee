//! A small streaming XML writer for AWS response documents: elements are
//! written in order, text is escaped, nothing is buffered beyond the output.

use std::fmt::{Display, Write};

/// Builds one XML document.
#[derive(Debug, Default)]
pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    /// Starts a document with the XML declaration.
    pub fn new() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        }
    }

    /// Writes `<name xmlns="ns">…</name>` with `body` filling the content.
    pub fn root(&mut self, name: &str, namespace: &str, body: impl FnOnce(&mut Self)) {
        let _ = write!(self.out, "<{name} xmlns=\"{}\">", escape(namespace));
        body(self);
        let _ = write!(self.out, "</{name}>");
    }

    /// Writes `<name>…</name>` with `body` filling the content.
    pub fn elem(&mut self, name: &str, body: impl FnOnce(&mut Self)) {
        let _ = write!(self.out, "<{name}>");
        body(self);
        let _ = write!(self.out, "</{name}>");
    }

    /// Writes `<name>text</name>`, escaping the text.
    pub fn text(&mut self, name: &str, value: impl Display) {
        let value = value.to_string();
        let _ = write!(self.out, "<{name}>{}</{name}>", escape(&value));
    }

    /// Writes escaped text as the content of the element being written
    /// (`<member>text</member>` inside [`Self::elem`]).
    pub fn text_content(&mut self, value: impl Display) {
        let value = value.to_string();
        self.out.push_str(&escape(&value));
    }

    /// Writes `<name>text</name>` only when there is a value.
    pub fn opt_text(&mut self, name: &str, value: Option<impl Display>) {
        if let Some(value) = value {
            self.text(name, value);
        }
    }

    /// Writes `<name><item>…</item>…</name>`, one item per element of `items`.
    pub fn items<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) {
        self.elem(name, |w| {
            for item in items {
                w.elem("item", |w| each(w, item));
            }
        });
    }

    /// The finished document.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes the five XML special characters.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_escaped_document() {
        let mut w = XmlWriter::new();
        w.root("R", "urn:x", |w| {
            w.text("a", "<&>");
            w.items("set", ["x", "y"], |w, v| w.text("v", v));
            w.opt_text("none", None::<&str>);
        });
        assert_eq!(
            w.finish(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"urn:x\"><a>&lt;&amp;&gt;</a><set><item><v>x</v></item><item><v>y</v></item></set></R>"
        );
    }
}
