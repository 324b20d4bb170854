//! ACPI: RSDP -> RSDT/XSDT -> MADT, MCFG, FADT/DSDT. Input: 20 RSDP bytes at 0xF59E0, then a table image
//! at 0x0FFE0000 (the layout of QEMU's tables; the seeds are real q35 and pc dumps).
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::physmem::{PhysMemory, SliceMemory};
use msifw::platform::acpi;

struct Two<'a>(SliceMemory<'a>, SliceMemory<'a>);
impl PhysMemory for Two<'_> {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        self.0.bytes(phys, len).or_else(|| self.1.bytes(phys, len))
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 20 {
        return;
    }
    let (rsdp, image) = data.split_at(20);
    let mem = Two(SliceMemory::new(0xF59E0, rsdp), SliceMemory::new(0x0FFE_0000, image));
    let t = acpi::parse(0xF59E0, &mem);
    let _ = t.is_clean();
    let _ = acpi::find_rsdp_in(&mem, &[0xF59E0..0xF59F4, 0x0FFE_0000..0x0FFE_0000 + image.len() as u64]);
});
