//! Every cargo command xtask runs starts here: [`cargo`] (the cargo that
//! runs xtask, in a given directory) and [`cross`], the release builds for
//! [`IMAGE_TARGET`] with their own target directory and compiler flags
//! ([`Build`]): the bare-metal images and the static Linux programs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::images;
use crate::paths::{Layout, Role, IMAGE_TARGET};

/// `cargo` in `dir`: the cargo that runs xtask (`$CARGO`), else the one on
/// `PATH`.
pub fn cargo(dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir);
    cmd
}

/// The flags of the static Linux programs: no dynamic loader in the
/// initramfs.
pub const STATIC_RUSTFLAGS: [&str; 2] = ["-C", "target-feature=+crt-static"];

/// What a release build for [`IMAGE_TARGET`] produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// Bare-metal images of one role ([`images::rustflags`]).
    Image(Role),
    /// Static Linux programs for the initramfs ([`STATIC_RUSTFLAGS`]).
    StaticLinux,
}

impl Build {
    /// Its `CARGO_TARGET_DIR`.
    pub fn target_dir(self, layout: &Layout) -> PathBuf {
        match self {
            Build::Image(role) => layout.image_target_dir(role),
            Build::StaticLinux => layout.linux_guest_target_dir(),
        }
    }

    /// Its rustc flags.
    pub fn rustflags(self, layout: &Layout) -> Vec<String> {
        match self {
            Build::Image(role) => images::rustflags(layout, role),
            Build::StaticLinux => STATIC_RUSTFLAGS.map(str::to_owned).to_vec(),
        }
    }
}

/// `cargo SUBCOMMAND --release --target IMAGE_TARGET` (build, clippy) in
/// `dir` for `build`.
///
/// The flags go through `CARGO_ENCODED_RUSTFLAGS` (separated by 0x1f) so a
/// project path with spaces survives; it takes precedence over `RUSTFLAGS`
/// and over any `build.rustflags` in cargo configuration. Because
/// `--target` is explicit, they reach only the target's crates, not
/// proc-macros or build scripts (which run on the host).
pub fn cross(layout: &Layout, dir: &Path, build: Build, subcommand: &str) -> Command {
    let mut cmd = cargo(dir);
    cmd.args([subcommand, "--release", "--target", IMAGE_TARGET])
        .env("CARGO_TARGET_DIR", build.target_dir(layout))
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            build.rustflags(layout).join("\x1f"),
        )
        .env_remove("RUSTFLAGS");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(cmd: &'a Command, key: &str) -> Option<&'a std::ffi::OsStr> {
        cmd.get_envs().find(|(k, _)| *k == key).and_then(|(_, v)| v)
    }

    #[test]
    fn static_programs_get_their_own_dir_and_flag() {
        let layout = Layout {
            root: PathBuf::from("/p"),
        };
        let cmd = cross(
            &layout,
            Path::new("/p/examples"),
            Build::StaticLinux,
            "clippy",
        );
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "clippy",
                "--release",
                "--target",
                "x86_64-unknown-linux-gnu"
            ]
        );
        assert_eq!(
            env(&cmd, "CARGO_TARGET_DIR").unwrap(),
            "/p/target/linux-guest"
        );
        assert_eq!(
            env(&cmd, "CARGO_ENCODED_RUSTFLAGS").unwrap(),
            "-C\x1ftarget-feature=+crt-static"
        );
        assert!(
            cmd.get_envs().any(|(k, v)| k == "RUSTFLAGS" && v.is_none()),
            "RUSTFLAGS removed"
        );
    }
}
