//! `vmmcall_batch` over real guest page tables (docs/ABI.md, "Function
//! `1 << 40 | 2`: `vmmcall_batch`"): a [`GuestVcpu`] on flat guest RAM,
//! with a list and results that cross pages whose frames lie apart, so
//! that every copy the batch makes must follow its own translation.

use std::cell::Cell;
use vmmcall::abi::{BatchEntry, BATCH, BATCH_ENTRY_SIZE, BATCH_PHYSICAL, BATCH_STOP_ON_ERROR};
use vmmcall::paging::{GuestPhysMemory, PagingMode};
use vmmcall::{dispatch, vmmcall, Error, GuestRegs, GuestVcpu, MemError, Registry};

const PAGE: u64 = 4096;
const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;

/// `a + b`.
#[vmmcall("b_add", user)]
fn b_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// Kernel-only: 7.
#[vmmcall("b_kernel")]
fn b_kernel() -> u64 {
    7
}

/// Guest RAM at guest-physical 0 that refuses any access crossing a page
/// (the contract of `Vcpu::read_phys`) and counts the entries it serves
/// to the walker.
struct Ram {
    bytes: Vec<u8>,
    walks: Cell<u64>,
}

impl Ram {
    fn range(&self, gpa: u64, len: usize) -> Result<std::ops::Range<usize>, MemError> {
        let one_page = gpa % PAGE + len as u64 <= PAGE;
        let end = gpa as usize + len;
        if one_page && end <= self.bytes.len() {
            Ok(gpa as usize..end)
        } else {
            Err(MemError::OutsideRam { gpa })
        }
    }
    fn put(&mut self, gpa: u64, v: u64) {
        self.bytes[gpa as usize..gpa as usize + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn get(&self, gpa: u64) -> u64 {
        u64::from_le_bytes(
            self.bytes[gpa as usize..gpa as usize + 8]
                .try_into()
                .unwrap(),
        )
    }
}

impl GuestPhysMemory for Ram {
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let r = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }
    fn write_phys(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let r = self.range(gpa, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
    fn check_phys(&self, gpa: u64, len: usize) -> Result<(), MemError> {
        self.range(gpa, len).map(|_| ())
    }
    fn read_entry(&self, gpa: u64) -> Result<u64, MemError> {
        self.walks.set(self.walks.get() + 1);
        self.range(gpa, 8)?;
        Ok(self.get(gpa))
    }
}

/// Linear 0x40_0000 + k * 4 KiB maps to the frame `FRAMES[k]`: adjacent
/// linear pages, frames out of order.
const FRAMES: [u64; 4] = [0x9000, 0x6000, 0x8000, 0x5000];
const LINEAR: u64 = 0x40_0000;

/// 64 KiB of RAM; PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000; the four
/// linear pages user and writable unless `flags` says otherwise.
fn ram(flags: [u64; 4]) -> Ram {
    let mut ram = Ram {
        bytes: vec![0; 0x10000],
        walks: Cell::new(0),
    };
    ram.put(0x1000, 0x2000 | P | RW | US);
    ram.put(0x2000, 0x3000 | P | RW | US);
    ram.put(0x3000 + 2 * 8, 0x4000 | P | RW | US);
    for (k, frame) in FRAMES.iter().enumerate() {
        ram.put(0x4000 + k as u64 * 8, frame | flags[k]);
    }
    ram
}

const MODE: PagingMode = PagingMode::four_level(0x1000, true, false);

/// The guest-physical address of linear `la` in [`ram`].
fn gpa(la: u64) -> u64 {
    FRAMES[((la - LINEAR) / PAGE) as usize] + la % PAGE
}

/// Store `entries` at linear `list` (through the page tables).
fn store(ram: &mut Ram, list: u64, entries: &[BatchEntry]) {
    for (i, e) in entries.iter().enumerate() {
        for (w, b) in e.to_bytes().iter().enumerate() {
            let la = list + i as u64 * BATCH_ENTRY_SIZE + w as u64;
            ram.bytes[gpa(la) as usize] = *b;
        }
    }
}

/// The results at linear `results`, read through the page tables.
fn results(ram: &Ram, results: u64, n: usize) -> Vec<u64> {
    (0..n as u64)
        .map(|i| {
            let mut b = [0u8; 8];
            for (k, byte) in b.iter_mut().enumerate() {
                *byte = ram.bytes[gpa(results + i * 8 + k as u64) as usize];
            }
            u64::from_le_bytes(b)
        })
        .collect()
}

fn num(name: &str) -> u64 {
    Registry::global()
        .unwrap()
        .lookup(name.as_bytes())
        .unwrap()
        .get()
}

/// Run a batch at `cpl`; returns RAX.
fn run(ram: &mut Ram, cpl: u8, args: [u64; 4]) -> u64 {
    let mut regs = GuestRegs {
        rax: BATCH,
        ..GuestRegs::default()
    };
    [regs.rbx, regs.rcx, regs.rdx, regs.rsi] = args;
    let mut vcpu = GuestVcpu::new(&mut regs, &mut *ram, cpl, MODE);
    dispatch(Registry::global().unwrap(), &mut vcpu);
    regs.rax
}

fn adds(n: u64) -> Vec<BatchEntry> {
    (0..n)
        .map(|i| BatchEntry::new(num("b_add"), [i, 1000, 0, 0, 0]))
        .collect()
}

#[test]
fn lists_and_results_across_pages_follow_each_translation() {
    // 40 entries (1 920 bytes) from 0x100 before the end of linear page 0
    // into page 1; 40 results from 0x40 before the end of page 2 into 3.
    let list = LINEAR + PAGE - 0x100;
    let res = LINEAR + 3 * PAGE - 0x40;
    for cpl in [0, 3] {
        let mut ram = ram([P | RW | US; 4]);
        store(&mut ram, list, &adds(40));
        assert_eq!(run(&mut ram, cpl, [list, 40, res, 0]), 40, "cpl {cpl}");
        assert_eq!(results(&ram, res, 40), (1000..1040).collect::<Vec<_>>());
        // Nothing landed where the linear addresses would be as physical
        // ones (beyond the 64 KiB of RAM) or next to the frames.
        assert_eq!(ram.get(FRAMES[2] - 8), 0);
        assert_eq!(ram.get(FRAMES[3] + 0x40 + 32 * 8), 0);
    }
}

#[test]
fn each_page_is_walked_once_per_exit() {
    // 40 entries in five groups over two list pages, 40 results over two
    // pages: four walks of four entries each.
    let list = LINEAR + PAGE - 0x100;
    let res = LINEAR + 3 * PAGE - 0x40;
    let mut ram = ram([P | RW | US; 4]);
    store(&mut ram, list, &adds(40));
    assert_eq!(run(&mut ram, 0, [list, 40, res, 0]), 40);
    assert_eq!(ram.walks.get(), 4 * 4);
}

#[test]
fn physical_batches_use_the_addresses_as_they_are() {
    // The list from 0x30 before the end of frame 0x6000 into 0x7000
    // (guest-physical pages, not translated); results at 0xA000.
    let mut ram = ram([P | RW | US; 4]);
    let list = 0x7000 - 0x30;
    for (i, e) in adds(3).iter().enumerate() {
        let at = list as usize + i * BATCH_ENTRY_SIZE as usize;
        ram.bytes[at..at + BATCH_ENTRY_SIZE as usize].copy_from_slice(&e.to_bytes());
    }
    assert_eq!(run(&mut ram, 0, [list, 3, 0xA000, BATCH_PHYSICAL]), 3);
    assert_eq!(
        [ram.get(0xA000), ram.get(0xA008), ram.get(0xA010)],
        [1000, 1001, 1002]
    );
    assert_eq!(ram.walks.get(), 0, "no walk");
    // From ring 3: -EPERM; beyond RAM: -EFAULT.
    assert_eq!(
        run(&mut ram, 3, [list, 3, 0xB000, BATCH_PHYSICAL]),
        Error::Permission.to_rax()
    );
    assert_eq!(ram.get(0xB000), 0);
    assert_eq!(
        run(&mut ram, 0, [list, 3, 0x10000 - 8, BATCH_PHYSICAL]),
        Error::Fault.to_rax()
    );
}

#[test]
fn results_are_checked_at_the_callers_privilege_before_any_entry() {
    let list = LINEAR;
    let res = LINEAR + 2 * PAGE + PAGE - 16;
    let entries = [
        BatchEntry::new(num("b_kernel"), [0; 5]),
        BatchEntry::new(num("b_add"), [1, 2, 0, 0, 0]),
        BatchEntry::new(num("b_add"), [3, 4, 0, 0, 0]),
    ];
    // The second results page read-only (CR0.WP: for CPL 0 too), or
    // supervisor-only from ring 3: -EFAULT, nothing written.
    for (flags, cpl) in [(P | US, 0), (P | US, 3), (P | RW, 3)] {
        let mut ram = ram([P | RW | US, P | RW | US, P | RW | US, flags]);
        store(&mut ram, list, &entries);
        assert_eq!(run(&mut ram, cpl, [list, 3, res, 0]), Error::Fault.to_rax());
        assert_eq!(ram.get(gpa(res)), 0, "nothing written");
    }
    // All writable: the kernel-only entry answers as alone at each CPL.
    for (cpl, first) in [(0, 7), (3, Error::Permission.to_rax())] {
        let mut ram = ram([P | RW | US; 4]);
        store(&mut ram, list, &entries);
        assert_eq!(
            run(&mut ram, cpl, [list, 3, res, BATCH_STOP_ON_ERROR]),
            if cpl == 0 { 3 } else { 1 }
        );
        let want: &[u64] = if cpl == 0 { &[first, 3, 7] } else { &[first] };
        assert_eq!(results(&ram, res, want.len()), want);
    }
}
