//! `cargo xtask widget`: builds the visitor widget and the agents' app into
//! `<repo>/target/widget/`. Both come from the `nexus-widget` crate; the agents' app is the
//! build with the `agent` feature, in files of its own (`nexus-agent-<hash8>.*`, loaded by
//! `agent.js` on the server's `/agent` page, and by `widget.js` when a team member enters agent
//! mode on the site), so the visitor's bundle does not grow. The agents' app is built first,
//! so that the visitor's loader can name its hashed files.
//!
//! 1. `cargo build -p nexus-widget --lib --target wasm32-unknown-unknown --profile wasm-release`
//! 2. wasm-bindgen (`--target web`, name and producers sections stripped)
//! 3. `wasm-opt -O1 --converge` (see [`optimise`]) when `cargo xtask setup` installed it
//! 4. content-hashed `nexus-widget-<hash8>.{js,_bg.wasm,css}`, the `widget.js` loader pointing
//!    at them, and `manifest.json`. The server serves `widget.js` at `/widget.js` and the rest
//!    under `/widget/`, compressing them itself.
//! 5. a size table, and an error when a budget is exceeded

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use wasm_bindgen_cli_support::Bindgen;

use crate::{Workspace, cargo, check, is_file};

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";
/// The stem wasm-bindgen gives its output (the crate's lib name).
const STEM: &str = "nexus_widget";
/// Prefix of the hashed files in the dist directory.
const PREFIX: &str = "nexus-widget-";
const LOADER: &str = "widget.js";

/// Budgets in gzip bytes. The product issue's budget for the visitor app is 120 KB (it
/// measures 113.9 KB); the agent app, never downloaded by a visitor, measures 262.7 KB.
const LOADER_BUDGET: usize = 3 * 1024;
const APP_BUDGET: usize = 120 * 1024;
const AGENT_BUDGET: usize = 270 * 1024;

/// The loader's placeholders, replaced with the hashed file names.
const JS_PLACEHOLDER: &str = "__NF_JS__";
const WASM_PLACEHOLDER: &str = "__NF_WASM__";
const CSS_PLACEHOLDER: &str = "__NF_CSS__";
/// The visitor loader's names of the agents' app, which it loads for agent mode.
const AGENT_JS_PLACEHOLDER: &str = "__NF_AGENT_JS__";
const AGENT_WASM_PLACEHOLDER: &str = "__NF_AGENT_WASM__";
const AGENT_CSS_PLACEHOLDER: &str = "__NF_AGENT_CSS__";

/// One wasm app: the visitor widget, or the agents' app (the same crate with the `agent`
/// feature, so that the visitor's bundle does not carry the agent code).
struct Bundle {
    /// Its name in the size table.
    title: &'static str,
    features: &'static str,
    /// Prefix of its hashed files in the dist directory.
    prefix: &'static str,
    /// Its stylesheet and loader in `widget/`, and the loader's name in the dist directory.
    css: &'static str,
    loader_src: &'static str,
    loader: &'static str,
    budget: usize,
}

const VISITOR: Bundle = Bundle {
    title: "visitor app",
    features: "",
    prefix: PREFIX,
    css: "style.css",
    loader_src: "loader.js",
    loader: LOADER,
    budget: APP_BUDGET,
};

const AGENT: Bundle = Bundle {
    title: "agent app",
    features: "agent",
    prefix: "nexus-agent-",
    css: "agent.css",
    loader_src: "agent-loader.js",
    loader: "agent.js",
    budget: AGENT_BUDGET,
};

pub(crate) fn build(ws: &Workspace) -> Result<()> {
    let dist = ws.dist_dir();
    fs::create_dir_all(&dist)?;
    // The agents' app first: the visitor's loader names its files, for agent mode.
    let (agent, agent_sizes) = build_bundle(ws, &AGENT, &[])?;
    let name = |key: &str| agent[key].as_str().unwrap_or_default().to_owned();
    let agent_names = [
        (AGENT_JS_PLACEHOLDER, name("js")),
        (AGENT_WASM_PLACEHOLDER, name("wasm")),
        (AGENT_CSS_PLACEHOLDER, name("css")),
    ];
    let (visitor, visitor_sizes) = build_bundle(ws, &VISITOR, &agent_names)?;
    let built_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let mut manifest = visitor;
    manifest["agent"] = agent;
    manifest["built_at"] = serde_json::json!(built_at as u64);
    write(
        &dist.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    eprintln!("widget: wrote {}", dist.display());
    report(&[(&VISITOR, visitor_sizes), (&AGENT, agent_sizes)])
}

/// Builds one app into the dist directory; returns its manifest entry and file sizes.
/// `names` are further placeholders of its loader and the file names they stand for.
fn build_bundle(
    ws: &Workspace,
    bundle: &Bundle,
    names: &[(&str, String)],
) -> Result<(serde_json::Value, Vec<Sizes>)> {
    eprintln!("widget: building the {} ({PROFILE})", bundle.title);
    let mut build = cargo();
    build.current_dir(&ws.root).args([
        "build",
        "-p",
        "nexus-widget",
        "--lib",
        "--target",
        TARGET,
        "--profile",
        PROFILE,
    ]);
    if !bundle.features.is_empty() {
        build.args(["--features", bundle.features]);
    }
    // Panic locations name source files: ship `crates/leptos-0.8.23/src/…` rather than this
    // machine's paths (shorter, too). With `--target`, these flags reach only the wasm.
    if std::env::var_os("RUSTFLAGS").is_none()
        && std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_none()
    {
        build.env("CARGO_ENCODED_RUSTFLAGS", remap_flags(ws).join("\u{1f}"));
    }
    check(&mut build)?;
    let wasm_in = ws
        .target_dir
        .join(TARGET)
        .join(PROFILE)
        .join(format!("{STEM}.wasm"));
    let widget_src = ws.root.join("widget");
    let css = fs::read_to_string(widget_src.join(bundle.css))
        .with_context(|| format!("reading widget/{}", bundle.css))?;
    let css = minify_css(&css).into_bytes();
    let loader_src = fs::read_to_string(widget_src.join(bundle.loader_src))
        .with_context(|| format!("reading widget/{}", bundle.loader_src))?;

    let (js, wasm) = bindgen(ws, &wasm_in)?;
    let wasm = drop_exports(&wasm, UNUSED_EXPORTS)?;
    let wasm = optimise(ws, wasm)?;
    let js = trim_glue(&String::from_utf8(js)?, &import_names(&wasm)?);
    let (wasm, renamed) = shorten_names(&wasm)?;
    let js = rename_identifiers(&js, &renamed)?.into_bytes();

    let hash = {
        let mut h = Sha256::new();
        for part in [&js[..], &wasm[..], &css[..]] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        hex::encode(h.finalize())[..8].to_owned()
    };
    let prefix = bundle.prefix;
    let js_name = format!("{prefix}{hash}.js");
    let wasm_name = format!("{prefix}{hash}_bg.wasm");
    let css_name = format!("{prefix}{hash}.css");
    // The glue's default wasm path (only used when init gets no URL; the loader passes one).
    let js = String::from_utf8(js)?.replace(&format!("{STEM}_bg.wasm"), &wasm_name);
    let loader_src = names
        .iter()
        .fold(loader_src, |src, (from, to)| src.replace(from, to));
    let loader = minify(
        &loader_src
            .replace(JS_PLACEHOLDER, &js_name)
            .replace(WASM_PLACEHOLDER, &wasm_name)
            .replace(CSS_PLACEHOLDER, &css_name),
    );

    let dist = ws.dist_dir();
    let files: [(&str, &[u8]); 4] = [
        (&js_name, js.as_bytes()),
        (&wasm_name, &wasm),
        (&css_name, &css),
        (bundle.loader, loader.as_bytes()),
    ];
    let mut sizes = Vec::new();
    for (name, bytes) in files {
        let gz = gzip(bytes)?;
        let br = brotli(bytes)?;
        write(&dist.join(name), bytes)?;
        sizes.push(Sizes {
            name: name.to_owned(),
            raw: bytes.len(),
            gzip: gz.len(),
            brotli: br.len(),
        });
    }
    remove_stale(&dist, prefix, &hash)?;
    let entry = serde_json::json!({
        "js": js_name,
        "wasm": wasm_name,
        "css": css_name,
        "loader": bundle.loader,
    });
    Ok((entry, sizes))
}

/// `--remap-path-prefix` for the crate sources of every registry and for the workspace.
fn remap_flags(ws: &Workspace) -> Vec<String> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut flags = Vec::new();
    if let Some(Ok(registries)) = cargo_home.map(|h| fs::read_dir(h.join("registry").join("src"))) {
        for registry in registries.flatten() {
            flags.push(format!(
                "--remap-path-prefix={}=crates",
                registry.path().display()
            ));
        }
    }
    flags.push(format!(
        "--remap-path-prefix={}=nexus-flow",
        ws.root.display()
    ));
    flags
}

/// Runs wasm-bindgen; returns the JS glue and the wasm.
fn bindgen(ws: &Workspace, wasm_in: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let out = ws.target_dir.join("widget-bindgen");
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    fs::create_dir_all(&out)?;
    eprintln!("widget: wasm-bindgen {}", wasm_in.display());
    Bindgen::new()
        .input_path(wasm_in)
        .web(true)?
        .typescript(false)
        .omit_default_module_path(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&out)
        .map_err(|e| anyhow::anyhow!("wasm-bindgen: {e:#}"))?;
    if out.join("snippets").exists() {
        // Inline JS snippets would need copying next to the glue; the widget has none.
        bail!("wasm-bindgen produced JS snippets, which the widget bundle does not ship");
    }
    let js = fs::read(out.join(format!("{STEM}.js")))?;
    let wasm = fs::read(out.join(format!("{STEM}_bg.wasm")))?;
    Ok((js, wasm))
}

/// Exports no page ever calls: the `ReadableStream` adapters of `wasm-streams`, which leptos'
/// `server_fn` links in (`#[wasm_bindgen]` exports are never dead code to the linker). Dropped
/// before `wasm-opt`, which then removes the code only they reach.
const UNUSED_EXPORTS: &[&str] = &["intounderlying", "__wbg_intounderlying"];

/// Reads an unsigned LEB128 number at `*pos`.
fn leb(bytes: &[u8], pos: &mut usize) -> Result<u32> {
    let (mut value, mut shift) = (0u32, 0);
    loop {
        let byte = *bytes.get(*pos).context("truncated wasm")?;
        *pos += 1;
        value |= u32::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
        shift += 7;
        if shift > 28 {
            bail!("bad LEB128 number in the wasm");
        }
    }
}

fn push_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The sections of a wasm module: `(id, body range)`.
fn sections(wasm: &[u8]) -> Result<Vec<(u8, std::ops::Range<usize>)>> {
    if wasm.get(..4) != Some(b"\0asm") {
        bail!("not a wasm module");
    }
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < wasm.len() {
        let id = wasm[pos];
        pos += 1;
        let size = leb(wasm, &mut pos)? as usize;
        if pos + size > wasm.len() {
            bail!("truncated wasm section {id}");
        }
        out.push((id, pos..pos + size));
        pos += size;
    }
    Ok(out)
}

/// One name of the export or import section at `*pos`.
fn name<'a>(wasm: &'a [u8], pos: &mut usize) -> Result<&'a str> {
    let len = leb(wasm, pos)? as usize;
    let name = wasm.get(*pos..*pos + len).context("truncated wasm")?;
    *pos += len;
    Ok(std::str::from_utf8(name)?)
}

/// `wasm` without the exports whose names start with one of `prefixes`.
fn drop_exports(wasm: &[u8], prefixes: &[&str]) -> Result<Vec<u8>> {
    let mut out = wasm[..8].to_vec();
    for (id, range) in sections(wasm)? {
        let mut body = Vec::new();
        if id == 7 {
            let mut pos = range.start;
            let count = leb(wasm, &mut pos)?;
            let mut kept = Vec::new();
            let mut n = 0;
            for _ in 0..count {
                let start = pos;
                let export = name(wasm, &mut pos)?;
                pos += 1;
                leb(wasm, &mut pos)?;
                if !prefixes.iter().any(|p| export.starts_with(p)) {
                    kept.extend_from_slice(&wasm[start..pos]);
                    n += 1;
                }
            }
            push_leb(&mut body, n);
            body.extend_from_slice(&kept);
        } else {
            body.extend_from_slice(&wasm[range]);
        }
        out.push(id);
        push_leb(&mut out, u32::try_from(body.len())?);
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// The field names of the module's imports.
fn import_names(wasm: &[u8]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (id, range) in sections(wasm)? {
        if id != 2 {
            continue;
        }
        let mut pos = range.start;
        for _ in 0..leb(wasm, &mut pos)? {
            name(wasm, &mut pos)?;
            names.push(name(wasm, &mut pos)?.to_owned());
            let kind = wasm[pos];
            pos += 1;
            match kind {
                0 => {
                    leb(wasm, &mut pos)?;
                }
                1 => {
                    pos += 1;
                    let flags = leb(wasm, &mut pos)?;
                    leb(wasm, &mut pos)?;
                    if flags & 1 == 1 {
                        leb(wasm, &mut pos)?;
                    }
                }
                2 => {
                    let flags = leb(wasm, &mut pos)?;
                    leb(wasm, &mut pos)?;
                    if flags & 1 == 1 {
                        leb(wasm, &mut pos)?;
                    }
                }
                3 => pos += 2,
                _ => bail!("unknown import kind {kind}"),
            }
        }
    }
    Ok(names)
}

/// Is `name` one of wasm-bindgen's hashed names (`__wbg_createElement_de4a31ed2fb252be`,
/// `…_invoke__h0d31da1a857d1f5f`, `…_h0d31da1a857d1f5f_16`)?
fn is_hashed(name: &str) -> bool {
    let name = match name.rsplit_once('_') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    };
    let Some((_, hash)) = name.rsplit_once('_') else {
        return false;
    };
    let hash = hash.strip_prefix('h').unwrap_or(hash);
    hash.len() == 16 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The `n`th short name: `_N0`, `_N1`, … `_Nz`, `_N10`, …
fn short_name(mut n: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    loop {
        digits.push(DIGITS[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    format!("_N{}", String::from_utf8_lossy(&digits))
}

/// `(old name, new name)` pairs.
type Renaming = Vec<(String, String)>;

/// Renames the module's hashed import and export names (random hex compresses badly, and each
/// is written twice: in the wasm and in the glue) to short ones. Returns the new module and
/// the renaming, for [`rename_identifiers`].
fn shorten_names(wasm: &[u8]) -> Result<(Vec<u8>, Renaming)> {
    let mut renamed: Renaming = Vec::new();
    let mut rename = |name: &str| -> String {
        if !is_hashed(name) {
            return name.to_owned();
        }
        if let Some((_, short)) = renamed.iter().find(|(old, _)| old == name) {
            return short.clone();
        }
        let short = short_name(renamed.len());
        renamed.push((name.to_owned(), short.clone()));
        short
    };
    let mut out = wasm[..8].to_vec();
    for (id, range) in sections(wasm)? {
        let mut body = Vec::new();
        if id == 2 || id == 7 {
            let mut pos = range.start;
            let count = leb(wasm, &mut pos)?;
            push_leb(&mut body, count);
            for _ in 0..count {
                if id == 2 {
                    let module = name(wasm, &mut pos)?;
                    push_leb(&mut body, u32::try_from(module.len())?);
                    body.extend_from_slice(module.as_bytes());
                }
                let field = rename(name(wasm, &mut pos)?);
                push_leb(&mut body, u32::try_from(field.len())?);
                body.extend_from_slice(field.as_bytes());
                let start = pos;
                let kind = *wasm.get(pos).context("truncated wasm")?;
                pos += 1;
                match (id, kind) {
                    (7, _) | (2, 0) => {
                        leb(wasm, &mut pos)?;
                    }
                    (2, 1) | (2, 2) => {
                        if kind == 1 {
                            pos += 1;
                        }
                        let flags = leb(wasm, &mut pos)?;
                        leb(wasm, &mut pos)?;
                        if flags & 1 == 1 {
                            leb(wasm, &mut pos)?;
                        }
                    }
                    (2, 3) => pos += 2,
                    _ => bail!("unknown import kind {kind}"),
                }
                body.extend_from_slice(&wasm[start..pos]);
            }
        } else {
            body.extend_from_slice(&wasm[range]);
        }
        out.push(id);
        push_leb(&mut out, u32::try_from(body.len())?);
        out.extend_from_slice(&body);
    }
    Ok((out, renamed))
}

/// `js` with every identifier renamed as `renamed` says. An error when a new name is already
/// an identifier of the glue.
fn rename_identifiers(js: &str, renamed: &[(String, String)]) -> Result<String> {
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == '$';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(js.len());
    let mut rest = js;
    while let Some(start) = rest.find(is_start) {
        // Not the tail of a number or of another identifier.
        let glued = rest[..start].chars().last().is_some_and(is_part);
        let len = rest[start..]
            .find(|c| !is_part(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + len];
        out.push_str(&rest[..start]);
        match renamed.iter().find(|(old, _)| old == word) {
            Some((_, short)) if !glued => out.push_str(short),
            _ => {
                if renamed.iter().any(|(_, short)| short == word) {
                    bail!("the glue already has an identifier {word}");
                }
                out.push_str(word);
            }
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The wasm-bindgen glue without what the optimised wasm no longer needs: the classes of the
/// dropped exports and the imports `wasm-opt` removed; and without doc comments and indentation.
/// Relies on wasm-bindgen's layout (one import per `        name: function(…) {` … `        },`
/// block, classes as `export class X {` … `}` at the start of a line, no multi-line strings),
/// which the browser tests exercise on every build.
fn trim_glue(js: &str, imports: &[String]) -> String {
    let mut out = String::with_capacity(js.len());
    let mut skip_until: Option<&str> = None;
    let mut skip_lines = 0;
    let mut in_doc = false;
    for line in js.lines() {
        if skip_lines > 0 {
            skip_lines -= 1;
            continue;
        }
        if let Some(end) = skip_until {
            // The block's closing line (`}`, `        },` or `        }, arguments); },`).
            if line.starts_with(end) {
                skip_until = None;
            }
            continue;
        }
        let trimmed = line.trim();
        if in_doc {
            in_doc = !trimmed.ends_with("*/");
            continue;
        }
        if trimmed.starts_with("/*") {
            in_doc = !trimmed.ends_with("*/");
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        let unused_class = line.starts_with("export class IntoUnderlying");
        let unused_line = line.starts_with("if (Symbol.dispose) IntoUnderlying")
            || line.starts_with("const __wbindgen_enum_ReadableStreamType");
        if unused_class {
            skip_until = Some("}");
            continue;
        }
        if unused_line {
            continue;
        }
        if line.starts_with("const IntoUnderlying") && line.contains("Finalization = ") {
            // Three lines: the condition, the stub and the registry.
            skip_lines = 2;
            continue;
        }
        if let Some(import) = line.strip_prefix("        ")
            && let Some((field, _)) = import.split_once(": function(")
            && !field.contains(' ')
            && !imports.iter().any(|i| i == field)
        {
            // A block on one line is left alone (none so far).
            if line.ends_with('{') {
                skip_until = Some("        }");
                continue;
            }
        }
        out.push_str(trimmed);
        out.push('\n');
    }
    out
}

/// `wasm-opt -O1 --converge`, when installed; otherwise the wasm as it is, with a warning.
///
/// `-O1`, not `-Oz`: what the budgets count is the gzipped size, and `-Oz`'s inlining and
/// code folding make a smaller file that compresses worse. Measured on the visitor app's wasm
/// (2026-12-04, binaryen 132): no wasm-opt 110.5 KB gzip, `-Oz --converge` 115.3 KB, `-Os`
/// 115.3 KB, `-O2` 117.5 KB, `-O1` 106.0 KB, `-O1 --converge` 105.8 KB; the agent app 271.5 KB
/// with `-Oz --converge` and 240.4 KB with `-O1`.
fn optimise(ws: &Workspace, wasm: Vec<u8>) -> Result<Vec<u8>> {
    let bin = ws.wasm_opt();
    if !is_file(&bin) {
        eprintln!(
            "widget: warning: wasm-opt not found at {}; the wasm is not size-optimised. \
             Run `cargo xtask setup` to install it.",
            bin.display()
        );
        return Ok(wasm);
    }
    let dir = ws.target_dir.join("widget-bindgen");
    let input = dir.join("opt-in.wasm");
    let output = dir.join("opt-out.wasm");
    fs::write(&input, &wasm)?;
    eprintln!("widget: wasm-opt -O1 --converge");
    check(
        Command::new(&bin)
            .arg(&input)
            .arg("-o")
            .arg(&output)
            // The features rustc enables by default for wasm32-unknown-unknown.
            // `--low-memory-unused`: the lowest 1 KiB is the far end of Rust's stack.
            .args([
                "-O1",
                "--converge",
                "--low-memory-unused",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
            ]),
    )?;
    Ok(fs::read(&output)?)
}

/// Drops comments and the whitespace CSS does not need. Safe for `widget/style.css`, which
/// has no strings containing `/*` and no selectors with a space before a `:`.
fn minify_css(css: &str) -> String {
    let mut text = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = rest[start + 2..]
            .find("*/")
            .map_or("", |end| &rest[start + 2 + end + 2..]);
    }
    text.push_str(rest);
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(words.len());
    let mut chars = words.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.peek().copied();
            let tight = |ch: Option<char>, set: &str| ch.is_some_and(|ch| set.contains(ch));
            if tight(prev, "{};,:") || tight(next, "{};,") {
                continue;
            }
        }
        if c == '}' && out.ends_with(';') {
            out.pop();
        }
        out.push(c);
    }
    out
}

/// Drops comment-only lines, indentation and blank lines. The loader is written so that this
/// is safe: no multi-line strings, no template literals spanning lines.
fn minify(js: &str) -> String {
    let mut out = String::with_capacity(js.len());
    for line in js.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Removes hashed files of earlier builds.
fn remove_stale(dist: &Path, prefix: &str, hash: &str) -> Result<()> {
    for entry in fs::read_dir(dist)? {
        let path: PathBuf = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with(prefix) && !name.starts_with(&format!("{prefix}{hash}")) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

fn brotli(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
    Ok(out)
}

struct Sizes {
    name: String,
    raw: usize,
    gzip: usize,
    brotli: usize,
}

/// Prints the size table; an error when a budget is exceeded.
fn report(bundles: &[(&Bundle, Vec<Sizes>)]) -> Result<()> {
    let total = |rows: &[&Sizes]| Sizes {
        name: String::new(),
        raw: rows.iter().map(|s| s.raw).sum(),
        gzip: rows.iter().map(|s| s.gzip).sum(),
        brotli: rows.iter().map(|s| s.brotli).sum(),
    };
    let mut t = String::new();
    let row = |t: &mut String, name: &str, s: &Sizes, budget: &str| {
        let _ = writeln!(
            t,
            "  {name:<36} {:>10} {:>10} {:>10}  {budget}",
            kb(s.raw),
            kb(s.gzip),
            kb(s.brotli)
        );
    };
    let _ = writeln!(
        t,
        "  {:<36} {:>10} {:>10} {:>10}  budget (gzip)",
        "file", "raw", "gzip", "brotli"
    );
    let mut over = Vec::new();
    for (bundle, sizes) in bundles {
        let (loader, app): (Vec<&Sizes>, Vec<&Sizes>) =
            sizes.iter().partition(|s| s.name == bundle.loader);
        let app_total = total(&app);
        let loader_total = total(&loader);
        for s in &app {
            row(&mut t, &s.name, s, "");
        }
        row(
            &mut t,
            &format!("{} (js + wasm + css)", bundle.title),
            &app_total,
            &format!(
                "{} {}",
                kb(bundle.budget),
                verdict(app_total.gzip, bundle.budget)
            ),
        );
        row(
            &mut t,
            &format!("loader ({})", bundle.loader),
            &loader_total,
            &format!(
                "{} {}",
                kb(LOADER_BUDGET),
                verdict(loader_total.gzip, LOADER_BUDGET)
            ),
        );
        if loader_total.gzip > LOADER_BUDGET {
            over.push(format!(
                "{} is {} gzipped, over its {} budget",
                bundle.loader,
                kb(loader_total.gzip),
                kb(LOADER_BUDGET)
            ));
        }
        if app_total.gzip > bundle.budget {
            over.push(format!(
                "the {} is {} gzipped, over its {} budget",
                bundle.title,
                kb(app_total.gzip),
                kb(bundle.budget)
            ));
        }
    }
    println!("{t}");
    if !over.is_empty() {
        bail!("size budget exceeded: {}", over.join("; "));
    }
    Ok(())
}

fn verdict(size: usize, budget: usize) -> &'static str {
    if size <= budget { "ok" } else { "OVER" }
}

fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_code_and_drops_comments() {
        let src = "// header\n  const a = 'http://x';\n\n    // note\n  f(a);\n";
        assert_eq!(minify(src), "const a = 'http://x';\nf(a);\n");
    }

    #[test]
    fn minify_css_keeps_the_rules() {
        let src = "/* a */\n.a,\n.b > .c {\n  color: red;\n  margin: calc(1px - 2px);\n}\n\
                   @media (max-width: 480px) {\n  .d:not(:last-child) { font: 1px \"Segoe UI\"; }\n}\n";
        assert_eq!(
            minify_css(src),
            ".a,.b > .c{color:red;margin:calc(1px - 2px)}@media (max-width:480px)\
             {.d:not(:last-child){font:1px \"Segoe UI\"}}"
        );
    }

    #[test]
    fn trim_glue_drops_unused_imports_and_classes_only() {
        let glue = "export class IntoUnderlyingSink {\n    free() {\n        x();\n    }\n}\n\
            /**\n * doc\n */\nfunction __wbg_get_imports() {\n    const import0 = {\n\
            \x20       __wbg_gone_1: function() { return handleError(function (arg0) {\n\
            \x20           arg0.gone();\n        }, arguments); },\n\
            \x20       __wbg_kept_2: function(arg0) {\n            return arg0.kept;\n        },\n\
            \x20   };\n}\n";
        assert_eq!(
            trim_glue(glue, &["__wbg_kept_2".to_owned()]),
            "function __wbg_get_imports() {\nconst import0 = {\n__wbg_kept_2: function(arg0) {\n\
             return arg0.kept;\n},\n};\n}\n"
        );
    }

    #[test]
    fn dropping_exports_keeps_a_valid_module() {
        // (module (func) (export "keep" (func 0)) (export "intounderlyingsink_free" (func 0)))
        let wasm: &[u8] = &[
            0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 34, 2, 4, 107, 101, 101,
            112, 0, 0, 23, 105, 110, 116, 111, 117, 110, 100, 101, 114, 108, 121, 105, 110, 103,
            115, 105, 110, 107, 95, 102, 114, 101, 101, 0, 0, 10, 4, 1, 2, 0, 11,
        ];
        let out = drop_exports(wasm, UNUSED_EXPORTS).unwrap();
        let exports: Vec<u8> = vec![7, 8, 1, 4, 107, 101, 101, 112, 0, 0];
        assert!(out.windows(exports.len()).any(|w| w == exports), "{out:?}");
        assert_eq!(out.len(), wasm.len() - 26);
        assert!(import_names(&out).unwrap().is_empty());
    }

    #[test]
    fn hashed_names_become_short_in_the_wasm_and_the_glue() {
        assert!(is_hashed("__wbg_createElement_de4a31ed2fb252be"));
        assert!(is_hashed(
            "wasm_bindgen__convert__closures_____invoke__h0d31da1a857d1f5f_16"
        ));
        assert!(!is_hashed("__wbindgen_malloc"));
        assert!(!is_hashed("mount"));
        assert_eq!(short_name(0), "_N0");
        assert_eq!(short_name(37), "_N11");
        // (module (import "m" "__wbg_f_0123456789abcdef" (func)) (export "mount" ...))
        let mut wasm = vec![0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0];
        let field = b"__wbg_f_0123456789abcdef";
        let mut import = vec![1, 1, b'm', field.len() as u8];
        import.extend_from_slice(field);
        import.extend_from_slice(&[0, 0]);
        wasm.push(2);
        wasm.push(import.len() as u8);
        wasm.extend_from_slice(&import);
        let (out, renamed) = shorten_names(&wasm).unwrap();
        assert_eq!(import_names(&out).unwrap(), ["_N0"]);
        assert_eq!(
            renamed,
            [("__wbg_f_0123456789abcdef".to_owned(), "_N0".to_owned())]
        );
        let glue = "x.__wbg_f_0123456789abcdef = function() {}; a__wbg_f_0123456789abcdef;";
        assert_eq!(
            rename_identifiers(glue, &renamed).unwrap(),
            "x._N0 = function() {}; a__wbg_f_0123456789abcdef;"
        );
        assert!(rename_identifiers("let _N0;", &renamed).is_err());
    }

    #[test]
    fn compressed_sizes_are_smaller_for_text() {
        let text = "hello widget ".repeat(200);
        assert!(gzip(text.as_bytes()).unwrap().len() < text.len() / 10);
        assert!(brotli(text.as_bytes()).unwrap().len() < text.len() / 10);
    }
}
