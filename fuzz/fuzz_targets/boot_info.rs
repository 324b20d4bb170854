//! The PVH hvm_start_info and what it points to (command line, memory map). Input: low memory from 0x1000.
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::boot::BootInfo;
use msifw::physmem::SliceMemory;

fuzz_target!(|data: &[u8]| {
    let mem = SliceMemory::new(0x1000, data);
    let info = BootInfo::from_pvh(&mem, 0x1000);
    let _ = info.table_memory_top();
});
