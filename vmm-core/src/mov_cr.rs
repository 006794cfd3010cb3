//! Decoding a `MOV` to or from a control register from the guest's
//! instruction bytes, for SVM without decode assists, whose CR-access exit
//! names no general-purpose register (the run loop's virtual CR8).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

/// `MOV` to or from a control register, decoded from its bytes (for SVM
/// without decode assists, which reports no register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovCr {
    /// `MOV CRn, r64` (else `MOV r64, CRn`).
    pub write: bool,
    /// The control register.
    pub cr: u8,
    /// The general-purpose register (x86 encoding, 0 = RAX).
    pub gpr: u8,
    /// Instruction length in bytes.
    pub len: u64,
}

/// Decode `[F0] [REX] 0F 20|22 /r` (Intel SDM Vol. 2B, "MOV—Move to/from
/// Control Registers"; AMD APM Vol. 3: a LOCK prefix selects CR8 outside
/// 64-bit mode). The ModRM `mod` field is ignored, as the CPU does.
pub fn decode_mov_cr(bytes: &[u8]) -> Option<MovCr> {
    let mut at = 0usize;
    let mut lock = false;
    let mut rex = 0u8;
    while let Some(&b) = bytes.get(at) {
        match b {
            0xF0 => lock = true,
            0x40..=0x4F => rex = b,
            // Operand-size and segment prefixes do not change MOV CR.
            0x66 | 0x2E | 0x36 | 0x3E | 0x26 | 0x64 | 0x65 => {}
            _ => break,
        }
        at = at.checked_add(1)?;
        if at > 4 {
            return None;
        }
    }
    if bytes.get(at) != Some(&0x0F) {
        return None;
    }
    let write = match bytes.get(at.checked_add(1)?)? {
        0x20 => false,
        0x22 => true,
        _ => return None,
    };
    let modrm = *bytes.get(at.checked_add(2)?)?;
    let mut cr = ((modrm >> 3) & 7) | if rex & 4 != 0 { 8 } else { 0 };
    if lock {
        cr |= 8;
    }
    let gpr = (modrm & 7) | if rex & 1 != 0 { 8 } else { 0 };
    Some(MovCr {
        write,
        cr,
        gpr,
        len: at.checked_add(3)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mov_cr_decoding() {
        // mov cr8, rax (44 0F 22 C0); mov r9, cr8 (4D 0F 20 C1): REX.R picks
        // CR8, REX.B picks R9.
        assert_eq!(
            decode_mov_cr(&[0x44, 0x0F, 0x22, 0xC0]),
            Some(MovCr {
                write: true,
                cr: 8,
                gpr: 0,
                len: 4
            })
        );
        assert_eq!(
            decode_mov_cr(&[0x4D, 0x0F, 0x20, 0xC1]),
            Some(MovCr {
                write: false,
                cr: 8,
                gpr: 9,
                len: 4
            })
        );
        // AMD's LOCK alias: F0 0F 22 C3 = mov cr8, ebx.
        assert_eq!(
            decode_mov_cr(&[0xF0, 0x0F, 0x22, 0xC3]),
            Some(MovCr {
                write: true,
                cr: 8,
                gpr: 3,
                len: 4
            })
        );
        // mov cr4, rdx (0F 22 E2).
        assert_eq!(
            decode_mov_cr(&[0x0F, 0x22, 0xE2]),
            Some(MovCr {
                write: true,
                cr: 4,
                gpr: 2,
                len: 3
            })
        );
        assert_eq!(decode_mov_cr(&[0x0F, 0x01, 0xD9]), None, "VMMCALL");
        assert_eq!(decode_mov_cr(&[0x66; 8]), None, "prefixes only");
        assert_eq!(decode_mov_cr(&[]), None);
    }
}
