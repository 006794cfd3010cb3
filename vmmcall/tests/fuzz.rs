//! Fuzz targets (property tests against reference models) for the parts of
//! `vmmcall` a hostile guest reaches: the name reader, argument
//! marshalling, dispatch, and the guest page walk.
//!
//! Each target compares the real code with a small, obviously-correct
//! model written from docs/ABI.md and the paging rules (here, and in
//! `model/`, shared with `paging.rs`), on random inputs: "no panic" is
//! necessary but not sufficient. The models use none of the crate's logic:
//! errno values are spelled out, the canonical check and the page walker
//! are their own. The number of cases
//! is `PROPTEST_CASES` (proptest's default, 256, per target when unset);
//! `cargo xtask test` runs the default pass, `cargo xtask fuzz` runs the
//! same targets in release mode with many more cases and random seeds.

mod model;

use model::{EFAULT, EINVAL, ENOSPC, ENOSYS, EOVERFLOW, EPERM, EPROTO, ERANGE, FIRST_ERROR, PAGE};
use proptest::prelude::*;
use std::collections::BTreeMap;
use vmmcall::mock::MockVcpu;
use vmmcall::paging::{
    read_linear, translate, write_linear, Access, GuestPhysMemory, PagingMode, CR0_PG, CR0_WP,
    CR4_LA57, CR4_PAE, EFER_LMA, EFER_NXE,
};
use vmmcall::{
    dispatch, read_cstr, vmmcall, CStrError, Caller, Error, FromReg, GuestAddr, IntoRet, MemError,
    Registry,
};

// ------------------------------------------------------------ memory layout

/// A random layout of mock guest memory: a run of consecutive pages, each
/// absent, supervisor or user, writable or not, with random bytes.
#[derive(Debug, Clone)]
struct Layout {
    base: u64,
    pages: Vec<Option<(bool, bool, Vec<u8>)>>,
}

impl Layout {
    fn vcpu(&self, cpl: u8) -> MockVcpu {
        let mut v = MockVcpu::new();
        v.cpl = cpl;
        for (i, p) in self.pages.iter().enumerate() {
            let at = self.base.wrapping_add(i as u64 * PAGE);
            if let Some((user, writable, bytes)) = p {
                v.map(at, *user, *writable);
                v.poke(at, bytes);
            }
        }
        v
    }

    /// The page at `a`, if mapped: (user, writable, bytes).
    fn page(&self, a: u64) -> Option<&(bool, bool, Vec<u8>)> {
        let i = a.wrapping_sub(self.base) / PAGE;
        self.pages.get(usize::try_from(i).ok()?)?.as_ref()
    }

    /// The byte at `a` if a caller at `cpl` may read (or write) it.
    fn byte(&self, a: u64, cpl: u8, write: bool) -> Option<u8> {
        if !model::canonical(a) {
            return None;
        }
        let (user, writable, bytes) = self.page(a)?;
        if (cpl == 3 && !user) || (write && !writable) {
            return None;
        }
        bytes.get((a % PAGE) as usize).copied()
    }

    fn range_ok(&self, a: u64, len: u64, cpl: u8, write: bool) -> bool {
        if len == 0 {
            return true;
        }
        if a.checked_add(len - 1).is_none() {
            return false;
        }
        (0..len).all(|i| self.byte(a + i, cpl, write).is_some())
    }
}

/// Bases where the interesting boundaries are: ordinary memory, the end of
/// the canonical lower half, the start of the upper half, the top of the
/// address space (ranges wrap).
fn base() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0x10_0000u64),
        Just(0x0000_8000_0000_0000u64 - 2 * PAGE),
        Just(0xffff_8000_0000_0000u64 - 2 * PAGE),
        Just(0u64.wrapping_sub(4 * PAGE)),
        (0u64..1 << 36).prop_map(|p| p * PAGE),
    ]
}

/// `len` bytes from `seed` (xorshift64*), so that a 4 KiB page costs one
/// random number to generate and shrink.
fn bytes_from(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// One page: `nul_every` makes NUL bytes rare or frequent.
fn page(nul_every: u8) -> impl Strategy<Value = Option<(bool, bool, Vec<u8>)>> {
    let bytes = any::<u64>().prop_map(move |seed| {
        let mut v = bytes_from(seed, PAGE as usize);
        for b in v.iter_mut() {
            if nul_every > 0 && *b % nul_every == 0 {
                *b = 0;
            } else if *b == 0 {
                *b = b'a';
            }
        }
        v
    });
    prop_oneof![
        1 => Just(None),
        4 => (any::<bool>(), any::<bool>(), bytes).prop_map(Some),
    ]
}

fn layout() -> impl Strategy<Value = Layout> {
    (base(), prop::sample::select(vec![0u8, 2, 7, 251]))
        .prop_flat_map(|(base, nul)| (Just(base), prop::collection::vec(page(nul), 1..5)))
        .prop_map(|(base, pages)| Layout { base, pages })
}

/// An address in or near the layout, or anywhere.
fn addr_near(l: &Layout) -> impl Strategy<Value = u64> {
    let base = l.base;
    let span = l.pages.len() as u64 * PAGE;
    prop_oneof![
        4 => (0..span + 64).prop_map(move |o| base.wrapping_add(o).wrapping_sub(32)),
        2 => (1u64..=300, 0..l.pages.len() as u64 + 1)
            .prop_map(move |(back, p)| base.wrapping_add(p * PAGE).wrapping_sub(back)),
        1 => any::<u64>(),
    ]
}

// --------------------------------------------------------------- name reader

/// The name reader, byte by byte: the bytes before the first NUL within
/// `cap`, a fault at the first unreadable byte before it, or Unterminated.
fn cstr_model(l: &Layout, addr: u64, cap: usize, cpl: u8) -> Result<Vec<u8>, bool> {
    let mut out = Vec::new();
    for k in 0..cap as u64 {
        let Some(a) = addr.checked_add(k) else {
            return Err(true);
        };
        match l.byte(a, cpl, false) {
            None => return Err(true),
            Some(0) => return Ok(out),
            Some(b) => out.push(b),
        }
    }
    Err(false)
}

proptest! {
    #[test]
    fn name_reader_matches_the_model(
        (l, addr) in layout().prop_flat_map(|l| { let a = addr_near(&l); (Just(l), a) }),
        cap in prop_oneof![Just(256usize), 0usize..300, Just(4097usize)],
        cpl in prop::sample::select(vec![0u8, 3]),
    ) {
        let mut vcpu = l.vcpu(cpl);
        let mut buf = vec![0xeeu8; cap];
        let got = read_cstr(&mut vcpu, GuestAddr(addr), &mut buf).map(<[u8]>::to_vec);
        let want = cstr_model(&l, addr, cap, cpl);
        match (&got, &want) {
            (Ok(g), Ok(w)) => prop_assert_eq!(g, w),
            (Err(CStrError::Fault(_)), Err(true)) | (Err(CStrError::Unterminated), Err(false)) => {}
            _ => prop_assert!(false, "read_cstr {:?}, model {:?}", got, want),
        }
        // Page by page: never more reads than pages up to the end.
        let bytes = match &want { Ok(n) => n.len() as u64 + 1, Err(_) => cap as u64 };
        let pages = (addr % PAGE + bytes).div_ceil(PAGE).max(1);
        prop_assert!(vcpu.reads as u64 <= pages, "{} reads for {} pages", vcpu.reads, pages);
        // And each byte once.
        prop_assert_eq!(vcpu.byte_read_twice(), None, "{:x?}", vcpu.read_log());
    }
}

// --------------------------------------------------------------- marshalling

fn reg() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..600,
        prop::sample::select(vec![
            0x7fu64, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x1_0000
        ]),
        (0u32..64).prop_map(|b| 1u64 << b),
        (0u32..64).prop_map(|b| (1u64 << b).wrapping_sub(1)),
        (0u32..64).prop_map(|b| (1u64 << b).wrapping_neg()),
        (0u32..64).prop_map(|b| ((1u64 << b).wrapping_neg()).wrapping_sub(1)),
    ]
}

/// `raw` read as the parameter type of `bits` bits (signed or not), by
/// the table of docs/ABI.md, in i128 arithmetic.
fn fits(raw: u64, bits: u32, signed: bool) -> Option<i128> {
    let v = if signed {
        i128::from(raw as i64)
    } else {
        i128::from(raw)
    };
    let (min, max) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    (min..=max).contains(&v).then_some(v)
}

fn check_from<T: FromReg + Into<i128> + PartialEq + std::fmt::Debug>(
    raw: u64,
    bits: u32,
    signed: bool,
) -> Result<(), TestCaseError> {
    let got = T::from_reg(raw).map(Into::into);
    let want = fits(raw, bits, signed).ok_or(Error::Invalid);
    prop_assert_eq!(
        got,
        want,
        "{} as a {}-bit {}",
        raw,
        bits,
        if signed { "signed" } else { "unsigned" }
    );
    Ok(())
}

proptest! {
    #[test]
    fn from_reg_matches_the_abi_table(raw in reg()) {
        check_from::<u8>(raw, 8, false)?;
        check_from::<u16>(raw, 16, false)?;
        check_from::<u32>(raw, 32, false)?;
        check_from::<u64>(raw, 64, false)?;
        check_from::<i8>(raw, 8, true)?;
        check_from::<i16>(raw, 16, true)?;
        check_from::<i32>(raw, 32, true)?;
        check_from::<i64>(raw, 64, true)?;
        prop_assert_eq!(usize::from_reg(raw), Ok(raw as usize));
        prop_assert_eq!(isize::from_reg(raw), Ok(raw as i64 as isize));
        prop_assert_eq!(bool::from_reg(raw), match raw { 0 => Ok(false), 1 => Ok(true), _ => Err(Error::Invalid) });
        prop_assert_eq!(GuestAddr::from_reg(raw), Ok(GuestAddr(raw)));
    }

    #[test]
    fn into_ret_never_aliases_an_error(v in reg()) {
        let error_range = v >= (-4095i64) as u64;
        let want = if error_range { Err(Error::Overflow) } else { Ok(v) };
        prop_assert_eq!(v.into_ret(), want);
        prop_assert_eq!((v as usize).into_ret(), want);
        prop_assert_eq!((v as u8).into_ret(), Ok(v & 0xff));
        prop_assert_eq!((v as u16).into_ret(), Ok(v & 0xffff));
        prop_assert_eq!((v as u32).into_ret(), Ok(v & 0xffff_ffff));
        prop_assert_eq!((v & 1 == 1).into_ret(), Ok(v & 1));
        prop_assert_eq!(().into_ret(), Ok(0));
        prop_assert_eq!(Ok::<u64, Error>(v).into_ret(), want);
        prop_assert_eq!(Err::<u8, Error>(Error::Busy).into_ret(), Err(Error::Busy));
        // Whatever a handler returns, the guest never reads a result as an
        // error it was not.
        for r in [(v as u32).into_ret(), (v as u16).into_ret(), (v as u8).into_ret()] {
            let raw = r.unwrap_or_else(Error::to_rax);
            prop_assert!(raw < (-4095i64) as u64);
        }
    }
}

// ------------------------------------------------------------------ dispatch

#[vmmcall("z_u8", user)]
fn z_u8(a: u8) -> u8 {
    a
}

#[vmmcall("z_mix", user)]
fn z_mix(a: u8, b: i16, c: bool, d: u32, e: i8) -> u64 {
    u64::from(a)
        ^ (u64::from(b as u16) << 8)
        ^ (u64::from(c) << 24)
        ^ (u64::from(e as u8) << 25)
        ^ (u64::from(d) << 31)
}

#[vmmcall("z_kernel")]
fn z_kernel(x: u64) -> u64 {
    x
}

#[vmmcall("z_sum", user)]
fn z_sum(cx: &mut Caller, addr: GuestAddr, len: u16) -> Result<u64, Error> {
    let mut buf = vec![0u8; usize::from(len)];
    cx.read(addr, &mut buf)?;
    Ok(buf.iter().map(|&b| u64::from(b)).sum())
}

#[vmmcall("z_fill", user)]
fn z_fill(cx: &mut Caller, dst: GuestAddr, len: u16, byte: u8) -> Result<u64, Error> {
    if len > 4096 {
        return Err(Error::Range);
    }
    cx.write(dst, &vec![byte; usize::from(len)])?;
    Ok(u64::from(len))
}

#[vmmcall("z_name", user)]
fn z_name(cx: &mut Caller, addr: GuestAddr) -> Result<u64, Error> {
    let mut buf = [0u8; 256];
    Ok(cx.read_name(addr, &mut buf)?.len() as u64)
}

#[vmmcall("z_stop")]
fn z_stop(cx: &mut Caller, status: u32) {
    cx.request_stop(status);
}

vmmcall::interface! {
    /// Typed handlers (typed stubs on the guest side) that read and write
    /// guest buffers the read-once ways: a forward reader, a typed
    /// descriptor, two buffers written as one.
    pub mod blk {
        /// The sum of the bytes, read forward 64 bytes at a time.
        #[user]
        fn y_sum(data: &[u8]) -> u64;
        /// The descriptor `{ u32 offset; u16 len; u16 flags; }` at the
        /// start of `d`: offset + len; -EINVAL if flags != 0.
        #[user]
        fn y_desc(d: &[u8]) -> u64;
        /// "four" to `a` and "tw" to `b`, as one write; returns 6.
        #[user]
        fn y_pair(a: &mut [u8], b: &mut [u8]) -> u64;
    }
}

/// `blk`'s descriptor.
struct Desc {
    offset: u32,
    len: u16,
}

impl vmmcall::FromGuestBytes for Desc {
    type Bytes = [u8; 8];
    fn from_guest_bytes(b: [u8; 8]) -> Result<Self, Error> {
        let [o0, o1, o2, o3, l0, l1, f0, f1] = b;
        if u16::from_le_bytes([f0, f1]) != 0 {
            return Err(Error::Invalid);
        }
        Ok(Desc {
            offset: u32::from_le_bytes([o0, o1, o2, o3]),
            len: u16::from_le_bytes([l0, l1]),
        })
    }
}

struct Blk;

#[vmmcall::vmmcall]
impl blk::Handlers for Blk {
    fn y_sum(cx: &mut Caller<'_>, data: vmmcall::GuestBuf) -> Result<u64, Error> {
        let mut r = data.reader();
        let mut chunk = [0u8; 64];
        let mut sum = 0u64;
        loop {
            let part = r.read(cx, &mut chunk)?;
            if part.is_empty() {
                return Ok(sum);
            }
            sum += part.iter().map(|&b| u64::from(b)).sum::<u64>();
        }
    }

    fn y_desc(cx: &mut Caller<'_>, d: vmmcall::GuestBuf) -> Result<u64, Error> {
        let desc: Desc = d.read_obj(cx)?;
        Ok(u64::from(desc.offset) + u64::from(desc.len))
    }

    fn y_pair(
        cx: &mut Caller<'_>,
        a: vmmcall::GuestBufMut,
        b: vmmcall::GuestBufMut,
    ) -> Result<u64, Error> {
        let at_a = a.at(cx, 0, 4)?;
        let at_b = b.at(cx, 0, 2)?;
        cx.write_all(&[(at_a, &b"four"[..]), (at_b, &b"tw"[..])])?;
        Ok(6)
    }
}

/// The handlers above in name order: number = index + 1.
const NAMES: [&str; 10] = [
    "y_desc", "y_pair", "y_sum", "z_fill", "z_kernel", "z_mix", "z_name", "z_stop", "z_sum", "z_u8",
];

/// The number of `name`.
fn number_of(name: &str) -> u64 {
    NAMES
        .iter()
        .position(|&n| n == name)
        .map_or(0, |i| i as u64 + 1)
}

/// The handlers declared in an interface (with a signature digest).
fn typed(name: &str) -> bool {
    name.starts_with("y_")
}

/// docs/ABI.md, "Buffers" and `-EFAULT`: a buffer of `len` bytes at `a`
/// whose range wraps past 2^64.
fn wraps(a: u64, len: u64) -> bool {
    len > 0 && a.checked_add(len - 1).is_none()
}

fn registry() -> &'static Registry<'static> {
    Registry::global().expect("the test's handlers form a registry")
}

/// The handlers above without `user`.
fn kernel_only(name: &str) -> bool {
    matches!(name, "z_kernel" | "z_stop")
}

/// `vmmcall_lookup_typed` (docs/ABI.md), `1 << 40 | 1`, written out here.
const LOOKUP_TYPED: u64 = (1 << 40) | 1;

/// `vmmcall_describe` (docs/ABI.md), `1 << 40`, written out here.
const DESCRIBE: u64 = 1 << 40;

/// What `vmmcall_describe` answers (docs/ABI.md, "Function `1 << 40`"),
/// and the bytes it writes: (address, bytes).
fn describe_model(l: &Layout, cpl: u8, a: [u64; 5]) -> (u64, Option<(u64, Vec<u8>)>) {
    let [n, buf, len, _, _] = a;
    if n == 0 {
        return (NAMES.len() as u64, None);
    }
    let Some(name) = usize::try_from(n - 1).ok().and_then(|i| NAMES.get(i)) else {
        return (ENOSYS, None);
    };
    if cpl != 0 && kernel_only(name) {
        return (EPERM, None);
    }
    let value = name.len() as u64
        | if kernel_only(name) { 0 } else { 0x1_0000 }
        | if typed(name) { 0x2_0000 } else { 0 };
    if len == 0 {
        return (value, None);
    }
    if len <= name.len() as u64 {
        return (ENOSPC, None);
    }
    if !l.range_ok(buf, name.len() as u64 + 1, cpl, true) {
        return (EFAULT, None);
    }
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    (value, Some((buf, bytes)))
}

/// What RAX must be, and the stop a handler must have asked for, by
/// docs/ABI.md and the handlers' documented behaviour.
fn dispatch_model(l: &Layout, cpl: u8, n: u64, a: [u64; 5]) -> (u64, Option<u32>) {
    if n == DESCRIBE {
        return (describe_model(l, cpl, a).0, None);
    }
    if n == LOOKUP_TYPED {
        // Every handler here is a plain #[vmmcall] one, declared without a
        // signature: a name that exists is -EPROTO whatever RCX holds,
        // except a kernel-only one asked for from CPL > 0, which answers its
        // number as function 0 does; an unknown or unreadable name is 0.
        return match cstr_model(l, a[0], 256, cpl) {
            Ok(name) => match NAMES.iter().position(|x| x.as_bytes() == name) {
                Some(i) if cpl != 0 && kernel_only(NAMES[i]) => (i as u64 + 1, None),
                Some(_) => (EPROTO, None),
                None => (0, None),
            },
            Err(_) => (0, None),
        };
    }
    if n == 0 {
        return match cstr_model(l, a[0], 256, cpl) {
            Ok(name) => (
                NAMES
                    .iter()
                    .position(|x| x.as_bytes() == name)
                    .map_or(0, |i| i as u64 + 1),
                None,
            ),
            Err(_) => (0, None),
        };
    }
    let Some(name) = usize::try_from(n - 1).ok().and_then(|i| NAMES.get(i)) else {
        return (ENOSYS, None);
    };
    let user = !kernel_only(name);
    if cpl != 0 && !user {
        return (EPERM, None);
    }
    let inval = (EINVAL, None);
    let u = |v: u64, bits| fits(v, bits, false).is_some();
    let s = |v: u64, bits| fits(v, bits, true).is_some();
    match *name {
        "z_u8" => {
            if u(a[0], 8) {
                (a[0], None)
            } else {
                inval
            }
        }
        "z_mix" => {
            if !(u(a[0], 8) && s(a[1], 16) && a[2] <= 1 && u(a[3], 32) && s(a[4], 8)) {
                return inval;
            }
            (
                a[0] ^ ((a[1] & 0xffff) << 8) ^ (a[2] << 24) ^ ((a[4] & 0xff) << 25) ^ (a[3] << 31),
                None,
            )
        }
        "z_kernel" => (if a[0] >= FIRST_ERROR { EOVERFLOW } else { a[0] }, None),
        "z_sum" => {
            if !u(a[1], 16) {
                return inval;
            }
            if !l.range_ok(a[0], a[1], cpl, false) {
                return (EFAULT, None);
            }
            (
                (0..a[1])
                    .map(|i| u64::from(l.byte(a[0] + i, cpl, false).unwrap_or(0)))
                    .sum(),
                None,
            )
        }
        "z_fill" => {
            if !u(a[1], 16) || !u(a[2], 8) {
                return inval;
            }
            if a[1] > 4096 {
                return (ERANGE, None);
            }
            if !l.range_ok(a[0], a[1], cpl, true) {
                return (EFAULT, None);
            }
            (a[1], None)
        }
        "z_name" => match cstr_model(l, a[0], 256, cpl) {
            Ok(name) => (name.len() as u64, None),
            Err(true) => (EFAULT, None),
            Err(false) => inval,
        },
        "y_sum" => {
            if wraps(a[0], a[1]) || !l.range_ok(a[0], a[1], cpl, false) {
                return (EFAULT, None);
            }
            (
                (0..a[1])
                    .map(|i| u64::from(l.byte(a[0] + i, cpl, false).unwrap_or(0)))
                    .sum(),
                None,
            )
        }
        "y_desc" => {
            if a[1] < 8 {
                return (ENOSPC, None);
            }
            if wraps(a[0], a[1]) || !l.range_ok(a[0], 8, cpl, false) {
                return (EFAULT, None);
            }
            let b = |i: u64| u64::from(l.byte(a[0] + i, cpl, false).unwrap_or(0));
            if b(6) | b(7) != 0 {
                return inval;
            }
            let offset = b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24;
            (offset + (b(4) | b(5) << 8), None)
        }
        "y_pair" => (pair_model(l, cpl, a).0, None),
        "z_stop" => {
            if u(a[0], 32) {
                (0, Some(a[0] as u32))
            } else {
                inval
            }
        }
        _ => unreachable!("every name is handled"),
    }
}

/// What `y_pair` answers and writes: (RAX, the writes in order).
fn pair_model(l: &Layout, cpl: u8, a: [u64; 5]) -> (u64, Vec<(u64, Vec<u8>)>) {
    for (addr, len, need) in [(a[0], a[1], 4), (a[2], a[3], 2)] {
        if len < need {
            return (ENOSPC, vec![]);
        }
        if wraps(addr, len) {
            return (EFAULT, vec![]);
        }
    }
    if !l.range_ok(a[0], 4, cpl, true) || !l.range_ok(a[2], 2, cpl, true) {
        return (EFAULT, vec![]);
    }
    (6, vec![(a[0], b"four".to_vec()), (a[2], b"tw".to_vec())])
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        1u64..=NAMES.len() as u64,
        1u64..=NAMES.len() as u64,
        NAMES.len() as u64 + 1..NAMES.len() as u64 + 4,
        Just(LOOKUP_TYPED),
        Just(DESCRIBE),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

proptest! {
    #[test]
    fn dispatch_matches_the_abi(
        (l, addrs) in layout().prop_flat_map(|l| {
            let a = prop::collection::vec(addr_near(&l), 2);
            (Just(l), a)
        }),
        n in number(),
        regs in prop::array::uniform16(reg()),
        cpl in 0u8..4,
        use_addr in any::<bool>(),
    ) {
        let names = registry().iter().map(|(_, h)| h.name()).collect::<Vec<_>>();
        prop_assert_eq!(&names, &NAMES.to_vec(), "this test binary has exactly these handlers");
        // The random number, then every number from 0 to just past the
        // last, with the same registers and memory.
        let vcpu = l.vcpu(cpl);
        let numbers = std::iter::once(n)
            .chain(0..=NAMES.len() as u64 + 1)
            .chain([LOOKUP_TYPED, DESCRIBE]);
        for (i, n) in numbers.enumerate() {
            // Memory is compared byte by byte for the random number, for
            // z_fill (number 1), the only handler that writes, and for
            // vmmcall_describe, which writes a name.
            let check_memory = i == 0 || writes(n);
            one_dispatch(&l, vcpu.clone(), &addrs, n, &regs, use_addr, check_memory)?;
        }
    }
}

/// The functions that write guest memory (their memory is compared).
fn writes(n: u64) -> bool {
    n == DESCRIBE || n == number_of("z_fill") || n == number_of("y_pair")
}

fn one_dispatch(
    l: &Layout,
    mut vcpu: MockVcpu,
    addrs: &[u64],
    n: u64,
    regs: &[u64; 16],
    use_addr: bool,
    check_memory: bool,
) -> Result<(), TestCaseError> {
    let cpl = vcpu.cpl;
    let g = &mut vcpu.regs;
    [g.rax, g.rcx, g.rdx, g.rbx, g.rsp, g.rbp, g.rsi, g.rdi] = [
        n, regs[1], regs[2], regs[3], regs[4], regs[5], regs[6], regs[7],
    ];
    [g.r8, g.r9, g.r10, g.r11, g.r12, g.r13, g.r14, g.r15] = [
        regs[8], regs[9], regs[10], regs[11], regs[12], regs[13], regs[14], regs[15],
    ];
    if use_addr {
        g.rbx = addrs[0];
    }
    if use_addr && n == number_of("y_pair") {
        // Both buffers in or near the layout, lengths around 2 and 4.
        g.rcx %= 8;
        g.rdx = addrs[1];
        g.rsi %= 8;
    }
    if n == DESCRIBE && use_addr {
        // Mostly a handler's number (0 to one past the last), a buffer in
        // or near the layout, lengths around the names' (3..=8 bytes).
        g.rbx %= NAMES.len() as u64 + 2;
        g.rcx = addrs[1];
        g.rdx %= 12;
    }
    // A name in the layout, sometimes: copy a real one where RBX points.
    let name = NAMES[(regs[0] % NAMES.len() as u64) as usize];
    let looks_up = n == 0 || n == LOOKUP_TYPED;
    if looks_up && regs[0].is_multiple_of(3) && l.range_ok(g.rbx, name.len() as u64 + 1, 0, false) {
        let rbx = g.rbx;
        vcpu.poke(rbx, name.as_bytes())
            .poke(rbx + name.len() as u64, &[0]);
    }
    // The model reads the layout as the vCPU holds it now.
    let mut now = l.clone();
    if looks_up {
        for (i, p) in now.pages.iter_mut().enumerate() {
            if let Some((_, _, bytes)) = p {
                *bytes = vcpu.peek(l.base.wrapping_add(i as u64 * PAGE), PAGE as usize);
            }
        }
    }
    let before = vcpu.regs;
    let args = before.args();
    let (want, stop) = dispatch_model(&now, cpl, n, args);
    let out = dispatch(registry(), &mut vcpu);
    // docs/ABI.md, "What read once means for guest memory": no guest byte
    // fetched twice within the call (the mock records every read).
    prop_assert_eq!(
        vcpu.byte_read_twice(),
        None,
        "function {:#x} read a guest byte twice: {:x?}",
        n,
        vcpu.read_log()
    );
    prop_assert_eq!(
        vcpu.regs.rax,
        want,
        "function {:#x} args {:x?} at CPL {}",
        n,
        args,
        cpl
    );
    prop_assert_eq!(out.number, n);
    prop_assert_eq!(out.stop, stop);
    // The outcome the VMM sees says the same as RAX.
    prop_assert_eq!(out.result.is_err(), want >= FIRST_ERROR);
    if let Ok(v) = out.result {
        prop_assert_eq!(v, want);
    }
    prop_assert_eq!(
        vcpu.regs,
        vmmcall::GuestRegs {
            rax: want,
            ..before
        },
        "only RAX changes"
    );
    // Memory: only a successful z_fill writes, exactly its range, and a
    // successful vmmcall_describe with RDX != 0, the name and a NUL.
    let filled: Vec<(u64, Vec<u8>)> = if n == DESCRIBE {
        describe_model(&now, cpl, args).1.into_iter().collect()
    } else if n == number_of("y_pair") {
        pair_model(&now, cpl, args).1
    } else if n == number_of("z_fill") && want < FIRST_ERROR {
        vec![(args[0], vec![args[2] as u8; args[1] as usize])]
    } else {
        vec![]
    };
    for (i, p) in now.pages.iter().enumerate().filter(|_| check_memory) {
        let Some((_, _, bytes)) = p else { continue };
        let at = l.base.wrapping_add(i as u64 * PAGE);
        let after = vcpu.peek(at, PAGE as usize);
        for (k, (&b0, &b1)) in bytes.iter().zip(&after).enumerate() {
            let a = at.wrapping_add(k as u64);
            // The last write that covers the byte wins.
            let expect = filled
                .iter()
                .rev()
                .find_map(|(d, bytes)| bytes.get(usize::try_from(a.wrapping_sub(*d)).ok()?))
                .copied()
                .unwrap_or(b0);
            prop_assert_eq!(b1, expect, "byte at {:#x}", a);
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- page walk

/// 24 pages of guest RAM (anything above is outside RAM); the walker must
/// ask for one page at a time.
struct Ram {
    bytes: Vec<u8>,
}

impl GuestPhysMemory for Ram {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let start = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(start..end))
            .ok_or(MemError::OutsideRam { gpa })?;
        assert_eq!(
            gpa / PAGE,
            (gpa + buf.len() as u64 - 1) / PAGE,
            "one page per call"
        );
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let start = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        let dst = start
            .checked_add(data.len())
            .and_then(|end| self.bytes.get_mut(start..end))
            .ok_or(MemError::OutsideRam { gpa })?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

const RAM_PAGES: u64 = 24;

/// Random paging structures: entries mostly pointing at pages of RAM (a
/// few just past it), with random flags and, sometimes, reserved bits.
fn ram() -> impl Strategy<Value = Vec<u8>> {
    any::<u64>().prop_map(|seed| {
        // Four table pages of entries, repeated over RAM.
        let r = bytes_from(seed, 4 * PAGE as usize * 2);
        let word = |i: usize| {
            let i = i % (r.len() / 8);
            u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap())
        };
        let mut bytes = vec![0u8; (RAM_PAGES * PAGE) as usize];
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let (a, noise) = (word(2 * i), word(2 * i + 1));
            let (page, flags, kind) = (a % (RAM_PAGES + 2), (a >> 8) & 0xfff, (a >> 24) % 16);
            {
                let mut e = page << 12 | flags | 1;
                match kind {
                    0 => e &= !1,
                    1 => e |= noise & 0xfff0_0000_0000_0000,
                    2 => e |= noise & 0x000f_f000_0000_0000,
                    3 => e |= 1 << 63,
                    4 => e = noise,
                    _ => {}
                }
                chunk.copy_from_slice(&e.to_le_bytes());
            }
        }
        bytes
    })
}

/// The reference walk (`model::walk`): the guest-physical address only.
fn walk_model(
    mode: &PagingMode,
    ram: &[u8],
    la: u64,
    write: bool,
    user: bool,
) -> Result<u64, MemError> {
    model::walk(mode, ram, la, write, user).map(|w| w.gpa)
}

fn la() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..1 << 30),
        any::<u64>().prop_map(|v| v & 0x0000_7fff_ffff_ffff),
        any::<u64>().prop_map(|v| v | 0xffff_8000_0000_0000),
        (0u64..0x4000).prop_map(|v| 0x0000_8000_0000_0000u64
            .wrapping_sub(0x2000)
            .wrapping_add(v)),
        (0u64..0x3000).prop_map(|v| u64::MAX - v),
        any::<u64>(),
    ]
}

proptest! {
    #[test]
    fn page_walk_matches_the_model(
        bytes in ram(),
        cr3 in 0u64..RAM_PAGES + 1,
        cr3_noise in any::<u16>(),
        flags in any::<[bool; 6]>(),
        maxphy in prop_oneof![Just(52u8), 12u8..60],
        la in la(),
        len in prop_oneof![0usize..64, 0usize..9000],
        user in any::<bool>(),
    ) {
        let bit = |i: usize, v: u64| if flags[i] { v } else { 0 };
        let mode = PagingMode::new(
            // Mostly 4-level paging; sometimes off, PAE-only or 5-level.
            (CR0_PG * u64::from(flags[0] || flags[1])) | bit(2, CR0_WP),
            (cr3 << 12) | u64::from(cr3_noise & 0xfff),
            (CR4_PAE * u64::from(flags[1] || flags[3])) | if flags[3] && flags[4] && flags[5] { CR4_LA57 } else { 0 },
            (EFER_LMA * u64::from(flags[1] || flags[4])) | bit(5, EFER_NXE),
        )
        .with_maxphyaddr(maxphy);
        let mut ram = Ram { bytes };
        for write in [false, true] {
            let got = translate(&mode, &ram, la, Access { write, user });
            prop_assert_eq!(got, walk_model(&mode, &ram.bytes, la, write, user), "write {}", write);
        }
        // read_linear: the bytes at the translated addresses, or the
        // error of the first byte that cannot be read.
        let mut buf = vec![0u8; len];
        let r = read_linear(&mode, &ram, la, &mut buf, user);
        match model::read(&mode, &ram.bytes, la, len, user) {
            Ok(want) => {
                prop_assert_eq!(r, Ok(()));
                prop_assert!(buf == want, "read_linear read other bytes");
            }
            Err(e) => prop_assert_eq!(r, Err(e)),
        }
        // write_linear: check first, then write. A failure writes nothing;
        // a success writes the data at the addresses the walks gave before
        // the write, even where the data overwrites the tables themselves.
        let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5a).collect();
        let (want_ram, want) = model::write(&mode, &ram.bytes, la, &data, user);
        let w = write_linear(&mode, &mut ram, la, &data, user);
        prop_assert_eq!(w, want);
        prop_assert!(ram.bytes == want_ram, "write_linear changed other bytes than the model ({:?})", w);
    }
}

/// Found by `page_walk_matches_the_model` (and the paging tests' random
/// tables, about one run in a hundred): a write whose first page is the
/// guest's own page table, overwriting the entry of its second page. The
/// second piece must still go where the check before the write said, not
/// fail half-way after the first piece was written.
#[test]
fn a_write_over_its_own_page_table_goes_where_it_was_checked() {
    let mut ram = Ram {
        bytes: vec![0u8; (RAM_PAGES * PAGE) as usize],
    };
    let mut set = |gpa: u64, v: u64| {
        ram.bytes[gpa as usize..gpa as usize + 8].copy_from_slice(&v.to_le_bytes())
    };
    // PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000; linear page 0
    // is the PT itself, linear page 1 is guest-physical 0x5000.
    set(0x1000, 0x2000 | 7);
    set(0x2000, 0x3000 | 7);
    set(0x3000, 0x4000 | 7);
    set(0x4000, 0x4000 | 7);
    set(0x4008, 0x5000 | 7);
    let mode = PagingMode::four_level(0x1000, true, true);
    // Zeros over the whole PT (PT[1] becomes not present), then 8 bytes
    // on linear page 1.
    let mut data = vec![0u8; PAGE as usize];
    data.extend_from_slice(b"page one");
    assert_eq!(write_linear(&mode, &mut ram, 0, &data, false), Ok(()));
    assert_eq!(&ram.bytes[0x5000..0x5008], b"page one");
    assert!(ram.bytes[0x4000..0x5000].iter().all(|&b| b == 0));
}

/// The random inputs reach every outcome of the name reader and of
/// dispatch, so the properties above are not satisfied vacuously.
#[test]
fn the_generators_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeMap::new();
    let strat = layout().prop_flat_map(|l| {
        let a = addr_near(&l);
        (Just(l), a)
    });
    for _ in 0..1000 {
        let (l, addr) = strat.new_tree(&mut runner).expect("a value").current();
        for cpl in [0, 3] {
            let k = match cstr_model(&l, addr, 256, cpl) {
                Ok(n) if n.is_empty() => "empty",
                Ok(n) if n.len() == 255 => "255",
                Ok(_) => "name",
                Err(true) => "fault",
                Err(false) => "unterminated",
            };
            *seen.entry(k).or_insert(0) += 1;
        }
    }
    for k in ["empty", "name", "fault", "unterminated"] {
        assert!(seen.get(k).copied().unwrap_or(0) > 10, "{k}: {seen:?}");
    }
}
