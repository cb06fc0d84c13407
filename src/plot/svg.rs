//! The SVG writer every figure shares, and the two text helpers: `escape` (every string that reaches
//! the document goes through it, inside `Svg::text`) and `token_label` (makes a token's invisible
//! characters visible).

use std::fmt::Write;

/// Where a text's anchor point sits along it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

/// How a piece of text is drawn: anchor, size in px, rotation in degrees about the anchor, weight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Text {
    anchor: Anchor,
    size: f64,
    angle: f64,
    bold: bool,
}

impl Text {
    pub(crate) fn new(anchor: Anchor, size: f64) -> Self {
        Text {
            anchor,
            size,
            angle: 0.0,
            bold: false,
        }
    }

    pub(crate) fn rotated(self, angle: f64) -> Self {
        Text { angle, ..self }
    }

    pub(crate) fn bold(self) -> Self {
        Text { bold: true, ..self }
    }
}

/// An SVG document being written: a white page of a fixed size, elements appended in drawing order.
pub(crate) struct Svg {
    out: String,
}

impl Svg {
    pub(crate) fn new(width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans, Verdana, sans-serif\">"
        );
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
        Svg { out }
    }

    /// `content` escaped for XML; callers pass plain text.
    pub(crate) fn text(&mut self, x: f64, y: f64, content: &str, style: Text) {
        let anchor = match style.anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let _ = write!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{:.1}\" text-anchor=\"{anchor}\"",
            style.size
        );
        if style.bold {
            self.out += " font-weight=\"bold\"";
        }
        if style.angle != 0.0 {
            let _ = write!(
                self.out,
                " transform=\"rotate({:.0} {x:.1} {y:.1})\"",
                style.angle
            );
        }
        let _ = writeln!(self.out, ">{}</text>", escape(content));
    }

    pub(crate) fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{width:.2}\" height=\"{height:.2}\" fill=\"{fill}\"/>"
        );
    }

    /// A rectangle with a class, so tests (and stylesheets) can pick out e.g. histogram bins.
    pub(crate) fn classed_rect(
        &mut self,
        class: &str,
        (x, y, width, height): (f64, f64, f64, f64),
        fill: &str,
    ) {
        let _ = writeln!(
            self.out,
            "<rect class=\"{class}\" x=\"{x:.2}\" y=\"{y:.2}\" width=\"{width:.2}\" height=\"{height:.2}\" fill=\"{fill}\"/>"
        );
    }

    /// `len` unit cells from column `x` of row `y` as one rectangle, for a group scaled to the
    /// cell size: whole-number coordinates keep large heatmaps small on disk.
    pub(crate) fn cell_run(
        &mut self,
        (x, y): (usize, usize),
        len: usize,
        fill: &str,
        class: Option<&str>,
    ) {
        let _ = write!(
            self.out,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{len}\" height=\"1\" fill=\"{fill}\""
        );
        if let Some(class) = class {
            let _ = write!(self.out, " class=\"{class}\"");
        }
        self.out += "/>\n";
    }

    pub(crate) fn outline(&mut self, x: f64, y: f64, width: f64, height: f64, stroke: &str) {
        let _ = writeln!(
            self.out,
            "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{width:.2}\" height=\"{height:.2}\" fill=\"none\" stroke=\"{stroke}\"/>"
        );
    }

    pub(crate) fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str) {
        let _ = writeln!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{stroke}\"/>"
        );
    }

    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64) {
        self.out += "<polyline points=\"";
        for (i, (x, y)) in points.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            let _ = write!(self.out, "{sep}{x:.1},{y:.1}");
        }
        let _ = writeln!(
            self.out,
            "\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{width}\" stroke-linejoin=\"round\"/>"
        );
    }

    pub(crate) fn circle(&mut self, (x, y): (f64, f64), radius: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius}\" fill=\"{fill}\"/>"
        );
    }

    /// A bottom-to-top gradient named `id` through `stops` (offset in 0..1, colour), for colour bars.
    pub(crate) fn vertical_gradient(&mut self, id: &str, stops: &[(f64, String)]) {
        let _ = writeln!(
            self.out,
            "<defs><linearGradient id=\"{id}\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
        );
        for (offset, color) in stops {
            let _ = writeln!(
                self.out,
                "<stop offset=\"{offset:.4}\" stop-color=\"{color}\"/>"
            );
        }
        self.out += "</linearGradient></defs>\n";
    }

    /// Opens a group whose children share `attributes` (e.g. `shape-rendering="crispEdges"`).
    pub(crate) fn open_group(&mut self, attributes: &str) {
        let _ = writeln!(self.out, "<g {attributes}>");
    }

    pub(crate) fn close_group(&mut self) {
        self.out += "</g>\n";
    }

    pub(crate) fn finish(self) -> String {
        self.out + "</svg>\n"
    }
}

/// A small figure that says there is nothing to plot, so empty inputs still give a readable file.
pub(crate) fn no_data(title: &str) -> String {
    let mut svg = Svg::new(480.0, 160.0);
    svg.text(240.0, 32.0, title, Text::new(Anchor::Middle, 16.0));
    svg.text(240.0, 96.0, "no data", Text::new(Anchor::Middle, 14.0));
    svg.finish()
}

/// `text` safe inside an XML element or attribute value.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            _ => out.push(c),
        }
    }
    out
}

/// A token as a reader should see it: space as ␣, newline as ↵, tab as ⇥, other control characters
/// as their Unicode control pictures (XML cannot hold them), the empty token as ∅, cut to `max_chars`.
pub(crate) fn token_label(token: &str, max_chars: usize) -> String {
    if token.is_empty() {
        return "∅".into();
    }
    let visible: String = token
        .chars()
        .map(|c| match c {
            ' ' => '␣',
            '\n' => '↵',
            '\t' => '⇥',
            '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('�'),
            '\u{7f}' => '␡',
            c if c.is_control() => '�',
            c if c.is_whitespace() => '␣',
            c => c,
        })
        .collect();
    truncate(&visible, max_chars)
}

/// `text` cut to `max_chars` characters, the cut marked with "…".
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Roughly how wide `text` renders at `size` px in a sans-serif font (for laying out margins).
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

/// Panics unless `svg` is one well-formed element tree rooted at `<svg>`, with every `&` an entity.
#[cfg(test)]
pub(crate) fn assert_well_formed(svg: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    let mut roots = 0;
    while let Some(start) = rest.find('<') {
        assert_escaped(&rest[..start]);
        let end = start + rest[start..].find('>').expect("a tag is never closed");
        let tag = &rest[start + 1..end];
        assert_escaped(tag);
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "mismatched closing tag </{name}>");
        } else {
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('/');
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad tag <{tag}>"
            );
            if open.is_empty() {
                roots += 1;
                assert_eq!(name, "svg", "the root element");
            }
            if !tag.ends_with('/') {
                open.push(name);
            }
        }
        rest = &rest[end + 1..];
    }
    assert_escaped(rest);
    assert!(open.is_empty(), "unclosed tags {open:?}");
    assert_eq!(roots, 1, "one root element");
}

#[cfg(test)]
fn assert_escaped(text: &str) {
    assert!(!text.contains('>'), "raw '>' in {text:?}");
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "raw '&' in {text:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_keeps_special_tokens_readable() {
        let mut svg = Svg::new(100.0, 100.0);
        svg.text(
            0.0,
            0.0,
            "<|endoftext|> & \"q\"",
            Text::new(Anchor::Start, 10.0),
        );
        let svg = svg.finish();
        assert_well_formed(&svg);
        assert!(svg.contains("&lt;|endoftext|&gt; &amp; &quot;q&quot;"));
    }

    #[test]
    fn token_labels_show_whitespace_and_control_characters() {
        assert_eq!(token_label(" the", 16), "␣the");
        assert_eq!(token_label("\n\n", 16), "↵↵");
        assert_eq!(token_label("\t", 16), "⇥");
        assert_eq!(token_label("\u{0}", 16), "␀");
        assert_eq!(token_label("", 16), "∅");
        assert_eq!(token_label("<|endoftext|>", 8), "<|endof…");
    }

    #[test]
    fn the_checker_rejects_broken_documents() {
        let broken = [
            "<svg><g></svg>",
            "<svg><text>a & b</text></svg>",
            "<svg><text><|endoftext|></text></svg>",
            "<svg/><svg/>",
        ];
        for doc in broken {
            let caught = std::panic::catch_unwind(|| assert_well_formed(doc));
            assert!(caught.is_err(), "accepted {doc}");
        }
    }
}
