//! Articles into passages: HTML (split at `h1`–`h3`, scripts, styles and page chrome dropped),
//! Markdown (split at `#`–`###`) and plain text (blank-line blocks, grouped up to a size cap);
//! and sitemaps (`<urlset>` and `<sitemapindex>`). Pure text in, plain data out: no I/O.

/// What an article is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Text,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Self::Html => "html",
            Self::Markdown => "markdown",
            Self::Text => "text",
        }
    }

    /// `html`, `markdown`/`md`, `text`/`txt`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "html" | "htm" => Some(Self::Html),
            "markdown" | "md" => Some(Self::Markdown),
            "text" | "txt" | "plain" => Some(Self::Text),
            _ => None,
        }
    }

    /// The format of a file by its name's extension.
    pub fn of_file_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1;
        Self::parse(ext)
    }

    /// The format of a fetched body by its `Content-Type`; `None` for anything that is not
    /// an article (images, PDFs, JSON …).
    pub fn of_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "text/html" | "application/xhtml+xml" => Some(Self::Html),
            "text/markdown" | "text/x-markdown" => Some(Self::Markdown),
            "text/plain" | "" => Some(Self::Text),
            _ => None,
        }
    }
}

/// Longest passage, in characters: a longer section is cut at paragraph (then sentence)
/// boundaries into parts. Well under the 4,000-character answer limit.
pub const MAX_PASSAGE_CHARS: usize = 1500;

/// One section of an article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The heading it sits under; `None` for the text before the first heading.
    pub heading: Option<String>,
    /// The `id` of the heading or of the nearest element around it (HTML), for a link to it.
    pub anchor: Option<String>,
    pub text: String,
}

/// A parsed article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// From `<title>` or the first `h1`/`#` heading, if any.
    pub title: Option<String>,
    pub sections: Vec<Section>,
}

/// Parses `text` written in `format`. Sections without text are dropped; long ones are cut.
pub fn article(format: Format, text: &str) -> Article {
    let mut article = match format {
        Format::Html => html(text),
        Format::Markdown => markdown(text),
        Format::Text => plain(text),
    };
    article.sections = article
        .sections
        .into_iter()
        .flat_map(|s| {
            let text = tidy(&s.text);
            cut(&text)
                .into_iter()
                .map(move |part| Section {
                    heading: s.heading.clone(),
                    anchor: s.anchor.clone(),
                    text: part,
                })
                .collect::<Vec<_>>()
        })
        .filter(|s| s.text.chars().any(char::is_alphanumeric))
        .collect();
    article
}

/// Trims every line, collapses runs of blank lines to one, trims the whole.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        out.push_str(line);
    }
    out
}

/// Cuts `text` into parts of at most [`MAX_PASSAGE_CHARS`]: at blank lines, then at line
/// ends, then after sentences, then anywhere.
fn cut(text: &str) -> Vec<String> {
    if text.chars().count() <= MAX_PASSAGE_CHARS {
        return vec![text.to_owned()];
    }
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    for piece in pieces(text) {
        let joined = current.chars().count() + piece.chars().count() + 1;
        if !current.is_empty() && joined > MAX_PASSAGE_CHARS {
            parts.push(std::mem::take(&mut current).trim().to_owned());
        }
        current.push_str(&piece);
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_owned());
    }
    parts
}

/// `text` in pieces no longer than [`MAX_PASSAGE_CHARS`], each with its separator kept.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split_inclusive("\n\n") {
        if para.chars().count() <= MAX_PASSAGE_CHARS {
            out.push(para.to_owned());
            continue;
        }
        for sentence in para.split_inclusive(['.', '!', '?', '\n']) {
            let chars: Vec<char> = sentence.chars().collect();
            for chunk in chars.chunks(MAX_PASSAGE_CHARS) {
                out.push(chunk.iter().collect());
            }
        }
    }
    out
}

/// Blank-line blocks; a block whose first line is short and has no closing punctuation is
/// read as a heading over the blocks after it.
fn plain(text: &str) -> Article {
    let mut sections: Vec<Section> = Vec::new();
    let mut current = Section {
        heading: None,
        anchor: None,
        text: String::new(),
    };
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let block = block.trim();
        if block.is_empty() {
            continue;
        }
        let first = block.lines().next().unwrap_or("").trim();
        let rest = block[first.len()..].trim();
        let looks_like_heading = first.chars().count() <= 80
            && !first.ends_with(['.', '!', '?', ':', ',', ';'])
            && first.chars().any(char::is_alphabetic);
        if looks_like_heading && (!rest.is_empty() || block.lines().count() == 1) {
            if !current.text.trim().is_empty() || current.heading.is_some() {
                sections.push(std::mem::replace(
                    &mut current,
                    Section {
                        heading: None,
                        anchor: None,
                        text: String::new(),
                    },
                ));
            }
            current.heading = Some(first.to_owned());
            current.text = rest.to_owned();
            continue;
        }
        if current.text.chars().count() + block.chars().count() > MAX_PASSAGE_CHARS
            && !current.text.is_empty()
        {
            let heading = current.heading.clone();
            sections.push(std::mem::replace(
                &mut current,
                Section {
                    heading,
                    anchor: None,
                    text: String::new(),
                },
            ));
        }
        if !current.text.is_empty() {
            current.text.push_str("\n\n");
        }
        current.text.push_str(block);
    }
    sections.push(current);
    Article {
        title: None,
        sections,
    }
}

/// ATX headings `#`–`###` split; deeper headings stay in the text. Fenced code is text.
fn markdown(text: &str) -> Article {
    let mut title = None;
    let mut sections = vec![Section {
        heading: None,
        anchor: None,
        text: String::new(),
    }];
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            let hashes = trimmed.chars().take_while(|&c| c == '#').count();
            let after = &trimmed[hashes..];
            if (1..=3).contains(&hashes) && (after.starts_with(' ') || after.is_empty()) {
                let heading = inline_markdown(after.trim().trim_end_matches('#').trim());
                if heading.is_empty() {
                    continue;
                }
                if hashes == 1 && title.is_none() {
                    title = Some(heading.clone());
                }
                sections.push(Section {
                    heading: Some(heading),
                    anchor: None,
                    text: String::new(),
                });
                continue;
            }
        }
        let text = if fenced {
            line.to_owned()
        } else {
            let t = inline_markdown(trimmed);
            match t.strip_prefix("* ").or_else(|| t.strip_prefix("+ ")) {
                Some(item) => format!("- {item}"),
                None => t,
            }
        };
        let current = sections.last_mut().expect("one section at least");
        current.text.push_str(&text);
        current.text.push('\n');
    }
    Article { title, sections }
}

/// Links and images to their text, emphasis and code marks and inline tags dropped.
fn inline_markdown(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // [text](url) and ![alt](src): keep the text.
        if c == '[' || (c == '!' && chars.get(i + 1) == Some(&'[')) {
            let open = if c == '!' { i + 1 } else { i };
            if let Some(close) = chars[open..].iter().position(|&c| c == ']') {
                let close = open + close;
                if chars.get(close + 1) == Some(&'(')
                    && let Some(end) = chars[close..].iter().position(|&c| c == ')')
                {
                    out.extend(&chars[open + 1..close]);
                    i = close + end + 1;
                    continue;
                }
            }
        }
        if c == '<'
            && let Some(end) = chars[i..].iter().position(|&c| c == '>')
            && chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '/')
        {
            i += end + 1;
            continue;
        }
        let emphasis = matches!(c, '*' | '`')
            || (c == '_'
                && (i == 0
                    || !chars[i - 1].is_alphanumeric()
                    || chars.get(i + 1).is_none_or(|n| !n.is_alphanumeric())));
        // A leading "* " is a bullet, not emphasis.
        if emphasis && !(i == 0 && c == '*' && chars.get(1) == Some(&' ')) {
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.trim_end().to_owned()
}

/// Elements whose content is never article text.
const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "iframe", "object", "canvas", "nav",
    "button", "select", "form", "head",
];

/// Page chrome, skipped unless it sits inside an `<article>`.
const CHROME: &[&str] = &["header", "footer", "aside"];

/// Elements that end a line of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "section",
    "article",
    "main",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "dd",
    "dt",
    "dl",
    "figure",
    "figcaption",
    "hr",
    "header",
    "footer",
    "address",
];

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

struct Tag<'a> {
    name: String,
    closing: bool,
    self_closing: bool,
    attrs: &'a str,
}

/// The tag starting at `s` (just after `<`) and the length consumed, or `None` if `<` starts
/// no tag (then it is text).
fn tag(s: &str) -> Option<(Tag<'_>, usize)> {
    let closing = s.starts_with('/');
    let body = if closing { &s[1..] } else { s };
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
        .unwrap_or(body.len());
    if name_len == 0 || !body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    // The end of the tag: the first `>` outside quotes.
    let mut quote = None;
    let mut end = None;
    for (i, c) in body.char_indices().skip(name_len) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let attrs = &body[name_len..end];
    Some((
        Tag {
            name: body[..name_len].to_ascii_lowercase(),
            closing,
            self_closing: attrs.trim_end().ends_with('/'),
            attrs,
        },
        end + 1 + usize::from(closing),
    ))
}

/// The value of attribute `name` in a tag's attribute text.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let at = from + at;
        from = at + name.len();
        let before_ok = at == 0 || lower[..at].ends_with(|c: char| c.is_whitespace());
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value_start = attrs.len() - rest.len() + 1;
        let value = attrs[value_start..].trim_start();
        let parsed = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or(""),
        };
        return Some(entities(parsed));
    }
    None
}

/// Decodes character references (the common named ones and every numeric one).
pub fn entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1);
        let decoded = end.filter(|&e| rest[e..].starts_with(';')).and_then(|e| {
            let name = &rest[1..e];
            let c = if let Some(num) = name.strip_prefix('#') {
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse().ok(),
                };
                code.and_then(char::from_u32)
            } else {
                Some(match name {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    "nbsp" => ' ',
                    "ndash" => '–',
                    "mdash" => '—',
                    "hellip" => '…',
                    "lsquo" => '‘',
                    "rsquo" => '’',
                    "ldquo" => '“',
                    "rdquo" => '”',
                    "euro" => '€',
                    "pound" => '£',
                    "copy" => '©',
                    "reg" => '®',
                    "trade" => '™',
                    "middot" => '·',
                    "bull" => '•',
                    "times" => '×',
                    "deg" => '°',
                    _ => return None,
                })
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A tolerant reading of HTML: no tree, just the text in order, split at `h1`–`h3`.
fn html(source: &str) -> Article {
    let mut title: Option<String> = None;
    let mut first_h1: Option<String> = None;
    let mut sections = vec![Section {
        heading: None,
        anchor: None,
        text: String::new(),
    }];
    // Open elements with their ids, for the anchor of a heading without one.
    let mut open: Vec<(String, Option<String>)> = Vec::new();
    // Inside a skipped element: its name and nesting depth.
    let mut skipping: Option<(String, usize)> = None;
    // Inside `<article>` or `<main>`: a `header` or `footer` there is content, not chrome.
    let mut in_article = 0usize;
    let mut in_title = false;
    // The heading being read: its level, anchor and text.
    let mut heading: Option<(String, Option<String>, String)> = None;
    let mut rest = source;
    let mut text = String::new();

    let flush = |text: &mut String,
                 heading: &mut Option<(String, Option<String>, String)>,
                 sections: &mut Vec<Section>,
                 in_title: bool,
                 title: &mut Option<String>| {
        if text.is_empty() {
            return;
        }
        let decoded = entities(text);
        text.clear();
        if in_title {
            title.get_or_insert_with(String::new).push_str(&decoded);
        } else if let Some((_, _, h)) = heading {
            h.push_str(&decoded);
        } else {
            let current = sections.last_mut().expect("a section");
            let collapsed = collapse(&decoded);
            current.text.push_str(&collapsed);
        }
    };

    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skipping.is_none() {
                text.push_str(rest);
            }
            break;
        };
        if skipping.is_none() {
            text.push_str(&rest[..lt]);
        }
        rest = &rest[lt..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |e| &comment[e + 3..]);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            rest = rest.find('>').map_or("", |e| &rest[e + 1..]);
            continue;
        }
        let Some((t, len)) = tag(&rest[1..]) else {
            if skipping.is_none() {
                text.push('<');
            }
            rest = &rest[1..];
            continue;
        };
        rest = &rest[1 + len..];
        let name = t.name.as_str();

        if let Some((skipped, depth)) = &mut skipping {
            if name == skipped {
                if t.closing {
                    *depth -= 1;
                    if *depth == 0 {
                        skipping = None;
                    }
                } else if !t.self_closing {
                    *depth += 1;
                }
            }
            continue;
        }
        // Raw text elements: jump to their end tag.
        if !t.closing && matches!(name, "script" | "style" | "textarea") {
            let lower = rest.to_ascii_lowercase();
            rest = lower
                .find(&format!("</{name}"))
                .and_then(|e| rest[e..].find('>').map(|g| &rest[e + g + 1..]))
                .unwrap_or("");
            continue;
        }
        if name == "title" {
            flush(&mut text, &mut heading, &mut sections, in_title, &mut title);
            in_title = !t.closing;
            continue;
        }
        let skip_this = SKIPPED.contains(&name) || (CHROME.contains(&name) && in_article == 0);
        if !t.closing && !t.self_closing && skip_this && name != "head" {
            flush(&mut text, &mut heading, &mut sections, in_title, &mut title);
            skipping = Some((name.to_owned(), 1));
            continue;
        }
        if name == "head" {
            continue;
        }
        let is_heading = matches!(name, "h1" | "h2" | "h3");
        if is_heading || BLOCKS.contains(&name) || name == "td" || name == "th" {
            flush(&mut text, &mut heading, &mut sections, in_title, &mut title);
            let current = sections.last_mut().expect("a section");
            if name == "td" || name == "th" {
                current.text.push(' ');
            } else if !current.text.ends_with('\n') {
                current.text.push('\n');
            }
            if name == "li" && !t.closing {
                current.text.push_str("- ");
            }
        }
        if name == "article" || name == "main" {
            if t.closing {
                in_article = in_article.saturating_sub(1);
            } else {
                in_article += 1;
            }
        }
        if is_heading {
            if !t.closing {
                let own = attr(t.attrs, "id");
                let around = open.iter().rev().find_map(|(_, id)| id.clone());
                heading = Some((name.to_owned(), own.or(around), String::new()));
            } else if let Some((_, anchor, h)) = heading.take() {
                let h = collapse(&h).trim().to_owned();
                if !h.is_empty() {
                    if name == "h1" && first_h1.is_none() {
                        first_h1 = Some(h.clone());
                    }
                    sections.push(Section {
                        heading: Some(h),
                        anchor,
                        text: String::new(),
                    });
                }
            }
            continue;
        }
        if VOID.contains(&name) || t.self_closing {
            if name == "img"
                && let Some(alt) = attr(t.attrs, "alt")
            {
                text.push_str(&alt);
            }
            continue;
        }
        if t.closing {
            if let Some(at) = open.iter().rposition(|(n, _)| n == name) {
                open.truncate(at);
            }
        } else {
            open.push((name.to_owned(), attr(t.attrs, "id")));
        }
    }
    flush(&mut text, &mut heading, &mut sections, in_title, &mut title);
    let title = title
        .map(|t| collapse(&t).trim().to_owned())
        .filter(|t| !t.is_empty())
        .or(first_h1);
    Article { title, sections }
}

/// Runs of whitespace (newlines included: HTML source lines are not text lines) to one space.
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(if c == '\u{a0}' { ' ' } else { c });
        }
    }
    if space && !out.is_empty() {
        out.push(' ');
    }
    out
}

/// What a sitemap lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sitemap {
    /// `<urlset>`: pages.
    Pages(Vec<String>),
    /// `<sitemapindex>`: more sitemaps.
    Index(Vec<String>),
}

/// Reads a sitemap; `None` when `xml` is neither a `<urlset>` nor a `<sitemapindex>`.
pub fn sitemap(xml: &str) -> Option<Sitemap> {
    let lower = xml.to_ascii_lowercase();
    let index = lower.contains("<sitemapindex");
    if !index && !lower.contains("<urlset") {
        return None;
    }
    let mut locs = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<loc>") {
        let start = from + at + "<loc>".len();
        let Some(len) = lower[start..].find("</loc>") else {
            break;
        };
        let raw = xml[start..start + len].trim();
        let raw = raw
            .strip_prefix("<![CDATA[")
            .and_then(|r| r.strip_suffix("]]>"))
            .unwrap_or(raw);
        let loc = entities(raw.trim());
        if !loc.is_empty() && !locs.contains(&loc) {
            locs.push(loc);
        }
        from = start + len;
    }
    Some(if index {
        Sitemap::Index(locs)
    } else {
        Sitemap::Pages(locs)
    })
}

/// Lowercase ASCII letters and digits joined by `-` (at most 60 characters): ids and anchors.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headings(a: &Article) -> Vec<Option<&str>> {
        a.sections.iter().map(|s| s.heading.as_deref()).collect()
    }

    #[test]
    fn html_splits_at_h1_to_h3_and_drops_scripts_styles_and_chrome() {
        let page = r#"<!doctype html><html><head><title>Help &amp; FAQ</title>
            <style>h2 { color: red }</style><script>var x = "<h2>no</h2>";</script></head>
            <body><header class="site"><nav><a href="/">Home</a></nav>Logo</header>
            <main><p>Welcome to&nbsp;our help.</p>
            <section id="shipping"><h2>Shipping</h2><p>Orders ship in
               2&ndash;3 business days.</p><ul><li>Express: next day</li><li>Free over €50</li></ul></section>
            <h3 id="returns">Returns</h3><p>Free within <b>30 days</b>.</p>
            <h4>Small print</h4><p>Sale items excluded.</p>
            <!-- <h2>hidden</h2> -->
            <button>Buy</button>
            </main><footer>© Shop</footer></body></html>"#;
        let a = article(Format::Html, page);
        assert_eq!(a.title.as_deref(), Some("Help & FAQ"));
        assert_eq!(headings(&a), vec![None, Some("Shipping"), Some("Returns")]);
        assert_eq!(a.sections[0].text, "Welcome to our help.");
        assert_eq!(a.sections[1].anchor.as_deref(), Some("shipping"));
        assert_eq!(
            a.sections[1].text,
            "Orders ship in 2–3 business days.\n- Express: next day\n- Free over €50"
        );
        assert_eq!(a.sections[2].anchor.as_deref(), Some("returns"));
        assert_eq!(
            a.sections[2].text,
            "Free within 30 days.\nSmall print\nSale items excluded."
        );
        let all: String = a.sections.iter().map(|s| s.text.as_str()).collect();
        for absent in ["color", "var x", "Home", "Logo", "Buy", "hidden", "© Shop"] {
            assert!(!all.contains(absent), "{absent:?} must be dropped: {all}");
        }
    }

    #[test]
    fn html_is_read_tolerantly() {
        // Unclosed tags, a stray `<`, attributes with `>` inside quotes, upper case.
        let a = article(
            Format::Html,
            "<H1 data-x='a>b'>Title</H1><P>1 < 2 and <i>more<P>next",
        );
        assert_eq!(a.title.as_deref(), Some("Title"));
        assert_eq!(a.sections.len(), 1);
        assert_eq!(a.sections[0].text, "1 < 2 and more\nnext");
    }

    #[test]
    fn markdown_splits_at_three_levels_and_strips_inline_marks() {
        let md = "# Returns guide\nIntro **text** with a [link](https://x.test/a).\n\n## Free returns\nWithin _30 days_.\n* one\n\n```\n# not a heading\n```\n#### Deep\nstill here\n### Refund time ###\n`5` days\n";
        let a = article(Format::Markdown, md);
        assert_eq!(a.title.as_deref(), Some("Returns guide"));
        assert_eq!(
            headings(&a),
            vec![
                Some("Returns guide"),
                Some("Free returns"),
                Some("Refund time")
            ]
        );
        assert_eq!(a.sections[0].text, "Intro text with a link.");
        assert_eq!(
            a.sections[1].text,
            "Within 30 days.\n- one\n\n# not a heading\n#### Deep\nstill here"
        );
        assert_eq!(a.sections[2].text, "5 days");
    }

    #[test]
    fn plain_text_by_blocks_with_heading_lines_and_a_size_cap() {
        let text = "Shipping\nWe ship in two days.\n\nTracking links come by email.\n\nReturns\n\nSend it back within 30 days.\n";
        let a = article(Format::Text, text);
        assert_eq!(headings(&a), vec![Some("Shipping"), Some("Returns")]);
        assert_eq!(
            a.sections[0].text,
            "We ship in two days.\n\nTracking links come by email."
        );
        let long = "A sentence of some length that goes on. ".repeat(100);
        let a = article(Format::Text, &long);
        assert!(a.sections.len() >= 3, "{} parts", a.sections.len());
        for s in &a.sections {
            assert!(s.text.chars().count() <= MAX_PASSAGE_CHARS);
        }
    }

    #[test]
    fn sitemaps_and_indexes() {
        let set = r#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
          <url><loc> https://shop.test/help?a=1&amp;b=2 </loc></url><url><loc><![CDATA[https://shop.test/faq]]></loc></url>
          <url><loc>https://shop.test/faq</loc></url></urlset>"#;
        assert_eq!(
            sitemap(set),
            Some(Sitemap::Pages(vec![
                "https://shop.test/help?a=1&b=2".into(),
                "https://shop.test/faq".into()
            ]))
        );
        let index =
            "<sitemapindex><sitemap><loc>https://shop.test/s1.xml</loc></sitemap></sitemapindex>";
        assert_eq!(
            sitemap(index),
            Some(Sitemap::Index(vec!["https://shop.test/s1.xml".into()]))
        );
        assert_eq!(sitemap("<html><body>no</body></html>"), None);
    }

    #[test]
    fn formats_and_slugs() {
        assert_eq!(Format::of_file_name("guide.MD"), Some(Format::Markdown));
        assert_eq!(Format::of_file_name("a.pdf"), None);
        assert_eq!(
            Format::of_content_type("text/html; charset=utf-8"),
            Some(Format::Html)
        );
        assert_eq!(Format::of_content_type("image/png"), None);
        assert_eq!(
            slug("Returns & Refunds › 30 days!"),
            "returns-refunds-30-days"
        );
        assert_eq!(entities("&#x2013;&#8211;&bogus;&amp"), "––&bogus;&amp");
    }
}
