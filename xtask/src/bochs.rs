//! Bochs: a GRUB rescue ISO that multiboot2-loads the VMM with the guest as
//! a module, a headless bochsrc, and the command line.
//!
//! Headless: this Bochs build has no `nogui` and Debian's `bochs` package
//! ships only the `rfb` display plugin (plus whatever GUI package satisfies
//! its dependency), so the display is `rfb` with `timeout=0` (do not wait for
//! a VNC client). The rfb plugin takes the first free TCP port from 5900
//! upwards, so parallel runs do not collide. The serial console goes to a
//! file that the runner tails; the debugger (compiled in) is fed `c` and
//! `quit` from an rc file so no stdin is needed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::paths::CONSOLE_FILE;
use crate::platform::{Cpu, Emulate, Launched, Machine, Payload, Stop};
use crate::runner::ConsoleSource;
use crate::verdict;

/// Bochs's part in a run ([`Emulate`]).
pub struct Bochs;

impl Emulate for Bochs {
    /// The ISO, bochsrc and debugger commands ([`prepare`]); the console
    /// is the file Bochs writes, its log is read for the verdict.
    fn launch(
        &self,
        machine: Machine,
        run_dir: &Path,
        payload: &Payload,
        vmm_cmdline: &str,
    ) -> Result<Launched> {
        let files = prepare(run_dir, machine, payload, vmm_cmdline)?;
        Ok(Launched {
            command: command(&files),
            console: ConsoleSource::File {
                console: files.console.clone(),
                output: files.output.clone(),
            },
            note: Some(("ISO, bochsrc, console and log", files.dir.clone())),
            files: vec![
                ("bochs log", files.log.clone()),
                ("bochs output", files.output.clone()),
            ],
            log: Some(files.log),
        })
    }

    fn stop_reasons(&self, stop: &Stop<'_>) -> Vec<String> {
        verdict::bochs_stop_reasons(stop)
    }

    fn log_errors<'a>(&self, log: &'a str) -> Vec<&'a str> {
        verdict::bochs_errors(log)
    }
}

/// The Bochs binary.
pub const BINARY: &str = "bochs";
/// The BIOS image (package `bochsbios`).
pub const BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// The VGA BIOS image (package `vgabios`).
pub const VGA_BIOS: &str = "/usr/share/vgabios/vgabios.bin";

/// Emulated instructions per emulated second. Lower is faster in wall-clock
/// terms here (the BIOS waits on timers); 4 M boots in about 2 s.
pub const IPS: u32 = 4_000_000;

/// Emulated instructions per second for Linux runs. Linux calibrates its
/// delay loops and timers against the PIT; at 4 M its timer interrupts
/// come every few thousand instructions and boot crawls (measured here),
/// while 50 M boots the cloud kernel to /init in about 30 s.
pub const LINUX_IPS: u32 = 50_000_000;

/// The emulated instructions per second for `payload`.
pub fn ips(payload: &Payload) -> u32 {
    if payload.is_linux() {
        LINUX_IPS
    } else {
        IPS
    }
}

/// The files of one Bochs run, all inside the run directory.
pub struct Files {
    /// The run directory (Bochs runs with it as working directory).
    pub dir: PathBuf,
    /// The bochsrc.
    pub config: PathBuf,
    /// The debugger command file (`c`, `quit`).
    pub commands: PathBuf,
    /// The serial console written by Bochs.
    pub console: PathBuf,
    /// Bochs's own log.
    pub log: PathBuf,
    /// Bochs's stdout and stderr.
    pub output: PathBuf,
    /// The ISO.
    pub iso: PathBuf,
}

/// The Bochs CPU model for a vendor: Skylake-X has VMX with EPT; Ryzen has
/// SVM with nested paging and NRIPS.
pub fn cpu_model(cpu: Cpu) -> &'static str {
    match cpu {
        Cpu::Intel => "corei7_skylake_x",
        Cpu::Amd => "ryzen",
    }
}

/// GRUB configuration: boot at once, VMM via multiboot2 with
/// `vmm_cmdline` (`verdict=SECRET`, see `crate::verdict`; the VMM gets it
/// as a type-1 command-line tag), guest as module with the command line
/// `guest`.
pub fn grub_cfg(vmm_cmdline: &str) -> String {
    format!(
        "set timeout=0\nset default=0\nmenuentry \"vmmcall\" {{\n    multiboot2 /boot/vmm {vmm_cmdline}\n    module2 /boot/guest guest\n    boot\n}}\n"
    )
}

/// GRUB configuration for a Linux kernel alone (`linux` + `initrd`).
pub fn grub_cfg_kernel(cmdline: &str) -> String {
    format!(
        "set timeout=0\nset default=0\nmenuentry \"linux\" {{\n    linux /boot/vmlinuz {cmdline}\n    initrd /boot/initrd\n    boot\n}}\n"
    )
}

/// The arguments of `grub-mkrescue` (without the output and the tree).
///
/// `--compress=xz` also works but makes the ISO only ~20% smaller and takes
/// twice as long, so it is not used.
pub const GRUB_MKRESCUE_ARGS: &[&str] = &[
    "--install-modules=multiboot2 linux normal iso9660 biosdisk",
    "--fonts=",
    "--locales=",
    "--themes=",
];

/// The bochsrc text.
pub fn config(cpu: Cpu, count: u8, files: &Files, payload: &Payload) -> String {
    format!(
        "\
# Generated by cargo xtask; rerun by hand with: bochs -q -f bochsrc -rc commands
cpu: model={model}, ips={ips}, reset_on_triple_fault=0, count={count}
memory: guest={mem}, host={mem}
romimage: file={bios}
vgaromimage: file={vga}
ata0-master: type=cdrom, path=\"{iso}\", status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=\"{console}\"
display_library: rfb, options=\"timeout=0\"
speaker: enabled=0
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
log: \"{log}\"
panic: action=fatal
error: action=report
info: action=report
debug: action=ignore
",
        model = cpu_model(cpu),
        ips = ips(payload),
        count = count,
        mem = payload.memory_mib(),
        bios = BIOS,
        vga = VGA_BIOS,
        iso = files.iso.display(),
        console = files.console.display(),
        log = files.log.display(),
    )
}

/// Creates the run directory afresh, the ISO and the Bochs configuration.
pub fn prepare(
    dir: &Path,
    machine: Machine,
    payload: &Payload,
    vmm_cmdline: &str,
) -> Result<Files> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let tree = dir.join("iso");
    let grub = tree.join("boot").join("grub");
    fs::create_dir_all(&grub).with_context(|| format!("creating {}", grub.display()))?;
    let copy = |from: &Path, to: &str| {
        fs::copy(from, tree.join("boot").join(to))
            .with_context(|| format!("copying {}", from.display()))
    };
    let grub_cfg = match payload {
        Payload::Vmm { vmm, module, .. } => {
            copy(vmm, "vmm")?;
            copy(module, "guest")?;
            grub_cfg(vmm_cmdline)
        }
        Payload::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            copy(kernel, "vmlinuz")?;
            copy(initrd, "initrd")?;
            grub_cfg_kernel(cmdline)
        }
    };
    fs::write(grub.join("grub.cfg"), grub_cfg).context("writing grub.cfg")?;

    let files = Files {
        dir: dir.to_path_buf(),
        config: dir.join("bochsrc"),
        commands: dir.join("commands"),
        console: dir.join(CONSOLE_FILE),
        log: dir.join("bochs.log"),
        output: dir.join("bochs-output.txt"),
        iso: dir.join("boot.iso"),
    };
    let out = Command::new("grub-mkrescue")
        .args(GRUB_MKRESCUE_ARGS)
        .arg("-o")
        .arg(&files.iso)
        .arg(&tree)
        .stdin(std::process::Stdio::null())
        .output()
        .context("starting grub-mkrescue")?;
    if !out.status.success() || !files.iso.is_file() {
        bail!(
            "grub-mkrescue failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::write(
        &files.config,
        config(machine.cpu, machine.cpus, &files, payload),
    )
    .context("writing bochsrc")?;
    fs::write(&files.commands, "c\nquit\n").context("writing the debugger commands")?;
    Ok(files)
}

/// The Bochs command for prepared `files`.
pub fn command(files: &Files) -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.current_dir(&files.dir)
        .arg("-q")
        .arg("-f")
        .arg(&files.config)
        .arg("-rc")
        .arg(&files.commands);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_essentials() {
        let d = Path::new("/run");
        let files = Files {
            dir: d.into(),
            config: d.join("bochsrc"),
            commands: d.join("commands"),
            console: d.join("console.txt"),
            log: d.join("bochs.log"),
            output: d.join("out"),
            iso: d.join("boot.iso"),
        };
        let bare = Payload::Vmm {
            vmm: "/v".into(),
            module: "/g".into(),
            linux: false,
        };
        let intel = config(Cpu::Intel, 1, &files, &bare);
        assert!(intel.contains("cpu: model=corei7_skylake_x, ips=4000000"));
        assert!(intel.contains("com1: enabled=1, mode=file, dev=\"/run/console.txt\""));
        assert!(intel.contains("ata0-master: type=cdrom, path=\"/run/boot.iso\""));
        assert!(intel.contains("display_library: rfb, options=\"timeout=0\""));
        assert!(config(Cpu::Amd, 4, &files, &bare)
            .contains("model=ryzen, ips=4000000, reset_on_triple_fault=0, count=4"));
        assert!(intel.contains("memory: guest=256, host=256"));
        let linux = Payload::Vmm {
            vmm: "/v".into(),
            module: "/b".into(),
            linux: true,
        };
        let l = config(Cpu::Intel, 1, &files, &linux);
        assert!(l.contains("ips=50000000") && l.contains("memory: guest=512, host=512"));
    }

    #[test]
    fn grub_cfg_for_a_kernel_alone() {
        let c = grub_cfg_kernel("console=ttyS0 quiet");
        assert!(c.contains("    linux /boot/vmlinuz console=ttyS0 quiet\n"));
        assert!(c.contains("    initrd /boot/initrd\n"));
    }

    #[test]
    fn grub_cfg_loads_vmm_and_guest() {
        let cfg = grub_cfg("verdict=ab12");
        assert!(cfg.contains("    multiboot2 /boot/vmm verdict=ab12\n"));
        assert!(cfg.contains("module2 /boot/guest guest\n"));
        assert!(cfg.starts_with("set timeout=0\nset default=0\n"));
    }
}
