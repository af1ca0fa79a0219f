//! `cargo xtask widget`: builds the visitor widget and the agents' app into
//! `<repo>/target/widget/`. Both come from the `nexus-widget` crate; the agents' app is the
//! build with the `agent` feature, in files of its own (`nexus-agent-<hash8>.*`, loaded by
//! `agent.js` on the server's `/agent` page), so the visitor's bundle does not grow.
//!
//! 1. `cargo build -p nexus-widget --lib --target wasm32-unknown-unknown --profile wasm-release`
//! 2. wasm-bindgen (`--target web`, name and producers sections stripped)
//! 3. `wasm-opt -Oz` when `cargo xtask setup` installed it
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

/// Budgets from the product issue, in gzip bytes.
const LOADER_BUDGET: usize = 3 * 1024;
const APP_BUDGET: usize = 120 * 1024;
const AGENT_BUDGET: usize = 250 * 1024;

/// The loader's placeholders, replaced with the hashed file names.
const JS_PLACEHOLDER: &str = "__NF_JS__";
const WASM_PLACEHOLDER: &str = "__NF_WASM__";
const CSS_PLACEHOLDER: &str = "__NF_CSS__";

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
    let (visitor, visitor_sizes) = build_bundle(ws, &VISITOR)?;
    let (agent, agent_sizes) = build_bundle(ws, &AGENT)?;
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
fn build_bundle(ws: &Workspace, bundle: &Bundle) -> Result<(serde_json::Value, Vec<Sizes>)> {
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
    let wasm = optimise(ws, wasm)?;

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

/// `wasm-opt -Oz`, when installed; otherwise the wasm as it is, with a warning.
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
    eprintln!("widget: wasm-opt -Oz");
    check(
        Command::new(&bin)
            .arg(&input)
            .arg("-o")
            .arg(&output)
            // The features rustc enables by default for wasm32-unknown-unknown.
            .args([
                "-Oz",
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
    fn compressed_sizes_are_smaller_for_text() {
        let text = "hello widget ".repeat(200);
        assert!(gzip(text.as_bytes()).unwrap().len() < text.len() / 10);
        assert!(brotli(text.as_bytes()).unwrap().len() < text.len() / 10);
    }
}
