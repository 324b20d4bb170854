//! Link arguments for the firmware. Only the `x86_64-unknown-none` build is a firmware image; the host
//! build of the same package is the launcher and links normally.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=linker/msifw.ld");
    println!("cargo:rerun-if-changed=boot");
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker/msifw.ld");
        // defmt's linker fragment (found on the search path defmt's own build script adds).
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-znoexecstack");
    }
}
