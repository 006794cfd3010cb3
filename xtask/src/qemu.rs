//! QEMU: the command line (PVH boot of the VMM ELF with the guest ELF as
//! initrd) and the KVM availability check.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::platform::{Accel, Cpu, Emulate, Launched, Machine, Payload, Stop};
use crate::runner::ConsoleSource;
use crate::verdict;

/// The QEMU binary.
pub const BINARY: &str = "qemu-system-x86_64";

/// QEMU's part in a run ([`Emulate`]).
pub struct Qemu;

impl Emulate for Qemu {
    /// An empty run directory (the console is written there after the
    /// run) and the command line of [`args`]; the console is QEMU's stdout.
    fn launch(
        &self,
        machine: Machine,
        run_dir: &Path,
        payload: &Payload,
        vmm_cmdline: &str,
    ) -> Result<Launched> {
        if run_dir.exists() {
            std::fs::remove_dir_all(run_dir)
                .with_context(|| format!("removing {}", run_dir.display()))?;
        }
        std::fs::create_dir_all(run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        let mut command = Command::new(BINARY);
        let mut a = args(machine.accel, payload, vmm_cmdline);
        if machine.cpus > 1 {
            a.extend(["-smp".to_owned(), machine.cpus.to_string()]);
            if let Some(accel) = a.iter_mut().find(|x| *x == "tcg") {
                // One host thread for all vCPUs: with multi-threaded TCG,
                // 1 of about 10 runs of `hostile --cpus 4` (2026-12-07)
                // took a host #PF on the instruction after VMRUN, fetching
                // a page the VMM never unmaps; 0 of 12 single-threaded
                // runs did (docs/DECISIONS.md).
                *accel = "tcg,thread=single".to_owned();
            }
        }
        command.args(a);
        Ok(Launched {
            command,
            console: ConsoleSource::Stdout,
            log: None,
            files: Vec::new(),
            note: None,
        })
    }

    fn stop_reasons(&self, stop: &Stop<'_>) -> Vec<String> {
        verdict::qemu_stop_reasons(stop)
    }
}

/// The arguments booting `payload`: the VMM ELF through PVH (`-kernel`)
/// with its module as `-initrd` and `vmm_cmdline` (`verdict=SECRET`, see
/// `crate::verdict`) as `-append`, which reaches the VMM as
/// `hvm_start_info.cmdline_paddr`; or a Linux bzImage alone (`-kernel`,
/// `-initrd`, `-append`).
///
/// The VMM stops QEMU through `isa-debug-exit` at port 0xf4 (exit code
/// `(value << 1) | 1`); `-no-reboot` turns a triple fault into an exit
/// instead of a reboot loop.
pub fn args(accel: Accel, payload: &Payload, vmm_cmdline: &str) -> Vec<String> {
    let (accel, cpu) = match accel {
        Accel::Tcg => ("tcg", "qemu64,+svm,+npt"),
        Accel::Kvm => ("kvm", "host"),
    };
    let memory = format!("{}M", payload.memory_mib());
    let mut a: Vec<String> = [
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-m",
        &memory,
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-kernel",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    match payload {
        Payload::Vmm { vmm, module, .. } => {
            a.push(vmm.display().to_string());
            a.push("-initrd".to_owned());
            a.push(module.display().to_string());
            if !vmm_cmdline.is_empty() {
                a.push("-append".to_owned());
                a.push(vmm_cmdline.to_owned());
            }
        }
        Payload::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            a.push(kernel.display().to_string());
            a.push("-initrd".to_owned());
            a.push(initrd.display().to_string());
            a.push("-append".to_owned());
            a.push(cmdline.clone());
        }
    }
    a
}

/// Which virtualization extension KVM can offer a nested guest here.
///
/// `dev_kvm`: whether `/dev/kvm` exists; `cpuinfo`: the text of
/// `/proc/cpuinfo` (its `flags` lines are searched for `svm` and `vmx`).
pub fn kvm_cpu(dev_kvm: bool, cpuinfo: &str) -> Result<Cpu> {
    if !dev_kvm {
        bail!("--accel kvm needs /dev/kvm, which does not exist on this host; use --accel tcg");
    }
    let flags = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_once(':').map_or("", |(_, f)| f).split_whitespace());
    let mut svm = false;
    let mut vmx = false;
    for flag in flags {
        svm |= flag == "svm";
        vmx |= flag == "vmx";
    }
    match (svm, vmx) {
        (true, _) => Ok(Cpu::Amd),
        (false, true) => Ok(Cpu::Intel),
        (false, false) => bail!(
            "--accel kvm needs a host CPU with VMX or SVM, but the flags in /proc/cpuinfo show \
             neither (/dev/kvm exists, but cannot host a hypervisor guest); use --accel tcg"
        ),
    }
}

/// [`kvm_cpu`] for this host.
pub fn host_kvm_cpu() -> Result<Cpu> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    kvm_cpu(Path::new("/dev/kvm").exists(), &cpuinfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_command_line_matches_the_contract() {
        let bare = Payload::Vmm {
            vmm: "/v".into(),
            module: "/g".into(),
            linux: false,
        };
        let a = args(Accel::Tcg, &bare, "").join(" ");
        assert_eq!(
            a,
            "-accel tcg -cpu qemu64,+svm,+npt -m 256M -display none -serial stdio -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel /v -initrd /g"
        );
        assert!(args(Accel::Tcg, &bare, "verdict=ab12")
            .join(" ")
            .ends_with("-kernel /v -initrd /g -append verdict=ab12"));
        let k = args(Accel::Kvm, &bare, "").join(" ");
        assert!(k.starts_with("-accel kvm -cpu host -m 256M"), "{k}");
        let linux = Payload::Vmm {
            vmm: "/v".into(),
            module: "/b".into(),
            linux: true,
        };
        assert!(args(Accel::Tcg, &linux, "").join(" ").contains("-m 512M"));
        let kernel = Payload::Kernel {
            kernel: "/k".into(),
            initrd: "/i".into(),
            cmdline: "console=ttyS0 quiet".into(),
        };
        let k = args(Accel::Tcg, &kernel, "verdict=ignored");
        assert!(k
            .join(" ")
            .ends_with("-kernel /k -initrd /i -append console=ttyS0 quiet"));
        assert_eq!(k.last().unwrap(), "console=ttyS0 quiet", "one argument");
    }

    #[test]
    fn kvm_check() {
        let amd = "processor\t: 0\nflags\t\t: fpu svm sse2\n";
        let intel = "flags\t\t: fpu vmx sse2\n";
        let neither = "flags\t\t: fpu hypervisor sse2\nvmx flags\t: ept\n";
        assert_eq!(kvm_cpu(true, amd).unwrap(), Cpu::Amd);
        assert_eq!(kvm_cpu(true, intel).unwrap(), Cpu::Intel);
        assert!(kvm_cpu(true, neither).is_err());
        assert!(kvm_cpu(false, amd)
            .unwrap_err()
            .to_string()
            .contains("/dev/kvm"));
    }
}
