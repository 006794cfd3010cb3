//! Thin wrappers over privileged x86 instructions (CPUID, MSRs, control
//! registers) and the CPU-vendor check.

use core::arch::asm;

/// CPUID output registers (vmmcall's type, which its hypervisor leaves
/// answer with).
pub use vmmcall::cpuid::Leaf as Cpuid;

/// Execute CPUID for `leaf`/`subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> Cpuid {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    Cpuid {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// The CPU vendor: vmexit's, whose exits the backend decodes.
pub use vmexit::Vendor;

/// Decode the vendor string from CPUID leaf 0's EBX, EDX, ECX:
/// "GenuineIntel" (VMX), "AuthenticAMD" or "HygonGenuine" (SVM), else
/// `None`.
pub fn vendor_from(ebx: u32, ecx: u32, edx: u32) -> Option<Vendor> {
    let mut s = [0u8; 12];
    s[..4].copy_from_slice(&ebx.to_le_bytes());
    s[4..8].copy_from_slice(&edx.to_le_bytes());
    s[8..].copy_from_slice(&ecx.to_le_bytes());
    match &s {
        b"GenuineIntel" => Some(Vendor::Intel),
        b"AuthenticAMD" | b"HygonGenuine" => Some(Vendor::Amd),
        _ => None,
    }
}

/// This CPU's vendor.
pub fn vendor() -> Option<Vendor> {
    let r = cpuid(0, 0);
    vendor_from(r.ebx, r.ecx, r.edx)
}

/// Read an MSR.
///
/// # Safety
/// `msr` must exist on this CPU (else #GP) and the caller runs at CPL 0.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists and CPL 0.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Write an MSR.
///
/// # Safety
/// `msr` must exist, `value` must be valid for it, and the write must not
/// break the VMM's own execution (e.g. clearing EFER.LME).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid and harmless.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nomem, nostack, preserves_flags))
    }
}

/// Read CR0.
pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effect (CPL 0 is the VMM's only mode).
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Read CR3.
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Read CR4.
pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Write CR0.
///
/// # Safety
/// The new value must keep the VMM running (PG, PE set, ...).
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: the caller guarantees the value is valid for the VMM.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// Write CR4.
///
/// # Safety
/// The new value must keep the VMM running (PAE set, ...).
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: the caller guarantees the value is valid for the VMM.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// Read the time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Read register `index` of the MC146818 RTC (index port 0x70 with the
/// NMI-mask bit clear, data port 0x71). Used only to answer the guest's
/// emulated RTC reads (`crate::ports::rtc_read`).
pub fn read_rtc(index: u8) -> u8 {
    let v: u8;
    // SAFETY: selecting an RTC register and reading it changes nothing but
    // the RTC's index latch (and clears register C's flags when that one
    // is read, as the guest's read would); the VMM uses no RTC interrupt.
    unsafe {
        asm!("out 0x70, al", "in al, 0x71", inout("al") index & 0x7F => v,
             options(nomem, nostack, preserves_flags));
    }
    v
}

/// The master 8259 PIC's IRR and IMR (`crate::longcall`): OCW3 `0x0A`
/// selects the IRR for reads of port `0x20` (the state after
/// initialization), the IMR is port `0x21` (8259A data sheet, "Operation
/// Command Words"). `select`: write OCW3 first (else it must already
/// select the IRR). Only the run loop's pending-interrupt check calls it,
/// after a long call's step.
pub fn read_pic_irr_imr(select: bool) -> (u8, u8) {
    let (irr, imr): (u8, u8);
    if select {
        // SAFETY: OCW3 with RR set only selects which register port 0x20
        // reads (no poll, no special-mask change: bits 2, 5 and 6 clear).
        unsafe {
            asm!(
                "mov al, 0x0A", "out 0x20, al",
                out("al") _,
                options(nomem, nostack, preserves_flags)
            );
        }
    }
    // SAFETY: reading the IRR and the IMR has no side effect. The PIC
    // raises interrupts and nothing more (no bus master), and the VMM
    // takes none (GIF or RFLAGS.IF clear).
    unsafe {
        asm!(
            "in al, 0x20", "mov {irr}, al", "in al, 0x21",
            irr = out(reg_byte) irr, out("al") imr,
            options(nomem, nostack, preserves_flags)
        );
    }
    (irr, imr)
}

/// The master 8259 PIC's ISR, read through OCW3 `0x0B`; OCW3 `0x0A` then
/// selects the IRR again (see [`read_pic_irr_imr`]).
pub fn read_pic_isr() -> u8 {
    let isr: u8;
    // SAFETY: as in read_pic_irr_imr: OCW3 register selection only.
    unsafe {
        asm!(
            "mov al, 0x0B", "out 0x20, al", "in al, 0x20", "mov {isr}, al",
            "mov al, 0x0A", "out 0x20, al",
            isr = out(reg_byte) isr, out("al") _,
            options(nomem, nostack, preserves_flags)
        );
    }
    isr
}

/// An FXSAVE area (Intel SDM Vol. 1 §10.5.1, Table 10-2): the x87, MMX
/// and SSE state (XMM0-15, MXCSR) of one context, 512 bytes, 16-aligned.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The state after FNINIT with the default MXCSR (0x1F80: all SIMD
    /// exceptions masked, round to nearest): FCW 0x037F, FTW empty, MXCSR
    /// at offset 24.
    pub const fn reset() -> Self {
        let mut a = [0u8; 512];
        a[0] = 0x7F;
        a[1] = 0x03;
        a[24] = 0x80;
        a[25] = 0x1F;
        a[28] = 0xFF; // MXCSR_MASK 0xFFBF: written by FXSAVE, ignored by FXRSTOR
        a[29] = 0xFF;
        FxArea(a)
    }
}

/// MSR numbers and bits the backends use.
pub mod msr {
    /// IA32_EFER.
    pub const EFER: u32 = 0xC000_0080;
    /// AMD VM_CR.
    pub const VM_CR: u32 = 0xC001_0114;
    /// AMD VM_HSAVE_PA.
    pub const VM_HSAVE_PA: u32 = 0xC001_0117;
    /// IA32_PAT.
    pub const PAT: u32 = 0x277;
    /// EFER.SVME.
    pub const EFER_SVME: u64 = 1 << 12;
    /// VM_CR.SVMDIS.
    pub const VM_CR_SVMDIS: u64 = 1 << 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors() {
        let w = |s: &[u8; 4]| u32::from_le_bytes(*s);
        assert_eq!(
            vendor_from(w(b"Genu"), w(b"ntel"), w(b"ineI")),
            Some(Vendor::Intel)
        );
        assert_eq!(
            vendor_from(w(b"Auth"), w(b"cAMD"), w(b"enti")),
            Some(Vendor::Amd)
        );
        assert_eq!(vendor_from(0, 0, 0), None);
    }
}
