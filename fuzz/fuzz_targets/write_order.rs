//! The write-order checker over arbitrary access traces (it must never panic, whatever the trace).
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw::bus::pci::trace::{Access, Event, TableField};
use msifw::bus::pci::Bdf;
use msifw::modes::{msi::MsiCapability, msix::MsixCapability, order};

fuzz_target!(|data: &[u8]| {
    let bdf = Bdf::new(0, 2, 0);
    let field = |b: u8| match b & 3 {
        0 => TableField::AddrLo,
        1 => TableField::AddrHi,
        2 => TableField::Data,
        _ => TableField::Control,
    };
    let events: Vec<Event> = data
        .chunks_exact(8)
        .map(|c| {
            let value = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            let offset = u16::from_le_bytes([c[1], c[2]]) & 0xFFF;
            let size = [1u8, 2, 4, 4][(c[3] & 3) as usize];
            let access = match c[0] % 5 {
                0 => Access::ConfigRead { offset, size, value },
                1 => Access::ConfigWrite { offset, size, value },
                2 => Access::TableRead { entry: offset & 0x7FF, field: field(c[3] >> 2), value },
                3 => Access::TableWrite { entry: offset & 0x7FF, field: field(c[3] >> 2), value },
                _ => Access::Control(value & 1 != 0),
            };
            Event { bdf, access }
        })
        .collect();
    let layout = order::Layout {
        bdf,
        msi: Some(MsiCapability { offset: 0xD0, multiple_capable: 0, is_64: true, maskable: true }),
        msix: Some(MsixCapability { offset: 0xA0, table_size: 2048, table_bir: 3, table_offset: 0, pba_bir: 3, pba_offset: 0x8000 }),
        owned: data.first().is_some_and(|b| b & 1 == 0),
    };
    let _ = order::check(&layout, &events);
});
