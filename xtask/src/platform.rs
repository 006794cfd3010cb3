//! The machines an example can boot on: emulator, CPU vendor and (for QEMU)
//! accelerator, plus the platform matrix `cargo xtask test` runs.
//!
//! Everything that differs between the emulators is asked of [`Emulate`],
//! implemented once per emulator ([`crate::qemu::Qemu`],
//! [`crate::bochs::Bochs`]); [`Emulator::driver`] is the one place that
//! maps the name to it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::runner::ConsoleSource;
use crate::setup::Toolset;

/// Which emulator runs the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    /// `qemu-system-x86_64`, booting the VMM through PVH (`-kernel`).
    Qemu,
    /// Bochs 2.7, booting a GRUB ISO (multiboot2).
    Bochs,
}

/// The CPU vendor, i.e. which virtualization extension the VMM uses:
/// vmexit's `Vendor` (`Intel`, `Amd`), the one vmm-core picks its backend
/// by, with what xtask adds in [`CpuChoice`].
pub use vmexit::Vendor as Cpu;

/// QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Full emulation; emulates SVM (not VMX).
    Tcg,
    /// Hardware virtualization with nested VMX/SVM (`-cpu host`).
    Kvm,
}

impl Emulator {
    /// Every emulator.
    pub const ALL: [Emulator; 2] = [Emulator::Qemu, Emulator::Bochs];

    /// This emulator's row of the platform table.
    pub fn facts(self) -> &'static Facts {
        match self {
            Emulator::Qemu => &QEMU,
            Emulator::Bochs => &BOCHS,
        }
    }

    /// What a run asks of this emulator.
    pub fn driver(self) -> &'static dyn Emulate {
        match self {
            Emulator::Qemu => &crate::qemu::Qemu,
            Emulator::Bochs => &crate::bochs::Bochs,
        }
    }

    /// Parses `qemu` or `bochs`.
    pub fn parse(s: &str) -> Result<Emulator> {
        match Emulator::ALL.into_iter().find(|e| e.facts().name == s) {
            Some(e) => Ok(e),
            None => bail!("unknown emulator `{s}` (expected qemu or bochs)"),
        }
    }
}

/// How the VMM's stop request looked to the emulator, for
/// [`Emulate::stop_reasons`].
pub struct Stop<'a> {
    /// The emulator's exit code.
    pub code: i32,
    /// `expect.txt` wants success (status 0).
    pub want_success: bool,
    /// The VMM's own verdict line reported status 0.
    pub vmm_success: bool,
    /// The emulator's log ([`Launched::log`]), if it has one and it was
    /// readable.
    pub log: Option<&'a str>,
    /// The run's secret.
    pub secret: &'a str,
}

/// One emulator run, ready to start.
pub struct Launched {
    /// The emulator's command line.
    pub command: Command,
    /// Where its serial console appears.
    pub console: ConsoleSource,
    /// The emulator's own log file, read for the verdict and for failure
    /// reports.
    pub log: Option<PathBuf>,
    /// Files named in a failure report after the console: label and path.
    pub files: Vec<(&'static str, PathBuf)>,
    /// Printed after the command line, before the run: what files are
    /// kept in which directory.
    pub note: Option<(&'static str, PathBuf)>,
}

/// QEMU's row of the platform table.
const QEMU: Facts = Facts {
    name: "qemu",
    title: "QEMU",
    toolset: Toolset::Qemu,
    // QEMU boots Linux in about 2 s here.
    linux_timeout: Duration::from_secs(60),
    // Under TCG the guest's RDTSC is the host's TSC: only ratios mean
    // something.
    exact_ticks: false,
};

/// Bochs's row of the platform table.
const BOCHS: Facts = Facts {
    name: "bochs",
    title: "Bochs",
    toolset: Toolset::Bochs,
    // Bochs boots Linux in about 40 s of wall-clock time here.
    linux_timeout: Duration::from_secs(300),
    // Bochs's TSC advances with emulated instructions (`bochs::IPS`).
    exact_ticks: true,
};

/// An emulator's row of the platform table.
pub struct Facts {
    /// The name in platform names and `--emulator` (`qemu`, `bochs`).
    pub name: &'static str,
    /// The name in messages (`QEMU`, `Bochs`).
    pub title: &'static str,
    /// The host tools its runs need.
    pub toolset: Toolset,
    /// The default timeout of a Linux boot.
    pub linux_timeout: Duration,
    /// Whether the guest's RDTSC counts emulated instructions (exact
    /// ticks), so that differences of a few ticks mean something.
    pub exact_ticks: bool,
}

/// What differs between emulators' runs: each run asks its emulator for
/// its command line, console and log ([`Emulate::launch`]) and its exit
/// protocol ([`Emulate::stop_reasons`]); the rest is data
/// ([`Emulator::facts`]).
pub trait Emulate: Sync {
    /// Creates `run_dir` afresh with what booting `payload` on `machine`
    /// needs, with `vmm_cmdline` for the VMM, and returns the run.
    fn launch(
        &self,
        machine: Machine,
        run_dir: &Path,
        payload: &Payload,
        vmm_cmdline: &str,
    ) -> Result<Launched>;
    /// Why an exit with `stop.code` is not the VMM's own stop request for
    /// the outcome (empty: it is).
    fn stop_reasons(&self, stop: &Stop<'_>) -> Vec<String>;
    /// The error lines of the emulator's log worth showing when a run
    /// fails (none by default).
    fn log_errors<'a>(&self, _log: &'a str) -> Vec<&'a str> {
        Vec::new()
    }
}

/// What xtask needs of a [`Cpu`] beyond vmexit's type: its `--cpu` word
/// and its platform-name part.
pub trait CpuChoice: Sized {
    /// Parses `amd` or `intel`.
    fn parse(s: &str) -> Result<Self>;
    /// The virtualization extension's short name.
    fn extension(self) -> &'static str;
}

impl CpuChoice for Cpu {
    fn parse(s: &str) -> Result<Cpu> {
        match s {
            "amd" => Ok(Cpu::Amd),
            "intel" => Ok(Cpu::Intel),
            _ => bail!("unknown cpu `{s}` (expected amd or intel)"),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Cpu::Amd => "svm",
            Cpu::Intel => "vmx",
        }
    }
}

impl Accel {
    /// Parses `tcg` or `kvm`.
    pub fn parse(s: &str) -> Result<Accel> {
        match s {
            "tcg" => Ok(Accel::Tcg),
            "kvm" => Ok(Accel::Kvm),
            _ => bail!("unknown accelerator `{s}` (expected tcg or kvm)"),
        }
    }
}

/// What an emulator run boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A VMM image with its boot module: a bare-metal guest ELF, or a Linux
    /// bundle (`linux`: kernel, initramfs and command line for the VMM).
    Vmm {
        /// The VMM ELF.
        vmm: PathBuf,
        /// The boot module.
        module: PathBuf,
        /// The module is a Linux bundle (more memory; Bochs at Linux speed).
        linux: bool,
    },
    /// A Linux kernel booted without any VMM (`cargo xtask linux --compare`).
    Kernel {
        /// The bzImage.
        kernel: PathBuf,
        /// The initramfs.
        initrd: PathBuf,
        /// The kernel command line.
        cmdline: String,
    },
}

impl Payload {
    /// Whether Linux runs (VMM guest or alone).
    pub fn is_linux(&self) -> bool {
        !matches!(self, Payload::Vmm { linux: false, .. })
    }

    /// Machine memory in MiB: the VMM with a Linux guest needs its 256 MiB
    /// of guest RAM plus the module and itself; a kernel alone gets the
    /// same 256 MiB as the VMM's guest.
    pub fn memory_mib(&self) -> u32 {
        match self {
            Payload::Vmm { linux: true, .. } => 512,
            _ => 256,
        }
    }
}

/// One concrete machine configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The emulator.
    pub emulator: Emulator,
    /// The CPU vendor.
    pub cpu: Cpu,
    /// The accelerator (always [`Accel::Tcg`] for Bochs, which has none).
    pub accel: Accel,
    /// How many CPUs (`--cpus`, 1 ..= [`MAX_CPUS`]): QEMU `-smp N`, Bochs
    /// `cpu: count=N`. vmm-core runs one vCPU on each.
    pub cpus: u8,
}

/// The most CPUs vmm-core uses (`vmm_core::smp::MAX_CPUS`).
pub const MAX_CPUS: u8 = 8;

impl Machine {
    /// QEMU TCG with AMD SVM + NPT.
    pub const QEMU_SVM: Machine = Machine {
        emulator: Emulator::Qemu,
        cpu: Cpu::Amd,
        accel: Accel::Tcg,
        cpus: 1,
    };
    /// Bochs with an Intel CPU model (VMX + EPT).
    pub const BOCHS_VMX: Machine = Machine {
        emulator: Emulator::Bochs,
        cpu: Cpu::Intel,
        accel: Accel::Tcg,
        cpus: 1,
    };
    /// Bochs with an AMD CPU model (SVM + NPT + NRIPS).
    pub const BOCHS_SVM: Machine = Machine {
        emulator: Emulator::Bochs,
        cpu: Cpu::Amd,
        accel: Accel::Tcg,
        cpus: 1,
    };

    /// The platforms `cargo xtask test` runs every example on.
    pub const MATRIX: [Machine; 3] = [Machine::QEMU_SVM, Machine::BOCHS_VMX, Machine::BOCHS_SVM];

    /// The platform name: `qemu-svm`, `bochs-vmx`, `bochs-svm`, and for KVM
    /// `qemu-svm-kvm` / `qemu-vmx-kvm`.
    pub fn name(&self) -> String {
        let accel = match self.accel {
            Accel::Kvm => "-kvm",
            Accel::Tcg => "",
        };
        format!(
            "{}-{}{accel}",
            self.emulator.facts().name,
            self.cpu.extension()
        )
    }

    /// Parses a platform name as printed by [`Machine::name`].
    pub fn from_name(name: &str) -> Option<Machine> {
        let candidates = [
            Machine::QEMU_SVM,
            Machine::BOCHS_VMX,
            Machine::BOCHS_SVM,
            Machine {
                accel: Accel::Kvm,
                ..Machine::QEMU_SVM
            },
            Machine {
                emulator: Emulator::Qemu,
                cpu: Cpu::Intel,
                accel: Accel::Kvm,
                cpus: 1,
            },
        ];
        candidates.into_iter().find(|m| m.name() == name)
    }

    /// The names of the test matrix, for messages.
    pub fn matrix_names() -> String {
        Machine::MATRIX
            .iter()
            .map(Machine::name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Builds the machine for `cargo xtask run` options.
    ///
    /// `cpu` is `None` when not given on the command line: AMD, except under
    /// KVM where it follows the host (`host_kvm_cpu`, the result of the
    /// host check done by the caller). `accel` is `None` when not given.
    pub fn select(
        emulator: Emulator,
        cpu: Option<Cpu>,
        accel: Option<Accel>,
        host_kvm_cpu: impl FnOnce() -> Result<Cpu>,
    ) -> Result<Machine> {
        match emulator {
            Emulator::Bochs => {
                if accel == Some(Accel::Kvm) {
                    bail!("--accel kvm applies only to QEMU; Bochs always emulates the CPU");
                }
                Ok(Machine {
                    emulator,
                    cpu: cpu.unwrap_or(Cpu::Amd),
                    accel: Accel::Tcg,
                    cpus: 1,
                })
            }
            Emulator::Qemu => match accel.unwrap_or(Accel::Tcg) {
                Accel::Tcg => {
                    if cpu == Some(Cpu::Intel) {
                        bail!(
                            "QEMU's TCG emulates AMD SVM but not Intel VMX, so `--emulator qemu \
                             --cpu intel` cannot run a VMX hypervisor. Use `--emulator bochs \
                             --cpu intel` (Bochs emulates VMX with EPT), or `--accel kvm` on a \
                             host with Intel VMX and nested virtualization."
                        );
                    }
                    Ok(Machine::QEMU_SVM)
                }
                Accel::Kvm => {
                    let host = host_kvm_cpu()?;
                    if let Some(wanted) = cpu {
                        if wanted != host {
                            bail!(
                                "--cpu {} does not match this host: with --accel kvm QEMU uses \
                                 `-cpu host`, whose virtualization extension is {}",
                                match wanted {
                                    Cpu::Amd => "amd",
                                    Cpu::Intel => "intel",
                                },
                                host.extension().to_uppercase()
                            );
                        }
                    }
                    Ok(Machine {
                        emulator,
                        cpu: host,
                        accel: Accel::Kvm,
                        cpus: 1,
                    })
                }
            },
        }
    }
}

impl Machine {
    /// The same machine with `cpus` CPUs.
    pub fn with_cpus(self, cpus: u8) -> Machine {
        Machine { cpus, ..self }
    }
}

/// The platform name, and the CPU count when it is not 1
/// (`qemu-svm x4`).
impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if self.cpus != 1 {
            write!(f, " x{}", self.cpus)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_kvm() -> Result<Cpu> {
        panic!("the KVM host check must not run here")
    }

    #[test]
    fn matrix_names() {
        assert_eq!(Machine::matrix_names(), "qemu-svm, bochs-vmx, bochs-svm");
        for m in Machine::MATRIX {
            assert_eq!(Machine::from_name(&m.name()), Some(m));
        }
        assert_eq!(Machine::from_name("qemu-vmx"), None);
    }

    #[test]
    fn defaults_are_qemu_amd_tcg() {
        let m = Machine::select(Emulator::Qemu, None, None, no_kvm).unwrap();
        assert_eq!(m, Machine::QEMU_SVM);
        let m = Machine::select(Emulator::Bochs, None, None, no_kvm).unwrap();
        assert_eq!(m, Machine::BOCHS_SVM);
        let m = Machine::select(Emulator::Bochs, Some(Cpu::Intel), None, no_kvm).unwrap();
        assert_eq!(m, Machine::BOCHS_VMX);
    }

    #[test]
    fn qemu_tcg_intel_is_refused_with_an_explanation() {
        let err = Machine::select(Emulator::Qemu, Some(Cpu::Intel), None, no_kvm).unwrap_err();
        assert!(err.to_string().contains("not Intel VMX"), "{err}");
        assert!(
            Machine::select(Emulator::Bochs, None, Some(Accel::Kvm), no_kvm).is_err(),
            "bochs has no kvm"
        );
    }

    #[test]
    fn kvm_follows_the_host() {
        let m = Machine::select(Emulator::Qemu, None, Some(Accel::Kvm), || Ok(Cpu::Intel)).unwrap();
        assert_eq!(m.name(), "qemu-vmx-kvm");
        assert!(
            Machine::select(Emulator::Qemu, Some(Cpu::Amd), Some(Accel::Kvm), || {
                Ok(Cpu::Intel)
            })
            .is_err()
        );
        assert!(
            Machine::select(Emulator::Qemu, None, Some(Accel::Kvm), || bail!("no kvm")).is_err()
        );
    }
}
