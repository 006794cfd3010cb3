//! The Linux bundle: one boot module holding a kernel, an initramfs and a
//! command line, which `cargo xtask linux` writes ([`Header::layout`],
//! [`Header::to_bytes`]) and vmm-core's Linux profile reads
//! ([`Header::parse`]). One module works for both loaders: QEMU's PVH
//! passes a single `-initrd`, GRUB a `module2`.
//!
//! The header, all integers little-endian:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | [`MAGIC`] |
//! | 8 | 4 | header size ([`HEADER_SIZE`]) |
//! | 12 | 4 | guest RAM in MiB |
//! | 16 | 8 | kernel offset |
//! | 24 | 8 | kernel length |
//! | 32 | 8 | initrd offset |
//! | 40 | 8 | initrd length |
//! | 48 | 8 | command line offset |
//! | 56 | 8 | command line length (bytes, without the NUL) |
//!
//! xtask places the kernel (the bzImage file as is), the initrd and the
//! command line after it, each at an [`ALIGN`]-aligned offset with zero
//! padding between them, and ends the bundle with one NUL after the
//! command line. An empty part still gets its aligned offset (it may equal
//! the next part's). The reader checks every part against the module.

/// The first 8 bytes of a bundle.
pub const MAGIC: [u8; 8] = *b"VMMCLNX1";
/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// Alignment xtask gives the kernel, the initrd and the command line.
pub const ALIGN: usize = 4096;

const RAM_MIB: usize = 12;
const KERNEL: usize = 16;
const INITRD: usize = 32;
const CMDLINE: usize = 48;

/// Where one part lies in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Part {
    /// Offset from the start of the bundle.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Part {
    /// This part of `module`, if it lies inside.
    pub fn of<'a>(&self, module: &'a [u8]) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset).ok()?;
        let len = usize::try_from(self.len).ok()?;
        module.get(start..start.checked_add(len)?)
    }
}

/// A bundle's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Guest RAM to give the kernel, in MiB.
    pub ram_mib: u32,
    /// The bzImage.
    pub kernel: Part,
    /// The initramfs (may be empty).
    pub initrd: Part,
    /// The command line, without its NUL.
    pub cmdline: Part,
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl Header {
    /// The header of a bundle with parts of these lengths, laid out as
    /// xtask writes them (see the module docs).
    pub fn layout(kernel: usize, initrd: usize, cmdline: usize, ram_mib: u32) -> Header {
        let kernel_offset = HEADER_SIZE.next_multiple_of(ALIGN);
        let initrd_offset = (kernel_offset + kernel).next_multiple_of(ALIGN);
        let cmdline_offset = (initrd_offset + initrd).next_multiple_of(ALIGN);
        let part = |offset: usize, len: usize| Part {
            offset: offset as u64,
            len: len as u64,
        };
        Header {
            ram_mib,
            kernel: part(kernel_offset, kernel),
            initrd: part(initrd_offset, initrd),
            cmdline: part(cmdline_offset, cmdline),
        }
    }

    /// The 64 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        b[RAM_MIB..RAM_MIB + 4].copy_from_slice(&self.ram_mib.to_le_bytes());
        for (at, part) in [
            (KERNEL, self.kernel),
            (INITRD, self.initrd),
            (CMDLINE, self.cmdline),
        ] {
            b[at..at + 8].copy_from_slice(&part.offset.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&part.len.to_le_bytes());
        }
        b
    }

    /// The header at the start of `module`: `None` without [`MAGIC`] or
    /// if `module` is shorter than [`HEADER_SIZE`]. The parts are not
    /// checked against the module here ([`Part::of`] does).
    pub fn parse(module: &[u8]) -> Option<Header> {
        if !module.starts_with(&MAGIC) || module.len() < HEADER_SIZE {
            return None;
        }
        let part = |at: usize| -> Option<Part> {
            Some(Part {
                offset: u64::from_le_bytes(field(module, at)?),
                len: u64::from_le_bytes(field(module, at.checked_add(8)?)?),
            })
        };
        Some(Header {
            ram_mib: u32::from_le_bytes(field(module, RAM_MIB)?),
            kernel: part(KERNEL)?,
            initrd: part(INITRD)?,
            cmdline: part(CMDLINE)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let h = Header::layout(5000, 0, 12, 256);
        assert_eq!(
            h.kernel,
            Part {
                offset: 4096,
                len: 5000
            }
        );
        assert_eq!(
            h.initrd,
            Part {
                offset: 12288,
                len: 0
            }
        );
        assert_eq!(
            h.cmdline,
            Part {
                offset: 12288,
                len: 12
            }
        );
        let b = h.to_bytes();
        assert_eq!(&b[..8], b"VMMCLNX1");
        assert_eq!(b[8..12], 64u32.to_le_bytes());
        assert_eq!(b[12..16], 256u32.to_le_bytes());
        assert_eq!(b[16..24], 4096u64.to_le_bytes());
        assert_eq!(b[56..64], 12u64.to_le_bytes());
        assert_eq!(Header::parse(&b), Some(h));
    }

    #[test]
    fn parse_refuses_what_is_not_a_header() {
        let b = Header::layout(1, 1, 1, 64).to_bytes();
        assert_eq!(Header::parse(&b[..63]), None);
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(Header::parse(&bad), None);
    }

    #[test]
    fn parts_are_checked_against_the_module() {
        let module = [7u8; 100];
        assert_eq!(
            Part {
                offset: 90,
                len: 10
            }
            .of(&module),
            Some(&module[90..])
        );
        assert_eq!(
            Part {
                offset: 90,
                len: 11
            }
            .of(&module),
            None
        );
        assert_eq!(
            Part {
                offset: u64::MAX,
                len: 2
            }
            .of(&module),
            None
        );
        assert_eq!(
            Part {
                offset: 1,
                len: u64::MAX
            }
            .of(&module),
            None
        );
    }
}
