//! Loading a guest's ELF64 image: header checks and `PT_LOAD` segments.
//!
//! The parsing is the `elf` crate's (no_std, zero-alloc, fuzz-tested, every
//! offset and size checked against the file); this module adds what a
//! loader needs on top: an x86-64 `ET_EXEC` only, and each `PT_LOAD`
//! segment's file bytes inside the file and its memory range without
//! overflow. A malformed image is an [`ElfError`], never a panic.

use core::fmt;
use elf::abi::{EM_X86_64, ET_EXEC, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::Class;
use elf::parse::ParseError;
use elf::segment::SegmentTable;
use elf::ElfBytes;

/// Why an image cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Not `\x7fELF`, not 64-bit little-endian, or not x86-64.
    NotElf64,
    /// Not an executable (`ET_EXEC`): position-independent images are not
    /// supported.
    NotExecutable,
    /// A header or segment lies outside the file.
    Truncated,
    /// A segment's `p_memsz < p_filesz`, or its range overflows.
    BadSegment,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElfError::NotElf64 => "not an x86-64 ELF64 little-endian image",
            ElfError::NotExecutable => "not an ET_EXEC executable",
            ElfError::Truncated => "a header or segment lies outside the file",
            ElfError::BadSegment => "a segment has memsz < filesz or overflows",
        })
    }
}

impl From<ParseError> for ElfError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::BadMagic(_)
            | ParseError::UnsupportedElfClass(_)
            | ParseError::UnsupportedElfEndianness(_)
            | ParseError::UnsupportedVersion(_) => ElfError::NotElf64,
            // Offsets, sizes and entry sizes that do not fit the file.
            _ => ElfError::Truncated,
        }
    }
}

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Physical load address (`p_paddr`).
    pub paddr: u64,
    /// The file bytes: `file[offset..offset + filesz]`.
    pub offset: usize,
    /// Bytes copied from the file.
    pub filesz: usize,
    /// Bytes in memory; `memsz - filesz` bytes are zero-filled.
    pub memsz: u64,
}

/// A checked ELF64 executable.
pub struct Elf<'a> {
    file: &'a [u8],
    entry: u64,
    phdrs: Option<SegmentTable<'a, LittleEndian>>,
}

fn to_usize(v: u64) -> Result<usize, ElfError> {
    usize::try_from(v).map_err(|_| ElfError::Truncated)
}

impl<'a> Elf<'a> {
    /// Check the header of `file`.
    pub fn parse(file: &'a [u8]) -> Result<Self, ElfError> {
        // ELFCLASS64, ELFDATA2LSB: anything else is not ours, whatever
        // else is wrong with it.
        if file.get(..4) != Some(b"\x7fELF".as_slice())
            || file.get(4) != Some(&2)
            || file.get(5) != Some(&1)
        {
            return Err(ElfError::NotElf64);
        }
        let elf = ElfBytes::<LittleEndian>::minimal_parse(file)?;
        if elf.ehdr.class != Class::ELF64 || elf.ehdr.e_machine != EM_X86_64 {
            return Err(ElfError::NotElf64);
        }
        if elf.ehdr.e_type != ET_EXEC {
            return Err(ElfError::NotExecutable);
        }
        Ok(Elf {
            file,
            entry: elf.ehdr.e_entry,
            phdrs: elf.segments(),
        })
    }

    /// The entry point (`e_entry`).
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The whole file.
    pub fn file(&self) -> &'a [u8] {
        self.file
    }

    /// The `PT_LOAD` segments, each checked against the file.
    pub fn segments(&self) -> impl Iterator<Item = Result<Segment, ElfError>> + '_ {
        self.phdrs
            .iter()
            .flat_map(|table| table.iter())
            .filter(|ph| ph.p_type == PT_LOAD)
            .map(|ph| {
                let offset = to_usize(ph.p_offset)?;
                let filesz = to_usize(ph.p_filesz)?;
                if ph.p_filesz > ph.p_memsz || ph.p_paddr.checked_add(ph.p_memsz).is_none() {
                    return Err(ElfError::BadSegment);
                }
                if offset
                    .checked_add(filesz)
                    .is_none_or(|end| end > self.file.len())
                {
                    return Err(ElfError::Truncated);
                }
                Ok(Segment {
                    paddr: ph.p_paddr,
                    offset,
                    filesz,
                    memsz: ph.p_memsz,
                })
            })
    }

    /// The file bytes of a segment.
    pub fn bytes(&self, s: &Segment) -> &'a [u8] {
        s.offset
            .checked_add(s.filesz)
            .and_then(|end| self.file.get(s.offset..end))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn image(segs: &[(u64, u64, u64)]) -> Vec<u8> {
        // Header + program headers + 0x100 bytes of payload at 0x1000.
        let mut f = std::vec![0u8; 0x1100];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // ELFCLASS64
        f[5] = 1; // ELFDATA2LSB
        f[6] = 1; // EV_CURRENT
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[24..32].copy_from_slice(&0x20_0000u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, &(paddr, filesz, memsz)) in segs.iter().enumerate() {
            let ph = 64 + i * 56;
            f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[ph + 8..ph + 16].copy_from_slice(&0x1000u64.to_le_bytes());
            f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
            f[ph + 32..ph + 40].copy_from_slice(&filesz.to_le_bytes());
            f[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        f[0x1000] = 0xAA;
        f
    }

    #[test]
    fn loads_segments() {
        let f = image(&[(0x20_0000, 0x10, 0x2000)]);
        let elf = Elf::parse(&f).unwrap();
        assert_eq!(elf.entry(), 0x20_0000);
        let segs: Vec<_> = elf.segments().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            segs,
            [Segment {
                paddr: 0x20_0000,
                offset: 0x1000,
                filesz: 0x10,
                memsz: 0x2000
            }]
        );
        assert_eq!(elf.bytes(&segs[0])[0], 0xAA);
    }

    #[test]
    fn rejects_bad_images() {
        assert_eq!(Elf::parse(b"\x7fELF").err(), Some(ElfError::NotElf64));
        assert_eq!(
            Elf::parse(b"\x7fELF\x02\x01").err(),
            Some(ElfError::Truncated)
        );
        let mut f = image(&[]);
        f[6] = 0; // EI_VERSION
        assert_eq!(Elf::parse(&f).err(), Some(ElfError::NotElf64));
        let mut f = image(&[]);
        f[5] = 2; // big-endian
        assert_eq!(Elf::parse(&f).err(), Some(ElfError::NotElf64));
        let mut f = image(&[]);
        f[4] = 1; // ELF32
        assert_eq!(Elf::parse(&f).err(), Some(ElfError::NotElf64));
        let mut f = image(&[]);
        f[18] = 3; // EM_386
        assert_eq!(Elf::parse(&f).err(), Some(ElfError::NotElf64));
        let mut f = image(&[]);
        f[54] = 32; // phentsize of ELF32
        assert_eq!(Elf::parse(&f).err(), Some(ElfError::Truncated));
        assert_eq!(Elf::parse(&[]).err(), Some(ElfError::NotElf64));
        let mut f = image(&[]);
        f[16] = 3; // ET_DYN
        assert_eq!(Elf::parse(&f).err(), Some(ElfError::NotExecutable));
        let mut f = image(&[]);
        f[56..58].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(Elf::parse(&f).err(), Some(ElfError::Truncated));
        let f = image(&[(0x20_0000, 0x2000, 0x1000)]);
        assert_eq!(
            Elf::parse(&f).unwrap().segments().next(),
            Some(Err(ElfError::BadSegment))
        );
        let f = image(&[(0x20_0000, 0x10_0000, 0x10_0000)]);
        assert_eq!(
            Elf::parse(&f).unwrap().segments().next(),
            Some(Err(ElfError::Truncated))
        );
        let f = image(&[(u64::MAX - 4, 0x10, 0x10)]);
        assert_eq!(
            Elf::parse(&f).unwrap().segments().next(),
            Some(Err(ElfError::BadSegment))
        );
    }
}
