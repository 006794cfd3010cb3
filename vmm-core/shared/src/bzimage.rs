//! The setup header of a bzImage (Linux `Documentation/arch/x86/boot.rst`,
//! "The Real-Mode Kernel Header"): the offsets and flags xtask checks
//! before it bundles a kernel and vmm-core reads when it loads one.

/// `setup_sects`: the size of the real-mode setup in 512-byte sectors (0
/// means 4).
pub const SETUP_SECTS: usize = 0x1F1;
/// Where the setup header starts (copied into `boot_params.hdr`).
pub const HDR_START: usize = 0x1F1;
/// The byte after the 2-byte jump at 0x200: the header ends at `0x202 +`
/// this byte.
pub const JUMP_END: usize = 0x201;
/// The `"HdrS"` magic ([`HDR_MAGIC`]).
pub const HEADER: usize = 0x202;
/// The magic at [`HEADER`].
pub const HDR_MAGIC: &[u8; 4] = b"HdrS";
/// The boot protocol version (u16).
pub const VERSION: usize = 0x206;
/// `type_of_loader` (u8).
pub const TYPE_OF_LOADER: usize = 0x210;
/// `loadflags` (u8).
pub const LOADFLAGS: usize = 0x211;
/// `code32_start` (u32).
pub const CODE32_START: usize = 0x214;
/// `ramdisk_image` (u32).
pub const RAMDISK_IMAGE: usize = 0x218;
/// `ramdisk_size` (u32).
pub const RAMDISK_SIZE: usize = 0x21C;
/// `cmd_line_ptr` (u32).
pub const CMD_LINE_PTR: usize = 0x228;
/// `initrd_addr_max` (u32).
pub const INITRD_ADDR_MAX: usize = 0x22C;
/// `kernel_alignment` (u32).
pub const KERNEL_ALIGNMENT: usize = 0x230;
/// `relocatable_kernel` (u8).
pub const RELOCATABLE: usize = 0x234;
/// `xloadflags` (u16).
pub const XLOADFLAGS: usize = 0x236;
/// `cmdline_size` (u32).
pub const CMDLINE_SIZE: usize = 0x238;
/// `pref_address` (u64).
pub const PREF_ADDRESS: usize = 0x258;
/// `init_size` (u32).
pub const INIT_SIZE: usize = 0x260;

/// Boot protocol 2.12: the first with `xloadflags`, so the first a 64-bit
/// entry can be asked of.
pub const MIN_PROTOCOL: u16 = 0x020C;
/// `loadflags` bit 0: the protected-mode kernel is loaded at 0x100000 or
/// above (required for a bzImage).
pub const LOADED_HIGH: u8 = 1 << 0;
/// `xloadflags` bit 0: the kernel has the 64-bit entry at +0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// The 64-bit entry point's offset from the load address.
pub const ENTRY_64: u64 = 0x200;
