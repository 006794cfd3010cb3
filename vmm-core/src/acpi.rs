//! Which CPUs the machine has: the local APIC IDs in the firmware's ACPI
//! MADT (ACPI 6.5 §5.2.12), found through the RSDP in the BIOS area.
//!
//! The VMM reads three tables and nothing else: the RSDP (§5.2.5: the
//! signature `RSD PTR ` on a 16-byte boundary in the first KiB of the EBDA
//! or in `0xE0000..0x100000`), the XSDT or RSDT it points to (§5.2.7,
//! §5.2.8), and the MADT (signature `APIC`) among their entries. Of the
//! MADT it keeps the Processor Local APIC (type 0, §5.2.12.2) and Processor
//! Local x2APIC (type 9, §5.2.12.12) entries that are enabled. Every length,
//! checksum and address is checked; a table that fails a check is ignored
//! and the VMM runs on the boot CPU alone (it says so).
//!
//! Both emulators' firmware (SeaBIOS for QEMU, the Bochs BIOS) build a MADT
//! with one entry per `-smp` / `cpu: count` CPU. Hand-written rather than
//! the `acpi` crate: these three tables are 100 lines with their checks,
//! and the crate's processor list needs an allocator and a mapping handler
//! the VMM has no use for.
//!
//! Portable: reads go through a [`PhysReader`], so the host tests feed it
//! synthetic tables.

use crate::bootinfo::PhysReader;

/// At most this many CPUs are used (`--cpus` 1 to 8); the rest stay in
/// wait-for-SIPI, untouched.
pub const MAX_CPUS: usize = 8;

/// The largest ACPI table the VMM reads: a MADT of 8 CPUs is ~100 bytes,
/// one of 256 about 2.5 KiB. A longer table is refused (the VMM then runs
/// on the boot CPU alone); the buffer lives on the boot stack.
const MAX_TABLE: u32 = 4096;

/// The CPUs the MADT lists, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus {
    /// Local APIC IDs of the enabled CPUs, the first `count` valid.
    pub apic_ids: [u32; MAX_CPUS],
    /// How many of `apic_ids` are valid.
    pub count: usize,
    /// Enabled CPUs past [`MAX_CPUS`], not used.
    pub ignored: usize,
}

impl Cpus {
    /// The valid APIC IDs.
    pub fn ids(&self) -> &[u32] {
        self.apic_ids.get(..self.count).unwrap_or(&[])
    }

    /// No CPU known (no usable MADT): [`Cpus::bsp_first`] adds the boot CPU.
    pub const fn none() -> Cpus {
        Cpus {
            apic_ids: [0; MAX_CPUS],
            count: 0,
            ignored: 0,
        }
    }

    /// Only the boot CPU.
    pub fn just(bsp: u32) -> Cpus {
        let mut apic_ids = [0; MAX_CPUS];
        apic_ids[0] = bsp;
        Cpus {
            apic_ids,
            count: 1,
            ignored: 0,
        }
    }

    /// The list with `bsp` first (the VMM's vCPU 0 runs on the boot CPU),
    /// the others in MADT order; `bsp` is added if the MADT lacks it.
    pub fn bsp_first(&self, bsp: u32) -> Cpus {
        let mut out = Cpus::just(bsp);
        for &id in self.ids() {
            if id == bsp {
                continue;
            }
            match out.apic_ids.get_mut(out.count) {
                Some(slot) => {
                    *slot = id;
                    out.count += 1;
                }
                None => out.ignored += 1,
            }
        }
        out.ignored += self.ignored;
        out
    }
}

/// Why no CPU list could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP with a valid checksum in the BIOS area.
    NoRsdp,
    /// A table is unreadable, too long or too short, or fails its checksum.
    BadTable {
        /// The table's signature (what was expected).
        signature: [u8; 4],
        /// Its physical address.
        addr: u64,
    },
    /// The RSDT/XSDT names no MADT.
    NoMadt,
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "no ACPI RSDP in the BIOS area"),
            AcpiError::BadTable { signature, addr } => write!(
                f,
                "the ACPI table {} at {addr:#x} is malformed",
                core::str::from_utf8(signature).unwrap_or("????")
            ),
            AcpiError::NoMadt => write!(f, "no ACPI MADT"),
        }
    }
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

/// Find the RSDP: the first KiB of the EBDA (its segment at `0x40E`), then
/// `0xE0000..0x100000`, on 16-byte boundaries (ACPI §5.2.5.1).
pub fn find_rsdp(mem: &impl PhysReader) -> Option<u64> {
    let ebda = mem
        .u16(0x40E)
        .map(|seg| u64::from(seg) << 4)
        .filter(|&a| (0x80000..0xA0000).contains(&a));
    let areas = ebda
        .map(|a| (a, a + 1024))
        .into_iter()
        .chain(core::iter::once((0xE0000, 0x100000)));
    for (start, end) in areas {
        let mut at = start;
        while at < end {
            let mut head = [0u8; 20];
            if mem.read(at, &mut head).is_some() && &head[..8] == b"RSD PTR " && checksum_ok(&head)
            {
                return Some(at);
            }
            at += 16;
        }
    }
    None
}

/// Read a whole table (header checked: signature, length, checksum) into
/// `buf`; returns its length.
fn table<'b>(
    mem: &impl PhysReader,
    addr: u64,
    signature: Option<[u8; 4]>,
    buf: &'b mut [u8],
) -> Option<&'b [u8]> {
    let mut head = [0u8; 36];
    mem.read(addr, &mut head)?;
    if let Some(s) = signature {
        if head[..4] != s {
            return None;
        }
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(36..=MAX_TABLE).contains(&len) {
        return None;
    }
    let t = buf.get_mut(..len as usize)?;
    mem.read(addr, t)?;
    checksum_ok(t).then_some(&*t)
}

/// The enabled CPUs of the machine's MADT.
pub fn cpus(mem: &impl PhysReader) -> Result<Cpus, AcpiError> {
    let rsdp = find_rsdp(mem).ok_or(AcpiError::NoRsdp)?;
    let mut r = [0u8; 36];
    mem.read(rsdp, &mut r).ok_or(AcpiError::NoRsdp)?;
    let revision = r[15];
    let rsdt = u64::from(u32::from_le_bytes([r[16], r[17], r[18], r[19]]));
    let xsdt = u64::from_le_bytes([r[24], r[25], r[26], r[27], r[28], r[29], r[30], r[31]]);
    // ACPI 2.0+: the XSDT (36-byte RSDP, extended checksum) when present.
    let use_xsdt = revision >= 2 && xsdt != 0 && checksum_ok(&r);
    let (root, signature, width) = if use_xsdt {
        (xsdt, *b"XSDT", 8)
    } else {
        (rsdt, *b"RSDT", 4)
    };
    let mut buf = [0u8; MAX_TABLE as usize];
    let t = table(mem, root, Some(signature), &mut buf).ok_or(AcpiError::BadTable {
        signature,
        addr: root,
    })?;
    let mut madt = None;
    for entry in t.get(36..).unwrap_or(&[]).chunks_exact(width) {
        let mut a = [0u8; 8];
        a[..width].copy_from_slice(entry);
        let addr = u64::from_le_bytes(a);
        let mut sig = [0u8; 4];
        if mem.read(addr, &mut sig).is_some() && &sig == b"APIC" {
            madt = Some(addr);
            break;
        }
    }
    let madt = madt.ok_or(AcpiError::NoMadt)?;
    let mut buf = [0u8; MAX_TABLE as usize];
    let bad = AcpiError::BadTable {
        signature: *b"APIC",
        addr: madt,
    };
    let t = table(mem, madt, Some(*b"APIC"), &mut buf).ok_or(bad)?;
    Ok(madt_cpus(t.get(44..).unwrap_or(&[])))
}

/// The enabled local APIC and x2APIC entries of a MADT's entry list (what
/// follows its 44-byte header).
pub fn madt_cpus(mut entries: &[u8]) -> Cpus {
    let mut out = Cpus {
        apic_ids: [0; MAX_CPUS],
        count: 0,
        ignored: 0,
    };
    while let [kind, len, ..] = *entries {
        let len = usize::from(len);
        let Some(e) = entries.get(..len).filter(|_| len >= 2) else {
            break;
        };
        let le32 = |at: usize| {
            e.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        // Bit 0: enabled. Bit 1 (online capable) is for hot-plug: not
        // started.
        let cpu = match kind {
            0 if len >= 8 => le32(4).filter(|f| f & 1 != 0).map(|_| u32::from(e[3])),
            9 if len >= 16 => le32(8).filter(|f| f & 1 != 0).and(le32(4)),
            _ => None,
        };
        if let Some(id) = cpu {
            if !out.ids().contains(&id) {
                match out.apic_ids.get_mut(out.count) {
                    Some(slot) => {
                        *slot = id;
                        out.count += 1;
                    }
                    None => out.ignored += 1,
                }
            }
        }
        entries = entries.get(len..).unwrap_or(&[]);
    }
    out
}

/// Where the guest's tables go: the top of base memory, which the Linux
/// profile's E820 map reserves (`crate::linux`).
pub const GUEST_TABLES: u64 = 0x9_F000;

/// Why the guest's tables could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// No CPU, more than [`MAX_CPUS`], or an APIC ID above 254 (a MADT
    /// local APIC entry holds 8 bits; 0xFF means all).
    BadCpus,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "1 to {MAX_CPUS} CPUs with APIC IDs below 255 are supported"
        )
    }
}

/// Fix the byte at `at` so that `bytes` sums to 0 (ACPI §5.2.5.3, §5.2.6).
fn seal(bytes: &mut [u8], at: usize) {
    if let Some(b) = bytes.get_mut(at) {
        *b = 0;
    }
    let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    if let Some(b) = bytes.get_mut(at) {
        *b = 0u8.wrapping_sub(sum);
    }
}

/// A table header (ACPI §5.2.6) for a table of `len` bytes.
fn header(signature: &[u8; 4], len: usize, revision: u8) -> [u8; 36] {
    let mut h = [0u8; 36];
    h[..4].copy_from_slice(signature);
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h[8] = revision;
    h[10..16].copy_from_slice(b"VMMCAL");
    h[16..24].copy_from_slice(b"VMM-CORE");
    h[24..28].copy_from_slice(&1u32.to_le_bytes());
    h[28..32].copy_from_slice(b"VMMC");
    h[32..36].copy_from_slice(&1u32.to_le_bytes());
    h
}

/// The ACPI tables a Linux guest on several vCPUs finds its CPUs in:
/// an RSDP (revision 2), an XSDT naming one table, and a MADT with one
/// enabled Processor Local APIC entry per vCPU (ACPI UID = vCPU index,
/// the CPU's real APIC ID, `apic_ids[0]` the boot CPU's) and a Local
/// APIC NMI entry for LINT1 of every processor. The MADT's flags say a
/// dual 8259 is present (PCAT_COMPAT); there is no I/O APIC entry, so
/// Linux runs its local APICs in virtual-wire mode with the PIC behind
/// the boot CPU's LINT0. No FADT and no DSDT: the guest runs without
/// the ACPI interpreter (crate::linux: `acpi=noirq`); the MADT is what
/// it reads, at boot.
///
/// Written into `out` for guest-physical `base` (16-byte aligned);
/// returns the bytes used and the RSDP's offset (0).
pub fn guest_tables(apic_ids: &[u32], base: u64, out: &mut [u8; 512]) -> Result<usize, BuildError> {
    if apic_ids.is_empty() || apic_ids.len() > MAX_CPUS || apic_ids.iter().any(|&id| id > 254) {
        return Err(BuildError::BadCpus);
    }
    *out = [0; 512];
    const XSDT: usize = 0x40;
    const MADT: usize = 0x80;
    // RSDP (§5.2.5.3): signature, checksum over 20 bytes, OEM, revision
    // 2, RSDT address 0 (the XSDT is used), length 36, XSDT address,
    // extended checksum over 36 bytes.
    let mut rsdp = [0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(b"VMMCAL");
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&(base + XSDT as u64).to_le_bytes());
    seal(&mut rsdp[..20], 8);
    seal(&mut rsdp, 32);
    // XSDT (§5.2.8): one entry, the MADT.
    let mut xsdt = [0u8; 44];
    xsdt[..36].copy_from_slice(&header(b"XSDT", 44, 1));
    xsdt[36..44].copy_from_slice(&(base + MADT as u64).to_le_bytes());
    seal(&mut xsdt, 9);
    // MADT (§5.2.12): local APIC address, flags, entries.
    let madt_len = 44 + 8 * apic_ids.len() + 6;
    let mut madt = [0u8; 44 + 8 * MAX_CPUS + 6];
    madt[..36].copy_from_slice(&header(b"APIC", madt_len, 4));
    madt[36..40].copy_from_slice(&0xFEE0_0000u32.to_le_bytes());
    madt[40..44].copy_from_slice(&1u32.to_le_bytes());
    for (i, &id) in apic_ids.iter().enumerate() {
        let e = 44 + 8 * i;
        // Type 0, length 8, UID, APIC ID, flags = enabled.
        madt[e..e + 8].copy_from_slice(&[0, 8, i as u8, id as u8, 1, 0, 0, 0]);
    }
    // Type 4 (§5.2.12.7): Local APIC NMI, all processors (UID 0xFF),
    // flags 0 (conforming), LINT1.
    let e = 44 + 8 * apic_ids.len();
    madt[e..e + 6].copy_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
    seal(&mut madt[..madt_len], 9);
    out[..36].copy_from_slice(&rsdp);
    out[XSDT..XSDT + 44].copy_from_slice(&xsdt);
    out[MADT..MADT + madt_len].copy_from_slice(&madt[..madt_len]);
    Ok(MADT + madt_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// 1 MiB of "physical memory".
    struct Mem(Vec<u8>);

    impl PhysReader for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Option<()> {
            let a = usize::try_from(addr).ok()?;
            let src = self.0.get(a..a.checked_add(buf.len())?)?;
            buf.copy_from_slice(src);
            Some(())
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        let sum = t.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        t[at] = 0u8.wrapping_sub(sum);
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[1, 0]);
        t.extend_from_slice(&[0u8; 26]);
        t.extend_from_slice(body);
        fix_checksum(&mut t, 9);
        t
    }

    fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
        let mut e = std::vec![0u8, 8, uid, id];
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    fn x2apic(id: u32, flags: u32) -> Vec<u8> {
        let mut e = std::vec![9u8, 16, 0, 0];
        e.extend_from_slice(&id.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&7u32.to_le_bytes());
        e
    }

    /// A machine whose RSDP at 0xF5A0 (revision `rev`) leads to a MADT
    /// with `entries`.
    fn machine(rev: u8, entries: &[Vec<u8>]) -> Mem {
        let mut m = Mem(std::vec![0u8; 1 << 20]);
        let mut body = std::vec![0u8; 8];
        body[..4].copy_from_slice(&0xFEE0_0000u32.to_le_bytes());
        for e in entries {
            body.extend_from_slice(e);
        }
        let madt = sdt(b"APIC", &body);
        m.0[0x7_0000..0x7_0000 + madt.len()].copy_from_slice(&madt);
        let facp = sdt(b"FACP", &[0; 8]);
        m.0[0x7_1000..0x7_1000 + facp.len()].copy_from_slice(&facp);
        let rsdt = sdt(b"RSDT", &[0x00, 0x10, 0x07, 0, 0x00, 0x00, 0x07, 0]);
        m.0[0x7_2000..0x7_2000 + rsdt.len()].copy_from_slice(&rsdt);
        let xsdt = sdt(
            b"XSDT",
            &[
                0x00, 0x10, 0x07, 0, 0, 0, 0, 0, 0x00, 0x00, 0x07, 0, 0, 0, 0, 0,
            ],
        );
        m.0[0x7_3000..0x7_3000 + xsdt.len()].copy_from_slice(&xsdt);
        let mut r = [0u8; 36];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[15] = rev;
        r[16..20].copy_from_slice(&0x7_2000u32.to_le_bytes());
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&0x7_3000u64.to_le_bytes());
        fix_checksum(&mut r[..20], 8);
        fix_checksum(&mut r, 32);
        m.0[0xF_5A00..0xF_5A00 + 36].copy_from_slice(&r);
        m
    }

    #[test]
    fn enabled_cpus_in_madt_order_through_rsdt_and_xsdt() {
        let entries = [
            lapic(0, 0, 1),
            lapic(1, 1, 1),
            lapic(2, 5, 0),                                         // disabled
            lapic(3, 6, 2), // online capable only: not started
            std::vec![1u8, 12, 0, 0, 0, 0, 0, 0xC0, 0xFE, 0, 0, 0], // an IOAPIC
            x2apic(300, 1),
        ];
        for rev in [0, 2] {
            let m = machine(rev, &entries);
            assert_eq!(find_rsdp(&m), Some(0xF_5A00));
            let c = cpus(&m).unwrap();
            assert_eq!(c.ids(), [0, 1, 300], "revision {rev}");
        }
    }

    #[test]
    fn broken_tables_are_refused() {
        let mut m = machine(0, &[lapic(0, 0, 1)]);
        m.0[0x7_0000 + 40] ^= 1; // MADT checksum
        assert_eq!(
            cpus(&m),
            Err(AcpiError::BadTable {
                signature: *b"APIC",
                addr: 0x7_0000
            })
        );
        let mut m = machine(0, &[lapic(0, 0, 1)]);
        m.0[0xF_5A00 + 3] ^= 1; // RSDP signature
        assert_eq!(cpus(&m), Err(AcpiError::NoRsdp));
        let mut m = machine(0, &[lapic(0, 0, 1)]);
        m.0[0x7_2000 + 4..0x7_2000 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(cpus(&m), Err(AcpiError::BadTable { .. })));
    }

    #[test]
    fn entries_that_lie_about_their_length_end_the_list() {
        // A zero-length entry would loop forever; a short one reads past.
        let mut list = lapic(0, 3, 1);
        list.extend_from_slice(&[0, 0, 0, 0]);
        list.extend_from_slice(&lapic(1, 4, 1));
        assert_eq!(madt_cpus(&list).ids(), [3]);
        assert_eq!(madt_cpus(&[0, 8, 0, 1]).ids(), [] as [u32; 0]);
        // Duplicates count once; more than MAX_CPUS are ignored.
        let many: Vec<u8> = (0..12u8).flat_map(|i| lapic(i, i % 10, 1)).collect();
        let c = madt_cpus(&many);
        assert_eq!((c.count, c.ignored), (MAX_CPUS, 2));
    }

    #[test]
    fn the_guests_tables_read_back_with_the_vmms_own_reader() {
        for ids in [&[0u32][..], &[0, 1], &[2, 0, 5, 7, 1, 3, 4, 6]] {
            let mut out = [0u8; 512];
            let len = guest_tables(ids, 0xE_0000, &mut out).unwrap();
            // Put them where the reader scans for an RSDP.
            let mut m = Mem(std::vec![0u8; 1 << 20]);
            m.0[0xE_0000..0xE_0000 + len].copy_from_slice(&out[..len]);
            assert_eq!(find_rsdp(&m), Some(0xE_0000));
            let c = cpus(&m).unwrap();
            assert_eq!(c.ids(), ids, "every CPU, in order");
            // Both RSDP checksums and the XSDT's hold (cpus() checked the
            // MADT's and the XSDT's).
            assert!(checksum_ok(&out[..20]) && checksum_ok(&out[..36]));
            assert_eq!(out[15], 2, "revision 2: the XSDT");
        }
        let mut out = [0u8; 512];
        assert_eq!(guest_tables(&[], 0, &mut out), Err(BuildError::BadCpus));
        assert_eq!(guest_tables(&[255], 0, &mut out), Err(BuildError::BadCpus));
        assert_eq!(guest_tables(&[0; 9], 0, &mut out), Err(BuildError::BadCpus));
    }

    #[test]
    fn the_boot_cpu_comes_first() {
        let c = madt_cpus(&[lapic(0, 0, 1), lapic(1, 1, 1), lapic(2, 2, 1)].concat());
        assert_eq!(c.bsp_first(2).ids(), [2, 0, 1]);
        assert_eq!(c.bsp_first(9).ids(), [9, 0, 1, 2]);
        assert_eq!(Cpus::just(4).ids(), [4]);
    }
}
