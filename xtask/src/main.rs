//! `cargo xtask …`: the chores that are not `cargo build`.
//!
//! * `widget`  builds the visitor widget (wasm, bindgen, wasm-opt) into `target/widget/`,
//!   prints its sizes and fails when it is over budget.
//! * `setup`   installs what a fresh machine lacks (wasm target, wasm-opt, Chromium, the
//!   answer engine's embedding model).
//! * `run`     `setup`, `widget`, then the server with that widget.
//! * `test`    `setup` (failing when the embedding model could not be had: the tests need
//!   it), `widget`, embeds the demo knowledge base into the model's cache
//!   (`nexus-flow model-check`), then `cargo test --workspace`.
//! * `bench`   every target of the performance table on this machine (see `bench.rs`).

mod bench;
mod setup;
mod widget;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [args…]

commands:
  widget          build the visitor widget into target/widget/ and check its size budget
  setup           install what this machine lacks: the wasm32 target, wasm-opt, Chromium,
                  the embedding model (cached in ~/.cache/nexus-flow/models)
  run [ARGS…]     setup, widget, then `nexus-flow serve --widget-dir target/widget ARGS…`
  test [ARGS…]    setup (the tests need the embedding model; it fails without it), widget,
                  then `cargo test --workspace ARGS…`
  bench [OPTS…]   every performance target (fill, human, analytics, AI, idle)
                  on SQLite and PostgreSQL; prints the table (`cargo xtask bench --help`)
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let ws = Workspace::locate()?;
    match command.as_deref() {
        Some("widget") => {
            widget::build(&ws)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("setup") => {
            setup::run(&ws, setup::Want::All)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("run") => {
            setup::run(&ws, setup::Want::NoBrowser)?;
            widget::build(&ws)?;
            let widget_dir = ws.dist_dir();
            let mut cmd = cargo();
            cmd.current_dir(&ws.root)
                .args([
                    "run",
                    "--release",
                    "-p",
                    "nexus-server",
                    "--bin",
                    "nexus-flow",
                ])
                .args(["--", "serve", "--widget-dir"])
                .arg(&widget_dir)
                .args(&rest);
            if let Some(dir) = setup::model_dir() {
                cmd.env("NEXUS_FLOW_MODEL_DIR", dir);
            }
            exec(cmd)
        }
        Some("test") => {
            setup::run(&ws, setup::Want::All)?;
            // `run` serves without the model (lexical engine); the tests need it.
            let model = setup::model_dir();
            setup::require_model(model.as_deref())?;
            widget::build(&ws)?;
            if let Some(dir) = &model {
                // Embed the demo knowledge base into the model's cache once, so that the many
                // test servers starting in parallel find it there instead of each computing it.
                let mut warm = cargo();
                warm.current_dir(&ws.root)
                    .args(["run", "-p", "nexus-server", "--bin", "nexus-flow", "--"])
                    .args(["model-check", "--model-dir"])
                    .arg(dir);
                check(&mut warm)?;
            }
            let mut cmd = cargo();
            cmd.current_dir(&ws.root)
                .args(["test", "--workspace"])
                .args(&rest);
            if let Some(dir) = model {
                cmd.env("NEXUS_FLOW_MODEL_DIR", dir);
            }
            exec(cmd)
        }
        Some("bench") => {
            // The server serves the widget; the figures do not depend on it.
            if !rest.iter().any(|a| a == "-h" || a == "--help") && !ws.dist_dir().is_dir() {
                widget::build(&ws)?;
            }
            bench::run(&ws, &rest)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprint!("xtask: unknown command `{other}`\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
        None => {
            eprint!("{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Where things are: the workspace root and the (possibly relocated) cargo target directory.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR` and `build.target-dir`).
    pub(crate) target_dir: PathBuf,
}

impl Workspace {
    fn locate() -> Result<Self> {
        let out = cargo()
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .context("running `cargo metadata`")?;
        if !out.status.success() {
            bail!(
                "`cargo metadata` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let path = |key: &str| -> Result<PathBuf> {
            meta[key]
                .as_str()
                .map(PathBuf::from)
                .with_context(|| format!("`cargo metadata` has no {key}"))
        };
        Ok(Self {
            root: path("workspace_root")?,
            target_dir: path("target_directory")?,
        })
    }

    /// The widget's distribution: always `<repo>/target/widget`, wherever cargo builds.
    pub(crate) fn dist_dir(&self) -> PathBuf {
        self.root.join("target").join("widget")
    }

    /// Tools installed by `setup` (wasm-opt from npm): `<repo>/target/tools`.
    pub(crate) fn tools_dir(&self) -> PathBuf {
        self.root.join("target").join("tools")
    }

    pub(crate) fn wasm_opt(&self) -> PathBuf {
        self.tools_dir()
            .join("node_modules")
            .join(".bin")
            .join("wasm-opt")
    }
}

/// The cargo running us, so that `+toolchain` and the like carry over.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` to completion; an error when it fails.
pub(crate) fn check(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    format!("`{s}`")
}

/// Is `program` on the `PATH`?
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| is_file(&dir.join(program))))
}

pub(crate) fn is_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
}

/// Replaces this process with `cmd` (Unix), or runs it and passes its exit code on.
fn exec(mut cmd: Command) -> Result<ExitCode> {
    eprintln!("xtask: running {}", describe(&cmd));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = cmd.exec();
        Err(err).with_context(|| format!("starting {}", describe(&cmd)))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .with_context(|| format!("starting {}", describe(&cmd)))?;
        Ok(match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        })
    }
}
