//! Where things live: the project root, the examples workspace, the images
//! `cargo build` produces, the scratch directories of emulator runs, and
//! every other directory xtask writes (below `target/` and
//! `examples/target/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The Rust target every image is built for (docs/DECISIONS.md, "Bare-metal
/// images on the Linux target": the toolchain has no bare-metal target, so
/// we link `no_std` binaries for the Linux target with our own linker
/// scripts).
pub const IMAGE_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The file name of a run's console, inside its run directory.
pub const CONSOLE_FILE: &str = "console.txt";

/// Environment variable that points xtask at another project root.
///
/// Only meant for testing xtask itself against a throwaway project (for
/// example a tree with a fake `examples/` workspace and linker scripts).
pub const ROOT_OVERRIDE_ENV: &str = "XTASK_PROJECT_ROOT";

/// The repository root: the parent of `xtask/`, unless overridden through
/// [`ROOT_OVERRIDE_ENV`].
pub fn project_root() -> PathBuf {
    if let Some(root) = std::env::var_os(ROOT_OVERRIDE_ENV) {
        return PathBuf::from(root);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one directory below the project root")
        .to_path_buf()
}

/// The two images of an example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `examples/NAME/vmm`: the hypervisor image (vmm-core + handlers).
    Vmm,
    /// `examples/NAME/guest`: the guest program.
    Guest,
}

impl Role {
    /// Both roles, in build order.
    pub const ALL: [Role; 2] = [Role::Vmm, Role::Guest];

    /// Directory name below `examples/NAME/`, package/bin suffix and
    /// target-dir name.
    pub fn dir(self) -> &'static str {
        match self {
            Role::Vmm => "vmm",
            Role::Guest => "guest",
        }
    }

    /// The linker script of this role, relative to the project root.
    pub fn linker_script(self) -> &'static str {
        match self {
            Role::Vmm => "vmm-core/link.ld",
            Role::Guest => "examples/guest-rt/link.ld",
        }
    }

    /// Package and binary name of example `name` in this role.
    pub fn package(self, name: &str) -> String {
        format!("{name}-{}", self.dir())
    }
}

/// Paths derived from one project root.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The repository root.
    pub root: PathBuf,
}

impl Layout {
    /// The layout of the project xtask belongs to.
    pub fn current() -> Layout {
        Layout {
            root: project_root(),
        }
    }

    /// The separate cargo workspace of bare-metal examples.
    pub fn examples_dir(&self) -> PathBuf {
        self.root.join("examples")
    }

    /// `CARGO_TARGET_DIR` for the images of one role.
    pub fn image_target_dir(&self, role: Role) -> PathBuf {
        self.examples_dir().join("target").join(role.dir())
    }

    /// The ELF file `cargo build` produces for `name` in `role`.
    pub fn image(&self, name: &str, role: Role) -> PathBuf {
        self.image_target_dir(role)
            .join(IMAGE_TARGET)
            .join("release")
            .join(role.package(name))
    }

    /// Scratch directory of one emulator run (ISO, bochsrc, logs, console).
    pub fn run_dir(&self, name: &str, platform: &str) -> PathBuf {
        self.examples_dir()
            .join("target")
            .join("runs")
            .join(format!("{name}-{platform}"))
    }

    /// The console of one emulator run, kept after it.
    pub fn console_file(&self, name: &str, platform: &str) -> PathBuf {
        self.run_dir(name, platform).join(CONSOLE_FILE)
    }

    /// `examples/NAME`.
    pub fn example_dir(&self, name: &str) -> PathBuf {
        self.examples_dir().join(name)
    }

    /// `examples/NAME/expect.txt`.
    pub fn expect_file(&self, name: &str) -> PathBuf {
        self.example_dir(name).join("expect.txt")
    }

    /// `examples/NAME/expect-cpusN.txt` (N = 2 ..= 8), with N: what a run
    /// of NAME on N CPUs must show (`cargo xtask test` runs each; `run
    /// --cpus N` uses it instead of `expect.txt`). Sorted by N.
    pub fn smp_expect_files(&self, name: &str) -> anyhow::Result<Vec<(u8, PathBuf)>> {
        let mut out = Vec::new();
        for cpus in 2..=crate::platform::MAX_CPUS {
            let path = self.smp_expect_file(name, cpus);
            if path.exists() {
                out.push((cpus, path));
            }
        }
        Ok(out)
    }

    /// `examples/NAME/expect-cpusN.txt`.
    pub fn smp_expect_file(&self, name: &str, cpus: u8) -> PathBuf {
        self.example_dir(name)
            .join(format!("expect-cpus{cpus}.txt"))
    }

    /// `examples/NAME/linux`: the example's Linux program (a cargo
    /// package), its `run.txt` and its `expect.txt`.
    pub fn example_linux_dir(&self, name: &str) -> PathBuf {
        self.example_dir(name).join("linux")
    }

    /// `examples/NAME/c`: the example's C programs for the Linux guest.
    pub fn example_c_dir(&self, name: &str) -> PathBuf {
        self.example_dir(name).join("c")
    }

    /// The header-only C SDK (`guest-sdk/include`, `vmmcall.h`).
    pub fn c_include_dir(&self) -> PathBuf {
        self.root.join("guest-sdk").join("include")
    }

    /// The target directory of the host workspace's own builds: the
    /// user's `CARGO_TARGET_DIR` (relative to the root) or `target/`.
    pub fn host_target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }

    /// `CARGO_TARGET_DIR` of the static Linux programs (`+crt-static`
    /// never reaches host builds).
    pub fn linux_guest_target_dir(&self) -> PathBuf {
        self.root.join("target").join("linux-guest")
    }

    /// A static Linux program built into [`Layout::linux_guest_target_dir`].
    pub fn static_binary(&self, name: &str) -> PathBuf {
        self.linux_guest_target_dir()
            .join(IMAGE_TARGET)
            .join("release")
            .join(name)
    }

    /// Where an example's C programs are built.
    pub fn c_programs_dir(&self, example: &str) -> PathBuf {
        self.linux_guest_target_dir().join("c").join(example)
    }

    /// The initramfs and bundle of an example's Linux run.
    pub fn linux_run_dir(&self, example: &str) -> PathBuf {
        self.root.join("target").join("linux-run").join(example)
    }

    /// The cache of one versioned Debian kernel package.
    pub fn kernel_cache_dir(&self, package: &str) -> PathBuf {
        self.root.join("target").join("linux-kernel").join(package)
    }

    /// `CARGO_TARGET_DIR` of `cargo package`'s verification, apart from
    /// the workspace's own `target/`.
    pub fn package_target_dir(&self) -> PathBuf {
        self.root.join("target").join("package-check")
    }

    /// `CARGO_HOME` of `cargo package`'s verification: its own, so that
    /// what cargo unpacks there never lands in the user's cargo home.
    pub fn package_cargo_home(&self) -> PathBuf {
        self.package_target_dir().join("cargo-home")
    }

    /// `CRITERION_HOME` of the host benches.
    pub fn criterion_home(&self) -> PathBuf {
        self.examples_dir().join("target").join("criterion")
    }

    /// Every example: the directories `examples/NAME` that hold
    /// `vmm/Cargo.toml`, sorted by name.
    pub fn discover_examples(&self) -> Result<Vec<String>> {
        let dir = self.examples_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            if path.join("vmm").join("Cargo.toml").is_file() {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Checks that `name` is a complete example and returns it.
    pub fn check_example(&self, name: &str) -> Result<()> {
        let base = self.examples_dir().join(name);
        for role in Role::ALL {
            let manifest = base.join(role.dir()).join("Cargo.toml");
            if !manifest.is_file() {
                let known = self.discover_examples().unwrap_or_default();
                bail!(
                    "example `{name}` is incomplete or unknown: {} does not exist \
                     (known examples: {})",
                    manifest.display(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_follow_the_contract() {
        let layout = Layout {
            root: PathBuf::from("/r"),
        };
        assert_eq!(
            layout.image("hello", Role::Vmm),
            PathBuf::from("/r/examples/target/vmm/x86_64-unknown-linux-gnu/release/hello-vmm")
        );
        assert_eq!(
            layout.image("hello", Role::Guest),
            PathBuf::from("/r/examples/target/guest/x86_64-unknown-linux-gnu/release/hello-guest")
        );
    }

    #[test]
    fn root_is_parent_of_xtask() {
        if std::env::var_os(ROOT_OVERRIDE_ENV).is_none() {
            assert!(project_root().join("xtask").join("Cargo.toml").is_file());
        }
    }
}
