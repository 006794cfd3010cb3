//! What the guest may touch directly: I/O ports and MSRs.
//!
//! A guest that can program a DMA-capable device (IDE bus-master, a NIC,
//! PCI configuration space at `0xCF8`/`0xCFC`) can make it write anywhere in
//! physical memory, including the VMM; a guest that can write host MSRs
//! (`VM_HSAVE_PA`, `IA32_APIC_BASE`, the MTRRs, ...) can redirect or corrupt
//! the host. So both are intercepted, except for an explicit allow-list:
//!
//! - **Ports**: COM1 (`0x3F8..=0x3FF`), the console the guest shares with the
//!   VMM, and the legacy timer and interrupt controller: the 8259 PICs
//!   (`0x20`, `0x21`, `0xA0`, `0xA1`) and the 8254 PIT (`0x40..=0x43`), so
//!   that a guest can have a timer interrupt (a bare-metal guest too, since
//!   long calls yield to its interrupts: docs/ABI.md, "Long calls"). A
//!   Linux guest ([`Profile::Linux`]) also gets system control port B
//!   (`0x61`, the PIT channel 2 gate) for its TSC calibration. None of them can reach memory: the
//!   PIC and PIT have no bus-master capability, and the VMM itself uses no
//!   interrupts. Every other port exits, and [`crate::ports`] answers: the
//!   RTC (`0x70`, `0x71`) is emulated read-only, any other `IN` reads all
//!   ones (an absent device), `OUT` is dropped, string I/O (`INS`/`OUTS`)
//!   raises `#GP(0)`.
//!   This also keeps the emulators' exit ports (`0xF4`, `0x8900`, `0x604`)
//!   and PCI configuration space (`0xCF8`, `0xCFC`) out of the guest's
//!   reach: only the VMM ends the run, and no device can be made to DMA.
//!   A Linux guest ends its run through the VMM's emulated exit port
//!   ([`crate::ports::EmulatedPorts::exit_request`]): a port, so that Linux itself decides which of its
//!   processes may (the CPU checks IOPL and the TSS I/O bitmap before the
//!   VM exit), as the `exit` hypercall is CPL 0 only.
//! - **MSRs**: the guest-state MSRs that the hardware switches on VM entry
//!   and exit (or that the VMM never uses): FS/GS base, kernel GS base, the
//!   SYSCALL and SYSENTER MSRs, read and write; the TSC, read only.
//!   `TSC_AUX` is not the guest's: neither vendor switches it, so a guest
//!   write would persist into the host; CPUID hides RDTSCP and RDPID. Any other `RDMSR`/`WRMSR` raises `#GP(0)` in the guest, as for an
//!   MSR the CPU does not have.
//!
//! The bitmaps are built here, portable and unit-tested, in the two vendors'
//! formats: the SVM I/O and MSR permission maps (AMD APM Vol. 2 §15.10.1
//! "I/O Permissions Map", §15.11 "MSR Intercepts") and the VMX I/O and MSR
//! bitmaps (Intel SDM Vol. 3C §25.6.4 "I/O-Bitmap Addresses", §25.6.9
//! "MSR-Bitmap Address"). A set bit means "exit".

use crate::guest::Profile;
use core::ops::RangeInclusive;

/// COM1, the console every guest shares with the VMM.
pub const GUEST_PORTS: RangeInclusive<u16> = 0x3F8..=0x3FF;

/// Ports a Linux guest may use directly: COM1, the PICs, the PIT, port B.
/// The first [`BARE_METAL_PORT_RANGES`] are a bare-metal guest's.
pub const LINUX_PORTS: [RangeInclusive<u16>; 5] = [
    GUEST_PORTS,
    0x20..=0x21,
    0x40..=0x43,
    0xA0..=0xA1,
    0x61..=0x61,
];

/// How many of [`LINUX_PORTS`] a bare-metal guest gets: COM1, the PICs
/// and the PIT (its timer interrupt), not port B.
pub const BARE_METAL_PORT_RANGES: usize = 4;

/// The ports `profile` may use directly.
pub fn guest_ports(profile: Profile) -> &'static [RangeInclusive<u16>] {
    match profile {
        Profile::BareMetal => LINUX_PORTS
            .get(..BARE_METAL_PORT_RANGES)
            .unwrap_or_default(),
        Profile::Linux => &LINUX_PORTS,
    }
}

/// Whether an access of `size` bytes at `port` lies wholly in `profile`'s
/// pass-through ports (so the bitmaps let it through without an exit).
pub fn passes_through(profile: Profile, port: u16, size: u8) -> bool {
    let last = u32::from(port) + u32::from(size.max(1)) - 1;
    guest_ports(profile)
        .iter()
        .any(|r| port >= *r.start() && last <= u32::from(*r.end()))
}

/// MSRs the guest may read and write directly.
pub const GUEST_MSRS: [u32; 10] = [
    0x174,       // IA32_SYSENTER_CS
    0x175,       // IA32_SYSENTER_ESP
    0x176,       // IA32_SYSENTER_EIP
    0xC000_0081, // STAR
    0xC000_0082, // LSTAR
    0xC000_0083, // CSTAR
    0xC000_0084, // SFMASK
    0xC000_0100, // FS_BASE
    0xC000_0101, // GS_BASE
    0xC000_0102, // KERNEL_GS_BASE
];

/// MSRs the guest may read but not write: the TSC (a write would move the
/// host's clock).
pub const GUEST_READ_ONLY_MSRS: [u32; 1] = [0x10];

/// Size of the SVM I/O permission map: 12 KiB (65 536 ports, plus the bits
/// that multi-byte accesses at the top ports check).
pub const SVM_IOPM_SIZE: usize = 3 * 4096;
/// Size of the SVM MSR permission map: 8 KiB.
pub const SVM_MSRPM_SIZE: usize = 2 * 4096;

fn clear_bit(map: &mut [u8], bit: usize) {
    if let Some(byte) = map.get_mut(bit / 8) {
        *byte &= !(1u8 << (bit % 8));
    }
}

/// Fill the SVM I/O permission map (APM §15.10.1): bit `p` intercepts port
/// `p`; everything intercepted but [`guest_ports`].
pub fn svm_iopm(map: &mut [u8; SVM_IOPM_SIZE], profile: Profile) {
    map.fill(0xFF);
    for port in guest_ports(profile).iter().cloned().flatten() {
        clear_bit(map, usize::from(port));
    }
}

/// Where an MSR's two bits (read, write) live in the SVM MSR permission map
/// (APM §15.11, Table 15-12): the bit index of its read bit.
pub fn svm_msrpm_bit(msr: u32) -> Option<usize> {
    let (base, vector) = match msr {
        0..=0x1FFF => (0, 0usize),
        0xC000_0000..=0xC000_1FFF => (0xC000_0000, 1),
        0xC001_0000..=0xC001_1FFF => (0xC001_0000, 2),
        _ => return None,
    };
    let index = usize::try_from(msr.wrapping_sub(base)).ok()?;
    Some(vector * 0x800 * 8 + index * 2)
}

/// Fill the SVM MSR permission map: everything intercepted but
/// [`GUEST_MSRS`] (read and write) and [`GUEST_READ_ONLY_MSRS`] (read).
/// MSRs outside the map's three ranges are always intercepted.
pub fn svm_msrpm(map: &mut [u8; SVM_MSRPM_SIZE]) {
    map.fill(0xFF);
    for msr in GUEST_MSRS {
        if let Some(bit) = svm_msrpm_bit(msr) {
            clear_bit(map, bit);
            clear_bit(map, bit + 1);
        }
    }
    for msr in GUEST_READ_ONLY_MSRS {
        if let Some(bit) = svm_msrpm_bit(msr) {
            clear_bit(map, bit);
        }
    }
}

/// Fill the VMX I/O bitmaps A (ports `0x0000..=0x7FFF`) and B
/// (`0x8000..=0xFFFF`) (SDM §25.6.4): everything exits but [`guest_ports`].
pub fn vmx_io_bitmaps(a: &mut [u8; 4096], b: &mut [u8; 4096], profile: Profile) {
    a.fill(0xFF);
    b.fill(0xFF);
    for port in guest_ports(profile).iter().cloned().flatten() {
        let p = usize::from(port);
        if p < 0x8000 {
            clear_bit(a, p);
        } else {
            clear_bit(b, p - 0x8000);
        }
    }
}

/// The bit of `msr` in the VMX MSR bitmap (SDM §25.6.9): bytes 0-1023 read
/// low MSRs (`0..=0x1FFF`), 1024-2047 read high (`0xC000_0000..=0xC000_1FFF`),
/// 2048-3071 write low, 3072-4095 write high.
pub fn vmx_msr_bit(msr: u32, write: bool) -> Option<usize> {
    let (index, high) = match msr {
        0..=0x1FFF => (msr, false),
        0xC000_0000..=0xC000_1FFF => (msr - 0xC000_0000, true),
        _ => return None,
    };
    let quarter = usize::from(high) + if write { 2 } else { 0 };
    Some(quarter * 1024 * 8 + usize::try_from(index).ok()?)
}

/// Fill the VMX MSR bitmap: everything exits but [`GUEST_MSRS`] and reads
/// of [`GUEST_READ_ONLY_MSRS`]. MSRs outside the bitmap's ranges always
/// exit.
pub fn vmx_msr_bitmap(map: &mut [u8; 4096]) {
    map.fill(0xFF);
    for msr in GUEST_MSRS {
        for write in [false, true] {
            if let Some(bit) = vmx_msr_bit(msr, write) {
                clear_bit(map, bit);
            }
        }
    }
    for msr in GUEST_READ_ONLY_MSRS {
        if let Some(bit) = vmx_msr_bit(msr, false) {
            clear_bit(map, bit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn bit(map: &[u8], b: usize) -> bool {
        map[b / 8] & (1 << (b % 8)) != 0
    }

    #[test]
    fn svm_iopm_lets_only_com1_the_pic_and_the_pit_through() {
        let mut m = [0u8; SVM_IOPM_SIZE];
        svm_iopm(&mut m, Profile::BareMetal);
        let timer = [0x20, 0x21, 0x40, 0x41, 0x42, 0x43, 0xA0, 0xA1];
        for p in 0..=0xFFFFusize {
            let through = (0x3F8..=0x3FF).contains(&p) || timer.contains(&p);
            assert_eq!(bit(&m, p), !through, "port {p:#x}");
        }
        assert!(bit(&m, 0x61), "port B is Linux's only");
        // The bits past port 0xFFFF stay set.
        assert!(bit(&m, 0x10000) && bit(&m, 0x10002));
        // The emulators' exit ports are intercepted.
        assert!(bit(&m, 0xF4) && bit(&m, 0x8900) && bit(&m, 0x604) && bit(&m, 0xCF8));
    }

    #[test]
    fn svm_msrpm_layout_matches_apm() {
        // APM Table 15-12: MSR 0 at bit 0 of byte 0; C000_0000h at byte 0x800;
        // C001_0000h at byte 0x1000; two bits per MSR.
        assert_eq!(svm_msrpm_bit(0), Some(0));
        assert_eq!(svm_msrpm_bit(0x10), Some(0x20));
        assert_eq!(svm_msrpm_bit(0x1FFF), Some(0x3FFE));
        assert_eq!(svm_msrpm_bit(0xC000_0000), Some(0x800 * 8));
        assert_eq!(svm_msrpm_bit(0xC000_0080), Some(0x800 * 8 + 0x100));
        assert_eq!(svm_msrpm_bit(0xC001_0000), Some(0x1000 * 8));
        assert_eq!(svm_msrpm_bit(0x2000), None);
        assert_eq!(svm_msrpm_bit(0xC001_0117 + 0x2000), None);
        let mut m = [0u8; SVM_MSRPM_SIZE];
        svm_msrpm(&mut m);
        let lstar = svm_msrpm_bit(0xC000_0082).unwrap();
        assert!(!bit(&m, lstar) && !bit(&m, lstar + 1));
        let tsc = svm_msrpm_bit(0x10).unwrap();
        assert!(
            !bit(&m, tsc) && bit(&m, tsc + 1),
            "TSC: read through, write intercepted"
        );
        for msr in [
            0xC000_0080u32,
            0xC001_0117,
            0xC001_0114,
            0x1B,
            0x277,
            0x2FF,
            0xC000_0103,
        ] {
            let b = svm_msrpm_bit(msr).unwrap();
            assert!(
                bit(&m, b) && bit(&m, b + 1),
                "MSR {msr:#x} must be intercepted"
            );
        }
    }

    #[test]
    fn vmx_bitmaps_match_sdm() {
        let (mut a, mut b) = ([0u8; 4096], [0u8; 4096]);
        vmx_io_bitmaps(&mut a, &mut b, Profile::BareMetal);
        assert!(!bit(&a, 0x3F8) && !bit(&a, 0x3FF) && bit(&a, 0x3F7) && bit(&a, 0x400));
        assert!(bit(&a, 0xF4) && bit(&b, 0x8900 - 0x8000) && bit(&b, 0x7FFF));
        assert_eq!(vmx_msr_bit(0x10, false), Some(0x10));
        assert_eq!(vmx_msr_bit(0xC000_0082, false), Some(1024 * 8 + 0x82));
        assert_eq!(vmx_msr_bit(0x10, true), Some(2048 * 8 + 0x10));
        assert_eq!(vmx_msr_bit(0xC000_0082, true), Some(3072 * 8 + 0x82));
        assert_eq!(vmx_msr_bit(0xC001_0000, false), None);
        let mut m = [0u8; 4096];
        vmx_msr_bitmap(&mut m);
        assert!(!bit(&m, vmx_msr_bit(0xC000_0082, false).unwrap()));
        assert!(!bit(&m, vmx_msr_bit(0xC000_0082, true).unwrap()));
        assert!(!bit(&m, vmx_msr_bit(0x10, false).unwrap()));
        assert!(bit(&m, vmx_msr_bit(0x10, true).unwrap()));
        for msr in [0xC000_0080u32, 0x1B, 0x277, 0x3A, 0x480] {
            assert!(bit(&m, vmx_msr_bit(msr, false).unwrap()), "read {msr:#x}");
            assert!(bit(&m, vmx_msr_bit(msr, true).unwrap()), "write {msr:#x}");
        }
    }

    #[test]
    fn linux_gets_the_pic_and_pit_but_no_dma_path() {
        let mut m = [0u8; SVM_IOPM_SIZE];
        svm_iopm(&mut m, Profile::Linux);
        let (mut a, mut b) = ([0u8; 4096], [0u8; 4096]);
        vmx_io_bitmaps(&mut a, &mut b, Profile::Linux);
        let through = [
            0x20, 0x21, 0x40, 0x41, 0x42, 0x43, 0x61, 0xA0, 0xA1, 0x3F8, 0x3FF,
        ];
        for p in 0..=0xFFFFusize {
            let want = through.contains(&p) || (0x3F8..=0x3FF).contains(&p);
            assert_eq!(!bit(&m, p), want, "SVM port {p:#x}");
            let vmx = if p < 0x8000 {
                bit(&a, p)
            } else {
                bit(&b, p - 0x8000)
            };
            assert_eq!(!vmx, want, "VMX port {p:#x}");
        }
        // PCI config, the RTC (emulated), the exit ports, ELCR, DMA controllers.
        for p in [
            0xCF8usize, 0xCFC, 0x70, 0x71, 0xF4, 0x604, 0x4D0, 0x00, 0x0C, 0x80, 0xC0,
        ] {
            assert!(bit(&m, p), "{p:#x}");
        }
        assert!(passes_through(Profile::Linux, 0x40, 1));
        assert!(passes_through(Profile::Linux, 0x20, 2));
        assert!(
            !passes_through(Profile::Linux, 0x21, 2),
            "0x21-0x22 leaves the range"
        );
        assert!(passes_through(Profile::BareMetal, 0x40, 1));
        assert!(!passes_through(Profile::BareMetal, 0x61, 1));
        assert!(passes_through(Profile::BareMetal, 0x3FC, 4));
    }
}
