//! ABI v1: the numbers shared by the VMM and its guests.
//!
//! `docs/ABI.md` is the normative text; this module is its machine-readable
//! half. Guests depend on `vmmcall` with `default-features = false` to get
//! exactly this module (and [`crate::Error`]) without the registry.
//!
//! | register | on entry                         | on return                 |
//! |----------|----------------------------------|---------------------------|
//! | RAX      | function number                  | result or `-errno`        |
//! | RBX      | argument 1                       | unchanged                 |
//! | RCX      | argument 2                       | unchanged                 |
//! | RDX      | argument 3                       | unchanged                 |
//! | RSI      | argument 4                       | unchanged                 |
//! | RDI      | argument 5                       | unchanged                 |

/// The ABI version reported in CPUID leaf `0x4000_0001` EAX.
pub const ABI_VERSION: u32 = 1;

/// Function number 0: `get_vmmcall_number` (BitVisor's name). RBX holds the
/// guest-linear address of a NUL-terminated name; RAX returns its number, or
/// 0 when the name is unknown, unreadable, or not terminated in time.
pub const GET_VMMCALL_NUMBER: u64 = 0;

/// BitVisor's name for function 0. It is reserved: no handler may take it
/// (the `#[vmmcall]` macro rejects it), and looking it up answers 0, which
/// is what it is.
pub const GET_VMMCALL_NUMBER_NAME: &str = "get_vmmcall_number";

/// Function `vmmcall_describe`: the VMM describes its handlers to guests
/// (`docs/ABI.md`, "Function `1 << 40`: `vmmcall_describe`").
///
/// - RBX = 0: RAX = the number of handlers, N (any CPL).
/// - RBX = n in `1..=N`: RAX = the name's length in bits 15:0, and
///   [`DESCRIBE_USER`] if ring 3 may call it, [`DESCRIBE_TYPED`] if it was
///   declared in an interface; with RDX != 0, the name and a
///   NUL are written to the buffer at RCX (RDX bytes long), or the call
///   fails with `-ENOSPC` (RDX too small) or `-EFAULT` and writes nothing.
///   At CPL > 0, a handler that is not `user` answers `-EPERM` and nothing
///   is written: exactly what calling it from there answers.
/// - Any other RBX: `-ENOSYS`, as calling that number would.
///
/// The number, 2^40, is one no handler can have (handler numbers are
/// registry indexes, at most `u32::MAX`) and fits a JSON number exactly.
/// Added in ABI v1 without a version change: a VMM without it answers
/// `-ENOSYS`, which is how a guest tells.
pub const DESCRIBE: u64 = 1 << 40;

/// The name under which docs and tools show [`DESCRIBE`]. It is not looked
/// up: `get_vmmcall_number` answers 0 for it unless a handler has the name.
pub const DESCRIBE_NAME: &str = "vmmcall_describe";

/// Function `vmmcall_lookup_typed`: look a name up together with the
/// signature the caller was built against (`docs/ABI.md`, "Function
/// `1 << 40 | 1`: `vmmcall_lookup_typed`", and "Version skew").
///
/// - RBX: the guest-linear address of a NUL-terminated name, as for
///   [`GET_VMMCALL_NUMBER`]; RCX: the signature digest the caller's
///   interface declaration gives that name ([`signature_digest`]).
/// - RAX: the handler's number when a handler has the name and was declared
///   with exactly that digest; 0 when no handler has the name (or it is
///   unreadable or not terminated within 256 bytes), as function 0 answers;
///   `-EPROTO` ([`crate::Error::Mismatch`]) when a handler has the name but
///   another signature, or none (a plain `#[vmmcall]` handler). Except: a
///   handler that is not `user`, looked up from CPL > 0, answers its number
///   as function 0 would, whatever RCX holds (calling it answers `-EPERM`,
///   and ring 3 learns nothing about its signature).
///
/// Any CPL may look up, as with function 0. A VMM without the function
/// answers `-ENOSYS`, which is how a guest tells.
pub const LOOKUP_TYPED: u64 = DESCRIBE | 1;

/// The name under which docs and tools show [`LOOKUP_TYPED`].
pub const LOOKUP_TYPED_NAME: &str = "vmmcall_lookup_typed";

/// Function `vmmcall_batch`: many calls in one exit (`docs/ABI.md`,
/// "Function `1 << 40 | 2`: `vmmcall_batch`").
///
/// - RBX: the guest-linear address of `count` [`BatchEntry`] descriptors
///   ([`BATCH_ENTRY_SIZE`] bytes each);
/// - RCX: `count`, at most [`BATCH_MAX_ENTRIES`];
/// - RDX: the guest-linear address of `count` `u64` results (the value
///   or `-errno` of each entry), not overlapping the list;
/// - RSI: flags, [`BATCH_STOP_ON_ERROR`] and [`BATCH_PHYSICAL`], or 0.
///
/// RAX returns the number of entries answered (`count`, or fewer with
/// [`BATCH_STOP_ON_ERROR`]), or `-EINVAL`/`-EFAULT`/`-EPERM` for the
/// batch itself.
/// Each entry is answered exactly as if it were called alone; an entry
/// numbered `BATCH` answers `-EINVAL` (no nesting). Any CPL may call it.
/// A VMM without it answers `-ENOSYS`: `count = 0` tells (0 with it).
pub const BATCH: u64 = DESCRIBE | 2;

/// The name under which docs and tools show [`BATCH`].
pub const BATCH_NAME: &str = "vmmcall_batch";

/// [`BATCH`] flag in RSI: stop after the first entry whose result is an
/// error (that entry is the last one answered).
pub const BATCH_STOP_ON_ERROR: u64 = 1;

/// [`BATCH`] flag in RSI: RBX and RDX are guest-physical addresses, not
/// guest-linear ones (as Hyper-V's hypercall buffers are). Only a caller
/// at CPL 0 may set it (`-EPERM` otherwise); the list and the results
/// must then be guest RAM. It spares the VMM the walks of the guest's
/// page tables: the cheapest batch for a kernel that knows where its
/// buffers lie.
pub const BATCH_PHYSICAL: u64 = 2;

/// The most entries one [`BATCH`] call takes.
pub const BATCH_MAX_ENTRIES: u64 = 4096;

/// Bytes per [`BatchEntry`] in guest memory.
pub const BATCH_ENTRY_SIZE: u64 = 48;

/// One entry of a [`BATCH`] list, as it lies in guest memory
/// (little-endian, no alignment required): the function number and its
/// five arguments, what RAX and RBX, RCX, RDX, RSI, RDI would hold.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchEntry {
    /// The function number.
    pub number: u64,
    /// Arguments 1 to 5.
    pub args: [u64; MAX_ARGS],
}

// The guest passes a slice of `BatchEntry` as the list itself.
const _: () = assert!(core::mem::size_of::<BatchEntry>() == BATCH_ENTRY_SIZE as usize);

impl BatchEntry {
    /// An entry calling `number` with `args`.
    pub const fn new(number: u64, args: [u64; MAX_ARGS]) -> Self {
        BatchEntry { number, args }
    }

    /// The entry as the guest stores it.
    pub fn to_bytes(&self) -> [u8; BATCH_ENTRY_SIZE as usize] {
        let mut out = [0u8; BATCH_ENTRY_SIZE as usize];
        let words = core::iter::once(self.number).chain(self.args);
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// The entry from its bytes in guest memory.
    pub fn from_bytes(bytes: &[u8; BATCH_ENTRY_SIZE as usize]) -> Self {
        let mut words = [0u64; 1 + MAX_ARGS];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        let [number, a1, a2, a3, a4, a5] = words;
        BatchEntry {
            number,
            args: [a1, a2, a3, a4, a5],
        }
    }
}

/// The signature digest of a declared hypercall: FNV-1a (64-bit) over the
/// canonical text of its signature (`docs/ABI.md`, "Version skew"),
///
/// ```text
/// vmmcall-signature-v1 NAME(KIND,KIND,...)->RET user|kernel
/// ```
///
/// where each KIND is `u8`, `u16`, `u32`, `u64`, `i8`, `i16`, `i32`,
/// `i64`, `bool`, `in` (a buffer the VMM reads: address and length) or
/// `out` (a buffer the VMM writes), and RET is `()`, `bool`, `u8`, `u16`,
/// `u32` or `u64`. Parameter names are not part of it: renaming one does
/// not change the ABI. A digest is never 0 (0 would be mapped to 1), so 0
/// can mean "no signature".
///
/// The `interface!` macro computes the same value at compile time; this
/// `const fn` is the reference both are tested against.
pub const fn signature_digest(canonical: &[u8]) -> u64 {
    match fnv1a64(canonical) {
        0 => 1,
        h => h,
    }
}

/// FNV-1a, 64-bit: the hash of signature digests ([`signature_digest`])
/// and of the registry's name table. No key: both hash what the VMM and
/// its guests agree on, not secrets.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut rest = bytes;
    while let [b, tail @ ..] = rest {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        rest = tail;
    }
    h
}

/// One hypercall as an interface declares it (`vmmcall::interface!`
/// gives each interface a `DECLARATIONS` list of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    /// The hypercall's name.
    pub name: &'static str,
    /// Whether any CPL may call it.
    pub user: bool,
    /// The canonical text of its signature ([`signature_digest`]).
    pub canonical: &'static str,
    /// [`signature_digest`] of `canonical`.
    pub signature: u64,
}

/// In a [`DESCRIBE`] result: the mask of the name's length in bytes.
pub const DESCRIBE_NAME_LEN: u64 = 0xFFFF;

/// In a [`DESCRIBE`] result: the handler is declared `user`, so callers
/// at any CPL may call it.
pub const DESCRIBE_USER: u64 = 1 << 16;

/// In a [`DESCRIBE`] result: the handler was declared in an interface
/// (`vmmcall::interface!`), so it has a signature digest and
/// [`LOOKUP_TYPED`] finds it with that digest.
pub const DESCRIBE_TYPED: u64 = 1 << 17;

/// In a [`DESCRIBE`] result: the handler is declared `long`: it works in
/// steps and may return to the guest between them without finishing, RIP
/// left on the instruction so that the guest continues the call by
/// executing it again (`docs/ABI.md`, "Long calls").
pub const DESCRIBE_LONG: u64 = 1 << 18;

/// Longest hypercall name in bytes, not counting the terminating NUL.
pub const MAX_NAME_LEN: usize = 255;

/// Bytes the VMM reads at most when looking a name up: the name plus its NUL.
pub const NAME_BUF_LEN: usize = MAX_NAME_LEN + 1;

/// Number of argument registers (RBX, RCX, RDX, RSI, RDI).
pub const MAX_ARGS: usize = 5;

/// Names of the argument registers in argument order.
pub const ARG_REGISTERS: [&str; MAX_ARGS] = ["rbx", "rcx", "rdx", "rsi", "rdi"];

/// Smallest `u64` in RAX that means an error: `-4095`. Results in
/// `[ERRNO_MIN_RAW, u64::MAX]` are `-errno` values, everything below is a
/// successful result.
pub const ERRNO_MIN_RAW: u64 = (-4095_i64) as u64;

/// Intel `VMCALL` encoding (Intel SDM Vol. 2B, "VMCALL").
pub const VMCALL_BYTES: [u8; 3] = [0x0F, 0x01, 0xC1];

/// AMD `VMMCALL` encoding (AMD APM Vol. 3, "VMMCALL").
pub const VMMCALL_BYTES: [u8; 3] = [0x0F, 0x01, 0xD9];

/// Length in bytes of both hypercall instructions.
pub const HYPERCALL_INSN_LEN: u64 = 3;

/// CPUID leaf with the hypervisor signature: EAX = highest hypervisor leaf,
/// EBX:ECX:EDX = [`CPUID_SIGNATURE`].
pub const CPUID_LEAF_SIGNATURE: u32 = 0x4000_0000;

/// CPUID leaf with the interface: EAX = [`ABI_VERSION`], EBX = [`CPUID_INTERFACE_MAGIC`].
pub const CPUID_LEAF_INTERFACE: u32 = 0x4000_0001;

/// The 12-byte signature in EBX, ECX, EDX of leaf `0x4000_0000`.
pub const CPUID_SIGNATURE: [u8; 12] = *b"vmmcall-rs\0\0";

/// EBX of leaf `0x4000_0001`: `"VMMC"` in little-endian.
pub const CPUID_INTERFACE_MAGIC: u32 = u32::from_le_bytes(*b"VMMC");

/// Split [`CPUID_SIGNATURE`] into the (EBX, ECX, EDX) words CPUID returns.
pub const fn cpuid_signature_words() -> (u32, u32, u32) {
    let s = CPUID_SIGNATURE;
    (
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
    )
}

/// Whether a raw RAX value returned by a hypercall is an error (`-errno`).
#[inline]
pub const fn is_error(rax: u64) -> bool {
    rax >= ERRNO_MIN_RAW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_words_round_trip() {
        let (b, c, d) = cpuid_signature_words();
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&b.to_le_bytes());
        out[4..8].copy_from_slice(&c.to_le_bytes());
        out[8..].copy_from_slice(&d.to_le_bytes());
        assert_eq!(out, CPUID_SIGNATURE);
    }

    #[test]
    fn signature_digests_are_frozen() {
        // docs/ABI.md, "Version skew": the example's digest, computed
        // outside this crate (FNV-1a 64 by hand). A change to the canonical
        // form or the hash changes every guest's digests: this must fail.
        assert_eq!(
            signature_digest(b"vmmcall-signature-v1 hello(u64)->u64 user"),
            0xaf56_04df_0bb6_ec61
        );
        // The published FNV-1a 64 test vectors.
        assert_eq!(signature_digest(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(signature_digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(signature_digest(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn error_range_is_linux_errno_range() {
        assert!(!is_error(0));
        assert!(!is_error(ERRNO_MIN_RAW - 1));
        assert!(is_error(-4095_i64 as u64));
        assert!(is_error(u64::MAX));
        assert!(is_error(-38_i64 as u64));
    }
}
