//! Building the firmware ELF with a nested `cargo build`.
//!
//! Design notes (verified with cargo 1.95 on this project):
//! - **No separate target directory.** `cargo test` does not hold the build-directory lock while it
//!   runs test binaries, and `cargo run` execs the program (Unix) after releasing it, so the nested
//!   build shares the workspace's `target/` (the firmware lands in
//!   `target/x86_64-unknown-none/<profile>/msifw`) without deadlocking. Checked by running
//!   `CARGO_TARGET_DIR=<fresh dir> cargo test -p msifw-host --test boot` (now `--test qemu boot::`): the nested build compiled
//!   the firmware and all its host-side build dependencies (proc macros, build scripts) from inside
//!   the running test, with no "Blocking waiting for file lock". Sharing the directory also avoids
//!   compiling those build dependencies twice. The nested build only waits if *another* cargo is
//!   building in the same directory at that moment (rust-analyzer, a second terminal), and then only
//!   until that one finishes.
//! - **The ELF path comes from cargo** (`--message-format=json-render-diagnostics`, the
//!   `compiler-artifact` message's `executable`), so `CARGO_TARGET_DIR` or `build.target-dir` set by
//!   the user are honoured instead of guessed ([`default_elf_path`] is only a fallback).
//!   Diagnostics and progress still go to stderr as usual.
//! - **Environment:** `RUSTFLAGS`, `CARGO_ENCODED_RUSTFLAGS` and `CARGO_BUILD_RUSTFLAGS` are removed:
//!   cargo gives them precedence over `[target.x86_64-unknown-none] rustflags` in
//!   `.cargo/config.toml` (checked: with `RUSTFLAGS` set, rustc no longer gets
//!   `-C relocation-model=static`), so flags meant for the host build (`RUSTFLAGS=-Dwarnings` in CI,
//!   or flags set by an outer tool) would silently change the firmware image. `CARGO_BUILD_TARGET`
//!   is removed (`--target` is explicit anyway). The variables cargo sets for the running host crate
//!   (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `CARGO_CRATE_NAME`, `CARGO_PRIMARY_PACKAGE`,
//!   `CARGO_BIN_NAME`, `CARGO_BIN_EXE_*`, `CARGO_TARGET_TMPDIR`, `CARGO_RUSTC_CURRENT_DIR`, `OUT_DIR`)
//!   describe the launcher, not the firmware, and are removed. `CARGO_TARGET_DIR`, `CARGO_HOME`,
//!   `RUSTUP_TOOLCHAIN`, `RUSTC`, `RUSTC_WRAPPER` and `DEFMT_LOG` are kept: they are the user's
//!   choices for this build too.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};

/// Rust target of the firmware.
pub const FIRMWARE_TARGET: &str = "x86_64-unknown-none";
/// Package and binary name of the firmware.
pub const FIRMWARE_BIN: &str = "msifw";

/// The cargo workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    dir.canonicalize().unwrap_or(dir)
}

/// Cargo profile used for the firmware: `release` when this crate was built without debug
/// assertions, `dev` otherwise.
pub fn firmware_profile_is_release() -> bool {
    !cfg!(debug_assertions)
}

/// Where the firmware ELF is when cargo's default layout is used:
/// `<CARGO_TARGET_DIR or workspace/target>/x86_64-unknown-none/<debug|release>/msifw`.
pub fn default_elf_path(release: bool) -> PathBuf {
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    };
    let profile = if release { "release" } else { "debug" };
    target_dir
        .join(FIRMWARE_TARGET)
        .join(profile)
        .join(FIRMWARE_BIN)
}

/// Why the firmware could not be built.
#[derive(Clone, Debug)]
pub enum FirmwareError {
    /// Cargo could not be started.
    Spawn {
        /// The cargo program.
        cargo: OsString,
        /// The error.
        source: Arc<io::Error>,
    },
    /// Cargo's output could not be read.
    Io(Arc<io::Error>),
    /// `cargo build` failed (its diagnostics went to stderr).
    BuildFailed(ExitStatus),
    /// Cargo succeeded but named no `msifw` executable.
    NoArtifact,
    /// The ELF cargo named does not exist.
    Missing(PathBuf),
}

impl fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirmwareError::Spawn { cargo, source } => {
                write!(f, "could not run {}: {source}", Path::new(cargo).display())
            }
            FirmwareError::Io(e) => write!(f, "could not read cargo's output: {e}"),
            FirmwareError::BuildFailed(status) => write!(
                f,
                "building the firmware (cargo build --target {FIRMWARE_TARGET} --bin {FIRMWARE_BIN}) failed \
                 ({status}); the compiler's messages are above"
            ),
            FirmwareError::NoArtifact => {
                write!(f, "cargo built nothing called {FIRMWARE_BIN} for {FIRMWARE_TARGET}")
            }
            FirmwareError::Missing(path) => write!(f, "the firmware ELF {} does not exist", path.display()),
        }
    }
}

impl std::error::Error for FirmwareError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FirmwareError::Spawn { source, .. } | FirmwareError::Io(source) => {
                Some(source.as_ref())
            }
            _ => None,
        }
    }
}

/// Environment variables removed from the nested cargo (see the module docs).
fn strip_var(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    EXACT.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

/// The nested cargo command (not yet run).
pub fn build_command(release: bool) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root());
    cmd.args([
        "build",
        "--package",
        FIRMWARE_BIN,
        "--bin",
        FIRMWARE_BIN,
        "--target",
        FIRMWARE_TARGET,
    ]);
    cmd.arg("--message-format=json-render-diagnostics");
    if release {
        cmd.arg("--release");
    }
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(strip_var) {
            cmd.env_remove(&name);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Builds the firmware now (no caching) and returns the ELF path.
pub fn build_firmware(release: bool) -> Result<PathBuf, FirmwareError> {
    let mut cmd = build_command(release);
    let cargo = cmd.get_program().to_os_string();
    let mut child = cmd.spawn().map_err(|e| FirmwareError::Spawn {
        cargo,
        source: Arc::new(e),
    })?;
    let mut elf = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| FirmwareError::Io(Arc::new(e)))?;
            if let Some(path) = artifact_executable(&line) {
                elf = Some(path);
            }
        }
    }
    let status = child.wait().map_err(|e| FirmwareError::Io(Arc::new(e)))?;
    if !status.success() {
        return Err(FirmwareError::BuildFailed(status));
    }
    let elf = match elf {
        Some(elf) => elf,
        None if default_elf_path(release).is_file() => default_elf_path(release),
        None => return Err(FirmwareError::NoArtifact),
    };
    if !elf.is_file() {
        return Err(FirmwareError::Missing(elf));
    }
    Ok(elf)
}

/// The `executable` of a cargo `compiler-artifact` JSON message for the firmware binary.
fn artifact_executable(line: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = msg.get("target")?;
    if target.get("name")?.as_str()? != FIRMWARE_BIN {
        return None;
    }
    let is_bin = target
        .get("kind")?
        .as_array()?
        .iter()
        .any(|k| k.as_str() == Some("bin"));
    if !is_bin {
        return None;
    }
    msg.get("executable")?.as_str().map(PathBuf::from)
}

/// The firmware ELF, built at most once per process (later calls return the first result).
pub fn firmware_elf() -> Result<PathBuf, FirmwareError> {
    static ELF: OnceLock<Result<PathBuf, FirmwareError>> = OnceLock::new();
    ELF.get_or_init(|| build_firmware(firmware_profile_is_release()))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_lines() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w#msifw@0.1.0","target":{"kind":["bin"],"crate_types":["bin"],"name":"msifw","src_path":"/w/src/main.rs"},"executable":"/w/target/x86_64-unknown-none/debug/msifw","fresh":true}"#;
        assert_eq!(
            artifact_executable(line),
            Some(PathBuf::from("/w/target/x86_64-unknown-none/debug/msifw"))
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"msifw"},"executable":null}"#;
        assert_eq!(artifact_executable(lib), None);
        let other = r#"{"reason":"build-finished","success":true}"#;
        assert_eq!(artifact_executable(other), None);
        assert_eq!(artifact_executable("not json"), None);
    }

    #[test]
    fn stripped_environment() {
        for name in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_PKG_NAME",
            "CARGO_BIN_EXE_msifw",
            "OUT_DIR",
        ] {
            assert!(strip_var(name), "{name}");
        }
        for name in [
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "RUSTUP_TOOLCHAIN",
            "DEFMT_LOG",
            "PATH",
            "CARGO",
        ] {
            assert!(!strip_var(name), "{name}");
        }
        let cmd = build_command(true);
        let args: Vec<_> = cmd.get_args().collect();
        assert!(args.contains(&std::ffi::OsStr::new("--release")));
        assert!(args.contains(&std::ffi::OsStr::new(FIRMWARE_TARGET)));
    }

    #[test]
    fn default_layout() {
        let path = default_elf_path(false);
        assert!(
            path.ends_with("x86_64-unknown-none/debug/msifw"),
            "{}",
            path.display()
        );
        assert!(default_elf_path(true).ends_with("x86_64-unknown-none/release/msifw"));
    }

    #[test]
    fn workspace_root_has_the_firmware_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"msifw\""));
    }
}
