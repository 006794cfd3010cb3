//! The ABI v1 facts the macros need at expansion time, mirrored from
//! `vmmcall::abi` (a proc-macro crate cannot depend on the library it
//! serves). The expansion asserts the library's own `const fn`s on its
//! output (`vmmcall::valid_name`, `vmmcall::abi::signature_digest`), so a
//! drift between the two is a compile error, not a silent disagreement.

/// Longest hypercall name in bytes (ABI v1, `vmmcall::abi::MAX_NAME_LEN`).
pub(crate) const MAX_NAME_LEN: usize = 255;
/// The name of function 0 (`vmmcall::abi::GET_VMMCALL_NUMBER_NAME`).
pub(crate) const RESERVED_NAME: &str = "get_vmmcall_number";
/// Argument registers in ABI order (`vmmcall::abi::ARG_REGISTERS`).
pub(crate) const ARG_REGS: [&str; 5] = ["RBX", "RCX", "RDX", "RSI", "RDI"];

/// The version tag at the start of every canonical signature text
/// (`vmmcall::abi::signature_digest`).
pub(crate) const CANONICAL_PREFIX: &str = "vmmcall-signature-v1";

/// FNV-1a 64 with 0 mapped to 1: `vmmcall::abi::signature_digest`, which
/// the expansion asserts equal at compile time.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if h == 0 {
        1
    } else {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::digest;

    #[test]
    fn digest_is_fnv1a_with_zero_mapped_to_one() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector).
        assert_eq!(digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(digest(b""), 0xcbf2_9ce4_8422_2325);
    }
}
