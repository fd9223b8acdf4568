//! Lays out the release binary so that an idle daemon touches few pages.
//!
//! The kernel maps a program's code 64 KiB at a time around each page it
//! runs, so the ~1,400 functions that start, run and stop an idle daemon,
//! scattered over 7 MB of code, kept ~4.6 MB of it resident. `link/startup.order`
//! lists them (by their symbol names, as `link/refresh-order.sh` finds them
//! under callgrind) and the linker places them first, together: idle RSS
//! 9.0 MB -> 5.5 MB (docs/PERFORMANCE.md). Nothing else changes; a name the
//! binary no longer has is skipped, so a stale list only costs memory, and
//! `link/check-order.sh`, which CI runs on the release binary, fails when
//! fewer than 80 % of the names are left.
//!
//! Only where the linker is known to be LLD, which reads the list: release
//! builds for x86_64-unknown-linux-gnu with rustc 1.90 or later (which links
//! with its bundled LLD there) and no linker chosen by the user.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link/startup.order");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if !links_with_bundled_lld() {
        return;
    }
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = Path::new(&dir).join("link/startup.order");
    if !order.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=perf-sentinel=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    // Names of another build (other features, another compiler) are expected.
    println!("cargo:rustc-link-arg-bin=perf-sentinel=-Wl,--no-warn-symbol-ordering");
}

fn links_with_bundled_lld() -> bool {
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("PROFILE") != "release" || var("TARGET") != "x86_64-unknown-linux-gnu" {
        return false;
    }
    // A linker set in the config or in the flags may not know the option.
    if env::var_os("RUSTC_LINKER").is_some() || var("CARGO_ENCODED_RUSTFLAGS").contains("link") {
        return false;
    }
    rustc_minor().is_some_and(|minor| minor >= 90)
}

/// The minor version of the compiler cargo runs: `rustc 1.95.0 (...)` -> 95.
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
