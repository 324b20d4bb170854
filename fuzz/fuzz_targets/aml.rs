//! The AML evaluator (msifw-aml): a definition block loaded into a namespace, `\_PIC(1)`, every root
//! bridge with its `_STA`/`_BBN`/`_SEG`/`_UID`/`_ADR`/`_CRS`/`_PRT` and every `_PRT` below it, the
//! PNP0C0F links, then every control method of the block called with Zero arguments. Input: a DSDT or
//! SSDT (its length field is set to the input's), or a bare TermList that gets a DSDT header. Seeds:
//! the corpus' DSDTs and SSDTs (`../shared/acpi-corpus`) cut by `make-seeds.py` into pieces of at most
//! 4 KiB along term boundaries, each inside the Scope / Device headers that enclosed it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use msifw_aml::{pci, resource, Aml, Limits, Obj, Overlay, Value};

fuzz_target!(|data: &[u8]| {
    let mut table = Vec::with_capacity(data.len() + 36);
    if data.len() >= 36 && (data.starts_with(b"DSDT") || data.starts_with(b"SSDT")) {
        table.extend_from_slice(data);
    } else {
        table.extend_from_slice(b"DSDT");
        table.extend_from_slice(&[0; 4]);
        table.push(2);
        table.extend_from_slice(&[0; 27]);
        table.extend_from_slice(data);
    }
    let len = table.len() as u32;
    table[4..8].copy_from_slice(&len.to_le_bytes());
    let mut aml = Aml::new(Box::new(Overlay::zero_filled()));
    // Smaller budgets than the default keep each run short; that they hold is what is checked (a run
    // past them is a libFuzzer timeout, out-of-memory or stack overflow).
    aml.limits = Limits { steps: 20_000, depth: 48, memory: 1 << 18, total_steps: 400_000 };
    aml.load(&table).expect("a table with a valid header loads");
    let _ = pci::set_apic_mode(&mut aml);
    for r in pci::root_bridges(&mut aml) {
        let _ = r.bus_ranges();
        for b in r.bridges.iter() {
            if let Ok(p) = &b.prt {
                for e in p {
                    let _ = (e.slot(), e.source.map(|n| aml.path(n)));
                }
            }
        }
    }
    for l in pci::links(&mut aml) {
        if let Some(Ok(c)) = &l.crs {
            let _ = resource::irqs(c);
        }
    }
    // Every method the table defined (ids past the block's own nodes are a method's temporaries).
    let defined = aml.len() as u32;
    for id in 0..defined {
        if let Some(&Obj::Method(_, _, _, args)) = aml.node(id).map(|n| &n.obj) {
            let zeros = vec![Value::Int(0); usize::from(args & 7)];
            if let Ok(v) = aml.eval(id, &zeros) {
                let _ = aml.path(id);
                if let Value::Buf(b) = v {
                    let _ = resource::irqs(&b);
                    let _ = resource::addresses(&b);
                }
            }
        }
    }
});
