//! Building the bare-metal example images: the one place that knows the
//! bare-metal compiler flags and how the examples workspace is built.
//!
//! The examples are a separate cargo workspace (`examples/`). Both roles are
//! built for [`IMAGE_TARGET`] in release mode, each with its own target
//! directory and linker script:
//!
//! - every `NAME-vmm` package into `examples/target/vmm`, linked with
//!   `vmm-core/link.ld`;
//! - every `NAME-guest` package into `examples/target/guest`, linked with
//!   `examples/guest-rt/link.ld`.
//!
//! The cargo command itself comes from [`crate::cargo::cross`].

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cargo::{self, Build};
use crate::paths::{Layout, Role, IMAGE_TARGET};
use crate::ui;

/// Compiler flags of every bare-metal image, in order, before the
/// role-specific linker script (docs/DECISIONS.md, "Bare-metal images on
/// the Linux target"):
///
/// - `relocation-model=static`: the images run at their link address;
/// - `-nostartfiles -nostdlib -static -no-pie`: no C runtime, no libc, no
///   dynamic loader, no position-independent executable;
/// - `--build-id=none`: no `.note.gnu.build-id` to disturb the layout
///   (QEMU's PVH loader reads the ELF notes);
/// - `max-page-size=0x1000`: 4 KiB segment alignment instead of the default
///   2 MiB, which keeps images small and addresses where the script puts them.
///
/// The crates' bare-metal code is selected by Cargo features and crates
/// (vmm-core's `rt`, the guests' `guest-rt`), not by a `--cfg`.
///
/// The linker script comes last: `-C link-arg=-Wl,-T,<absolute path>`
/// ([`linker_script_flags`]).
pub const BAREMETAL_RUSTFLAGS: &[&str] = &[
    "-C",
    "relocation-model=static",
    "-C",
    "link-arg=-nostartfiles",
    "-C",
    "link-arg=-nostdlib",
    "-C",
    "link-arg=-static",
    "-C",
    "link-arg=-no-pie",
    "-C",
    "link-arg=-Wl,--build-id=none",
    "-C",
    "link-arg=-Wl,-z,max-page-size=0x1000",
];

/// The guests' extra flag: no red zone (the 128 bytes below RSP a leaf
/// function may use without moving RSP). A bare-metal guest runs its
/// hypercalls at CPL 0, where an exception or NMI the VMM injects at the
/// call site (the single-step `#DB` after a hypercall with RFLAGS.TF, for
/// one) pushes its frame on the same stack, below RSP; and the hypercall
/// `asm!` says `nostack`, which lets the compiler keep live data there
/// across it. docs/ABI.md, "Bare-metal guests and the red zone". (The
/// VMM's own red zone belongs to its NMI handling, not to this flag.)
pub const GUEST_RUSTFLAGS: &[&str] = &["-C", "no-redzone=yes"];

/// The flags selecting a linker script.
pub fn linker_script_flags(script: &Path) -> [String; 2] {
    [
        "-C".to_owned(),
        format!("link-arg=-Wl,-T,{}", script.display()),
    ]
}

/// All rustc flags for one role, as a list.
pub fn rustflags(layout: &Layout, role: Role) -> Vec<String> {
    let mut flags: Vec<String> = BAREMETAL_RUSTFLAGS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if role == Role::Guest {
        flags.extend(GUEST_RUSTFLAGS.iter().map(|s| (*s).to_owned()));
    }
    flags.extend(linker_script_flags(&layout.root.join(role.linker_script())));
    flags
}

/// The `cargo build` command for `examples` in `role`.
pub fn build_command(layout: &Layout, role: Role, examples: &[String]) -> Command {
    cargo_command(layout, role, examples, "build")
}

/// `cargo SUBCOMMAND` (build, clippy) for `examples` in `role`, with the
/// bare-metal flags ([`cargo::cross`]).
pub fn cargo_command(
    layout: &Layout,
    role: Role,
    examples: &[String],
    subcommand: &str,
) -> Command {
    let mut cmd = cargo::cross(
        layout,
        &layout.examples_dir(),
        Build::Image(role),
        subcommand,
    );
    for name in examples {
        cmd.arg("--package").arg(role.package(name));
    }
    cmd
}

/// A shell-like rendering of the build command, for people.
fn describe(layout: &Layout, role: Role, examples: &[String]) -> String {
    let mut s = format!(
        "CARGO_TARGET_DIR=examples/target/{} RUSTFLAGS=\"{}\" cargo build --release --target {}",
        role.dir(),
        rustflags(layout, role).join(" "),
        IMAGE_TARGET
    );
    for name in examples {
        s.push_str(" -p ");
        s.push_str(&role.package(name));
    }
    s
}

/// Builds both images of each example in `examples` (release).
pub fn build(layout: &Layout, examples: &[String]) -> Result<()> {
    if examples.is_empty() {
        bail!(
            "no examples to build: nothing matches {}/*/vmm/Cargo.toml",
            layout.examples_dir().display()
        );
    }
    if !layout.examples_dir().join("Cargo.toml").is_file() {
        bail!(
            "{} is missing: the examples are their own cargo workspace",
            layout.examples_dir().join("Cargo.toml").display()
        );
    }
    for role in Role::ALL {
        let script = layout.root.join(role.linker_script());
        if !script.is_file() {
            bail!("linker script {} does not exist", script.display());
        }
    }
    let start = Instant::now();
    println!("building examples (release): {}", examples.join(", "));
    for role in Role::ALL {
        let step = Instant::now();
        println!(
            "  {} images: {}",
            role.dir(),
            describe(layout, role, examples)
        );
        let status = build_command(layout, role, examples)
            .status()
            .context("starting cargo")?;
        if !status.success() {
            bail!("building the {} images failed ({status})", role.dir());
        }
        println!(
            "  {} images built in {}",
            role.dir(),
            ui::secs(step.elapsed())
        );
    }
    for name in examples {
        for role in Role::ALL {
            let image = layout.image(name, role);
            if !image.is_file() {
                bail!(
                    "cargo succeeded but {} does not exist (is the bin of package `{}` named `{}`?)",
                    image.display(),
                    role.package(name),
                    role.package(name)
                );
            }
        }
    }
    println!("examples built in {}", ui::secs(start.elapsed()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn flags_end_with_the_role_script() {
        let layout = Layout {
            root: PathBuf::from("/p"),
        };
        let vmm = rustflags(&layout, Role::Vmm).join(" ");
        assert_eq!(
            vmm,
            "-C relocation-model=static -C link-arg=-nostartfiles -C link-arg=-nostdlib \
             -C link-arg=-static -C link-arg=-no-pie -C link-arg=-Wl,--build-id=none \
             -C link-arg=-Wl,-z,max-page-size=0x1000 \
             -C link-arg=-Wl,-T,/p/vmm-core/link.ld"
        );
        assert!(!vmm.contains("redzone"));
        assert!(rustflags(&layout, Role::Guest)
            .join(" ")
            .ends_with("-C no-redzone=yes -C link-arg=-Wl,-T,/p/examples/guest-rt/link.ld"));
    }

    #[test]
    fn command_selects_packages_and_target_dir() {
        let layout = Layout {
            root: PathBuf::from("/p"),
        };
        let cmd = build_command(&layout, Role::Guest, &["a".into(), "b".into()]);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "build",
                "--release",
                "--target",
                "x86_64-unknown-linux-gnu",
                "--package",
                "a-guest",
                "--package",
                "b-guest"
            ]
        );
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/p/examples")));
        let target_dir = cmd
            .get_envs()
            .find(|(k, _)| *k == "CARGO_TARGET_DIR")
            .and_then(|(_, v)| v)
            .unwrap();
        assert_eq!(target_dir, "/p/examples/target/guest");
    }
}
