//! `cargo run -- image FILE`: a GRUB-bootable hybrid ISO (BIOS and UEFI) holding the firmware ELF, which
//! GRUB starts through Multiboot2. Built with `grub-mkrescue` from Debian's GRUB packages
//! (`grub-pc-bin`, `grub-efi-amd64-bin`, `xorriso`, `mtools`), installed with apt-get when missing.
//!
//! The firmware's console is COM1 (text and report records) and COM2 (defmt frames), as in QEMU; GRUB
//! itself prints to the screen only and boots at once. The ELF is also written beside the image as
//! `FILE.elf`: `cargo run -- decode` needs the very ELF the image holds to decode a capture.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Debian packages the image needs.
pub const PACKAGES: &[&str] = &["grub-pc-bin", "grub-efi-amd64-bin", "xorriso", "mtools"];
/// GRUB's platform directories that must both be present for a hybrid BIOS+UEFI image.
const GRUB_PLATFORMS: &[&str] = &["/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi"];
/// UEFI firmware images for QEMU from Debian's `ovmf` package, first found is used.
pub const OVMF_PATHS: &[&str] = &["/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd", "/usr/share/OVMF/OVMF.fd"];

/// Why an image could not be made.
#[derive(Debug)]
pub enum ImageError {
    /// The tools are missing and could not be installed.
    ToolsMissing(String),
    /// A file could not be written or read.
    Io(PathBuf, std::io::Error),
    /// `grub-mkrescue` failed.
    Mkrescue(String),
    /// The command line cannot be put into grub.cfg.
    BadCmdline(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::ToolsMissing(why) => write!(f, "GRUB tools missing ({why}); install them with `apt-get install {}`", PACKAGES.join(" ")),
            ImageError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            ImageError::Mkrescue(out) => write!(f, "grub-mkrescue failed: {out}"),
            ImageError::BadCmdline(why) => write!(f, "command line not usable in grub.cfg: {why}"),
        }
    }
}

impl std::error::Error for ImageError {}

fn tools_present() -> Result<(), String> {
    for tool in ["grub-mkrescue", "xorriso", "mformat"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!("{tool} not found"));
        }
    }
    for dir in GRUB_PLATFORMS {
        if !Path::new(dir).is_dir() {
            return Err(format!("{dir} missing"));
        }
    }
    Ok(())
}

/// Makes sure the GRUB tools are there, installing Debian's packages with apt-get (as root, or through
/// sudo when it asks no password) when they are not.
pub fn ensure_tools() -> Result<(), ImageError> {
    let Err(missing) = tools_present() else { return Ok(()) };
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "apt-get"]);
        c
    };
    eprintln!("image: {missing}; installing {} with apt-get", PACKAGES.join(" "));
    // Fresh package lists first: a machine image's may be stale or empty.
    let mut update = if root { Command::new("apt-get") } else { Command::new("sudo") };
    if !root {
        update.args(["-n", "apt-get"]);
    }
    let _ = update.args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive").stdout(Stdio::null()).status();
    let installed = cmd
        .args(["install", "-y", "--no-install-recommends"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return Err(ImageError::ToolsMissing(format!("{missing}, and apt-get could not install them")));
    }
    tools_present().map_err(ImageError::ToolsMissing)
}

/// The first OVMF image found.
pub fn ovmf() -> Option<PathBuf> {
    OVMF_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// grub.cfg for the image: boot at once, the firmware through Multiboot2 with `cmdline`.
pub fn grub_cfg(cmdline: &str) -> Result<String, ImageError> {
    // GRUB's parser treats these specially inside a menu entry; the firmware's words never need them.
    if let Some(c) = cmdline.chars().find(|c| matches!(c, '\n' | '\r' | '"' | '\'' | '\\' | '$' | ';' | '{' | '}' | '#' | '|' | '&' | '<' | '>')) {
        return Err(ImageError::BadCmdline(format!("character {c:?}")));
    }
    let cmdline = cmdline.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(format!(
        "# msifw: booted at once through Multiboot2; its console is COM1 (text, report) and COM2 (defmt).\n\
         set timeout=0\n\
         set default=0\n\
         # Keep the screen mode the firmware left: under UEFI there is no text mode to go back to, and\n\
         # asking for one prints \"no suitable video mode found\" (msifw draws nothing on screen).\n\
         set gfxpayload=keep\n\
         menuentry \"msifw\" {{\n    multiboot2 /boot/msifw.elf {cmdline}\n    boot\n}}\n"
    ))
}

/// Builds the ISO at `out` from `elf` with the firmware command line `cmdline`, and copies the ELF to
/// `out` + `.elf`. `work` is a scratch directory for the image tree.
pub fn build_iso(elf: &Path, cmdline: &str, out: &Path, work: &Path) -> Result<(), ImageError> {
    ensure_tools()?;
    let tree = work.join("iso");
    let grub = tree.join("boot/grub");
    fs::create_dir_all(&grub).map_err(|e| ImageError::Io(grub.clone(), e))?;
    let target = tree.join("boot/msifw.elf");
    fs::copy(elf, &target).map_err(|e| ImageError::Io(elf.to_path_buf(), e))?;
    let cfg = grub.join("grub.cfg");
    fs::write(&cfg, grub_cfg(cmdline)?).map_err(|e| ImageError::Io(cfg.clone(), e))?;
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(&tree)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ImageError::Mkrescue(e.to_string()))?;
    if !output.status.success() || !out.is_file() {
        return Err(ImageError::Mkrescue(String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    let beside = elf_beside(out);
    fs::copy(elf, &beside).map_err(|e| ImageError::Io(beside.clone(), e))?;
    Ok(())
}

/// Where [`build_iso`] keeps the ELF of the image at `iso`.
pub fn elf_beside(iso: &Path) -> PathBuf {
    let mut name = iso.as_os_str().to_owned();
    name.push(".elf");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_at_once_with_the_command_line() {
        let cfg = grub_cfg("  rounds=3   irq.00:02.0=msi ").unwrap();
        assert!(cfg.contains("set timeout=0") && cfg.contains("set gfxpayload=keep\n"));
        assert!(cfg.contains("    multiboot2 /boot/msifw.elf rounds=3 irq.00:02.0=msi\n"));
        assert!(matches!(grub_cfg("a\nb"), Err(ImageError::BadCmdline(_))));
        assert!(matches!(grub_cfg("x=$y"), Err(ImageError::BadCmdline(_))));
        assert!(grub_cfg("").unwrap().contains("msifw.elf \n"));
    }

    #[test]
    fn elf_is_kept_beside_the_image() {
        assert_eq!(elf_beside(Path::new("out/msifw.iso")), PathBuf::from("out/msifw.iso.elf"));
    }
}
