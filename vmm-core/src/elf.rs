//! Just enough ELF64 to load a guest: header checks and `PT_LOAD` segments.
//!
//! Field offsets follow the System V ABI (gABI "ELF Header" and "Program
//! Header"), x86-64 supplement. Everything is bounds-checked: a malformed
//! image is an [`ElfError`], never a panic.

use core::fmt;

const PT_LOAD: u32 = 1;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;

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
    phoff: usize,
    phentsize: usize,
    phnum: usize,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ElfError> {
    let s = b
        .get(off..off.checked_add(2).ok_or(ElfError::Truncated)?)
        .ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([
        s.first().copied().unwrap_or(0),
        s.get(1).copied().unwrap_or(0),
    ]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ElfError> {
    let s = b
        .get(off..off.checked_add(4).ok_or(ElfError::Truncated)?)
        .ok_or(ElfError::Truncated)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Ok(u32::from_le_bytes(a))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, ElfError> {
    let s = b
        .get(off..off.checked_add(8).ok_or(ElfError::Truncated)?)
        .ok_or(ElfError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

fn to_usize(v: u64) -> Result<usize, ElfError> {
    usize::try_from(v).map_err(|_| ElfError::Truncated)
}

impl<'a> Elf<'a> {
    /// Check the header of `file`.
    pub fn parse(file: &'a [u8]) -> Result<Self, ElfError> {
        if file.get(..4) != Some(b"\x7fELF".as_slice())
            || file.get(4) != Some(&2)
            || file.get(5) != Some(&1)
        {
            return Err(ElfError::NotElf64);
        }
        if u16_at(file, 18)? != EM_X86_64 {
            return Err(ElfError::NotElf64);
        }
        if u16_at(file, 16)? != ET_EXEC {
            return Err(ElfError::NotExecutable);
        }
        let entry = u64_at(file, 24)?;
        let phoff = to_usize(u64_at(file, 32)?)?;
        let phentsize = usize::from(u16_at(file, 54)?);
        let phnum = usize::from(u16_at(file, 56)?);
        if phentsize < 56 {
            return Err(ElfError::Truncated);
        }
        let table = phentsize
            .checked_mul(phnum)
            .and_then(|n| n.checked_add(phoff))
            .ok_or(ElfError::Truncated)?;
        if table > file.len() {
            return Err(ElfError::Truncated);
        }
        Ok(Elf {
            file,
            entry,
            phoff,
            phentsize,
            phnum,
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
        (0..self.phnum).filter_map(move |i| {
            let ph = self.phoff.checked_add(i.checked_mul(self.phentsize)?)?;
            let r = (|| {
                if u32_at(self.file, ph)? != PT_LOAD {
                    return Ok(None);
                }
                let offset = to_usize(u64_at(self.file, ph.wrapping_add(8))?)?;
                let paddr = u64_at(self.file, ph.wrapping_add(24))?;
                let filesz = to_usize(u64_at(self.file, ph.wrapping_add(32))?)?;
                let memsz = u64_at(self.file, ph.wrapping_add(40))?;
                if (filesz as u64) > memsz || paddr.checked_add(memsz).is_none() {
                    return Err(ElfError::BadSegment);
                }
                if offset
                    .checked_add(filesz)
                    .is_none_or(|end| end > self.file.len())
                {
                    return Err(ElfError::Truncated);
                }
                Ok(Some(Segment {
                    paddr,
                    offset,
                    filesz,
                    memsz,
                }))
            })();
            r.transpose()
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
        f[4] = 2;
        f[5] = 1;
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
