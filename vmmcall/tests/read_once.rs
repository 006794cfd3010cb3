//! Read once (docs/ABI.md, "What read once means for guest memory"): the
//! detector catches a handler that fetches a guest byte twice, the walker
//! reads each data byte once and each paging entry once per walk, and a
//! handler with several buffers writes them all or none.

use std::cell::RefCell;
use vmmcall::mock::MockVcpu;
use vmmcall::paging::{GuestPhysMemory, PagingMode, CR0_PG, CR4_PAE, EFER_LMA};
use vmmcall::{
    dispatch, vmmcall, Caller, Error, GuestAddr, GuestBuf, GuestVcpu, MemError, Registry,
};
use vmmcall::{GuestRegs, Vcpu};

/// A double fetch, as Xen's XSA-155 had: read a length from the guest,
/// check it, then read the whole record again, length included, and use
/// the second copy's length.
#[vmmcall("reread", user)]
fn reread(cx: &mut Caller, rec: GuestAddr) -> Result<u64, Error> {
    let mut len = [0u8; 1];
    cx.read(rec, &mut len)?;
    if len[0] > 8 {
        return Err(Error::Range);
    }
    let mut again = [0u8; 9];
    cx.read(rec, &mut again)?;
    Ok(u64::from(again[0]))
}

/// The same record, read once: the length checked is the length used.
#[vmmcall("once", user)]
fn once(cx: &mut Caller, rec: GuestAddr) -> Result<u64, Error> {
    let record: [u8; 9] = GuestBuf::new(rec.0, 9).read_obj(cx)?;
    if record[0] > 8 {
        return Err(Error::Range);
    }
    Ok(u64::from(record[0]))
}

/// Two writes, each checked only for itself.
#[vmmcall("two_writes", user)]
fn two_writes(cx: &mut Caller, a: GuestAddr, b: GuestAddr) -> Result<u64, Error> {
    cx.write(a, b"first")?;
    cx.write(b, b"second")?;
    Ok(0)
}

/// The same two writes as one.
#[vmmcall("write_all", user)]
fn write_all(cx: &mut Caller, a: GuestAddr, b: GuestAddr) -> Result<u64, Error> {
    cx.write_all(&[(a, &b"first"[..]), (b, &b"second"[..])])?;
    Ok(0)
}

fn call(vcpu: &mut MockVcpu, name: &str, args: [u64; 2]) -> u64 {
    let registry = Registry::global().unwrap();
    vcpu.regs.rax = registry.lookup(name.as_bytes()).unwrap().get();
    [vcpu.regs.rbx, vcpu.regs.rcx] = args;
    vcpu.clear_reads();
    dispatch(registry, vcpu);
    vcpu.regs.rax
}

#[test]
fn the_detector_catches_a_handler_that_reads_twice() {
    let mut vcpu = MockVcpu::new();
    vcpu.map(0x1000, true, true).map(0x2000, true, true);
    vcpu.poke(0x1ffc, &[4, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(call(&mut vcpu, "reread", [0x1ffc, 0]), 4);
    assert_eq!(vcpu.byte_read_twice(), Some(0x1ffc), "the length, twice");
    // The same answer, read once.
    assert_eq!(call(&mut vcpu, "once", [0x1ffc, 0]), 4);
    assert_eq!(vcpu.byte_read_twice(), None);
    assert_eq!(vcpu.read_log(), &[(0x1ffc, 9)]);
    // Refused before the second read: nothing read twice either.
    vcpu.poke(0x1ffc, &[9]);
    assert_eq!(
        call(&mut vcpu, "reread", [0x1ffc, 0]),
        Error::Range.to_rax()
    );
    assert_eq!(vcpu.byte_read_twice(), None);
}

#[test]
fn several_writes_as_one_write_nothing_on_a_fault() {
    let mut vcpu = MockVcpu::new();
    vcpu.map(0x1000, true, true).map(0x2000, true, false);
    // The second buffer is read-only: separate writes leave the first
    // written (the per-write rule of docs/ABI.md) ...
    let fault = Error::Fault.to_rax();
    assert_eq!(call(&mut vcpu, "two_writes", [0x1000, 0x2000]), fault);
    assert_eq!(vcpu.peek(0x1000, 5), b"first");
    // ... one write_all leaves both untouched.
    vcpu.poke(0x1000, &[0; 5]);
    assert_eq!(call(&mut vcpu, "write_all", [0x1000, 0x2000]), fault);
    assert_eq!(vcpu.peek(0x1000, 5), [0; 5]);
    vcpu.map(0x2000, true, true);
    assert_eq!(call(&mut vcpu, "write_all", [0x1000, 0x2000]), 0);
    assert_eq!(
        (vcpu.peek(0x1000, 5), vcpu.peek(0x2000, 6)),
        (b"first".to_vec(), b"second".to_vec())
    );
}

#[test]
fn write_all_keeps_its_rule_through_the_vcpu_wrappers() {
    // InVm (and the `&mut` vCPU inside it) must forward write_linear_all,
    // not fall back to the per-range default.
    let mut vcpu = MockVcpu::new();
    vcpu.map(0x1000, true, true).map(0x2000, true, false);
    let registry = Registry::global().unwrap();
    vcpu.regs.rax = registry.lookup(b"write_all").unwrap().get();
    [vcpu.regs.rbx, vcpu.regs.rcx] = [0x1000, 0x2000];
    let mut in_vm = vmmcall::InVm::new(&mut vcpu, 1);
    assert_eq!(dispatch(registry, &mut in_vm).result, Err(Error::Fault));
    assert_eq!(vcpu.peek(0x1000, 5), [0; 5], "nothing written");
}

/// Guest RAM that records every read: data reads and paging-entry reads
/// apart.
struct Ram {
    bytes: Vec<u8>,
    data: RefCell<Vec<(u64, usize)>>,
    entries: RefCell<Vec<u64>>,
}

impl GuestPhysMemory for Ram {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        let src = at
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(at..end));
        buf.copy_from_slice(src.ok_or(MemError::OutsideRam { gpa })?);
        self.data.borrow_mut().push((gpa, buf.len()));
        Ok(())
    }
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        let dst = at
            .checked_add(data.len())
            .and_then(|end| self.bytes.get_mut(at..end));
        dst.ok_or(MemError::OutsideRam { gpa })?
            .copy_from_slice(data);
        Ok(())
    }
    fn read_entry(&self, gpa: u64) -> Result<u64, MemError> {
        let at = usize::try_from(gpa).map_err(|_| MemError::OutsideRam { gpa })?;
        let raw = at.checked_add(8).and_then(|end| self.bytes.get(at..end));
        let raw = raw.ok_or(MemError::OutsideRam { gpa })?;
        self.entries.borrow_mut().push(gpa);
        Ok(u64::from_le_bytes(raw.try_into().unwrap()))
    }
}

#[test]
fn the_walker_reads_data_once_and_each_entry_once_per_walk() {
    // PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000; linear 0x40_0000 +
    // i pages -> guest-physical 0x10_0000 + i pages, user, writable.
    let mut bytes = vec![0u8; 0x20_0000];
    let mut put = |at: usize, v: u64| bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(0x1000, 0x2000 | 7);
    put(0x2000, 0x3000 | 7);
    put(0x3000 + 2 * 8, 0x4000 | 7);
    for i in 0..4 {
        put(0x4000 + i * 8, (0x10_0000 + i as u64 * 0x1000) | 7);
    }
    let ram = Ram {
        bytes,
        data: RefCell::new(vec![]),
        entries: RefCell::new(vec![]),
    };
    let mode = PagingMode::new(CR0_PG | 1, 0x1000, CR4_PAE, EFER_LMA);
    let mut regs = GuestRegs::default();
    let mut vcpu = GuestVcpu::new(&mut regs, &ram, 3, mode);
    // Three pieces: 0x40_0ff0.., the page at 0x40_1000, ..0x40_2010.
    let mut buf = vec![0u8; 0x1020];
    vcpu.read_linear(GuestAddr(0x40_0ff0), &mut buf).unwrap();
    assert_eq!(
        *ram.data.borrow(),
        [(0x10_0ff0, 0x10), (0x10_1000, 0x1000), (0x10_2000, 0x10)],
        "every data byte once, in order"
    );
    // One walk per piece, each entry once in it: the PML4E, PDPTE and PDE
    // are read again for each piece (docs/ABI.md: each translation comes
    // from one read of each entry; nothing is kept from one piece, or one
    // call, to the next).
    let walk = |pte: u64| [0x1000, 0x2000, 0x3010, pte];
    let want: Vec<u64> = [walk(0x4000), walk(0x4008), walk(0x4010)].concat();
    assert_eq!(*ram.entries.borrow(), want);
}

impl GuestPhysMemory for &Ram {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read_phys(gpa, buf)
    }
    fn write_phys(&mut self, _: u64, _: &[u8]) -> Result<(), MemError> {
        unreachable!("this test only reads")
    }
    fn read_entry(&self, gpa: u64) -> Result<u64, MemError> {
        (**self).read_entry(gpa)
    }
}
