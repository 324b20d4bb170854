//! What PCI interrupt routing asks of the namespace (ACPI 6.5 §6.1.5, §6.2.13, §6.5.5, §6.5.6), the
//! way Linux reads it (`drivers/acpi/pci_root.c`, `pci_irq.c`, `pci_link.c`).

use crate::name::eisa;
use crate::{Aml, Error, ErrorKind, NodeId, Value, ROOT};
use alloc::vec::Vec;

/// An object's evaluated value: `None` when the object does not exist.
pub type Eval<T> = Option<Result<T, Error>>;

/// One `_PRT` entry (ACPI 6.5 §6.2.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrtEntry {
    /// `_ADR`-style address: device number in bits 31:16, function 0xFFFF.
    pub address: u64,
    /// 0-3 for INTA-INTD.
    pub pin: u64,
    /// The link device, or `None` when `index` is the GSI.
    pub source: Option<NodeId>,
    /// The GSI (no source) or the link's resource index.
    pub index: u64,
}

impl PrtEntry {
    /// The device (slot) number.
    pub fn slot(&self) -> u64 {
        (self.address >> 16) & 0xFFFF
    }
}

/// A device with a `_PRT` below a root bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    /// The device.
    pub node: NodeId,
    /// `_ADR` of each device from below the root bridge down to this one.
    pub chain_adr: Vec<Eval<u64>>,
    /// Its `_PRT`.
    pub prt: Result<Vec<PrtEntry>, Error>,
}

/// A PCI root bridge: a Device with `_HID` or `_CID` PNP0A03 or PNP0A08.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootBridge {
    /// The device.
    pub node: NodeId,
    /// `_STA`.
    pub sta: Eval<u64>,
    /// `_BBN`.
    pub bbn: Eval<u64>,
    /// `_SEG`.
    pub seg: Eval<u64>,
    /// `_UID` (an Integer or a String).
    pub uid: Eval<Value>,
    /// `_ADR`.
    pub adr: Eval<u64>,
    /// `_CRS`, the resource template.
    pub crs: Eval<Vec<u8>>,
    /// `_PRT`.
    pub prt: Eval<Vec<PrtEntry>>,
    /// Every device below it with a `_PRT`, in namespace order.
    pub bridges: Vec<Bridge>,
}

impl RootBridge {
    /// The bus-number ranges its `_CRS` gives (producer or consumer: Linux takes both for a host bridge).
    pub fn bus_ranges(&self) -> Vec<(u64, u64)> {
        match &self.crs {
            Some(Ok(b)) => crate::resource::addresses(b)
                .iter()
                .filter(|a| a.rtype == 2)
                .map(|a| (a.min, a.max))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A PNP0C0F interrupt link device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The device.
    pub node: NodeId,
    /// `_STA`.
    pub sta: Eval<u64>,
    /// `_CRS`.
    pub crs: Eval<Vec<u8>>,
}

fn type_error(node: NodeId) -> Error {
    Error {
        kind: ErrorKind::Type,
        table: 0,
        offset: 0,
        scope: node,
    }
}

fn int(aml: &mut Aml, node: NodeId, seg: &[u8; 4]) -> Eval<u64> {
    let r = aml.eval_child(node, seg)?;
    Some(r.and_then(|v| match v {
        Value::Int(i) => Ok(i),
        _ => Err(type_error(node)),
    }))
}

fn buffer(aml: &mut Aml, node: NodeId, seg: &[u8; 4]) -> Eval<Vec<u8>> {
    let r = aml.eval_child(node, seg)?;
    Some(r.and_then(|v| match v {
        Value::Buf(b) => Ok(b),
        _ => Err(type_error(node)),
    }))
}

/// Tells the firmware the OS uses the I/O APIC: `\_PIC(1)` (ACPI 6.5 §5.8.1), so `_PRT` methods take
/// their APIC-mode branch. `None` when there is no `\_PIC`.
pub fn set_apic_mode(aml: &mut Aml) -> Eval<()> {
    let pic = aml.child(ROOT, b"_PIC")?;
    Some(aml.eval(pic, &[Value::Int(1)]).map(drop))
}

fn id_is(v: &Value, ids: &[&[u8; 7]]) -> bool {
    match v {
        Value::Int(i) => ids.iter().any(|id| eisa(id) == *i),
        Value::Str(s) => ids.iter().any(|id| s.as_slice() == id.as_slice()),
        Value::Pkg(p) => p.iter().any(|e| id_is(e, ids)),
        _ => false,
    }
}

/// Whether the device's `_HID` or `_CID` is one of `ids` (EISA-id integer or string form).
pub fn has_id(aml: &mut Aml, node: NodeId, ids: &[&[u8; 7]]) -> bool {
    [b"_HID", b"_CID"]
        .iter()
        .any(|seg| matches!(aml.eval_child(node, seg), Some(Ok(v)) if id_is(&v, ids)))
}

/// A `_PRT` package's entries. An entry that is not a 4-element package of the right types is an
/// error (ACPICA's `AcpiNsCheckPackage` refuses the whole table likewise).
pub fn prt_entries(node: NodeId, v: &Value) -> Result<Vec<PrtEntry>, Error> {
    let Value::Pkg(p) = v else {
        return Err(type_error(node));
    };
    p.iter()
        .map(|e| match e {
            Value::Pkg(f) => match f.as_slice() {
                [Value::Int(a), Value::Int(pin), src, Value::Int(i)] => Ok(PrtEntry {
                    address: *a,
                    pin: *pin,
                    source: match src {
                        Value::Int(_) => None,
                        Value::Node(n) => Some(*n),
                        _ => return Err(type_error(node)),
                    },
                    index: *i,
                }),
                _ => Err(type_error(node)),
            },
            _ => Err(type_error(node)),
        })
        .collect()
}

fn prt(aml: &mut Aml, node: NodeId) -> Eval<Vec<PrtEntry>> {
    let r = aml.eval_child(node, b"_PRT")?;
    Some(r.and_then(|v| prt_entries(node, &v)))
}

/// Every root bridge, in definition order, with what routing needs of it.
pub fn root_bridges(aml: &mut Aml) -> Vec<RootBridge> {
    let mut out = Vec::new();
    for id in 0..aml.len() as NodeId {
        if !aml.is_device(id) || !has_id(aml, id, &[b"PNP0A03", b"PNP0A08"]) {
            continue;
        }
        let mut bridges = Vec::new();
        below(aml, id, &mut Vec::new(), &mut bridges);
        out.push(RootBridge {
            node: id,
            sta: int(aml, id, b"_STA"),
            bbn: int(aml, id, b"_BBN"),
            seg: int(aml, id, b"_SEG"),
            uid: aml.eval_child(id, b"_UID"),
            adr: int(aml, id, b"_ADR"),
            crs: buffer(aml, id, b"_CRS"),
            prt: prt(aml, id),
            bridges,
        });
    }
    out
}

/// Devices below `node` with a `_PRT`, depth first in definition order; `chain` holds the `_ADR`s above.
fn below(aml: &mut Aml, node: NodeId, chain: &mut Vec<Eval<u64>>, out: &mut Vec<Bridge>) {
    if chain.len() >= 16 {
        return;
    }
    let mut kids = aml.children(node);
    kids.reverse();
    for c in kids {
        if !aml.is_device(c) {
            continue;
        }
        chain.push(int(aml, c, b"_ADR"));
        if let Some(p) = prt(aml, c) {
            out.push(Bridge {
                node: c,
                chain_adr: chain.clone(),
                prt: p,
            });
        }
        below(aml, c, chain, out);
        chain.pop();
    }
}

/// Every PNP0C0F link device with its `_STA` and `_CRS`.
pub fn links(aml: &mut Aml) -> Vec<Link> {
    let mut out = Vec::new();
    for id in 0..aml.len() as NodeId {
        if aml.is_device(id) && has_id(aml, id, &[b"PNP0C0F"]) {
            out.push(Link {
                node: id,
                sta: int(aml, id, b"_STA"),
                crs: buffer(aml, id, b"_CRS"),
            });
        }
    }
    out
}
