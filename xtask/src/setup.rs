//! Host tool checks: make sure the emulators and the ISO tools exist before
//! they are used, installing the Debian packages when running as root.
//!
//! The decision is a pure function ([`decide`]) so it can be unit-tested on a
//! machine where everything is already installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

/// How a requirement is detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// An executable found on `PATH`.
    Binary(&'static str),
    /// A file or directory at a fixed path.
    Path(&'static str),
}

/// One thing that must exist, and the Debian package that provides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// How to detect it.
    pub probe: Probe,
    /// The Debian package to install if it is missing.
    pub package: &'static str,
}

/// A group of tools needed for one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toolset {
    /// QEMU runs.
    Qemu,
    /// Bochs runs (Bochs itself and the GRUB ISO tools).
    Bochs,
    /// The C programs: `gcc -static` against `guest-sdk/include/vmmcall.h`
    /// (the host test and the Linux guests' C programs).
    C,
}

const C: &[Requirement] = &[
    Requirement {
        probe: Probe::Binary("gcc"),
        package: "gcc",
    },
    Requirement {
        probe: Probe::Path("/usr/lib/x86_64-linux-gnu/libc.a"),
        package: "libc6-dev",
    },
];

const QEMU: &[Requirement] = &[Requirement {
    probe: Probe::Binary("qemu-system-x86_64"),
    package: "qemu-system-x86",
}];

const BOCHS: &[Requirement] = &[
    Requirement {
        probe: Probe::Binary("bochs"),
        package: "bochs",
    },
    Requirement {
        probe: Probe::Path("/usr/share/bochs/BIOS-bochs-latest"),
        package: "bochsbios",
    },
    Requirement {
        probe: Probe::Path("/usr/share/vgabios/vgabios.bin"),
        package: "vgabios",
    },
    Requirement {
        probe: Probe::Binary("grub-mkrescue"),
        package: "grub-common",
    },
    Requirement {
        probe: Probe::Path("/usr/lib/grub/i386-pc"),
        package: "grub-pc-bin",
    },
    Requirement {
        probe: Probe::Binary("xorriso"),
        package: "xorriso",
    },
    Requirement {
        probe: Probe::Binary("mformat"),
        package: "mtools",
    },
];

impl Toolset {
    /// What this toolset needs.
    pub fn requirements(self) -> &'static [Requirement] {
        match self {
            Toolset::Qemu => QEMU,
            Toolset::Bochs => BOCHS,
            Toolset::C => C,
        }
    }
}

/// What to do about missing tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Everything is there.
    Ready,
    /// Install these packages with apt-get (running `apt-get update` first
    /// when `update` is set).
    Install {
        /// Run `apt-get update` first (only once per xtask process).
        update: bool,
        /// The packages, deduplicated, in requirement order.
        packages: Vec<String>,
    },
    /// Cannot install: stop with this message.
    Stop(String),
}

/// The install command a user should run, printed when we cannot run it.
pub fn install_command(packages: &[String], root: bool) -> String {
    format!(
        "{}apt-get update && {}env DEBIAN_FRONTEND=noninteractive apt-get install -y \
         --no-install-recommends {}",
        if root { "" } else { "sudo " },
        if root { "" } else { "sudo " },
        packages.join(" ")
    )
}

/// Decides what to do given the packages of missing requirements.
///
/// `is_root`: the effective user id is 0. `has_apt`: `apt-get` is on PATH.
/// `apt_updated`: `apt-get update` already ran in this process.
pub fn decide(
    missing_packages: &[&str],
    is_root: bool,
    has_apt: bool,
    apt_updated: bool,
) -> Action {
    let mut packages: Vec<String> = Vec::new();
    for p in missing_packages {
        if !packages.iter().any(|q| q == p) {
            packages.push((*p).to_owned());
        }
    }
    if packages.is_empty() {
        return Action::Ready;
    }
    if !has_apt {
        return Action::Stop(format!(
            "missing tools, and apt-get is not available to install them. Install the \
             equivalents of these Debian packages: {}",
            packages.join(" ")
        ));
    }
    if !is_root {
        return Action::Stop(format!(
            "missing tools (Debian packages: {}). Not running as root, so not installing them. \
             Install them with:\n    {}",
            packages.join(" "),
            install_command(&packages, false)
        ));
    }
    Action::Install {
        update: !apt_updated,
        packages,
    }
}

/// Finds an executable on `PATH`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn present(probe: Probe) -> bool {
    match probe {
        Probe::Binary(name) => find_binary(name).is_some(),
        Probe::Path(path) => Path::new(path).exists(),
    }
}

fn describe(probe: Probe) -> String {
    match probe {
        Probe::Binary(name) => format!("`{name}` (not on PATH)"),
        Probe::Path(path) => format!("{path} (does not exist)"),
    }
}

/// Whether the effective user is root: from `/proc/self/status`, else `id -u`.
pub fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(uid) = effective_uid_from_status(&status) {
            return uid == 0;
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The effective uid from the `Uid:` line of `/proc/self/status`
/// (`Uid: real effective saved fs`).
fn effective_uid_from_status(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

fn apt(args: &[&str]) -> Result<()> {
    println!("setup: running apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .context("starting apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The packages a simulated `apt-get install` (`-s`) would remove: the
/// name on each `Remv NAME [VERSION ...]` line. Installing one package can
/// remove another that conflicts with it (on this project's machine,
/// `qemu-system-x86` from Debian replaced the image's newer `qemu-utils`).
pub fn removals(simulation: &str) -> Vec<String> {
    simulation
        .lines()
        .filter_map(|l| l.strip_prefix("Remv "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Says, before installing, which packages apt-get will remove to install
/// `packages` (asked with `apt-get install -s`, which changes nothing).
fn warn_about_removals(packages: &[String]) {
    let mut args = vec!["install", "-s", "--no-install-recommends"];
    args.extend(packages.iter().map(String::as_str));
    let simulated = Command::new("apt-get")
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output();
    match simulated {
        Ok(out) => {
            let removed = removals(&String::from_utf8_lossy(&out.stdout));
            if !removed.is_empty() {
                println!(
                    "setup: WARNING: installing {} makes apt-get REMOVE {} (apt-get install -s); \
                     reinstall {} afterwards if you need {}",
                    packages.join(" "),
                    removed.join(" "),
                    if removed.len() == 1 { "it" } else { "them" },
                    if removed.len() == 1 { "it" } else { "them" },
                );
            }
        }
        Err(e) => println!("setup: could not simulate the install ({e}); installing anyway"),
    }
}

/// Makes sure every tool of `sets` exists, installing what is missing when
/// running as root on a Debian-like system.
pub fn ensure(sets: &[Toolset]) -> Result<()> {
    let missing: Vec<&Requirement> = sets
        .iter()
        .flat_map(|s| s.requirements())
        .filter(|r| !present(r.probe))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for r in &missing {
        println!(
            "setup: missing {} from package {}",
            describe(r.probe),
            r.package
        );
    }
    let packages: Vec<&str> = missing.iter().map(|r| r.package).collect();
    match decide(
        &packages,
        is_root(),
        find_binary("apt-get").is_some(),
        APT_UPDATED.load(Ordering::SeqCst),
    ) {
        Action::Ready => Ok(()),
        Action::Stop(message) => bail!(message),
        Action::Install { update, packages } => {
            println!("setup: running as root, installing: {}", packages.join(" "));
            if update {
                apt(&["update"])?;
                APT_UPDATED.store(true, Ordering::SeqCst);
            }
            warn_about_removals(&packages);
            let mut args = vec!["install", "-y", "--no-install-recommends"];
            args.extend(packages.iter().map(String::as_str));
            apt(&args)?;
            let still: Vec<String> = missing
                .iter()
                .filter(|r| !present(r.probe))
                .map(|r| describe(r.probe))
                .collect();
            if !still.is_empty() {
                bail!(
                    "still missing after installing packages: {}",
                    still.join(", ")
                );
            }
            println!("setup: done");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_is_ready() {
        assert_eq!(decide(&[], false, false, false), Action::Ready);
    }

    #[test]
    fn root_installs_after_one_update() {
        assert_eq!(
            decide(&["bochs", "vgabios", "bochs"], true, true, false),
            Action::Install {
                update: true,
                packages: vec!["bochs".into(), "vgabios".into()],
            }
        );
        assert_eq!(
            decide(&["xorriso"], true, true, true),
            Action::Install {
                update: false,
                packages: vec!["xorriso".into()],
            }
        );
    }

    #[test]
    fn non_root_stops_with_the_exact_command() {
        let Action::Stop(msg) = decide(&["qemu-system-x86"], false, true, false) else {
            panic!("expected Stop");
        };
        assert!(
            msg.contains(
                "sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive apt-get install \
                 -y --no-install-recommends qemu-system-x86"
            ),
            "{msg}"
        );
    }

    #[test]
    fn no_apt_stops() {
        assert!(matches!(
            decide(&["bochs"], true, false, false),
            Action::Stop(_)
        ));
    }

    #[test]
    fn removals_come_from_the_simulation() {
        // The shape of `apt-get install -s` output (apt's simulation
        // lines: `Remv NAME [OLD VERSION]`, `Inst NAME (VERSION ...)`).
        let simulation = "Reading package lists...\n\
            The following packages will be REMOVED:\n  qemu-utils\n\
            Remv qemu-utils [1:9.0.0]\n\
            Inst qemu-system-common (1:7.2+dfsg-7+deb12u18 Debian:12.13/stable [amd64])\n\
            Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u18 Debian:12.13/stable [amd64])\n\
            Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u18 Debian:12.13/stable [amd64])\n";
        assert_eq!(removals(simulation), ["qemu-utils"]);
        assert!(removals("Inst bochs (2.7)\nConf bochs (2.7)\n").is_empty());
        assert_eq!(removals("Remv a [1]\nRemv b\n"), ["a", "b"]);
    }

    #[test]
    fn uid_parsing() {
        let status = "Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid_from_status(status), Some(0));
        assert_eq!(effective_uid_from_status("Name: x\n"), None);
    }

    #[test]
    fn requirements_cover_the_documented_packages() {
        let packages: Vec<&str> = [Toolset::Qemu, Toolset::Bochs, Toolset::C]
            .iter()
            .flat_map(|s| s.requirements())
            .map(|r| r.package)
            .collect();
        for p in [
            "qemu-system-x86",
            "bochs",
            "bochsbios",
            "vgabios",
            "grub-common",
            "grub-pc-bin",
            "xorriso",
            "mtools",
            "gcc",
            "libc6-dev",
        ] {
            assert!(packages.contains(&p), "{p}");
        }
    }
}
