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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    All,
    /// Everything but the browser the end-to-end tests need.
    NoBrowser,
}

pub(crate) fn run(ws: &Workspace, want: Want) -> Result<()> {
    wasm_target()?;
    wasm_opt(ws)?;
    if want == Want::All {
        browser()?;
    }
    Ok(())
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
