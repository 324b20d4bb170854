//! The boot information of both protocols: PVH's hvm_start_info and what it points to (command line,
//! memory map), and the Multiboot2 information with its tags. Input: memory from 0x1000, read as both.
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::boot::BootInfo;
use msifw::physmem::SliceMemory;

fuzz_target!(|data: &[u8]| {
    let mem = SliceMemory::new(0x1000, data);
    let info = BootInfo::from_pvh(&mem, 0x1000);
    let _ = info.table_memory_top();
    let end = BootInfo::multiboot2_end(&mem, 0x1000);
    let info = BootInfo::from_multiboot2(&mem, 0x1000);
    let _ = (info.table_memory_top(), end);
});
