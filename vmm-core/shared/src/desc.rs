//! x86 descriptors both sides build: flat code and data segment
//! descriptors, the guests' initial GDT and selectors, the 64-bit TSS and
//! its GDT descriptor, and 64-bit interrupt gates.
//!
//! vmm-core builds its own GDT, TSS and IDT (`rt::idt`) and its guests'
//! initial GDT (`guest`); `guest-rt` builds a guest's TSS and IDT on top of
//! that GDT. Each layout is here once, as values, and tested on the host.

/// 64-bit code, DPL 0 (Intel SDM Vol. 3A §3.4.5: present, type 0xA
/// execute/read, L = 1).
pub const KERNEL_CODE64: u64 = 0x00AF_9A00_0000_FFFF;
/// Flat 4 GiB data, DPL 0 (present, type 2 read/write, G = 1, D/B = 1).
pub const KERNEL_DATA: u64 = 0x00CF_9200_0000_FFFF;
/// Flat 4 GiB data, DPL 3.
pub const USER_DATA: u64 = 0x00CF_F200_0000_FFFF;
/// 64-bit code, DPL 3.
pub const USER_CODE64: u64 = 0x00AF_FA00_0000_FFFF;

/// The GDT a bare-metal guest starts with (vmm-core's `guest::GDT`, at
/// guest-physical `guest::GDT_BASE`): null, kernel code (0x08), kernel data
/// (0x10), user data (0x18, DPL 3), user 64-bit code (0x20, DPL 3), the
/// order SYSRET wants.
pub const GUEST_GDT: [u64; 5] = [0, KERNEL_CODE64, KERNEL_DATA, USER_DATA, USER_CODE64];
/// Kernel code selector of [`GUEST_GDT`].
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector of [`GUEST_GDT`].
pub const KERNEL_DS: u16 = 0x10;
/// User data selector (RPL 3) of [`GUEST_GDT`].
pub const USER_DS: u16 = 0x1b;
/// User 64-bit code selector (RPL 3) of [`GUEST_GDT`].
pub const USER_CS: u16 = 0x23;

/// The size of a 64-bit TSS without an I/O bitmap (limit 0x67).
pub const TSS_SIZE: usize = 104;

/// A 64-bit TSS (Intel SDM Vol. 3A §9.7, Figure 9-11): RSP0-2, IST1-7
/// and the I/O map base, all zero but what the setters write.
#[repr(C, packed(4))]
#[derive(Clone, Copy)]
pub struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

impl Tss {
    /// An all-zero TSS.
    pub const fn new() -> Tss {
        Tss {
            reserved0: 0,
            rsp: [0; 3],
            reserved1: 0,
            ist: [0; 7],
            reserved2: 0,
            reserved3: 0,
            iomap_base: 0,
        }
    }

    /// Set RSP0: the stack the CPU switches to for an event taken at CPL
    /// 1-3 through a gate without IST.
    pub fn set_rsp0(&mut self, rsp0: u64) {
        let mut rsp = self.rsp;
        rsp[0] = rsp0;
        self.rsp = rsp;
    }

    /// Set IST`n` (1-7; 0 and above 7 are ignored): the stack of every
    /// gate whose IST field is `n`.
    pub fn set_ist(&mut self, n: u8, top: u64) {
        // A copy: the packed field cannot be borrowed in place.
        let mut ist = self.ist;
        if let Some(slot) = (n as usize).checked_sub(1).and_then(|i| ist.get_mut(i)) {
            *slot = top;
        }
        self.ist = ist;
    }
}

impl Default for Tss {
    fn default() -> Self {
        Self::new()
    }
}

/// A 16-byte 64-bit TSS descriptor (Intel SDM Vol. 3A §8.2.3, "TSS
/// Descriptor in 64-bit mode"): available TSS (type 9), present, DPL 0,
/// byte granular, `limit` (a [`Tss`]: `TSS_SIZE - 1`).
pub const fn tss_descriptor(base: u64, limit: u32) -> [u64; 2] {
    let low = (limit as u64 & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (0x89 << 40)
        | (((limit as u64 >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56);
    [low, base >> 32]
}

/// Write `descriptors` and then the descriptor of the [`Tss`] at
/// `tss_base` into `gdt`; returns the TSS's selector, or `None` if `gdt`
/// has no room for `descriptors.len() + 2` entries. The code and data
/// descriptors keep their selectors, so a GDT built from the one in use
/// can be loaded under the segment registers.
pub fn gdt_with_tss(gdt: &mut [u64], descriptors: &[u64], tss_base: u64) -> Option<u16> {
    let n = descriptors.len();
    let selector = u16::try_from(n.checked_mul(8)?).ok()?;
    gdt.get_mut(..n)?.copy_from_slice(descriptors);
    let desc = tss_descriptor(tss_base, TSS_SIZE as u32 - 1);
    gdt.get_mut(n..n.checked_add(2)?)?.copy_from_slice(&desc);
    Some(selector)
}

/// A 64-bit interrupt gate (Intel SDM Vol. 3A §7.14.1, Figure 7-8): handler
/// `offset`, code segment `selector`, present, DPL 0, type 0xE (interrupt
/// gate: IF is cleared on entry), interrupt stack table entry `ist` (0:
/// none, 1-7: the TSS's IST*n* stack).
pub const fn interrupt_gate(offset: u64, selector: u16, ist: u8) -> [u64; 2] {
    let low = (offset & 0xFFFF)
        | ((selector as u64) << 16)
        | (((ist & 7) as u64) << 32)
        | (0x8E << 40)
        | (((offset >> 16) & 0xFFFF) << 48);
    [low, offset >> 32]
}

/// An IDT of `N` 16-byte gates ([`interrupt_gate`]), all absent at first;
/// 16-byte aligned (Intel SDM Vol. 3A §7.10 asks for 8).
#[repr(C, align(16))]
pub struct Idt<const N: usize>(pub [[u64; 2]; N]);

impl<const N: usize> Idt<N> {
    /// No gate present.
    pub const fn new() -> Self {
        Idt([[0; 2]; N])
    }
}

impl<const N: usize> Default for Idt<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tss_layout_matches_the_sdm() {
        assert_eq!(core::mem::size_of::<Tss>(), TSS_SIZE);
        let mut t = Tss::new();
        t.set_rsp0(0x1122_3344_5566_7788);
        t.set_ist(1, 0xAAAA);
        t.set_ist(7, 0xBBBB);
        t.set_ist(0, 0xDEAD);
        t.set_ist(8, 0xDEAD);
        // SAFETY: Tss is 104 bytes of plain integers, no padding (packed).
        let bytes: [u8; TSS_SIZE] = unsafe { core::mem::transmute(t) };
        let at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        assert_eq!(at(0x04), 0x1122_3344_5566_7788, "RSP0 at 0x04");
        assert_eq!(at(0x24), 0xAAAA, "IST1 at 0x24");
        assert_eq!(at(0x54), 0xBBBB, "IST7 at 0x54");
        let others: u64 = (0..TSS_SIZE)
            .filter(|o| !(0x04..0x0C).contains(o) && !(0x24..0x2C).contains(o))
            .filter(|o| !(0x54..0x5C).contains(o))
            .map(|o| u64::from(bytes[o]))
            .sum();
        assert_eq!(others, 0, "IST 0 and 8 write nothing");
    }

    #[test]
    fn tss_descriptor_matches_the_sdm() {
        let [low, high] = tss_descriptor(0xFFFF_8000_1234_5678, 103);
        assert_eq!(low & 0xFFFF, 103, "limit 15:0");
        assert_eq!((low >> 16) & 0xFF_FFFF, 0x34_5678, "base 23:0");
        assert_eq!(
            (low >> 40) & 0xFF,
            0x89,
            "present, DPL 0, available 64-bit TSS"
        );
        assert_eq!((low >> 48) & 0xF, 0, "limit 19:16");
        assert_eq!(low >> 56, 0x12, "base 31:24");
        assert_eq!(high, 0xFFFF_8000, "base 63:32");
        assert_eq!((tss_descriptor(0, 0xF_FFFF)[0] >> 48) & 0xF, 0xF);
    }

    #[test]
    fn gdt_with_tss_appends_after_the_descriptors() {
        let mut gdt = [0u64; 7];
        let sel = gdt_with_tss(&mut gdt, &GUEST_GDT, 0x5000).unwrap();
        assert_eq!(sel, 0x28);
        assert_eq!(gdt[..5], GUEST_GDT);
        assert_eq!(gdt[5..], tss_descriptor(0x5000, 103));
        assert_eq!(gdt_with_tss(&mut [0u64; 6], &GUEST_GDT, 0x5000), None);
        let mut three = [0u64; 5];
        assert_eq!(gdt_with_tss(&mut three, &GUEST_GDT[..3], 1), Some(0x18));
    }

    #[test]
    fn gate_layout_matches_the_sdm() {
        let g = interrupt_gate(0xFFFF_8000_1234_5678, 0x08, 0);
        assert_eq!(g[0] & 0xFFFF, 0x5678, "offset 15:0");
        assert_eq!((g[0] >> 16) & 0xFFFF, 0x08, "selector");
        assert_eq!((g[0] >> 32) & 0x7, 0, "IST 0");
        assert_eq!((interrupt_gate(0, 8, 1)[0] >> 32) & 0x7, 1, "IST 1");
        assert_eq!((g[0] >> 40) & 0xFF, 0x8E, "present, DPL 0, interrupt gate");
        assert_eq!(g[0] >> 48, 0x1234, "offset 31:16");
        assert_eq!(g[1], 0xFFFF_8000, "offset 63:32");
    }

    #[test]
    fn guest_selectors_name_the_guest_gdt() {
        let dpl = |d: u64| (d >> 45) & 3;
        assert_eq!(GUEST_GDT[usize::from(KERNEL_CS >> 3)], KERNEL_CODE64);
        assert_eq!(GUEST_GDT[usize::from(KERNEL_DS >> 3)], KERNEL_DATA);
        assert_eq!(GUEST_GDT[usize::from(USER_DS >> 3)], USER_DATA);
        assert_eq!(GUEST_GDT[usize::from(USER_CS >> 3)], USER_CODE64);
        assert_eq!((dpl(USER_DATA), u64::from(USER_DS & 3)), (3, 3));
        assert_eq!((dpl(USER_CODE64), u64::from(USER_CS & 3)), (3, 3));
        assert_eq!((dpl(KERNEL_CODE64), dpl(KERNEL_DATA)), (0, 0));
    }
}
