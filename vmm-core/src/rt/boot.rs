//! The boot stub: from the loader's 32-bit protected mode to Rust in long mode.
//!
//! Two entry points, one path:
//! - `pvh_start`, named by the `XEN_ELFNOTE_PHYS32_ENTRY` (18) note, for
//!   QEMU `-kernel` (PVH: 32-bit protected mode, paging off, EBX =
//!   `hvm_start_info`);
//! - `mb2_start`, the ELF entry, for GRUB's Multiboot2 (EAX = `0x36d76289`,
//!   EBX = boot information), with a Multiboot2 header (spec §3.1) in the
//!   first 32 KiB of the file.
//!
//! The stub records which protocol and the info pointer in `.data` (before
//! clearing `.bss`), identity-maps the first 4 GiB with 2 MiB pages, enables
//! PAE, long mode, NXE, paging and SSE (CR4.OSFXSR|OSXMMEXCPT, CR0.MP, no
//! CR0.EM: the prebuilt libcore uses SSE), loads a 64-bit GDT and calls
//! `vmm_core_rust_entry(protocol, info)` on a 64 KiB stack, with a 4 KiB
//! guard page below it (unmapped by `rt::guard` at the start of Rust).
//!
//! `vmm_ap_start32` is the other CPUs' way in (from `rt::smp`'s real-mode
//! trampoline): the same path to long mode, then `vmm_core_ap_entry` on
//! the stack the boot CPU posted in `vmm_ap_stack`.

core::arch::global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xE85250D6
    .long 0
    .long mb2_header_end - mb2_header
    .long -(0xE85250D6 + (mb2_header_end - mb2_header))
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .note.Xen, "a"
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start
    .long 0

    .section .data.boot, "aw"
    .balign 8
    .global vmm_boot_protocol
vmm_boot_protocol:
    .long 0
    .global vmm_boot_info
vmm_boot_info:
    .long 0
    /* The next AP's stack and vCPU index (rt::smp::start_aps). */
    .balign 8
    .global vmm_ap_stack
vmm_ap_stack:
    .quad 0
    .global vmm_ap_index
vmm_ap_index:
    .long 0
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
    .global boot_pd
boot_pd:
    .skip 4 * 4096
    /* Unmapped once Rust runs (rt::guard): an overflow of the stack below
     * faults instead of rewriting whatever lies under it. */
    .global boot_stack_guard
boot_stack_guard:
    .skip 4096
boot_stack:
    .skip 65536
boot_stack_top:

    .section .boot.text, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    mov edi, 1
    jmp 2f

    .global mb2_start
mb2_start:
    cli
    mov edi, 2
    cmp eax, 0x36D76289
    je 2f
    xor edi, edi
2:
    mov dword ptr [vmm_boot_protocol], edi
    mov dword ptr [vmm_boot_info], ebx

    /* Clear .bss (this also clears the page tables and the stack). */
    cld
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb

    /* 2048 PDEs: 4 GiB identity map, 2 MiB pages, present|writable|PS. */
    mov edi, offset boot_pd
    mov eax, 0x83
    mov ecx, 2048
3:
    mov dword ptr [edi], eax
    add eax, 0x200000
    add edi, 8
    dec ecx
    jnz 3b

    /* 4 PDPTEs, one per PD. */
    mov edi, offset boot_pdpt
    mov eax, offset boot_pd
    or eax, 3
    mov ecx, 4
4:
    mov dword ptr [edi], eax
    add eax, 4096
    add edi, 8
    dec ecx
    jnz 4b

    mov eax, offset boot_pdpt
    or eax, 3
    mov dword ptr [boot_pml4], eax

    mov esi, offset long_start
    jmp to_long_mode

    /* Every CPU's way into long mode, on the boot page tables; ESI is
     * where to continue in 64-bit code (rdmsr/wrmsr keep ESI). */
to_long_mode:
    mov eax, offset boot_pml4
    mov cr3, eax

    /* CR4: PAE | OSFXSR | OSXMMEXCPT */
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax

    /* EFER: LME | NXE */
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x900
    wrmsr

    /* CR0: PG | MP | PE, EM clear */
    mov eax, cr0
    and eax, 0xFFFFFFFB
    or eax, 0x80000003
    mov cr0, eax

    lgdt [boot_gdt_ptr]
    push 0x08
    push esi
    retf

    .code64
long_start:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    xor ebp, ebp
    mov edi, dword ptr [vmm_boot_protocol]
    mov esi, dword ptr [vmm_boot_info]
    call vmm_core_rust_entry
5:
    cli
    hlt
    jmp 5b

    /* An AP, from rt::smp's real-mode trampoline: 32-bit protected mode
     * with flat segments, paging off. The boot CPU's path into long mode,
     * on the boot CPU's page tables (.bss is not cleared again). */
    .code32
    .global vmm_ap_start32
vmm_ap_start32:
    mov esi, offset ap_long_start
    jmp to_long_mode

    .code64
ap_long_start:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, qword ptr [vmm_ap_stack]
    xor ebp, ebp
    mov edi, dword ptr [vmm_ap_index]
    call vmm_core_ap_entry
6:
    cli
    hlt
    jmp 6b
"#
);
