//! Hand-assembled AML against the evaluator: each test builds a small DSDT byte by byte.

extern crate std;

use crate::pci::{self, PrtEntry};
use crate::{Aml, Budget, ErrorKind, Overlay, Value};
use alloc::{boxed::Box, vec, vec::Vec};

/// A PkgLength for `n` bytes of content (the encoding counts itself).
fn pkglen(n: usize) -> Vec<u8> {
    if n + 1 < 0x40 {
        vec![(n + 1) as u8]
    } else if n + 2 < 0x1000 {
        let t = n + 2;
        vec![0x40 | (t & 0xF) as u8, (t >> 4) as u8]
    } else {
        let t = n + 3;
        vec![0x80 | (t & 0xF) as u8, (t >> 4) as u8, (t >> 12) as u8]
    }
}

/// `op PkgLength body`.
fn pk(op: &[u8], body: &[&[u8]]) -> Vec<u8> {
    let b: Vec<u8> = body.concat();
    [op, &pkglen(b.len()), &b].concat()
}

fn table(sig: &[u8; 4], rev: u8, body: &[&[u8]]) -> Vec<u8> {
    let b = body.concat();
    let mut t = Vec::from(&sig[..]);
    t.extend_from_slice(&((36 + b.len()) as u32).to_le_bytes());
    t.push(rev);
    t.extend_from_slice(&[0; 27]);
    t.extend_from_slice(&b);
    t
}

fn dsdt(body: &[&[u8]]) -> Vec<u8> {
    table(b"DSDT", 2, body)
}

fn name(seg: &[u8], data: &[u8]) -> Vec<u8> {
    [&[0x08], seg, data].concat()
}

fn method(seg: &[u8], args: u8, body: &[&[u8]]) -> Vec<u8> {
    let b: Vec<u8> = [seg, &[args][..], &body.concat()].concat();
    pk(&[0x14], &[&b])
}

fn device(seg: &[u8], body: &[&[u8]]) -> Vec<u8> {
    pk(&[0x5B, 0x82], &[&[seg, &body.concat()].concat()])
}

fn scope(path: &[u8], body: &[&[u8]]) -> Vec<u8> {
    pk(&[0x10], &[&[path, &body.concat()].concat()])
}

fn package(elems: &[&[u8]]) -> Vec<u8> {
    pk(&[0x12], &[&[elems.len() as u8], &elems.concat()])
}

fn dword(v: u32) -> Vec<u8> {
    [&[0x0C][..], &v.to_le_bytes()].concat()
}

fn byte(v: u8) -> Vec<u8> {
    vec![0x0A, v]
}

fn if_(pred: &[u8], body: &[&[u8]]) -> Vec<u8> {
    pk(&[0xA0], &[pred, &body.concat()])
}

fn ret(v: &[u8]) -> Vec<u8> {
    [&[0xA4], v].concat()
}

const HID_PCIE: [u8; 5] = [0x0C, 0x41, 0xD0, 0x0A, 0x08];
const HID_LINK: [u8; 5] = [0x0C, 0x41, 0xD0, 0x0C, 0x0F];

fn load<'a>(tables: &'a [Vec<u8>], zero: bool) -> Aml<'a> {
    let ov = if zero {
        Overlay::zero_filled()
    } else {
        Overlay::new()
    };
    let mut aml = Aml::new(Box::new(ov));
    for t in tables {
        aml.load(t).unwrap();
    }
    aml
}

/// The shape the README calls typical: `_PRT` a Method choosing between two Names on `PICM`, which
/// `\_PIC` sets; the PIC-mode package names a link device.
fn picm_machine() -> Vec<u8> {
    let entry_apic = package(&[&dword(0x1FFFF), &[0x00], &[0x00], &byte(16)]);
    let entry_pic = package(&[&dword(0x1FFFF), &[0x00], b"LNKA", &[0x00]]);
    dsdt(&[
        &name(b"PICM", &[0x00]),
        &method(b"_PIC", 1, &[&[0x70, 0x68], b"PICM"]),
        &scope(
            b"\\_SB_",
            &[
                &device(
                    b"PCI0",
                    &[
                        &name(b"_HID", &HID_PCIE),
                        &name(b"AR00", &package(&[&entry_apic])),
                        &name(b"PR00", &package(&[&entry_pic])),
                        &method(
                            b"_PRT",
                            0,
                            &[&if_(b"PICM", &[&ret(b"AR00")]), &ret(b"PR00")],
                        ),
                    ],
                ),
                &device(b"LNKA", &[&name(b"_HID", &HID_LINK)]),
            ],
        ),
    ])
}

#[test]
fn prt_method_takes_the_apic_branch_after_pic_1() {
    let t = [picm_machine()];
    let mut aml = load(&t, false);
    let roots = pci::root_bridges(&mut aml);
    assert_eq!(roots.len(), 1);
    let lnka = aml.find(0, "\\_SB.LNKA").unwrap();
    // Before \_PIC(1): the PIC-mode package, whose source is the link (a reference, not a call).
    assert_eq!(
        roots[0].prt,
        Some(Ok(vec![PrtEntry {
            address: 0x1FFFF,
            pin: 0,
            source: Some(lnka),
            index: 0
        }]))
    );
    assert_eq!(pci::set_apic_mode(&mut aml), Some(Ok(())));
    let roots = pci::root_bridges(&mut aml);
    assert_eq!(aml.path(roots[0].node), "\\_SB.PCI0");
    let prt = roots[0].prt.clone().unwrap().unwrap();
    assert_eq!(
        (prt[0].slot(), prt[0].pin, prt[0].source, prt[0].index),
        (1, 0, None, 16)
    );
    assert_eq!(pci::links(&mut aml).len(), 1);
}

#[test]
fn pic_flag_kept_in_an_nvs_field_is_read_back() {
    // OperationRegion (GNVS, SystemMemory, 0x1000, 0x10); Field (GNVS, ByteAcc, NoLock, Preserve)
    // { Offset (2), GPIC, 8 }; \_PIC stores Arg0 in GPIC; _PRT tests GPIC.
    let region = [
        &[0x5B, 0x80][..],
        b"GNVS",
        &[0x00],
        &dword(0x1000),
        &byte(0x10),
    ]
    .concat();
    let field = pk(
        &[0x5B, 0x81],
        &[b"GNVS", &[0x01], &[0x00, 16], b"GPIC", &[8]],
    );
    let t = [dsdt(&[
        &region,
        &field,
        &method(b"_PIC", 1, &[&[0x70, 0x68], b"GPIC"]),
        &method(
            b"TEST",
            0,
            &[&if_(b"GPIC", &[&ret(&byte(7))]), &ret(&byte(9))],
        ),
    ])];
    let mut aml = load(&t, false);
    let test = aml.find(0, "\\TEST").unwrap();
    let e = aml.eval(test, &[]).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Region {
            space: 0,
            region: aml.find(0, "\\GNVS").unwrap()
        }
    );
    assert_eq!(aml.path(e.scope), "\\TEST");
    assert_eq!(pci::set_apic_mode(&mut aml), Some(Ok(())));
    assert_eq!(aml.eval(test, &[]), Ok(Value::Int(7)));
    // Zero-filled regions (ACPICA's simulation) answer before any write.
    let mut aml = load(&t, true);
    assert_eq!(aml.eval(test, &[]), Ok(Value::Int(9)));
}

#[test]
fn single_segments_search_upward_and_paths_do_not() {
    // \_SB { Name (VAL1, 5) Device (DEV0) { Method (GET1) { Return (VAL1) } Method (GET2) { Return (DEV0.VAL1) } } }
    let t = [dsdt(&[&scope(
        b"\\_SB_",
        &[
            &name(b"VAL1", &byte(5)),
            &device(
                b"DEV0",
                &[
                    &method(b"GET1", 0, &[&ret(b"VAL1")]),
                    &method(b"GET2", 0, &[&ret(&[&[0x2E][..], b"DEV0VAL1"].concat())]),
                ],
            ),
        ],
    )])];
    let mut aml = load(&t, false);
    let get1 = aml.find(0, "\\_SB.DEV0.GET1").unwrap();
    let get2 = aml.find(0, "\\_SB.DEV0.GET2").unwrap();
    assert_eq!(aml.eval(get1, &[]), Ok(Value::Int(5)));
    assert_eq!(aml.eval(get2, &[]).unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(aml.find(get1, "VAL1"), aml.find(0, "\\_SB.VAL1"));
}

#[test]
fn calls_args_locals_and_a_bounded_while() {
    // Method (SUM, 1) { Store (Zero, Local0) Store (Zero, Local1)
    //   While (LLess (Local1, Arg0)) { Add (Local0, Local1, Local0) Increment (Local1) } Return (Local0) }
    // Method (MAIN) { Return (SUM (5)) }
    let t = [dsdt(&[
        &method(
            b"SUM_",
            1,
            &[
                &[0x70, 0x00, 0x60],
                &[0x70, 0x00, 0x61],
                &pk(
                    &[0xA2],
                    &[
                        &[0x95, 0x61, 0x68],
                        &[0x72, 0x60, 0x61, 0x60],
                        &[0x75, 0x61],
                    ],
                ),
                &ret(&[0x60]),
            ],
        ),
        &method(b"MAIN", 0, &[&ret(&[b"SUM_" as &[u8], &byte(5)].concat())]),
        // Method (LOOP) { While (One) { } }
        &method(b"LOOP", 0, &[&pk(&[0xA2], &[&[0x01]])]),
        // Method (DEEP) { Return (DEEP ()) }
        &method(b"DEEP", 0, &[&ret(b"DEEP")]),
    ])];
    let mut aml = load(&t, false);
    let main = aml.find(0, "\\MAIN").unwrap();
    assert_eq!(aml.eval(main, &[]), Ok(Value::Int(10)));
    let l = aml.find(0, "\\LOOP").unwrap();
    assert_eq!(
        aml.eval(l, &[]).unwrap_err().kind,
        ErrorKind::Budget(Budget::Steps)
    );
    let d = aml.find(0, "\\DEEP").unwrap();
    assert_eq!(
        aml.eval(d, &[]).unwrap_err().kind,
        ErrorKind::Budget(Budget::Depth)
    );
    // The namespace is whole again after a failed evaluation.
    assert_eq!(aml.eval(main, &[]), Ok(Value::Int(10)));
}

#[test]
fn crs_method_patches_a_buffer_through_create_dword_field() {
    // Method (_CRS) { Name (RBUF, ResourceTemplate () { WordBusNumber (0, 0xFF) ... })
    //   CreateWordField (RBUF, 0x0A, MAXB) Store (0x3E, MAXB) Return (RBUF) }
    let word_bus: [u8; 16] = [
        0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0, 0, 0x00, 0x00, 0xFF, 0x00, 0, 0, 0x00, 0x01,
    ];
    let tmpl = [&word_bus[..], &[0x79, 0x00]].concat();
    let buf = pk(&[0x11], &[&byte(tmpl.len() as u8), &tmpl]);
    let t = [dsdt(&[&scope(
        b"\\_SB_",
        &[&device(
            b"PCI0",
            &[
                &name(b"_HID", &HID_PCIE),
                &method(
                    b"_CRS",
                    0,
                    &[
                        &name(b"RBUF", &buf),
                        &[&[0x8B][..], b"RBUF", &byte(0x0A), b"MAXB"].concat(),
                        &[&[0x70][..], &byte(0x3E), b"MAXB"].concat(),
                        &ret(b"RBUF"),
                    ],
                ),
            ],
        )],
    )])];
    let mut aml = load(&t, false);
    let roots = pci::root_bridges(&mut aml);
    assert_eq!(roots[0].bus_ranges(), vec![(0, 0x3E)]);
    // RBUF and MAXB went with the method: a second call defines them again without a clash.
    let roots = pci::root_bridges(&mut aml);
    assert_eq!(roots[0].bus_ranges(), vec![(0, 0x3E)]);
    assert!(aml.find(0, "\\_SB.PCI0._CRS.RBUF").is_none());
}

#[test]
fn unknown_opcode_is_named_with_its_method() {
    // Method (BAD) { Return (0x02 ...) }: 0x02 is no AML opcode.
    let t = [dsdt(&[&method(b"BAD_", 0, &[&[0xA4, 0x02]])])];
    let mut aml = load(&t, false);
    let bad = aml.find(0, "\\BAD").unwrap();
    let e = aml.eval(bad, &[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownOpcode(0x02));
    assert_eq!(aml.path(e.scope), "\\BAD");
    assert_eq!(e.offset as usize, 36 + 1 + 1 + 4 + 1 + 1);
}

#[test]
fn a_huge_buffer_is_a_memory_budget_error() {
    // Method (BIG) { Return (Buffer (0xFFFFFFF0) {}) }
    let t = [dsdt(&[&method(
        b"BIG_",
        0,
        &[&ret(&pk(&[0x11], &[&dword(0xFFFF_FFF0)]))],
    )])];
    let mut aml = load(&t, false);
    let big = aml.find(0, "\\BIG").unwrap();
    assert_eq!(
        aml.eval(big, &[]).unwrap_err().kind,
        ErrorKind::Budget(Budget::Memory)
    );
}

#[test]
fn revision_1_dsdt_has_32_bit_integers() {
    let t = [table(b"DSDT", 1, &[&method(b"ONES", 0, &[&ret(&[0xFF])])])];
    let mut aml = load(&t, false);
    let m = aml.find(0, "\\ONES").unwrap();
    assert_eq!(aml.eval(m, &[]), Ok(Value::Int(0xFFFF_FFFF)));
}

#[test]
fn external_is_replaced_by_the_ssdt_definition_and_duplicates_are_kept_first() {
    // DSDT: External (\_SB.XX, MethodObj, 1); Method (CALL) { Return (\_SB.XX (3)) } Name (DUP, 1)
    // SSDT: Scope (\_SB) { Method (XX, 1) { Return (Add (Arg0, 1)) } } Name (\DUP, 2)
    let ext = [&[0x15, 0x5C, 0x2E][..], b"_SB_XX__", &[0x08, 0x01]].concat();
    let call = method(
        b"CALL",
        0,
        &[&ret(&[&[0x5C, 0x2E][..], b"_SB_XX__", &byte(3)].concat())],
    );
    let t = [
        dsdt(&[&ext, &call, &name(b"DUP_", &[0x01])]),
        table(
            b"SSDT",
            2,
            &[
                &scope(
                    b"\\_SB_",
                    &[&method(b"XX__", 1, &[&ret(&[0x72, 0x68, 0x01, 0x00])])],
                ),
                &name(b"\\DUP_", &byte(2)),
            ],
        ),
    ];
    let mut aml = load(&t, false);
    let c = aml.find(0, "\\CALL").unwrap();
    assert_eq!(aml.eval(c, &[]), Ok(Value::Int(4)));
    let dup = aml.find(0, "\\DUP").unwrap();
    assert_eq!(aml.eval(dup, &[]), Ok(Value::Int(1)));
    let (problems, n) = aml.problems();
    assert_eq!(
        (n, problems[0].kind, problems[0].table),
        (1, ErrorKind::Exists, 1)
    );
}

#[test]
fn a_failing_module_level_term_costs_only_itself() {
    // Store (\NOPE, Local0) at module level, then Name (AFTR, 3): the Name still loads.
    let t = [dsdt(&[
        &[&[0x70, 0x5C][..], b"NOPE", &[0x00]].concat(),
        &name(b"AFTR", &byte(3)),
    ])];
    let aml = load(&t, false);
    assert!(aml.find(0, "\\AFTR").is_some());
    assert_eq!(aml.problems().1, 1);
}

#[test]
fn string_hids_and_cid_packages_are_root_bridges() {
    let t = [dsdt(&[&scope(
        b"\\_SB_",
        &[
            &device(b"PC00", &[&name(b"_HID", b"\x0DPNP0A08\0")]),
            &device(
                b"PC01",
                &[
                    &name(b"_HID", b"\x0DACPI0016\0"),
                    &name(b"_CID", &package(&[b"\x0DPNP0A03\0"])),
                ],
            ),
            &device(b"OTHR", &[&name(b"_HID", b"\x0DPNP0C02\0")]),
        ],
    )])];
    let mut aml = load(&t, false);
    let r: Vec<_> = pci::root_bridges(&mut aml)
        .iter()
        .map(|r| aml.path(r.node))
        .collect();
    assert_eq!(r, ["\\_SB.PC00", "\\_SB.PC01"]);
}

#[test]
fn truncated_and_mutated_tables_never_panic() {
    let base = picm_machine();
    for cut in 0..base.len() {
        let mut t = base[..cut].to_vec();
        if t.len() >= 8 {
            t[4..8].copy_from_slice(&(cut as u32).to_le_bytes());
        }
        let ts = [t];
        let mut aml = Aml::new(Box::new(Overlay::new()));
        if aml.load(&ts[0]).is_ok() {
            let _ = pci::set_apic_mode(&mut aml);
            let _ = pci::root_bridges(&mut aml);
        }
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut t = base.clone();
        let i = 36 + (x as usize) % (t.len() - 36);
        t[i] = (x >> 32) as u8;
        let ts = [t];
        let mut aml = Aml::new(Box::new(Overlay::zero_filled()));
        aml.load(&ts[0]).unwrap();
        let _ = pci::set_apic_mode(&mut aml);
        let _ = pci::root_bridges(&mut aml);
        let _ = pci::links(&mut aml);
    }
}

#[test]
fn the_total_step_budget_bounds_a_whole_query() {
    // Ten devices whose _HID loops: each evaluation stops at its own budget, the whole query at the total.
    let looping = method(b"_HID", 0, &[&pk(&[0xA2], &[&[0x01]])]);
    let devs: Vec<Vec<u8>> = (0..10u8)
        .map(|i| device(&[b'D', b'E', b'V', b'0' + i], &[&looping]))
        .collect();
    let refs: Vec<&[u8]> = devs.iter().map(|d| d.as_slice()).collect();
    let t = [dsdt(&refs)];
    let mut aml = load(&t, false);
    aml.limits.steps = 1000;
    aml.limits.total_steps = 5000;
    assert!(pci::root_bridges(&mut aml).is_empty());
    let d = aml.find(0, "\\DEV9._HID").unwrap();
    let e = aml.eval(d, &[]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Budget(Budget::Steps));
}

#[test]
fn stack_per_nesting_level_is_measured() {
    // DEEP recursion to the depth budget: the stack it took, per level, for the README's figure.
    let t = [dsdt(&[&method(b"DEEP", 0, &[&ret(b"DEEP")])])];
    let mut aml = load(&t, false);
    let d = aml.find(0, "\\DEEP").unwrap();
    let marker = 0u8;
    let top = core::hint::black_box(&marker) as *const u8 as usize;
    crate::eval::stack::LOWEST.with(|l| l.set(usize::MAX));
    assert!(aml.eval(d, &[]).is_err());
    let low = crate::eval::stack::LOWEST.with(|l| l.get());
    let per = (top - low) / usize::from(aml.limits.depth);
    std::println!(
        "stack: {} bytes for depth {} ({per} per level)",
        top - low,
        aml.limits.depth
    );
    assert!(per < 2048, "{per} bytes of stack per nesting level");
}

/// QEMU 7.2's own DSDTs (the dumps the firmware's host tests use): pc builds its `_PRT` in a While
/// loop from packages in Locals; q35 returns `PRTA` after `\_PIC(1)`.
#[test]
fn qemu_pc_and_q35_prt() {
    for (machine, entries) in [("pc", 128), ("q35", 128)] {
        let path = std::format!(
            "{}/../src/platform/acpi/qemu-7.2-{machine}-tables.dat",
            env!("CARGO_MANIFEST_DIR")
        );
        let image = std::fs::read(&path).unwrap();
        let len = u32::from_le_bytes(image[0x44..0x48].try_into().unwrap()) as usize;
        let t = [image[0x40..0x40 + len].to_vec()];
        let mut aml = load(&t, false);
        // pc has no \_PIC (its links are the same in both modes).
        let pic = pci::set_apic_mode(&mut aml);
        assert!(matches!(pic, None | Some(Ok(()))), "{machine}: {pic:?}");
        let roots = pci::root_bridges(&mut aml);
        assert_eq!(roots.len(), 1, "{machine}");
        let prt = roots[0].prt.clone().unwrap().unwrap();
        assert_eq!(prt.len(), entries, "{machine}");
        for (i, e) in prt.iter().enumerate() {
            assert_eq!(
                (e.slot(), e.pin),
                ((i / 4) as u64, (i % 4) as u64),
                "{machine} entry {i}"
            );
            let src = aml.path(e.source.unwrap());
            assert!(
                src.starts_with("\\_SB.LNK") || src.starts_with("\\_SB.GSI"),
                "{machine}: {src}"
            );
        }
        if machine == "pc" {
            // hw/i386/acpi-build.c build_prt: slot 1 pin A is LNKS (the PIIX's SCI); else link (slot + pin) & 3.
            let names: Vec<_> = prt
                .iter()
                .take(8)
                .map(|e| aml.path(e.source.unwrap()))
                .collect();
            assert_eq!(
                names,
                [
                    "\\_SB.LNKD",
                    "\\_SB.LNKA",
                    "\\_SB.LNKB",
                    "\\_SB.LNKC",
                    "\\_SB.LNKS",
                    "\\_SB.LNKB",
                    "\\_SB.LNKC",
                    "\\_SB.LNKD"
                ]
            );
        }
    }
}

#[test]
fn an_index_field_indexed_by_itself_ends_at_the_depth_budget() {
    // OperationRegion (R, SystemIO, 0, 2); Field (R) { IDX, 8, DAT, 8 } IndexField (FLD, DAT) { FLD, 8 }
    // then Method (M) { Return (FLD) }: with FLD declared External first, FLD's index register is the
    // node the IndexField then defines, FLD itself.
    let region = [&[0x5B, 0x80][..], b"REG_", &[0x01, 0x00, 0x0A, 0x02]].concat();
    let field = pk(
        &[0x5B, 0x81],
        &[b"REG_", &[0x01], b"IDX_", &[8], b"DAT_", &[8]],
    );
    let index = pk(&[0x5B, 0x86], &[b"FLD_", b"DAT_", &[0x01], b"FLD_", &[8]]);
    let ext = [&[0x15][..], b"FLD_", &[0x05, 0x00]].concat();
    let t = [dsdt(&[
        &ext,
        &region,
        &field,
        &index,
        &method(b"M___", 0, &[&ret(b"FLD_")]),
    ])];
    let mut aml = load(&t, true);
    let m = aml.find(0, "\\M").unwrap();
    assert_eq!(
        aml.eval(m, &[]).unwrap_err().kind,
        ErrorKind::Budget(Budget::Depth)
    );
}

#[test]
fn packages_stored_into_themselves_stop_at_a_nesting_limit() {
    // Method (NEST) { Store (Zero, Local0) While (One) { Store (Package (1) { Local0 }, Local0) } }
    // Method (SELF) { Store (Package (1) { Zero }, Local0) While (One) { Store (Local0, Index (Local0, 0)) } }
    let grow = pk(
        &[0xA2],
        &[
            &[0x01],
            &[&[0x70][..], &pk(&[0x12], &[&[0x01, 0x60]]), &[0x60]].concat(),
        ],
    );
    let selfref = pk(&[0xA2], &[&[0x01], &[0x70, 0x60, 0x88, 0x60, 0x00, 0x00]]);
    let t = [dsdt(&[
        &method(b"NEST", 0, &[&[0x70, 0x00, 0x60], &grow]),
        &method(
            b"SELF",
            0,
            &[
                &[&[0x70][..], &package(&[&[0x00]]), &[0x60]].concat(),
                &selfref,
            ],
        ),
    ])];
    let mut aml = load(&t, false);
    for m in ["\\NEST", "\\SELF"] {
        let id = aml.find(0, m).unwrap();
        assert_eq!(
            aml.eval(id, &[]).unwrap_err().kind,
            ErrorKind::Budget(Budget::Depth),
            "{m}"
        );
    }
}

#[test]
fn store_to_a_named_buffer_keeps_its_length() {
    // Name (BUF4, Buffer (4) {1, 2, 3, 4}) Name (BUF0, Buffer (0) {})
    // Method (T4) { Store (Buffer (2) {9, 9}, BUF4) Return (BUF4) }, T0 likewise with BUF0,
    // Method (TI) { Store (0x0A0B0C0D0E, BUF4) Return (BUF4) }
    let two = pk(&[0x11], &[&byte(2), &[9, 9]]);
    let t = [dsdt(&[
        &name(b"BUF4", &pk(&[0x11], &[&byte(4), &[1, 2, 3, 4]])),
        &name(b"BUF0", &pk(&[0x11], &[&[0x00]])),
        &method(
            b"T4__",
            0,
            &[&[&[0x70][..], &two, b"BUF4"].concat(), &ret(b"BUF4")],
        ),
        &method(
            b"T0__",
            0,
            &[&[&[0x70][..], &two, b"BUF0"].concat(), &ret(b"BUF0")],
        ),
        &method(
            b"TI__",
            0,
            &[
                &[&[0x70, 0x0E][..], &0x0A_0B0C_0D0Eu64.to_le_bytes(), b"BUF4"].concat(),
                &ret(b"BUF4"),
            ],
        ),
    ])];
    let mut aml = load(&t, false);
    let mut run = |m: &str| {
        let id = aml.find(0, m).unwrap();
        aml.eval(id, &[]).unwrap()
    };
    assert_eq!(run("\\T4"), Value::Buf(vec![9, 9, 0, 0]));
    assert_eq!(run("\\T0"), Value::Buf(vec![9, 9]));
    assert_eq!(run("\\TI"), Value::Buf(vec![0x0E, 0x0D, 0x0C, 0x0B]));
}

#[test]
fn a_module_level_loop_around_an_if_ends_at_the_step_budget() {
    // While (One) { If (One) { Noop } } at module level: the If's body must not restart the budget.
    let t = [dsdt(&[
        &pk(&[0xA2], &[&[0x01], &if_(&[0x01], &[&[0xA3]])]),
        &name(b"AFTR", &byte(1)),
    ])];
    let aml = load(&t, false);
    let (p, n) = aml.problems();
    // The If's body records the first overrun, the While the second.
    assert_eq!(n, 2);
    assert!(p.iter().all(|e| e.kind == ErrorKind::Budget(Budget::Steps)));
    assert!(aml.find(0, "\\AFTR").is_some());
}

#[test]
fn a_store_to_a_huge_index_field_ends_at_the_step_budget() {
    // OperationRegion (R, SystemIO, 0, 2); Field (R) { IDX, 8, DAT, 8 }
    // IndexField (IDX, DAT) { HUGE, 0x0FFFFFFF }; Method (M) { Store (One, HUGE) }: 2^25 units, each
    // an index write and a data read at the same two ports, one step each.
    let region = [&[0x5B, 0x80][..], b"REG_", &[0x01, 0x00, 0x0A, 0x02]].concat();
    let field = pk(
        &[0x5B, 0x81],
        &[b"REG_", &[0x01], b"IDX_", &[8], b"DAT_", &[8]],
    );
    let index = pk(
        &[0x5B, 0x86],
        &[
            b"IDX_",
            b"DAT_",
            &[0x01],
            b"HUGE",
            &[0xCF, 0xFF, 0xFF, 0xFF],
        ],
    );
    let t = [dsdt(&[
        &region,
        &field,
        &index,
        &method(b"M___", 0, &[&[&[0x70, 0x01][..], b"HUGE"].concat()]),
    ])];
    let mut aml = load(&t, true);
    let m = aml.find(0, "\\M").unwrap();
    assert_eq!(
        aml.eval(m, &[]).unwrap_err().kind,
        ErrorKind::Budget(Budget::Steps)
    );
}

/// Every node is what a lookup of its parent and segment finds: the newest child of that name in the
/// parent's list (the list `children` walks is kept apart from the lookup index).
fn assert_lookups_agree_with_the_child_lists(aml: &Aml) {
    for id in 1..aml.len() as crate::NodeId {
        let n = aml.node(id).unwrap();
        let newest = aml
            .children(n.parent)
            .into_iter()
            .find(|&c| aml.node(c).unwrap().seg == n.seg);
        assert_eq!(
            aml.child(n.parent, &n.seg),
            newest,
            "lookup of {} disagrees with the child list",
            aml.path(id)
        );
    }
}

#[test]
fn lookups_stay_right_while_methods_add_and_remove_names() {
    // Scope (\_SB) { Name (N000, 0) ... Name (N299, 299) }; Method (M, 1) { If (Arg0) { M (Zero) } Name (\_SB.T000, 0) ...
    // Name (\_SB.T359, 0); Name (L000, 0) ... (L039); Return (\_SB.N123) }: 360 temporaries among 300
    // names of one scope and 40 below the method, made twice (nested call first), all removed
    // newest first when each call returns. The lookup index grows while they live, so statics and
    // temporaries mix in its probe runs, and each removal must keep the statics after it reachable.
    let seg = |c: u8, i: usize| {
        [
            c,
            b'0' + (i / 100) as u8,
            b'0' + (i / 10 % 10) as u8,
            b'0' + (i % 10) as u8,
        ]
    };
    let names: Vec<Vec<u8>> = (0..300)
        .map(|i| name(&seg(b'N', i), &dword(i as u32)))
        .collect();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let mut body = vec![if_(&[0x68], &[&[&b"M___"[..], &[0x00]].concat()])];
    body.extend(
        (0..360).map(|i| [&[0x08, b'\\', 0x2E][..], b"_SB_", &seg(b'T', i), &[0x00]].concat()),
    );
    body.extend((0..40).map(|i| name(&seg(b'L', i), &[0x00])));
    body.push(ret(&[&[b'\\', 0x2E][..], b"_SB_N123"].concat()));
    let body: Vec<&[u8]> = body.iter().map(Vec::as_slice).collect();
    let t = [dsdt(&[&scope(b"_SB_", &names), &method(b"M___", 1, &body)])];
    let mut aml = load(&t, false);
    assert_eq!(aml.problems().1, 0);
    assert_lookups_agree_with_the_child_lists(&aml);
    let before = aml.len();
    let m = aml.find(0, "\\M").unwrap();
    for _ in 0..3 {
        // A second definition of a temporary would be an Exists error: each call starts clean.
        assert_eq!(aml.eval(m, &[Value::Int(1)]), Ok(Value::Int(123)));
        assert_eq!(aml.len(), before, "the method's names are gone");
        assert!(aml.find(0, "\\_SB.T000").is_none());
        assert_lookups_agree_with_the_child_lists(&aml);
        for i in 0..300 {
            let n = aml.find(
                0,
                core::str::from_utf8(&[b"\\_SB.", &seg(b'N', i)[..]].concat()).unwrap(),
            );
            assert!(n.is_some(), "N{i:03} lost");
        }
    }
}

#[test]
fn the_overlay_reads_back_what_was_written_in_any_order_and_refuses_past_its_capacity() {
    use crate::Regions;
    let mut o = Overlay::new();
    // Out of order, overlapping, in two address spaces at the same addresses.
    assert!(o.write(0, 1, 0x80, 4, 0x4433_2211));
    assert!(o.write(0, 0, 0x82, 2, 0xBBAA));
    assert!(o.write(0, 0, 0x10, 8, 0x0807_0605_0403_0201));
    assert!(o.write(0, 1, 0x7F, 2, 0x1100));
    assert_eq!(o.read(0, 1, 0x7F, 4), Some(0x3322_1100));
    assert_eq!(o.read(0, 1, 0x83, 1), Some(0x44));
    assert_eq!(o.read(0, 0, 0x82, 2), Some(0xBBAA));
    assert_eq!(o.read(0, 0, 0x10, 8), Some(0x0807_0605_0403_0201));
    assert_eq!(
        o.read(0, 0, 0x80, 1),
        None,
        "never written, not zero-filled"
    );
    assert_eq!(o.read(0, 1, 0x84, 1), None);
    // Bytes downward from the top of the address space: every one kept until the capacity.
    let mut o = Overlay::zero_filled();
    for i in 0..Overlay::CAPACITY as u64 {
        assert!(o.write(0, 2, u64::MAX - i, 1, i & 0xFF));
    }
    assert!(
        !o.write(0, 2, 0, 1, 1),
        "a byte past the capacity is refused"
    );
    assert!(
        o.write(0, 2, u64::MAX, 1, 0x5A),
        "a kept byte can still change"
    );
    assert_eq!(o.read(0, 2, u64::MAX - 1, 2), Some(0x5A01));
    assert_eq!(o.read(0, 2, 0, 1), Some(0));
}

#[test]
fn a_package_copied_into_itself_ends_at_the_memory_budget() {
    // Fuzz finding: Method (M) { Local0 = Package (2) { 0, 0 }; Local1 = 0
    //   While (Local1 < 20) { Local0[0] = Local0; Local0[1] = Local0; Local1++ } Return (Local0) }
    // doubles Local0 at each turn; only the top level of each copy was charged, so 2^20 packages
    // (32 MiB here; the fuzzer's went on to 300 MiB and seconds) were made within a 1 MiB budget.
    let body = [
        &[0x70, 0x12, 0x04, 0x02, 0x00, 0x00, 0x60][..],
        &[0x70, 0x00, 0x61],
        &pk(
            &[0xA2],
            &[
                &[0x95, 0x61, 0x0A, 20],
                &[0x70, 0x60, 0x88, 0x60, 0x00, 0x00],
                &[0x70, 0x60, 0x88, 0x60, 0x01, 0x00],
                &[0x75, 0x61],
            ],
        ),
        &[0xA4, 0x60],
    ];
    let t = [dsdt(&[&method(b"M___", 0, &body)])];
    let mut aml = load(&t, false);
    let m = aml.find(0, "\\M").unwrap();
    assert_eq!(
        aml.eval(m, &[]).unwrap_err().kind,
        ErrorKind::Budget(Budget::Memory)
    );
    // Six turns (127 packages, about 8 KiB each copy) fit the budget.
    let small = [dsdt(&[&method(
        b"M___",
        0,
        &[
            &[0x70, 0x12, 0x04, 0x02, 0x00, 0x00, 0x60][..],
            &[0x70, 0x00, 0x61],
            &pk(
                &[0xA2],
                &[
                    &[0x95, 0x61, 0x0A, 6],
                    &[0x70, 0x60, 0x88, 0x60, 0x00, 0x00],
                    &[0x70, 0x60, 0x88, 0x60, 0x01, 0x00],
                    &[0x75, 0x61],
                ],
            ),
            &[0xA4, 0x60],
        ],
    )])];
    let mut aml = load(&small, false);
    let m = aml.find(0, "\\M").unwrap();
    let r = aml.eval(m, &[]);
    assert!(matches!(&r, Ok(Value::Pkg(p)) if p.len() == 2), "{r:?}");
}
