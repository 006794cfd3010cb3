//! The AMD SVM Virtual Machine Control Block (VMCB).
//!
//! Layout from AMD APM Vol. 2, Appendix B "Layout of VMCB": Table B-1
//! (control area, offsets `0x000..0x400`) and Table B-2 (state-save area,
//! offsets from `0x400`). The tests check every field's offset with
//! `offset_of!` against those tables.

use bitflags::bitflags;

/// A segment register in the state-save area (APM Vol. 2 §15.5.1,
/// Table B-2): selector, compressed attributes, limit, base.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmcbSegment {
    /// Selector.
    pub selector: u16,
    /// Attributes: bits 7:0 = descriptor bits 47:40 (type, S, DPL, P),
    /// bits 11:8 = descriptor bits 55:52 (AVL, L, D/B, G).
    pub attrib: u16,
    /// Segment limit.
    pub limit: u32,
    /// Segment base.
    pub base: u64,
}

impl VmcbSegment {
    /// 64-bit code segment, DPL 0 (type 0xB, S, P, L, G).
    pub const CODE64: u16 = 0xA9B;
    /// Read/write data segment, DPL 0 (type 0x3, S, P, D/B, G).
    pub const DATA: u16 = 0xC93;
    /// Busy 64-bit TSS (type 0xB, P).
    pub const TSS64_BUSY: u16 = 0x08B;
    /// LDT (type 0x2, P).
    pub const LDT: u16 = 0x082;

    /// The compressed attributes of a GDT descriptor (APM Vol. 2 §15.5.1):
    /// descriptor bits 47:40 and 55:52, with the accessed bit set on code
    /// and data segments (as the CPU would on the first load).
    pub const fn attrib_of(descriptor: u64) -> u16 {
        let low = ((descriptor >> 40) & 0xFF) as u16;
        let high = ((descriptor >> 52) & 0xF) as u16;
        let a = low | (high << 8);
        if a & 0x10 != 0 {
            a | 1
        } else {
            a
        }
    }
}

bitflags! {
    /// Intercept vector 3, control-area offset `0x00C` (APM Table B-1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Intercept3: u32 {
        /// Physical INTR.
        const INTR = 1 << 0;
        /// Physical NMI.
        const NMI = 1 << 1;
        /// INIT.
        const INIT = 1 << 3;
        /// RDTSC.
        const RDTSC = 1 << 14;
        /// RDPMC.
        const RDPMC = 1 << 15;
        /// CPUID.
        const CPUID = 1 << 18;
        /// INVD.
        const INVD = 1 << 22;
        /// HLT.
        const HLT = 1 << 24;
        /// INVLPGA.
        const INVLPGA = 1 << 26;
        /// IN/OUT, through the I/O permission map.
        const IOIO_PROT = 1 << 27;
        /// RDMSR/WRMSR, through the MSR permission map.
        const MSR_PROT = 1 << 28;
        /// Shutdown (triple fault).
        const SHUTDOWN = 1 << 31;
    }
}

bitflags! {
    /// Intercept vector 4, control-area offset `0x010` (APM Table B-1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Intercept4: u32 {
        /// VMRUN (must be set, or VMRUN fails with VMEXIT_INVALID).
        const VMRUN = 1 << 0;
        /// VMMCALL.
        const VMMCALL = 1 << 1;
        /// VMLOAD.
        const VMLOAD = 1 << 2;
        /// VMSAVE.
        const VMSAVE = 1 << 3;
        /// STGI.
        const STGI = 1 << 4;
        /// CLGI.
        const CLGI = 1 << 5;
        /// SKINIT.
        const SKINIT = 1 << 6;
        /// RDTSCP.
        const RDTSCP = 1 << 7;
        /// ICEBP.
        const ICEBP = 1 << 8;
        /// WBINVD.
        const WBINVD = 1 << 9;
        /// MONITOR.
        const MONITOR = 1 << 10;
        /// MWAIT.
        const MWAIT = 1 << 11;
        /// XSETBV.
        const XSETBV = 1 << 13;
        /// RDPRU.
        const RDPRU = 1 << 14;
    }
}

/// The intercepts the VMM sets in every VMCB (APM Vol. 2 §15.9-15.13,
/// Table B-1), for a guest of `profile`. Portable so the host tests can
/// check what no emulator can show (`tests::intercepts_close_every_hole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intercepts {
    /// Offset 0x000: CR reads (bits 15:0) and writes (31:16).
    pub cr: u32,
    /// Offset 0x008: one bit per exception vector.
    pub exceptions: u32,
    /// Offset 0x00C.
    pub i3: Intercept3,
    /// Offset 0x010.
    pub i4: Intercept4,
}

/// Exceptions the VMM intercepts on both vendors: `#DB` (1) and `#AC`
/// (17), which a guest can make the CPU deliver forever without a VM exit
/// (CVE-2015-8104/XSA-156, CVE-2015-5307); both are reflected to the guest.
/// `#UD` (6): the other vendor's hypercall instruction.
pub const INTERCEPTED_EXCEPTIONS: u32 = (1 << 1) | (1 << 6) | (1 << 17);

/// The VMCB intercepts for `profile`:
/// - ports and MSRs through the permission maps (`crate::intercept`);
/// - CPUID, INIT (an unintercepted INIT resets the physical CPU, APM
///   §15.13), shutdown, INVD and WBINVD (they act on the whole machine's
///   caches), RDPMC and RDPRU (they read host counters; CR4.PCE is the
///   guest's), RDTSCP (TSC_AUX is not switched), MONITOR/MWAIT (an HLT the
///   VMM cannot see), XSETBV (XCR0 is not switched), every SVM instruction;
/// - CR8 reads and writes: without V_INTR_MASKING a guest's CR8 is the
///   physical TPR (APM §15.21.4); the run loop keeps a virtual one;
/// - CR4 writes (APM §15.9): a guest may set only the CR4 bits whose
///   feature its CPUID offers (`cpuid::guest_cr4_allowed`; OSXSAVE, PKE,
///   CET ... enable state the VMM does not switch), else `#GP(0)`;
/// - HLT for a bare-metal guest (it gets no interrupts, so HLT would never
///   end); a Linux guest's HLT waits for its own timer.
pub fn intercepts(profile: crate::guest::Profile) -> Intercepts {
    let hlt = match profile {
        crate::guest::Profile::BareMetal => Intercept3::HLT,
        crate::guest::Profile::Linux => Intercept3::empty(),
    };
    Intercepts {
        cr: (1 << 8) | (1 << (16 + 4)) | (1 << (16 + 8)),
        exceptions: INTERCEPTED_EXCEPTIONS,
        // NMI: how the VMM signals a vCPU (crate::smp); forwarded to the
        // guest when it is not the VMM's.
        i3: Intercept3::NMI
            | Intercept3::IOIO_PROT
            | Intercept3::MSR_PROT
            | Intercept3::CPUID
            | Intercept3::RDPMC
            | hlt
            | Intercept3::INIT
            | Intercept3::SHUTDOWN
            | Intercept3::INVLPGA
            | Intercept3::INVD,
        i4: Intercept4::VMRUN
            | Intercept4::VMMCALL
            | Intercept4::VMLOAD
            | Intercept4::VMSAVE
            | Intercept4::STGI
            | Intercept4::CLGI
            | Intercept4::SKINIT
            | Intercept4::RDTSCP
            | Intercept4::WBINVD
            | Intercept4::MONITOR
            | Intercept4::MWAIT
            | Intercept4::XSETBV
            | Intercept4::RDPRU,
    }
}

/// The control area, `0x000..0x400` (APM Vol. 2, Appendix B, Table B-1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ControlArea {
    /// 0x000: CR0-15 read (bits 15:0) and write (bits 31:16) intercepts.
    pub intercept_cr: u32,
    /// 0x004: DR0-15 read/write intercepts.
    pub intercept_dr: u32,
    /// 0x008: exception intercepts, one bit per vector.
    pub intercept_exceptions: u32,
    /// 0x00C: [`Intercept3`].
    pub intercept3: u32,
    /// 0x010: [`Intercept4`].
    pub intercept4: u32,
    /// 0x014: intercept vector 5 (INVLPGB, INVPCID, ...).
    pub intercept5: u32,
    _reserved1: [u8; 0x03C - 0x018],
    /// 0x03C: PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// 0x03E: PAUSE filter count.
    pub pause_filter_count: u16,
    /// 0x040: physical address of the I/O permission map.
    pub iopm_base_pa: u64,
    /// 0x048: physical address of the MSR permission map.
    pub msrpm_base_pa: u64,
    /// 0x050: TSC offset.
    pub tsc_offset: u64,
    /// 0x058: guest ASID.
    pub guest_asid: u32,
    /// 0x05C: TLB control (1 = flush all on VMRUN).
    pub tlb_control: u8,
    _reserved2: [u8; 3],
    /// 0x060: virtual interrupt control (V_TPR, V_IRQ, V_INTR_MASKING ...).
    pub vintr: u64,
    /// 0x068: interrupt shadow (bit 0).
    pub interrupt_shadow: u64,
    /// 0x070: EXITCODE.
    pub exitcode: u64,
    /// 0x078: EXITINFO1.
    pub exitinfo1: u64,
    /// 0x080: EXITINFO2.
    pub exitinfo2: u64,
    /// 0x088: EXITINTINFO.
    pub exitintinfo: u64,
    /// 0x090: bit 0 NP_ENABLE (nested paging).
    pub np_control: u64,
    /// 0x098: AVIC APIC_BAR.
    pub avic_apic_bar: u64,
    /// 0x0A0: guest physical address of the GHCB.
    pub ghcb_pa: u64,
    /// 0x0A8: EVENTINJ.
    pub eventinj: u64,
    /// 0x0B0: N_CR3, the nested page-table root.
    pub n_cr3: u64,
    /// 0x0B8: LBR virtualization enable.
    pub lbr_virt: u64,
    /// 0x0C0: VMCB clean bits.
    pub clean_bits: u32,
    _reserved3: u32,
    /// 0x0C8: nRIP, next sequential RIP (with NRIPS).
    pub nrip: u64,
    /// 0x0D0: number of instruction bytes fetched (decode assists).
    pub insn_len: u8,
    /// 0x0D1: the fetched instruction bytes.
    pub insn_bytes: [u8; 15],
    _reserved4: [u8; 0x400 - 0x0E0],
}

/// The state-save area, `0x400..0x1000` (APM Vol. 2, Appendix B, Table B-2;
/// field comments give offsets from the start of the VMCB).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct SaveArea {
    /// 0x400.
    pub es: VmcbSegment,
    /// 0x410.
    pub cs: VmcbSegment,
    /// 0x420.
    pub ss: VmcbSegment,
    /// 0x430.
    pub ds: VmcbSegment,
    /// 0x440.
    pub fs: VmcbSegment,
    /// 0x450.
    pub gs: VmcbSegment,
    /// 0x460.
    pub gdtr: VmcbSegment,
    /// 0x470.
    pub ldtr: VmcbSegment,
    /// 0x480.
    pub idtr: VmcbSegment,
    /// 0x490.
    pub tr: VmcbSegment,
    _reserved1: [u8; 0x4CB - 0x4A0],
    /// 0x4CB: current privilege level.
    pub cpl: u8,
    _reserved2: u32,
    /// 0x4D0.
    pub efer: u64,
    _reserved3: [u8; 0x548 - 0x4D8],
    /// 0x548.
    pub cr4: u64,
    /// 0x550.
    pub cr3: u64,
    /// 0x558.
    pub cr0: u64,
    /// 0x560.
    pub dr7: u64,
    /// 0x568.
    pub dr6: u64,
    /// 0x570.
    pub rflags: u64,
    /// 0x578.
    pub rip: u64,
    _reserved4: [u8; 0x5D8 - 0x580],
    /// 0x5D8.
    pub rsp: u64,
    /// 0x5E0.
    pub s_cet: u64,
    /// 0x5E8.
    pub ssp: u64,
    /// 0x5F0.
    pub isst_addr: u64,
    /// 0x5F8.
    pub rax: u64,
    /// 0x600.
    pub star: u64,
    /// 0x608.
    pub lstar: u64,
    /// 0x610.
    pub cstar: u64,
    /// 0x618.
    pub sfmask: u64,
    /// 0x620.
    pub kernel_gs_base: u64,
    /// 0x628.
    pub sysenter_cs: u64,
    /// 0x630.
    pub sysenter_esp: u64,
    /// 0x638.
    pub sysenter_eip: u64,
    /// 0x640.
    pub cr2: u64,
    _reserved5: [u8; 0x668 - 0x648],
    /// 0x668: guest PAT (used with nested paging).
    pub g_pat: u64,
    /// 0x670.
    pub dbgctl: u64,
    _reserved6: [u8; 0x1000 - 0x678],
}

/// A whole VMCB: one 4 KiB page, 4 KiB aligned.
#[repr(C, align(4096))]
#[derive(Debug, Clone, Copy)]
pub struct Vmcb {
    /// Control area.
    pub control: ControlArea,
    /// State-save area.
    pub save: SaveArea,
}

impl Vmcb {
    /// An all-zero VMCB.
    pub const fn zeroed() -> Self {
        // SAFETY: every field is an integer or an array of integers, for
        // which all-zero bytes are a valid value.
        unsafe { core::mem::zeroed() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn intercepts_close_every_hole() {
        use crate::guest::Profile;
        for p in [Profile::BareMetal, Profile::Linux] {
            let i = intercepts(p);
            // CR8 read (bit 8) and write (bit 24); no other CR.
            // Read CR8 (bit 8); write CR4 (bit 20) and CR8 (bit 24).
            assert_eq!(i.cr, 0x0110_0100);
            assert_eq!(i.exceptions, 0x0002_0042, "#DB, #UD, #AC");
            // APM Table B-1 bit positions, spelled out independently.
            for bit in [3u32, 15, 18, 22, 26, 27, 28, 31] {
                assert_ne!(i.i3.bits() & (1 << bit), 0, "vector 3 bit {bit}");
            }
            for bit in [0u32, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 14] {
                assert_ne!(i.i4.bits() & (1 << bit), 0, "vector 4 bit {bit}");
            }
            // NMI (bit 1) exits: the VMM's signal. No INTR intercept
            // (bit 0): the guest owns its interrupts.
            assert_eq!(i.i3.bits() & 0b11, 0b10);
        }
        assert_ne!(
            intercepts(Profile::BareMetal).i3.bits() & (1 << 24),
            0,
            "HLT"
        );
        assert_eq!(
            intercepts(Profile::Linux).i3.bits() & (1 << 24),
            0,
            "no HLT"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(size_of::<VmcbSegment>(), 16);
        assert_eq!(size_of::<ControlArea>(), 0x400);
        assert_eq!(size_of::<SaveArea>(), 0xC00);
        assert_eq!(size_of::<Vmcb>(), 0x1000);
        assert_eq!(core::mem::align_of::<Vmcb>(), 0x1000);
    }

    #[test]
    fn control_area_offsets_match_apm_table_b1() {
        assert_eq!(offset_of!(ControlArea, intercept_cr), 0x000);
        assert_eq!(offset_of!(ControlArea, intercept_dr), 0x004);
        assert_eq!(offset_of!(ControlArea, intercept_exceptions), 0x008);
        assert_eq!(offset_of!(ControlArea, intercept3), 0x00C);
        assert_eq!(offset_of!(ControlArea, intercept4), 0x010);
        assert_eq!(offset_of!(ControlArea, intercept5), 0x014);
        assert_eq!(offset_of!(ControlArea, pause_filter_threshold), 0x03C);
        assert_eq!(offset_of!(ControlArea, pause_filter_count), 0x03E);
        assert_eq!(offset_of!(ControlArea, iopm_base_pa), 0x040);
        assert_eq!(offset_of!(ControlArea, msrpm_base_pa), 0x048);
        assert_eq!(offset_of!(ControlArea, tsc_offset), 0x050);
        assert_eq!(offset_of!(ControlArea, guest_asid), 0x058);
        assert_eq!(offset_of!(ControlArea, tlb_control), 0x05C);
        assert_eq!(offset_of!(ControlArea, vintr), 0x060);
        assert_eq!(offset_of!(ControlArea, interrupt_shadow), 0x068);
        assert_eq!(offset_of!(ControlArea, exitcode), 0x070);
        assert_eq!(offset_of!(ControlArea, exitinfo1), 0x078);
        assert_eq!(offset_of!(ControlArea, exitinfo2), 0x080);
        assert_eq!(offset_of!(ControlArea, exitintinfo), 0x088);
        assert_eq!(offset_of!(ControlArea, np_control), 0x090);
        assert_eq!(offset_of!(ControlArea, avic_apic_bar), 0x098);
        assert_eq!(offset_of!(ControlArea, ghcb_pa), 0x0A0);
        assert_eq!(offset_of!(ControlArea, eventinj), 0x0A8);
        assert_eq!(offset_of!(ControlArea, n_cr3), 0x0B0);
        assert_eq!(offset_of!(ControlArea, lbr_virt), 0x0B8);
        assert_eq!(offset_of!(ControlArea, clean_bits), 0x0C0);
        assert_eq!(offset_of!(ControlArea, nrip), 0x0C8);
        assert_eq!(offset_of!(ControlArea, insn_len), 0x0D0);
        assert_eq!(offset_of!(ControlArea, insn_bytes), 0x0D1);
    }

    #[test]
    fn save_area_offsets_match_apm_table_b2() {
        let base = offset_of!(Vmcb, save);
        assert_eq!(base, 0x400);
        let at = |o: usize| base + o;
        assert_eq!(at(offset_of!(SaveArea, es)), 0x400);
        assert_eq!(at(offset_of!(SaveArea, cs)), 0x410);
        assert_eq!(at(offset_of!(SaveArea, ss)), 0x420);
        assert_eq!(at(offset_of!(SaveArea, ds)), 0x430);
        assert_eq!(at(offset_of!(SaveArea, fs)), 0x440);
        assert_eq!(at(offset_of!(SaveArea, gs)), 0x450);
        assert_eq!(at(offset_of!(SaveArea, gdtr)), 0x460);
        assert_eq!(at(offset_of!(SaveArea, ldtr)), 0x470);
        assert_eq!(at(offset_of!(SaveArea, idtr)), 0x480);
        assert_eq!(at(offset_of!(SaveArea, tr)), 0x490);
        assert_eq!(at(offset_of!(SaveArea, cpl)), 0x4CB);
        assert_eq!(at(offset_of!(SaveArea, efer)), 0x4D0);
        assert_eq!(at(offset_of!(SaveArea, cr4)), 0x548);
        assert_eq!(at(offset_of!(SaveArea, cr3)), 0x550);
        assert_eq!(at(offset_of!(SaveArea, cr0)), 0x558);
        assert_eq!(at(offset_of!(SaveArea, dr7)), 0x560);
        assert_eq!(at(offset_of!(SaveArea, dr6)), 0x568);
        assert_eq!(at(offset_of!(SaveArea, rflags)), 0x570);
        assert_eq!(at(offset_of!(SaveArea, rip)), 0x578);
        assert_eq!(at(offset_of!(SaveArea, rsp)), 0x5D8);
        assert_eq!(at(offset_of!(SaveArea, s_cet)), 0x5E0);
        assert_eq!(at(offset_of!(SaveArea, ssp)), 0x5E8);
        assert_eq!(at(offset_of!(SaveArea, isst_addr)), 0x5F0);
        assert_eq!(at(offset_of!(SaveArea, rax)), 0x5F8);
        assert_eq!(at(offset_of!(SaveArea, star)), 0x600);
        assert_eq!(at(offset_of!(SaveArea, lstar)), 0x608);
        assert_eq!(at(offset_of!(SaveArea, cstar)), 0x610);
        assert_eq!(at(offset_of!(SaveArea, sfmask)), 0x618);
        assert_eq!(at(offset_of!(SaveArea, kernel_gs_base)), 0x620);
        assert_eq!(at(offset_of!(SaveArea, sysenter_cs)), 0x628);
        assert_eq!(at(offset_of!(SaveArea, sysenter_esp)), 0x630);
        assert_eq!(at(offset_of!(SaveArea, sysenter_eip)), 0x638);
        assert_eq!(at(offset_of!(SaveArea, cr2)), 0x640);
        assert_eq!(at(offset_of!(SaveArea, g_pat)), 0x668);
        assert_eq!(at(offset_of!(SaveArea, dbgctl)), 0x670);
    }

    #[test]
    fn intercept_bits_match_apm() {
        assert_eq!(Intercept3::CPUID.bits(), 1 << 18);
        assert_eq!(Intercept3::HLT.bits(), 1 << 24);
        assert_eq!(Intercept3::SHUTDOWN.bits(), 1 << 31);
        assert_eq!(Intercept4::VMRUN.bits(), 1);
        assert_eq!(Intercept4::VMMCALL.bits(), 2);
    }
}
