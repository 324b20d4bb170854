//! The namespace and the interpreter (ACPI 6.5 §5.3 namespace, §19.6 operators, §20 AML grammar).
//!
//! Tables are executed in place: loading runs each table's TermList at module level (definitions create
//! nodes; Name data, region offsets and method bodies are kept as byte positions and evaluated when first
//! used, as ACPICA defers them); a method call runs its body's bytes with its own Args and Locals. Named
//! objects a method creates (`Name`, `CreateDWordField`, ...) are nodes below the method, removed when it
//! returns. A "dry" parse (operands parsed, nothing executed) skips a term whose evaluation failed at module
//! level, so one bad term costs only itself.

use crate::name::{self, NameStr};
use crate::{Budget, Error, ErrorKind, Regions, Value};
use alloc::{boxed::Box, string::String, vec, vec::Vec};
use core::cmp::Ordering;

/// A node of the namespace, by index. Nodes a method creates are reused after it returns, so a
/// [`Value::Node`] kept past its evaluation may name another node; lookups never panic on any id.
pub type NodeId = u32;
/// The root scope `\`.
pub const ROOT: NodeId = 0;
const NONE: NodeId = u32::MAX;
/// The pseudo address space of a DataTableRegion (no field of one is answered).
const DATA_TABLE: u8 = 0xFE;

/// Budgets of one evaluation (one [`Aml::eval`] call, or one module-level term while loading).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Terms executed.
    pub steps: u32,
    /// Nesting of terms and calls (each level costs stack).
    pub depth: u16,
    /// Bytes of strings, buffers, package elements and temporary nodes created.
    pub memory: u32,
    /// Terms executed by all evaluations and loads of this namespace together: a table whose every
    /// device has a `_HID` method running to its step budget still ends in bounded time.
    pub total_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            steps: 1_000_000,
            depth: 48,
            memory: 1 << 20,
            total_steps: 200_000_000,
        }
    }
}

/// What a named object is.
#[derive(Clone, Debug)]
pub enum Obj {
    /// `\`, a predefined scope or one a `Scope` opened, with nothing else known.
    Scope,
    /// `Device`.
    Device,
    /// `Processor`, `PowerResource`, `ThermalZone`: scopes with children, nothing routing reads.
    Container,
    /// `Name` with its (possibly stored-to) value.
    Name(Value),
    /// `Name` whose data object, at this table and offset, is evaluated when first read.
    LazyName(u16, u32),
    /// `Method`: table, body start and end, argument count.
    Method(u16, u32, u32, u8),
    /// `External` not (yet) defined: object type and, for a method, its argument count.
    External(u8, u8),
    /// `Alias` of this node.
    Alias(NodeId),
    /// `OperationRegion`: space, table and offset of its offset TermArg, the offset once evaluated.
    Region(u8, u16, u32, Option<u64>),
    /// A field unit of a region: region, bit offset, bit length, access type.
    Field(NodeId, u32, u32, u8),
    /// An IndexField unit: index field, data field, bit offset, bit length, access type.
    IndexField(NodeId, NodeId, u32, u32, u8),
    /// A buffer field: the buffer, bit offset, bit length.
    BufferField(Slot, u32, u32),
    /// `Mutex` or `Event`.
    Sync,
    /// The predefined `\_OSI` method.
    Osi,
}

/// Where a value lives: a Local or Arg of the running method, or a named object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `Local0`-`Local7`.
    Local(u8),
    /// `Arg0`-`Arg6`.
    Arg(u8),
    /// A named object.
    Node(NodeId),
}

#[derive(Clone, Copy, Debug)]
enum Place {
    Null,
    Slot(Slot),
    Elem(Slot, u32),
    Missing,
}

/// One node: its segment, parent, first child and next sibling, and the object.
#[derive(Clone, Debug)]
pub struct Node {
    /// The 4-byte name segment.
    pub seg: [u8; 4],
    /// The parent (the root's is itself).
    pub parent: NodeId,
    first: NodeId,
    next: NodeId,
    /// The older node of the same parent and segment this one hides from lookups (a method's temporary
    /// names), given back to the [`Index`] when this one is removed.
    shadow: NodeId,
    /// The object.
    pub obj: Obj,
}

/// Child lookup by (parent, segment) in constant time: without it every name a table defines or a method
/// uses walked its scope's list of children, quadratic in the size of a scope (a 645 KB DSDT took 20 ms to
/// load, 94 % of it in that walk). An open-addressed table with linear probing, at most half full, of the
/// newest node of each key.
#[derive(Default)]
struct Index {
    slots: Vec<NodeId>,
    len: usize,
}

fn key_of(nodes: &[Node], id: NodeId) -> Option<(NodeId, [u8; 4])> {
    nodes.get(id as usize).map(|n| (n.parent, n.seg))
}

fn home(key: (NodeId, [u8; 4]), mask: usize) -> usize {
    let k = (u64::from(key.0) << 32) | u64::from(u32::from_le_bytes(key.1));
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

impl Index {
    /// The slot holding the node of `key`, or the empty slot where it would go.
    fn probe(&self, nodes: &[Node], key: (NodeId, [u8; 4])) -> usize {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = home(key, mask);
        // Never full (at most half), so an empty slot ends the probe.
        for _ in 0..self.slots.len() {
            match self.slots.get(i) {
                Some(&id) if id != NONE && key_of(nodes, id) != Some(key) => i = (i + 1) & mask,
                _ => break,
            }
        }
        i
    }

    fn get(&self, nodes: &[Node], key: (NodeId, [u8; 4])) -> Option<NodeId> {
        let id = *self.slots.get(self.probe(nodes, key))?;
        (id != NONE).then_some(id)
    }

    /// Makes `id` (already in `nodes`) the node of its key; returns the node it hides, or `NONE`.
    fn insert(&mut self, nodes: &[Node], id: NodeId) -> NodeId {
        if (self.len + 1) * 2 > self.slots.len() {
            let cap = (self.slots.len() * 2).max(64);
            let old = core::mem::replace(&mut self.slots, vec![NONE; cap]);
            for o in old.into_iter().filter(|&o| o != NONE) {
                let at = key_of(nodes, o).map(|k| self.probe(nodes, k));
                if let Some(slot) = at.and_then(|i| self.slots.get_mut(i)) {
                    *slot = o;
                }
            }
        }
        let Some(key) = key_of(nodes, id) else {
            return NONE;
        };
        let i = self.probe(nodes, key);
        let Some(slot) = self.slots.get_mut(i) else {
            return NONE;
        };
        let hidden = core::mem::replace(slot, id);
        if hidden == NONE {
            self.len += 1;
        }
        hidden
    }

    /// Takes `id` (still in `nodes`, the newest of its key: nodes go in reverse order of creation) out,
    /// giving its key back to the node it hid. An emptied slot is refilled from the probe run after it
    /// (backward-shift deletion), so no probe stops short.
    fn remove(&mut self, nodes: &[Node], id: NodeId) {
        let Some(key) = key_of(nodes, id) else {
            return;
        };
        let mut i = self.probe(nodes, key);
        if self.slots.get(i) != Some(&id) {
            return;
        }
        if let Some(hidden) = nodes
            .get(id as usize)
            .map(|n| n.shadow)
            .filter(|&h| h != NONE)
        {
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = hidden;
            }
            return;
        }
        self.len -= 1;
        let mask = self.slots.len().wrapping_sub(1);
        let mut j = i;
        for _ in 0..self.slots.len() {
            j = (j + 1) & mask;
            let Some(&o) = self.slots.get(j).filter(|&&o| o != NONE) else {
                break;
            };
            let Some(k) = key_of(nodes, o).map(|k| home(k, mask)) else {
                break;
            };
            // The entry at j stays unless its home lies cyclically outside (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                if let Some(slot) = self.slots.get_mut(i) {
                    *slot = o;
                }
                i = j;
            }
        }
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = NONE;
        }
    }
}

#[derive(Default)]
struct Frame {
    args: [Value; 7],
    locals: [Value; 8],
}

enum Ctl {
    Err(Error),
    Ret(Value),
    Break,
    Continue,
}

type R<T> = Result<T, Ctl>;

/// The namespace of the loaded tables and the interpreter over it.
pub struct Aml<'a> {
    tables: Vec<&'a [u8]>,
    nodes: Vec<Node>,
    index: Index,
    regions: Box<dyn Regions + 'a>,
    ones: u64,
    /// The budgets of each evaluation.
    pub limits: Limits,
    problems: Vec<Error>,
    problem_count: u32,
    code: &'a [u8],
    tab: u16,
    scope: NodeId,
    frames: Vec<Frame>,
    steps: u32,
    total: u64,
    depth: u16,
    mem: u32,
    dry: u16,
    loops: u16,
}

impl core::fmt::Debug for Aml<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aml")
            .field("tables", &self.tables.len())
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// Packages nest at most this deep: a package stored into itself in a loop would otherwise make
/// clone and drop recurse without bound.
const MAX_NEST: u32 = 32;

fn nest_ok(v: &Value, left: u32) -> bool {
    match v {
        Value::Pkg(p) => left > 0 && p.iter().all(|e| nest_ok(e, left - 1)),
        _ => true,
    }
}

/// The problems a load keeps (the count goes on).
const MAX_PROBLEMS: usize = 64;

fn is_scope(o: &Obj) -> bool {
    matches!(o, Obj::Scope | Obj::Device | Obj::Container)
}

fn width_bytes(access: u8) -> u64 {
    match access & 0x0F {
        2 => 2,
        3 => 4,
        4 => 8,
        _ => 1,
    }
}

fn get_bit(b: &[u8], i: u64) -> bool {
    b.get((i / 8) as usize)
        .is_some_and(|x| x >> (i % 8) & 1 != 0)
}

fn set_bit(b: &mut [u8], i: u64, v: bool) {
    if let Some(x) = b.get_mut((i / 8) as usize) {
        let m = 1 << (i % 8);
        *x = if v { *x | m } else { *x & !m };
    }
}

fn le(b: &[u8], n: usize) -> u64 {
    b.iter()
        .take(n)
        .enumerate()
        .fold(0, |a, (i, &x)| a | u64::from(x) << (8 * i))
}

fn hex_digit(v: u64) -> u8 {
    b"0123456789ABCDEF"
        .get((v & 0xF) as usize)
        .copied()
        .unwrap_or(b'0')
}

/// ACPICA's default `_OSI` answers for the strings firmware asks about.
fn osi(s: &[u8]) -> bool {
    s.starts_with(b"Windows 20")
        || matches!(
            s,
            b"Module Device"
                | b"Processor Device"
                | b"3.0 Thermal Model"
                | b"3.0 _SCP Extensions"
                | b"Processor Aggregator Device"
                | b"Extended Address Space Descriptor"
        )
}

impl<'a> Aml<'a> {
    /// An empty namespace with the predefined scopes and objects (ACPI 6.5 §5.3.1, §5.7); operation
    /// regions are answered by `regions`.
    pub fn new(regions: Box<dyn Regions + 'a>) -> Self {
        let mut a = Self {
            tables: Vec::new(),
            nodes: Vec::new(),
            index: Index::default(),
            regions,
            ones: u64::MAX,
            limits: Limits::default(),
            problems: Vec::new(),
            problem_count: 0,
            code: &[],
            tab: 0,
            scope: ROOT,
            frames: Vec::new(),
            steps: 0,
            total: 0,
            depth: 0,
            mem: 0,
            dry: 0,
            loops: 0,
        };
        a.nodes.push(Node {
            seg: *b"\\___",
            parent: ROOT,
            first: NONE,
            next: NONE,
            shadow: NONE,
            obj: Obj::Scope,
        });
        for (seg, obj) in [
            (b"_GPE", Obj::Scope),
            (b"_PR_", Obj::Scope),
            (b"_SB_", Obj::Scope),
            (b"_SI_", Obj::Scope),
            (b"_TZ_", Obj::Scope),
            (b"_OSI", Obj::Osi),
            (
                b"_OS_",
                Obj::Name(Value::Str(b"Microsoft Windows NT".to_vec())),
            ),
            (b"_REV", Obj::Name(Value::Int(2))),
            (b"_GL_", Obj::Sync),
        ] {
            a.link(ROOT, *seg, obj);
        }
        a
    }

    fn link(&mut self, parent: NodeId, seg: [u8; 4], obj: Obj) -> NodeId {
        let id = self.nodes.len() as NodeId;
        let next = self.nodes.get(parent as usize).map_or(NONE, |p| p.first);
        self.nodes.push(Node {
            seg,
            parent,
            first: NONE,
            next,
            shadow: NONE,
            obj,
        });
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.first = id;
        }
        let hidden = self.index.insert(&self.nodes, id);
        if let Some(n) = self.nodes.get_mut(id as usize) {
            n.shadow = hidden;
        }
        id
    }

    /// Loads a DSDT or SSDT (header checked: signature, length) and runs its module-level code. What
    /// fails inside (a name defined twice, a scope that does not exist, a term that cannot be evaluated)
    /// is kept in [`Aml::problems`] and the rest of the table still loads.
    pub fn load(&mut self, table: &'a [u8]) -> Result<(), Error> {
        let bad = Error {
            kind: ErrorKind::Malformed,
            table: self.tables.len() as u16,
            offset: 0,
            scope: ROOT,
        };
        let sig = table.get(..4).ok_or(bad)?;
        let len = table.get(4..8).map_or(0, |b| le(b, 4) as usize);
        if !(sig == b"DSDT" || sig == b"SSDT") || len < 36 || len > table.len() {
            return Err(bad);
        }
        if sig == b"DSDT" && table.get(8).is_some_and(|&r| r < 2) {
            // ACPI 6.5 §5.2.11.1: a DSDT revision below 2 means 32-bit integers everywhere.
            self.ones = 0xFFFF_FFFF;
        }
        let code = table.get(..len).ok_or(bad)?;
        self.tables.push(code);
        self.code = code;
        self.tab = bad.table;
        self.scope = ROOT;
        self.frames.clear();
        let mut pos = 36;
        self.load_list(&mut pos, len);
        Ok(())
    }

    /// What went wrong while loading (the first 64) and how many things did.
    pub fn problems(&self) -> (&[Error], u32) {
        (&self.problems, self.problem_count)
    }

    fn problem(&mut self, e: Error) {
        self.problem_count = self.problem_count.saturating_add(1);
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(e);
        }
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    /// Number of nodes (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// The child of `parent` named `seg`, aliases followed.
    pub fn child(&self, parent: NodeId, seg: &[u8]) -> Option<NodeId> {
        let c = self
            .index
            .get(&self.nodes, (parent, seg.try_into().ok()?))?;
        self.follow(c)
    }

    /// The children of `parent`, most recently defined first.
    pub fn children(&self, parent: NodeId) -> Vec<NodeId> {
        let mut v = Vec::new();
        let mut c = self.nodes.get(parent as usize).map_or(NONE, |n| n.first);
        while c != NONE && v.len() < self.nodes.len() {
            v.push(c);
            c = self.nodes.get(c as usize).map_or(NONE, |n| n.next);
        }
        v
    }

    fn follow(&self, mut id: NodeId) -> Option<NodeId> {
        for _ in 0..8 {
            match self.nodes.get(id as usize)?.obj {
                Obj::Alias(t) => id = t,
                _ => return Some(id),
            }
        }
        None
    }

    fn parent(&self, id: NodeId) -> Option<NodeId> {
        (id != ROOT).then(|| self.nodes.get(id as usize).map(|n| n.parent))?
    }

    fn resolve(&self, scope: NodeId, n: &NameStr) -> Option<NodeId> {
        let mut s = if n.root { ROOT } else { scope };
        for _ in 0..n.up {
            s = self.parent(s)?;
        }
        if n.searches_up() {
            // ACPI 6.5 §5.3: a single segment is looked for in the scope, then each parent up to the root.
            loop {
                if let Some(c) = self.child(s, n.segs) {
                    return Some(c);
                }
                s = self.parent(s)?;
            }
        }
        for seg in n.segs.chunks(4) {
            s = self.child(s, seg)?;
        }
        Some(s)
    }

    /// The node a path like `\_SB.PCI0`, `\_SB_.PCI0._PRT`, `^LNKA` or `LNKA` names from `scope`, a single
    /// segment searched upward (ACPI 6.5 §5.3); segments shorter than 4 are padded with `_`.
    pub fn find(&self, scope: NodeId, path: &str) -> Option<NodeId> {
        let root = path.starts_with('\\');
        let rest = path.trim_start_matches('\\');
        let up = rest.bytes().take_while(|&b| b == b'^').count();
        let mut segs = Vec::new();
        for part in rest.get(up..)?.split('.').filter(|p| !p.is_empty()) {
            let mut seg = *b"____";
            let n = part.len().min(4);
            seg.get_mut(..n)?.copy_from_slice(part.as_bytes().get(..n)?);
            segs.extend_from_slice(&seg);
        }
        let n = NameStr {
            root,
            up: up as u16,
            segs: &segs,
        };
        self.resolve(if root { ROOT } else { scope }, &n)
    }

    /// The node's path as ACPICA prints it: `\_SB.PCI0` (trailing `_` of each segment left out).
    pub fn path(&self, mut id: NodeId) -> String {
        let mut segs = Vec::new();
        while id != ROOT && segs.len() < 256 {
            let Some(n) = self.nodes.get(id as usize) else {
                break;
            };
            segs.push(n.seg);
            id = n.parent;
        }
        let mut s = String::from("\\");
        for (i, seg) in segs.iter().rev().enumerate() {
            if i > 0 {
                s.push('.');
            }
            let keep = seg.iter().rposition(|&b| b != b'_').map_or(1, |p| p + 1);
            s.extend(seg.iter().take(keep).map(|&b| char::from(b)));
        }
        s
    }

    /// Whether the node is a `Device`.
    pub fn is_device(&self, id: NodeId) -> bool {
        self.nodes
            .get(id as usize)
            .is_some_and(|n| matches!(n.obj, Obj::Device))
    }

    /// Evaluates a node: calls a method with `args`, reads a field or a `Name`'s value, or gives a
    /// reference to anything else. A fresh budget ([`Aml::limits`]) for each call.
    pub fn eval(&mut self, id: NodeId, args: &[Value]) -> Result<Value, Error> {
        self.reset_budget();
        self.frames.clear();
        self.scope = id;
        let r = match self.nodes.get(id as usize).map(|n| &n.obj) {
            Some(Obj::Method(..) | Obj::Osi) => self.call(id, args.to_vec(), 0),
            _ => self.read_node(id, 0),
        };
        match r {
            Ok(v) | Err(Ctl::Ret(v)) => Ok(v),
            Err(Ctl::Err(e)) => Err(e),
            Err(Ctl::Break | Ctl::Continue) => Ok(Value::None),
        }
    }

    /// Evaluates `seg` below `id` if it exists.
    pub fn eval_child(&mut self, id: NodeId, seg: &[u8; 4]) -> Option<Result<Value, Error>> {
        let c = self.child(id, seg)?;
        Some(self.eval(c, &[]))
    }

    fn reset_budget(&mut self) {
        self.steps = 0;
        self.depth = 0;
        self.mem = 0;
        self.dry = 0;
        self.loops = 0;
    }

    // ---- errors and budgets ----

    fn err0(&self, kind: ErrorKind, at: usize) -> Error {
        Error {
            kind,
            table: self.tab,
            offset: at as u32,
            scope: self.scope,
        }
    }

    fn err(&self, kind: ErrorKind, at: usize) -> Ctl {
        Ctl::Err(self.err0(kind, at))
    }

    fn memory_left(&self) -> usize {
        self.limits.memory.saturating_sub(self.mem) as usize
    }

    fn charge(&mut self, bytes: usize, at: usize) -> R<()> {
        self.mem = self.mem.saturating_add(bytes.min(u32::MAX as usize) as u32);
        if self.mem > self.limits.memory {
            return Err(self.err(ErrorKind::Budget(Budget::Memory), at));
        }
        Ok(())
    }

    fn byte(&self, at: usize) -> R<u8> {
        self.code
            .get(at)
            .copied()
            .ok_or_else(|| self.err(ErrorKind::Malformed, at))
    }

    fn bytes(&self, pos: &mut usize, n: usize) -> R<u64> {
        let b = self
            .code
            .get(*pos..pos.saturating_add(n))
            .ok_or_else(|| self.err(ErrorKind::Malformed, *pos))?;
        *pos += n;
        Ok(le(b, n))
    }

    fn pkg_end(&self, pos: &mut usize) -> R<usize> {
        let at = *pos;
        name::parse_pkg_end(self.code, pos, self.code.len())
            .ok_or_else(|| self.err(ErrorKind::Malformed, at))
    }

    fn name(&self, pos: &mut usize) -> R<NameStr<'a>> {
        let at = *pos;
        let code: &'a [u8] = self.code;
        name::parse_name(code, pos).ok_or_else(|| self.err(ErrorKind::Malformed, at))
    }

    // ---- lists ----

    /// Module-level code: each term on its own budget; one that fails is recorded and skipped.
    fn load_list(&mut self, pos: &mut usize, end: usize) {
        while *pos < end {
            let at = *pos;
            if self.loops == 0 {
                // Each module-level term is one evaluation; inside a module-level While the loop's
                // budget goes on.
                (self.steps, self.mem) = (0, 0);
            }
            match self.term(pos) {
                Ok(_) | Err(Ctl::Ret(_) | Ctl::Break | Ctl::Continue) => {}
                Err(Ctl::Err(e)) => {
                    self.problem(e);
                    *pos = at;
                    if self.loops == 0 {
                        (self.steps, self.mem) = (0, 0);
                    }
                    self.dry += 1;
                    let skipped = self.term(pos);
                    self.dry -= 1;
                    if skipped.is_err() || *pos <= at {
                        *pos = end;
                    }
                }
            }
        }
        *pos = end;
    }

    fn term_list(&mut self, pos: &mut usize, end: usize) -> R<()> {
        while *pos < end {
            self.term(pos)?;
        }
        if *pos != end {
            return Err(self.err(ErrorKind::Malformed, end));
        }
        Ok(())
    }

    /// A definition's body: module-level code while loading, else part of the running method.
    fn body(&mut self, pos: &mut usize, end: usize) -> R<()> {
        if self.frames.is_empty() {
            self.load_list(pos, end);
            Ok(())
        } else {
            self.term_list(pos, end)
        }
    }

    fn in_scope(&mut self, id: NodeId, pos: &mut usize, end: usize) -> R<()> {
        let saved = core::mem::replace(&mut self.scope, id);
        let r = self.body(pos, end);
        self.scope = saved;
        r
    }

    // ---- terms ----

    fn term(&mut self, pos: &mut usize) -> R<Value> {
        #[cfg(test)]
        {
            let marker = 0u8;
            stack::note(core::hint::black_box(&marker) as *const u8 as usize);
        }
        self.steps = self.steps.saturating_add(1);
        self.total = self.total.saturating_add(1);
        if self.steps > self.limits.steps || self.total > self.limits.total_steps {
            return Err(self.err(ErrorKind::Budget(Budget::Steps), *pos));
        }
        if self.depth >= self.limits.depth {
            return Err(self.err(ErrorKind::Budget(Budget::Depth), *pos));
        }
        self.depth += 1;
        let r = self.term_inner(pos);
        self.depth = self.depth.saturating_sub(1);
        r
    }

    fn int_arg(&mut self, pos: &mut usize) -> R<u64> {
        let at = *pos;
        let v = self.term(pos)?;
        if self.dry > 0 {
            return Ok(0);
        }
        self.to_int(&v, at)
    }

    fn term_inner(&mut self, pos: &mut usize) -> R<Value> {
        let at = *pos;
        let op = self.byte(at)?;
        *pos += 1;
        let v = match op {
            0x00 => Value::Int(0),
            0x01 => Value::Int(1),
            0xFF => Value::Int(self.ones),
            0x0A => Value::Int(self.bytes(pos, 1)?),
            0x0B => Value::Int(self.bytes(pos, 2)?),
            0x0C => Value::Int(self.bytes(pos, 4)?),
            0x0E => Value::Int(self.bytes(pos, 8)? & self.ones),
            0x0D => {
                let rest = self.code.get(*pos..).unwrap_or(&[]);
                let n = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| self.err(ErrorKind::Malformed, at))?;
                *pos += n + 1;
                if self.dry > 0 {
                    return Ok(Value::Int(0));
                }
                self.charge(n, at)?;
                Value::Str(rest.get(..n).unwrap_or(&[]).to_vec())
            }
            0x11 => {
                let end = self.pkg_end(pos)?;
                let size = self.int_arg(pos)?;
                let init = self.code.get(*pos..end).unwrap_or(&[]);
                *pos = end;
                if self.dry > 0 {
                    return Ok(Value::Int(0));
                }
                self.charge(size as usize, at)?;
                let mut b = vec![0u8; size as usize];
                for (d, s) in b.iter_mut().zip(init) {
                    *d = *s;
                }
                Value::Buf(b)
            }
            0x12 | 0x13 => self.package(op, pos)?,
            0x06 => {
                let src = self.name(pos)?;
                let new = self.name(pos)?;
                if self.dry == 0 {
                    let t = self
                        .resolve(self.scope, &src)
                        .ok_or_else(|| self.err(ErrorKind::NotFound, at))?;
                    self.create(&new, Obj::Alias(t), at)?;
                }
                Value::None
            }
            0x08 => {
                let n = self.name(pos)?;
                let data = *pos;
                self.dry += 1;
                let r = self.term(pos);
                self.dry -= 1;
                r?;
                if self.dry == 0 {
                    if self.frames.is_empty() {
                        self.create(&n, Obj::LazyName(self.tab, data as u32), at)?;
                    } else {
                        let mut p = data;
                        let v = self.term(&mut p)?;
                        self.create(&n, Obj::Name(v), at)?;
                    }
                }
                Value::None
            }
            0x10 => {
                let end = self.pkg_end(pos)?;
                let n = self.name(pos)?;
                if self.dry > 0 {
                    *pos = end;
                    return Ok(Value::None);
                }
                let Some(id) = self.resolve(self.scope, &n) else {
                    *pos = end;
                    return Err(self.err(ErrorKind::NotFound, at));
                };
                if let Some(node) = self.nodes.get_mut(id as usize) {
                    if let Obj::External(..) = node.obj {
                        node.obj = Obj::Scope;
                    }
                }
                self.in_scope(id, pos, end)?;
                Value::None
            }
            0x14 => {
                let end = self.pkg_end(pos)?;
                let n = self.name(pos)?;
                let flags = self.byte(*pos)?;
                *pos += 1;
                let m = Obj::Method(self.tab, *pos as u32, end as u32, flags & 7);
                *pos = end;
                self.create(&n, m, at)?;
                Value::None
            }
            0x15 => {
                let n = self.name(pos)?;
                let kind = self.byte(*pos)?;
                let args = self.byte(*pos + 1)?;
                *pos += 2;
                if self.dry == 0 && self.resolve_exact(&n).is_none() {
                    // Only where nothing is defined yet; a later definition replaces it.
                    let _ = self.create(&n, Obj::External(kind, args & 7), at);
                }
                Value::None
            }
            0x60..=0x6E => {
                if self.dry > 0 {
                    return Ok(Value::Int(0));
                }
                let slot = if op < 0x68 {
                    Slot::Local(op - 0x60)
                } else {
                    Slot::Arg(op - 0x68)
                };
                self.read_slot(slot, at)?
            }
            0xA0 => return self.if_else(pos),
            0xA1 => {
                // An Else without its If: skipped.
                *pos = self.pkg_end(pos)?;
                Value::None
            }
            0xA2 => return self.while_loop(pos),
            0xA3 | 0xCC => Value::None,
            0xA4 => {
                let v = self.term(pos)?;
                if self.dry > 0 {
                    return Ok(Value::None);
                }
                return Err(Ctl::Ret(v));
            }
            0xA5 if self.dry == 0 => return Err(Ctl::Break),
            0x9F if self.dry == 0 => return Err(Ctl::Continue),
            0xA5 | 0x9F => Value::None,
            0x5B => {
                let e = self.byte(*pos)?;
                *pos += 1;
                return self.ext_op(e, pos, at);
            }
            b if name::starts_name(b) => {
                *pos = at;
                return self.name_term(pos);
            }
            0x70..=0x9E => return self.expr(op, pos, at),
            _ => return Err(self.err(ErrorKind::UnknownOpcode(op.into()), at)),
        };
        Ok(v)
    }

    /// Whether the NameString at `at` names a method (so it is a call, not a reference).
    fn is_call(&self, at: usize) -> bool {
        let mut p = at;
        name::parse_name(self.code, &mut p)
            .and_then(|n| self.resolve(self.scope, &n))
            .and_then(|id| self.nodes.get(id as usize))
            .is_some_and(|n| matches!(n.obj, Obj::Method(..) | Obj::Osi | Obj::External(8, _)))
    }

    fn resolve_exact(&self, n: &NameStr) -> Option<NodeId> {
        if n.searches_up() {
            self.child(self.scope, n.segs)
        } else {
            self.resolve(self.scope, n)
        }
    }

    /// Creates a named object (none while dry). An `External` is replaced; a scope-like object that
    /// exists is entered; anything else defined twice is [`ErrorKind::Exists`].
    fn create(&mut self, n: &NameStr, obj: Obj, at: usize) -> R<NodeId> {
        if self.dry > 0 {
            return Ok(NONE);
        }
        let seg_at = n.segs.len().saturating_sub(4);
        let last: [u8; 4] = n
            .segs
            .get(seg_at..)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.err(ErrorKind::Malformed, at))?;
        // The parent: `\`, `^`... and every segment but the last, without search.
        let mut parent = if n.root { ROOT } else { self.scope };
        for _ in 0..n.up {
            parent = self
                .parent(parent)
                .ok_or_else(|| self.err(ErrorKind::NotFound, at))?;
        }
        for seg in n.segs.get(..seg_at).unwrap_or(&[]).chunks(4) {
            parent = self
                .child(parent, seg)
                .ok_or_else(|| self.err(ErrorKind::NotFound, at))?;
        }
        if let Some(id) = self.child(parent, &last) {
            let Some(node) = self.nodes.get_mut(id as usize) else {
                return Err(self.err(ErrorKind::NotFound, at));
            };
            if matches!(node.obj, Obj::External(..)) {
                node.obj = obj;
                return Ok(id);
            }
            if is_scope(&node.obj) && is_scope(&obj) {
                return Ok(id);
            }
            return Err(self.err(ErrorKind::Exists, at));
        }
        self.charge(core::mem::size_of::<Node>(), at)?;
        Ok(self.link(parent, last, obj))
    }

    fn if_else(&mut self, pos: &mut usize) -> R<Value> {
        let end = self.pkg_end(pos)?;
        let pred_at = *pos;
        let pred = self.term(pos);
        // An Else right after the If belongs to it.
        let mut else_end = None;
        if self.code.get(end) == Some(&0xA1) {
            let mut p = end + 1;
            let e = self.pkg_end(&mut p)?;
            else_end = Some((p, e));
        }
        let after = else_end.map_or(end, |(_, e)| e);
        if self.dry > 0 {
            pred?;
            *pos = after;
            return Ok(Value::None);
        }
        let pred = match pred {
            Ok(v) => self.to_int(&v, pred_at)?,
            Err(e) => {
                *pos = after;
                return Err(e);
            }
        };
        if pred != 0 {
            self.body(pos, end)?;
        } else if let Some((mut p, e)) = else_end {
            self.body(&mut p, e)?;
        }
        *pos = after;
        Ok(Value::None)
    }

    fn while_loop(&mut self, pos: &mut usize) -> R<Value> {
        let end = self.pkg_end(pos)?;
        let start = *pos;
        if self.dry > 0 {
            *pos = end;
            return Ok(Value::None);
        }
        self.loops += 1;
        let r = self.iterate(start, end);
        self.loops -= 1;
        r?;
        *pos = end;
        Ok(Value::None)
    }

    fn iterate(&mut self, start: usize, end: usize) -> R<()> {
        loop {
            let mut p = start;
            if self.int_arg(&mut p)? == 0 {
                return Ok(());
            }
            match self.term_list(&mut p, end) {
                Ok(()) | Err(Ctl::Continue) => {}
                Err(Ctl::Break) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn package(&mut self, op: u8, pos: &mut usize) -> R<Value> {
        let at = *pos - 1;
        let end = self.pkg_end(pos)?;
        let count = if op == 0x12 {
            let n = self.byte(*pos)?;
            *pos += 1;
            u64::from(n)
        } else {
            self.int_arg(pos)?
        };
        let dry = self.dry > 0;
        if !dry {
            self.charge(
                (count as usize).saturating_mul(core::mem::size_of::<Value>()),
                at,
            )?;
        }
        let mut v = Vec::new();
        while *pos < end {
            let b = self.byte(*pos)?;
            let el = if name::starts_name(b) {
                // A name in a package is a reference, never a call (ACPI 6.5 §19.6.102).
                let n = self.name(pos)?;
                if dry {
                    Value::None
                } else {
                    self.resolve(self.scope, &n)
                        .map_or(Value::None, Value::Node)
                }
            } else {
                self.term(pos)?
            };
            if !dry && (v.len() as u64) < count {
                if !nest_ok(&el, MAX_NEST - 1) {
                    return Err(self.err(ErrorKind::Budget(Budget::Depth), at));
                }
                v.push(el);
            }
        }
        if *pos != end {
            return Err(self.err(ErrorKind::Malformed, end));
        }
        if dry {
            return Ok(Value::Int(0));
        }
        v.resize(count as usize, Value::None);
        Ok(Value::Pkg(v))
    }

    fn name_term(&mut self, pos: &mut usize) -> R<Value> {
        let at = *pos;
        let n = self.name(pos)?;
        let id = self.resolve(self.scope, &n);
        let args = match id.and_then(|i| self.nodes.get(i as usize)).map(|x| &x.obj) {
            Some(Obj::Method(_, _, _, a) | Obj::External(8, a)) => *a,
            Some(Obj::Osi) => 1,
            _ => 0,
        };
        let mut vals = Vec::new();
        for _ in 0..args {
            vals.push(self.term(pos)?);
        }
        if self.dry > 0 {
            return Ok(Value::Int(0));
        }
        let id = id.ok_or_else(|| self.err(ErrorKind::NotFound, at))?;
        match self.nodes.get(id as usize).map(|x| &x.obj) {
            Some(Obj::Method(..) | Obj::Osi | Obj::External(8, _)) => self.call(id, vals, at),
            _ => self.read_node(id, at),
        }
    }

    fn call(&mut self, id: NodeId, args: Vec<Value>, at: usize) -> R<Value> {
        let (t, start, end) = match self.nodes.get(id as usize).map(|n| &n.obj) {
            Some(Obj::Method(t, s, e, _)) => (*t, *s as usize, *e as usize),
            Some(Obj::Osi) => {
                let yes = matches!(args.first(), Some(Value::Str(s)) if osi(s));
                return Ok(Value::Int(if yes { self.ones } else { 0 }));
            }
            _ => return Err(self.err(ErrorKind::NotFound, at)),
        };
        let code = self
            .tables
            .get(t as usize)
            .copied()
            .ok_or_else(|| self.err(ErrorKind::Malformed, at))?;
        let mut frame = Frame::default();
        for (d, s) in frame.args.iter_mut().zip(args) {
            *d = s;
        }
        self.frames.push(frame);
        let saved = (self.code, self.tab, self.scope);
        (self.code, self.tab, self.scope) = (code, t, id);
        let mark = self.nodes.len();
        let mut p = start;
        let r = self.term_list(&mut p, end);
        // Names the method created go with it (ACPI 6.5 §5.5.2.3).
        while self.nodes.len() > mark {
            let gone = self.nodes.len() as NodeId - 1;
            self.index.remove(&self.nodes, gone);
            if let Some(n) = self.nodes.pop() {
                if let Some(parent) = self.nodes.get_mut(n.parent as usize) {
                    if parent.first == gone {
                        parent.first = n.next;
                    }
                }
            }
        }
        (self.code, self.tab, self.scope) = saved;
        self.frames.pop();
        match r {
            Ok(()) | Err(Ctl::Break | Ctl::Continue) => Ok(Value::None),
            Err(Ctl::Ret(v)) => Ok(v),
            Err(e) => Err(e),
        }
    }

    // ---- values in places ----

    fn frame(&mut self, at: usize) -> R<&mut Frame> {
        let e = self.err(ErrorKind::Type, at);
        self.frames.last_mut().ok_or(e)
    }

    fn slot_ref(&mut self, s: Slot, at: usize) -> R<&mut Value> {
        let e = self.err(ErrorKind::Type, at);
        match s {
            Slot::Local(i) => self.frame(at)?.locals.get_mut(i as usize).ok_or(e),
            Slot::Arg(i) => self.frame(at)?.args.get_mut(i as usize).ok_or(e),
            Slot::Node(id) => {
                self.force(id, at)?;
                match self.nodes.get_mut(id as usize).map(|n| &mut n.obj) {
                    Some(Obj::Name(v)) => Ok(v),
                    _ => Err(e),
                }
            }
        }
    }

    /// Evaluates a lazily kept `Name` data object in the Name's scope.
    fn force(&mut self, id: NodeId, at: usize) -> R<()> {
        let Some(Obj::LazyName(t, data)) = self.nodes.get(id as usize).map(|n| &n.obj) else {
            return Ok(());
        };
        let (t, data) = (*t, *data as usize);
        let code = self
            .tables
            .get(t as usize)
            .copied()
            .ok_or_else(|| self.err(ErrorKind::Malformed, at))?;
        let parent = self.nodes.get(id as usize).map_or(ROOT, |n| n.parent);
        let saved = (self.code, self.tab, self.scope);
        (self.code, self.tab, self.scope) = (code, t, parent);
        let mut p = data;
        let r = self.term(&mut p);
        (self.code, self.tab, self.scope) = saved;
        let v = match r {
            Ok(v) => v,
            Err(Ctl::Err(e)) => return Err(Ctl::Err(e)),
            Err(_) => Value::None,
        };
        if let Some(n) = self.nodes.get_mut(id as usize) {
            n.obj = Obj::Name(v);
        }
        Ok(())
    }

    fn read_node(&mut self, id: NodeId, at: usize) -> R<Value> {
        self.force(id, at)?;
        match self.nodes.get(id as usize).map(|n| &n.obj) {
            Some(Obj::Name(v)) => {
                // A read is a copy (packages nest): charged whole before it is made.
                let size = deep_size(v, self.memory_left());
                self.charge(size, at)?;
                match self.nodes.get(id as usize).map(|n| &n.obj) {
                    Some(Obj::Name(v)) => Ok(v.clone()),
                    _ => Err(self.err(ErrorKind::NotFound, at)),
                }
            }
            Some(Obj::Field(..) | Obj::IndexField(..) | Obj::BufferField(..)) => {
                self.read_field(id, at)
            }
            Some(Obj::External(..)) | None => Err(self.err(ErrorKind::NotFound, at)),
            Some(_) => Ok(Value::Node(id)),
        }
    }

    /// A copy of a Local's, an Arg's or a named object's value, its whole size charged first: a package
    /// read and stored into itself doubles at each turn of a loop, and only the top level was charged.
    fn read_slot(&mut self, s: Slot, at: usize) -> R<Value> {
        if let Slot::Node(id) = s {
            return self.read_node(id, at);
        }
        let left = self.memory_left();
        let size = deep_size(self.slot_ref(s, at)?, left);
        self.charge(size, at)?;
        Ok(self.slot_ref(s, at)?.clone())
    }

    fn read_place(&mut self, p: Place, at: usize) -> R<Value> {
        match p {
            Place::Null | Place::Missing => Ok(Value::None),
            Place::Slot(Slot::Node(id)) => self.read_node(id, at),
            Place::Slot(s) => self.read_slot(s, at),
            Place::Elem(s, i) => {
                let v = self.read_slot(s, at)?;
                self.index(&v, i as u64, at)
            }
        }
    }

    fn index(&self, v: &Value, i: u64, at: usize) -> R<Value> {
        let i = usize::try_from(i).unwrap_or(usize::MAX);
        let r = match v {
            Value::Pkg(p) => p.get(i).cloned(),
            Value::Buf(b) | Value::Str(b) => b.get(i).map(|&x| Value::Int(x.into())),
            _ => None,
        };
        r.ok_or_else(|| self.err(ErrorKind::Type, at))
    }

    /// Store (ACPI 6.5 §19.3.5.8): a named Integer, String or Buffer keeps its type; Locals take the value.
    fn store(&mut self, p: Place, v: Value, at: usize) -> R<()> {
        match p {
            Place::Null => Ok(()),
            Place::Missing => Err(self.err(ErrorKind::NotFound, at)),
            Place::Slot(Slot::Node(id)) => self.write_node(id, v, at),
            Place::Slot(s) => {
                *self.slot_ref(s, at)? = v;
                Ok(())
            }
            Place::Elem(s, i) => {
                if !nest_ok(&v, MAX_NEST - 1) {
                    return Err(self.err(ErrorKind::Budget(Budget::Depth), at));
                }
                let iv = self.to_int(&v, at).ok();
                let e = self.err0(ErrorKind::Type, at);
                match self.slot_ref(s, at)? {
                    Value::Pkg(p) => *p.get_mut(i as usize).ok_or(Ctl::Err(e))? = v,
                    Value::Buf(b) | Value::Str(b) => {
                        *b.get_mut(i as usize).ok_or(Ctl::Err(e))? = iv.ok_or(Ctl::Err(e))? as u8
                    }
                    _ => return Err(Ctl::Err(e)),
                }
                Ok(())
            }
        }
    }

    fn write_node(&mut self, id: NodeId, v: Value, at: usize) -> R<()> {
        self.force(id, at)?;
        let conv = match self.nodes.get(id as usize).map(|n| &n.obj) {
            Some(Obj::Name(old)) => match old {
                Value::Int(_) => Value::Int(self.to_int(&v, at)?),
                // ACPICA's AcpiExStoreBufferToBuffer: the target keeps its length (zero-filled or
                // truncated), unless it had none.
                Value::Buf(b) if b.is_empty() => Value::Buf(self.to_buf(&v)),
                Value::Buf(b) => {
                    let mut nb = vec![0u8; b.len()];
                    for (d, s) in nb.iter_mut().zip(self.to_buf(&v)) {
                        *d = s;
                    }
                    Value::Buf(nb)
                }
                Value::Str(_) => match v {
                    Value::Int(i) => Value::Str(self.hex(i)),
                    other => other,
                },
                _ => v,
            },
            Some(Obj::Field(..) | Obj::IndexField(..) | Obj::BufferField(..)) => {
                return self.write_field(id, &v, at)
            }
            _ => return Err(self.err(ErrorKind::Type, at)),
        };
        if let Some(Obj::Name(old)) = self.nodes.get_mut(id as usize).map(|n| &mut n.obj) {
            *old = conv;
        }
        Ok(())
    }

    // ---- conversions (ACPI 6.5 §19.3.5.7) ----

    fn to_int(&self, v: &Value, at: usize) -> R<u64> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Buf(b) => Ok(le(b, if self.ones == u64::MAX { 8 } else { 4 })),
            Value::Str(s) => Ok(parse_int(s, 16) & self.ones),
            _ => Err(self.err(ErrorKind::Type, at)),
        }
    }

    fn to_buf(&self, v: &Value) -> Vec<u8> {
        match v {
            Value::Int(i) => {
                let n = if self.ones == u64::MAX { 8 } else { 4 };
                i.to_le_bytes().get(..n).unwrap_or(&[]).to_vec()
            }
            Value::Str(s) => {
                let mut b = s.clone();
                b.push(0);
                b
            }
            Value::Buf(b) => b.clone(),
            _ => Vec::new(),
        }
    }

    fn hex(&self, i: u64) -> Vec<u8> {
        let digits = if self.ones == u64::MAX { 16 } else { 8 };
        (0..digits).rev().map(|d| hex_digit(i >> (4 * d))).collect()
    }

    // ---- fields (ACPI 6.5 §19.6.46, §19.6.64, CreateXField) ----

    fn region_base(&mut self, region: NodeId, at: usize) -> R<(u8, u64)> {
        let Some(Obj::Region(space, t, off, base)) =
            self.nodes.get(region as usize).map(|n| &n.obj)
        else {
            return Err(self.err(ErrorKind::NotFound, at));
        };
        let (space, t, off) = (*space, *t, *off as usize);
        if let Some(b) = base {
            return Ok((space, *b));
        }
        if space == DATA_TABLE {
            return Err(self.err(ErrorKind::Unsupported(0x5B88), at));
        }
        let code = self
            .tables
            .get(t as usize)
            .copied()
            .ok_or_else(|| self.err(ErrorKind::Malformed, at))?;
        let parent = self.nodes.get(region as usize).map_or(ROOT, |n| n.parent);
        let saved = (self.code, self.tab, self.scope);
        (self.code, self.tab, self.scope) = (code, t, parent);
        let mut p = off;
        let r = self.int_arg(&mut p);
        (self.code, self.tab, self.scope) = saved;
        let b = r?;
        if let Some(Obj::Region(_, _, _, base)) =
            self.nodes.get_mut(region as usize).map(|n| &mut n.obj)
        {
            *base = Some(b);
        }
        Ok((space, b))
    }

    fn read_field(&mut self, id: NodeId, at: usize) -> R<Value> {
        // Fields can name fields (an IndexField's index, a buffer field's buffer): each level counts
        // against the depth budget, so a cycle ends there.
        if self.depth >= self.limits.depth {
            return Err(self.err(ErrorKind::Budget(Budget::Depth), at));
        }
        self.depth += 1;
        let r = self.read_field_at(id, at);
        self.depth = self.depth.saturating_sub(1);
        r
    }

    fn read_field_at(&mut self, id: NodeId, at: usize) -> R<Value> {
        let obj = self.nodes.get(id as usize).map(|n| n.obj.clone());
        let (bytes, len) = match obj {
            Some(Obj::Field(region, bit, len, access)) => {
                let (space, base) = self.region_base(region, at)?;
                let w = width_bytes(access);
                let mut out = self.bits_buf(len, at)?;
                self.units(
                    bit,
                    len,
                    w,
                    at,
                    |s, u| {
                        let r = s
                            .regions
                            .read(region, space, base.wrapping_add(u * w), w as u8);
                        r.ok_or(ErrorKind::Region { space, region })
                    },
                    &mut out,
                )?;
                (out, len)
            }
            Some(Obj::IndexField(index, data, bit, len, access)) => {
                let w = width_bytes(access);
                let mut out = self.bits_buf(len, at)?;
                self.units(
                    bit,
                    len,
                    w,
                    at,
                    |s, u| {
                        s.write_node(index, Value::Int(u * w), at).map_err(kind)?;
                        let v = s.read_node(data, at).map_err(kind)?;
                        s.to_int(&v, at).map_err(kind)
                    },
                    &mut out,
                )?;
                (out, len)
            }
            Some(Obj::BufferField(src, bit, len)) => {
                let mut out = self.bits_buf(len, at)?;
                let v = self.read_slot(src, at)?;
                let Value::Buf(b) = v else {
                    return Err(self.err(ErrorKind::Type, at));
                };
                if u64::from(bit) + u64::from(len) > b.len() as u64 * 8 {
                    return Err(self.err(ErrorKind::Type, at));
                }
                for i in 0..u64::from(len) {
                    set_bit(&mut out, i, get_bit(&b, u64::from(bit) + i));
                }
                (out, len)
            }
            _ => return Err(self.err(ErrorKind::Type, at)),
        };
        let int_bits = if self.ones == u64::MAX { 64 } else { 32 };
        Ok(if len <= int_bits {
            Value::Int(le(&bytes, 8))
        } else {
            Value::Buf(bytes)
        })
    }

    /// One unit of a field access costs a step, as a term does.
    fn tick(&mut self, at: usize) -> R<()> {
        self.steps = self.steps.saturating_add(1);
        self.total = self.total.saturating_add(1);
        if self.steps > self.limits.steps || self.total > self.limits.total_steps {
            return Err(self.err(ErrorKind::Budget(Budget::Steps), at));
        }
        Ok(())
    }

    fn bits_buf(&mut self, len: u32, at: usize) -> R<Vec<u8>> {
        let n = (len as usize).div_ceil(8);
        self.charge(n, at)?;
        Ok(vec![0u8; n])
    }

    /// Reads the `w`-byte units that hold bits `bit..bit+len` with `get(unit index)` into `out`.
    fn units(
        &mut self,
        bit: u32,
        len: u32,
        w: u64,
        at: usize,
        mut get: impl FnMut(&mut Self, u64) -> Result<u64, ErrorKind>,
        out: &mut [u8],
    ) -> R<()> {
        if len == 0 {
            return Ok(());
        }
        let (bit, len, wb) = (u64::from(bit), u64::from(len), w * 8);
        for u in bit / wb..=(bit + len - 1) / wb {
            self.tick(at)?;
            let v = get(self, u).map_err(|k| self.err(k, at))?;
            for b in 0..wb {
                let abs = u * wb + b;
                if abs >= bit && abs < bit + len {
                    set_bit(out, abs - bit, v >> b & 1 != 0);
                }
            }
        }
        Ok(())
    }

    fn write_field(&mut self, id: NodeId, v: &Value, at: usize) -> R<()> {
        // Fields can name fields (an IndexField's index, a buffer field's buffer): each level counts
        // against the depth budget, so a cycle ends there.
        if self.depth >= self.limits.depth {
            return Err(self.err(ErrorKind::Budget(Budget::Depth), at));
        }
        self.depth += 1;
        let r = self.write_field_at(id, v, at);
        self.depth = self.depth.saturating_sub(1);
        r
    }

    fn write_field_at(&mut self, id: NodeId, v: &Value, at: usize) -> R<()> {
        let src = self.to_buf(v);
        let obj = self.nodes.get(id as usize).map(|n| n.obj.clone());
        let (bit, len) = match obj {
            Some(
                Obj::Field(_, b, l, _) | Obj::IndexField(_, _, b, l, _) | Obj::BufferField(_, b, l),
            ) => (u64::from(b), u64::from(l)),
            _ => return Err(self.err(ErrorKind::Type, at)),
        };
        match obj {
            Some(Obj::BufferField(s, ..)) => {
                let e = self.err(ErrorKind::Type, at);
                let buf = match s {
                    Slot::Node(n) => {
                        self.force(n, at)?;
                        match self.nodes.get_mut(n as usize).map(|x| &mut x.obj) {
                            Some(Obj::Name(Value::Buf(b))) => b,
                            _ => return Err(e),
                        }
                    }
                    s => match self.slot_ref(s, at)? {
                        Value::Buf(b) => b,
                        _ => return Err(e),
                    },
                };
                if bit + len > buf.len() as u64 * 8 {
                    return Err(e);
                }
                for i in 0..len {
                    set_bit(buf, bit + i, get_bit(&src, i));
                }
                Ok(())
            }
            Some(Obj::Field(region, _, _, access)) => {
                let (space, base) = self.region_base(region, at)?;
                let w = width_bytes(access);
                let wb = w * 8;
                if len == 0 {
                    return Ok(());
                }
                for u in bit / wb..=(bit + len - 1) / wb {
                    self.tick(at)?;
                    let addr = base.wrapping_add(u * w);
                    // Preserve (the usual UpdateRule): bits outside the field keep what was read.
                    let mut cur = self.regions.read(region, space, addr, w as u8).unwrap_or(0);
                    for b in 0..wb {
                        let abs = u * wb + b;
                        if abs >= bit && abs < bit + len {
                            let m = 1u64 << b;
                            cur = if get_bit(&src, abs - bit) {
                                cur | m
                            } else {
                                cur & !m
                            };
                        }
                    }
                    if !self.regions.write(region, space, addr, w as u8, cur) {
                        return Err(self.err(ErrorKind::Region { space, region }, at));
                    }
                }
                Ok(())
            }
            Some(Obj::IndexField(index, data, _, _, access)) => {
                let w = width_bytes(access);
                let wb = w * 8;
                if len == 0 {
                    return Ok(());
                }
                for u in bit / wb..=(bit + len - 1) / wb {
                    self.tick(at)?;
                    self.write_node(index, Value::Int(u * w), at)?;
                    let mut cur = self
                        .read_node(data, at)
                        .and_then(|v| self.to_int(&v, at))
                        .unwrap_or(0);
                    for b in 0..wb {
                        let abs = u * wb + b;
                        if abs >= bit && abs < bit + len {
                            let m = 1u64 << b;
                            cur = if get_bit(&src, abs - bit) {
                                cur | m
                            } else {
                                cur & !m
                            };
                        }
                    }
                    self.write_node(data, Value::Int(cur), at)?;
                }
                Ok(())
            }
            _ => Err(self.err(ErrorKind::Type, at)),
        }
    }

    fn field_list(
        &mut self,
        pos: &mut usize,
        end: usize,
        flags: u8,
        make: &dyn Fn(u32, u32, u8) -> Obj,
    ) -> R<()> {
        let mut bit = 0u32;
        let mut access = flags & 0x0F;
        while *pos < end {
            let at = *pos;
            let b = self.byte(at)?;
            match b {
                0x00 => {
                    *pos += 1;
                    let len = name::parse_pkg_len(self.code, pos)
                        .ok_or_else(|| self.err(ErrorKind::Malformed, at))?;
                    bit = bit.saturating_add(len as u32);
                }
                0x01 => {
                    access = self.byte(at + 1)? & 0x0F;
                    *pos += 3;
                }
                0x02 => {
                    *pos += 1;
                    if name::starts_name(self.byte(*pos)?) {
                        self.name(pos)?;
                    } else {
                        self.dry += 1;
                        let r = self.term(pos);
                        self.dry -= 1;
                        r?;
                    }
                }
                0x03 => {
                    access = self.byte(at + 1)? & 0x0F;
                    *pos += 4;
                }
                b if name::is_lead(b) => {
                    let seg = self
                        .code
                        .get(at..at + 4)
                        .ok_or_else(|| self.err(ErrorKind::Malformed, at))?;
                    *pos += 4;
                    let len = name::parse_pkg_len(self.code, pos)
                        .ok_or_else(|| self.err(ErrorKind::Malformed, at))?
                        as u32;
                    let n = NameStr {
                        root: false,
                        up: 0,
                        segs: seg,
                    };
                    if let Err(Ctl::Err(e)) = self.create(&n, make(bit, len, access), at) {
                        self.problem(e);
                    }
                    bit = bit.saturating_add(len);
                }
                _ => return Err(self.err(ErrorKind::Malformed, at)),
            }
        }
        if *pos != end {
            return Err(self.err(ErrorKind::Malformed, end));
        }
        Ok(())
    }

    // ---- targets ----

    /// A SuperName or Target (ACPI 6.5 §20.2.5.4): where a result goes. A name that resolves to nothing
    /// is [`Place::Missing`] (CondRefOf asks exactly that).
    fn target(&mut self, pos: &mut usize) -> R<Place> {
        let at = *pos;
        let b = self.byte(at)?;
        Ok(match b {
            0x00 => {
                *pos += 1;
                Place::Null
            }
            0x60..=0x67 => {
                *pos += 1;
                Place::Slot(Slot::Local(b - 0x60))
            }
            0x68..=0x6E => {
                *pos += 1;
                Place::Slot(Slot::Arg(b - 0x68))
            }
            0x5B if self.code.get(at + 1) == Some(&0x31) => {
                *pos += 2;
                Place::Null
            }
            0x88 => {
                *pos += 1;
                let base = self.target(pos)?;
                let i = self.int_arg(pos)?;
                let t = self.target(pos)?;
                let _ = t;
                match base {
                    Place::Slot(s) => Place::Elem(s, i.min(u32::MAX.into()) as u32),
                    _ => Place::Null,
                }
            }
            0x83 => {
                *pos += 1;
                let v = self.term(pos)?;
                match v {
                    Value::Node(id) => Place::Slot(Slot::Node(id)),
                    _ => Place::Null,
                }
            }
            b if name::starts_name(b) && !self.is_call(at) => {
                let n = self.name(pos)?;
                match self.resolve(self.scope, &n) {
                    Some(id) => Place::Slot(Slot::Node(id)),
                    None => Place::Missing,
                }
            }
            _ => {
                // Any other TermArg (a method call result, a DerefOf) as a SuperName: evaluated, and a
                // store to it is lost, as it is to a temporary.
                let v = self.term(pos)?;
                match v {
                    Value::Node(id) => Place::Slot(Slot::Node(id)),
                    _ => Place::Null,
                }
            }
        })
    }

    // ---- operators ----

    fn expr(&mut self, op: u8, pos: &mut usize, at: usize) -> R<Value> {
        let ones = self.ones;
        let dry = |s: &Self| s.dry > 0;
        match op {
            0x70 | 0x9D => {
                let v = self.term(pos)?;
                let t = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                if op == 0x9D {
                    if let Place::Slot(Slot::Node(id)) = t {
                        if let Some(Obj::Name(old)) =
                            self.nodes.get_mut(id as usize).map(|n| &mut n.obj)
                        {
                            *old = v.clone();
                            return Ok(v);
                        }
                    }
                }
                self.store(t, v.clone(), at)?;
                Ok(v)
            }
            0x71 | 0x87 | 0x8E => {
                let p = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                match op {
                    0x71 => match p {
                        Place::Slot(Slot::Node(id)) => Ok(Value::Node(id)),
                        _ => Err(self.err(ErrorKind::Unsupported(0x71), at)),
                    },
                    0x87 => match self.read_place(p, at)? {
                        Value::Buf(b) | Value::Str(b) => Ok(Value::Int(b.len() as u64)),
                        Value::Pkg(p) => Ok(Value::Int(p.len() as u64)),
                        _ => Err(self.err(ErrorKind::Type, at)),
                    },
                    _ => Ok(Value::Int(self.object_type(p, at)?)),
                }
            }
            0x75 | 0x76 => {
                let p = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let v = self.read_place(p, at)?;
                let i = self.to_int(&v, at)?;
                let r = if op == 0x75 {
                    i.wrapping_add(1)
                } else {
                    i.wrapping_sub(1)
                } & ones;
                self.store(p, Value::Int(r), at)?;
                Ok(Value::Int(r))
            }
            0x72 | 0x74 | 0x77 | 0x79..=0x7F | 0x85 => {
                let a = self.int_arg(pos)?;
                let b = self.int_arg(pos)?;
                let t = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let r = match op {
                    0x72 => a.wrapping_add(b),
                    0x74 => a.wrapping_sub(b),
                    0x77 => a.wrapping_mul(b),
                    0x79 => a.checked_shl(b.min(64) as u32).unwrap_or(0),
                    0x7A => a.checked_shr(b.min(64) as u32).unwrap_or(0),
                    0x7B => a & b,
                    0x7C => !(a & b),
                    0x7D => a | b,
                    0x7E => !(a | b),
                    0x7F => a ^ b,
                    _ => a
                        .checked_rem(b)
                        .ok_or_else(|| self.err(ErrorKind::DivideByZero, at))?,
                } & ones;
                self.store(t, Value::Int(r), at)?;
                Ok(Value::Int(r))
            }
            0x78 => {
                let a = self.int_arg(pos)?;
                let b = self.int_arg(pos)?;
                let rem = self.target(pos)?;
                let quo = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let q = a
                    .checked_div(b)
                    .ok_or_else(|| self.err(ErrorKind::DivideByZero, at))?;
                self.store(rem, Value::Int(a % b), at)?;
                self.store(quo, Value::Int(q), at)?;
                Ok(Value::Int(q))
            }
            0x80 | 0x81 | 0x82 | 0x99 | 0x96 | 0x97 | 0x98 | 0x83 => {
                let v = self.term(pos)?;
                let t = if op == 0x83 {
                    Place::Null
                } else {
                    self.target(pos)?
                };
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let r = match op {
                    0x80 => Value::Int(!self.to_int(&v, at)? & ones),
                    0x81 => {
                        let i = self.to_int(&v, at)?;
                        Value::Int(if i == 0 {
                            0
                        } else {
                            64 - u64::from(i.leading_zeros())
                        })
                    }
                    0x82 => {
                        let i = self.to_int(&v, at)?;
                        Value::Int(if i == 0 {
                            0
                        } else {
                            u64::from(i.trailing_zeros()) + 1
                        })
                    }
                    0x99 => match &v {
                        Value::Str(s) => Value::Int(
                            if s.starts_with(b"0x") || s.starts_with(b"0X") {
                                parse_int(s.get(2..).unwrap_or(&[]), 16)
                            } else {
                                parse_int(s, 10)
                            } & ones,
                        ),
                        _ => Value::Int(self.to_int(&v, at)?),
                    },
                    0x96 => Value::Buf(self.to_buf(&v)),
                    0x97 | 0x98 => match v {
                        Value::Int(i) if op == 0x98 => Value::Str(self.hex(i)),
                        Value::Int(i) => Value::Str(decimal(i)),
                        Value::Str(s) => Value::Str(s),
                        _ => return Err(self.err(ErrorKind::Unsupported(op.into()), at)),
                    },
                    _ => match v {
                        Value::Node(id) => self.read_node(id, at)?,
                        v => v,
                    },
                };
                self.charge(shallow_size(&r), at)?;
                self.store(t, r.clone(), at)?;
                Ok(r)
            }
            0x73 | 0x84 | 0x9C => {
                let a = self.term(pos)?;
                let b = self.term(pos)?;
                let t = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let r = match (op, &a) {
                    (0x9C, Value::Buf(s)) => {
                        let n = self.to_int(&b, at)? as usize;
                        Value::Str(s.iter().take(n).take_while(|&&c| c != 0).copied().collect())
                    }
                    (0x84, _) => {
                        // ConcatenateResTemplate: both lose their end tag, one is added back.
                        let (x, y) = (self.to_buf(&a), self.to_buf(&b));
                        let mut v: Vec<u8> =
                            x.get(..x.len().saturating_sub(2)).unwrap_or(&[]).to_vec();
                        v.extend_from_slice(y.get(..y.len().saturating_sub(2)).unwrap_or(&[]));
                        v.extend_from_slice(&[0x79, 0]);
                        Value::Buf(v)
                    }
                    (_, Value::Str(s)) => {
                        let mut v = s.clone();
                        match &b {
                            Value::Int(i) => v.extend(self.hex(*i)),
                            Value::Str(x) | Value::Buf(x) => v.extend_from_slice(x),
                            _ => return Err(self.err(ErrorKind::Type, at)),
                        }
                        Value::Str(v)
                    }
                    (_, Value::Int(_) | Value::Buf(_)) => {
                        let mut v = self.to_buf(&a);
                        if let Value::Str(x) = &b {
                            v.extend_from_slice(x);
                        } else {
                            v.extend(self.to_buf(&b));
                        }
                        Value::Buf(v)
                    }
                    _ => return Err(self.err(ErrorKind::Type, at)),
                };
                self.charge(shallow_size(&r), at)?;
                self.store(t, r.clone(), at)?;
                Ok(r)
            }
            0x9E => {
                let s = self.term(pos)?;
                let i = self.int_arg(pos)?;
                let n = self.int_arg(pos)?;
                let t = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let pick = |b: &[u8]| -> Vec<u8> {
                    b.iter()
                        .skip(i.min(usize::MAX as u64) as usize)
                        .take(n.min(usize::MAX as u64) as usize)
                        .copied()
                        .collect()
                };
                let r = match &s {
                    Value::Str(b) => Value::Str(pick(b)),
                    Value::Buf(b) => Value::Buf(pick(b)),
                    _ => return Err(self.err(ErrorKind::Type, at)),
                };
                self.store(t, r.clone(), at)?;
                Ok(r)
            }
            0x86 => {
                self.target(pos)?;
                self.term(pos)?;
                Ok(Value::None)
            }
            0x88 => {
                let base_at = *pos;
                let b = self.byte(base_at)?;
                let (v, _) = if (name::starts_name(b) && !self.is_call(base_at))
                    || (0x60..=0x6E).contains(&b)
                {
                    let p = self.target(pos)?;
                    if dry(self) {
                        (Value::None, p)
                    } else {
                        (self.read_place(p, at)?, p)
                    }
                } else {
                    (self.term(pos)?, Place::Null)
                };
                let i = self.int_arg(pos)?;
                let t = self.target(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let r = self.index(&v, i, at)?;
                self.store(t, r.clone(), at)?;
                Ok(r)
            }
            0x89 => {
                let p = self.term(pos)?;
                let op1 = self.byte(*pos)?;
                *pos += 1;
                let v1 = self.term(pos)?;
                let op2 = self.byte(*pos)?;
                *pos += 1;
                let v2 = self.term(pos)?;
                let start = self.int_arg(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let Value::Pkg(p) = p else {
                    return Err(self.err(ErrorKind::Type, at));
                };
                for (i, e) in p
                    .iter()
                    .enumerate()
                    .skip(start.min(usize::MAX as u64) as usize)
                {
                    if self.matches(e, op1, &v1) && self.matches(e, op2, &v2) {
                        return Ok(Value::Int(i as u64));
                    }
                }
                Ok(Value::Int(ones))
            }
            0x8A..=0x8D | 0x8F => {
                let src = self.buf_source(pos, at)?;
                let i = self.int_arg(pos)?;
                let n = self.name(pos)?;
                let (bit, len) = match op {
                    0x8A => (i.saturating_mul(8), 32),
                    0x8B => (i.saturating_mul(8), 16),
                    0x8C => (i.saturating_mul(8), 8),
                    0x8D => (i, 1),
                    _ => (i.saturating_mul(8), 64),
                };
                self.buffer_field(src, bit, len, &n, at)
            }
            0x90 | 0x91 => {
                let a = self.int_arg(pos)?;
                let b = self.int_arg(pos)?;
                let r = if op == 0x90 {
                    a != 0 && b != 0
                } else {
                    a != 0 || b != 0
                };
                Ok(Value::Int(if r { ones } else { 0 }))
            }
            0x92 => {
                let a = self.int_arg(pos)?;
                Ok(Value::Int(if a == 0 { ones } else { 0 }))
            }
            0x93..=0x95 => {
                let a = self.term(pos)?;
                let b = self.term(pos)?;
                if dry(self) {
                    return Ok(Value::Int(0));
                }
                let o = self.compare(&a, &b, at)?;
                let r = match op {
                    0x93 => o == Ordering::Equal,
                    0x94 => o == Ordering::Greater,
                    _ => o == Ordering::Less,
                };
                Ok(Value::Int(if r { ones } else { 0 }))
            }
            _ => Err(self.err(ErrorKind::UnknownOpcode(op.into()), at)),
        }
    }

    fn compare(&self, a: &Value, b: &Value, at: usize) -> R<Ordering> {
        Ok(match a {
            Value::Int(x) => x.cmp(&self.to_int(b, at)?),
            Value::Str(x) => match b {
                Value::Str(y) | Value::Buf(y) => x.as_slice().cmp(y.as_slice()),
                Value::Int(i) => x.as_slice().cmp(self.hex(*i).as_slice()),
                _ => return Err(self.err(ErrorKind::Type, at)),
            },
            Value::Buf(x) => x.as_slice().cmp(self.to_buf(b).as_slice()),
            _ => return Err(self.err(ErrorKind::Type, at)),
        })
    }

    fn matches(&self, e: &Value, op: u8, v: &Value) -> bool {
        if op == 0 {
            return true;
        }
        let Ok(o) = self.compare(e, v, 0) else {
            return false;
        };
        match op {
            1 => o == Ordering::Equal,
            2 => o != Ordering::Greater,
            3 => o == Ordering::Less,
            4 => o != Ordering::Less,
            5 => o == Ordering::Greater,
            _ => false,
        }
    }

    fn object_type(&mut self, p: Place, at: usize) -> R<u64> {
        let v = match p {
            Place::Slot(Slot::Node(id)) => {
                self.force(id, at)?;
                match self.nodes.get(id as usize).map(|n| &n.obj) {
                    Some(Obj::Name(v)) => return Ok(type_of(v)),
                    Some(Obj::Field(..) | Obj::IndexField(..)) => return Ok(5),
                    Some(Obj::Device) => return Ok(6),
                    Some(Obj::Method(..) | Obj::Osi) => return Ok(8),
                    Some(Obj::Sync) => return Ok(9),
                    Some(Obj::Region(..)) => return Ok(10),
                    Some(Obj::BufferField(..)) => return Ok(14),
                    Some(Obj::Container) => return Ok(12),
                    _ => return Ok(0),
                }
            }
            p => self.read_place(p, at)?,
        };
        Ok(type_of(&v))
    }

    /// The buffer a CreateXField makes its field of: a Local, Arg or named Buffer; anything else is
    /// kept in a temporary node.
    fn buf_source(&mut self, pos: &mut usize, at: usize) -> R<Slot> {
        let b = self.byte(*pos)?;
        if (name::starts_name(b) && !self.is_call(*pos)) || (0x60..=0x6E).contains(&b) {
            match self.target(pos)? {
                Place::Slot(s) => return Ok(s),
                _ if self.dry > 0 => return Ok(Slot::Local(0)),
                _ => return Err(self.err(ErrorKind::NotFound, at)),
            }
        }
        let v = self.term(pos)?;
        if self.dry > 0 {
            return Ok(Slot::Local(0));
        }
        self.charge(core::mem::size_of::<Node>(), at)?;
        Ok(Slot::Node(self.link(self.scope, [0; 4], Obj::Name(v))))
    }

    fn buffer_field(&mut self, src: Slot, bit: u64, len: u64, n: &NameStr, at: usize) -> R<Value> {
        if self.dry > 0 {
            return Ok(Value::None);
        }
        let (Ok(bit), Ok(len)) = (u32::try_from(bit), u32::try_from(len)) else {
            return Err(self.err(ErrorKind::Type, at));
        };
        self.create(n, Obj::BufferField(src, bit, len), at)?;
        Ok(Value::None)
    }

    fn ext_op(&mut self, e: u8, pos: &mut usize, at: usize) -> R<Value> {
        let dry = self.dry > 0;
        match e {
            0x01 | 0x02 => {
                let n = self.name(pos)?;
                if e == 0x01 {
                    *pos += 1;
                }
                self.create(&n, Obj::Sync, at)?;
            }
            0x12 => {
                let p = self.target(pos)?;
                let t = self.target(pos)?;
                if dry {
                    return Ok(Value::Int(0));
                }
                if let Place::Slot(Slot::Node(id)) = p {
                    self.store(t, Value::Node(id), at)?;
                    return Ok(Value::Int(self.ones));
                }
                return Ok(Value::Int(0));
            }
            0x13 => {
                let src = self.buf_source(pos, at)?;
                let bit = self.int_arg(pos)?;
                let len = self.int_arg(pos)?;
                let n = self.name(pos)?;
                return self.buffer_field(src, bit, len, &n, at);
            }
            0x21 | 0x22 => {
                self.term(pos)?;
            }
            0x23 => {
                self.target(pos)?;
                *pos += 2;
                return Ok(Value::Int(0));
            }
            0x24 | 0x26 | 0x27 => {
                self.target(pos)?;
            }
            0x25 => {
                self.target(pos)?;
                self.term(pos)?;
                return Ok(Value::Int(0));
            }
            0x28 | 0x29 => {
                let v = self.int_arg(pos)?;
                let t = self.target(pos)?;
                if dry {
                    return Ok(Value::Int(0));
                }
                let r = if e == 0x28 { from_bcd(v) } else { to_bcd(v) } & self.ones;
                self.store(t, Value::Int(r), at)?;
                return Ok(Value::Int(r));
            }
            0x30 => return Ok(Value::Int(0x2020_0925)),
            0x31 => return Ok(Value::None),
            0x32 => {
                *pos += 5;
                self.term(pos)?;
                if !dry {
                    return Err(self.err(ErrorKind::Fatal, at));
                }
            }
            // Timer: a clock that advances with the work done (100 ns per step), so polling loops end.
            0x33 => return Ok(Value::Int(u64::from(self.steps).wrapping_mul(1000))),
            0x1F | 0x20 => {
                let n = if e == 0x1F { 6 } else { 1 };
                for _ in 0..n {
                    self.term(pos)?;
                }
                if e == 0x20 {
                    self.target(pos)?;
                }
                if !dry {
                    return Err(self.err(ErrorKind::Unsupported(0x5B00 | u16::from(e)), at));
                }
            }
            0x80 => {
                let n = self.name(pos)?;
                let space = self.byte(*pos)?;
                *pos += 1;
                let off = *pos;
                let module = self.frames.is_empty();
                let base = if module || dry {
                    self.dry += 1;
                    let r = self.term(pos);
                    self.dry -= 1;
                    r?;
                    None
                } else {
                    Some(self.int_arg(pos)?)
                };
                self.dry += 1;
                let r = self.term(pos);
                self.dry -= 1;
                r?;
                self.create(&n, Obj::Region(space, self.tab, off as u32, base), at)?;
            }
            0x88 => {
                let n = self.name(pos)?;
                self.dry += 1;
                let r = (0..3).try_for_each(|_| self.term(pos).map(drop));
                self.dry -= 1;
                r?;
                self.create(&n, Obj::Region(DATA_TABLE, self.tab, 0, None), at)?;
            }
            0x81 | 0x86 | 0x87 => {
                let end = self.pkg_end(pos)?;
                if dry {
                    *pos = end;
                    return Ok(Value::None);
                }
                let a = self.name(pos)?;
                let a = self.resolve(self.scope, &a);
                let b = if e == 0x81 {
                    None
                } else {
                    let n = self.name(pos)?;
                    self.resolve(self.scope, &n)
                };
                if e == 0x87 {
                    self.dry += 1;
                    let r = self.term(pos);
                    self.dry -= 1;
                    r?;
                }
                let flags = self.byte(*pos)?;
                *pos += 1;
                let (Some(a), true) = (a, e == 0x81 || b.is_some()) else {
                    *pos = end;
                    return Err(self.err(ErrorKind::NotFound, at));
                };
                let b = b.unwrap_or(NONE);
                let make = move |bit, len, acc| match e {
                    0x86 => Obj::IndexField(a, b, bit, len, acc),
                    // BankField: the bank register is not written; fields read the region as a Field does.
                    _ => Obj::Field(a, bit, len, acc),
                };
                self.field_list(pos, end, flags, &make)?;
            }
            0x82..=0x85 => {
                let end = self.pkg_end(pos)?;
                let n = self.name(pos)?;
                *pos += match e {
                    0x83 => 6,
                    0x84 => 3,
                    _ => 0,
                };
                if *pos > end {
                    return Err(self.err(ErrorKind::Malformed, at));
                }
                if dry {
                    *pos = end;
                    return Ok(Value::None);
                }
                let obj = if e == 0x82 {
                    Obj::Device
                } else {
                    Obj::Container
                };
                let id = match self.create(&n, obj, at) {
                    Ok(id) => id,
                    Err(err) => {
                        *pos = end;
                        return Err(err);
                    }
                };
                if let Some(node) = self.nodes.get_mut(id as usize) {
                    if e == 0x82 && matches!(node.obj, Obj::Scope) {
                        node.obj = Obj::Device;
                    }
                }
                self.in_scope(id, pos, end)?;
            }
            _ => return Err(self.err(ErrorKind::UnknownOpcode(0x5B00 | u16::from(e)), at)),
        }
        Ok(Value::None)
    }
}

fn kind(c: Ctl) -> ErrorKind {
    match c {
        Ctl::Err(e) => e.kind,
        _ => ErrorKind::Type,
    }
}

/// ObjectType's number for a value (ACPI 6.5 §19.6.97).
fn type_of(v: &Value) -> u64 {
    match v {
        Value::None | Value::Node(_) => 0,
        Value::Int(_) => 1,
        Value::Str(_) => 2,
        Value::Buf(_) => 3,
        Value::Pkg(_) => 4,
    }
}

/// What a copy of `v` allocates, each level counted as [`shallow_size`] does; counting stops once past
/// `cap`, so the count costs no more than the budget it is held against.
fn deep_size(v: &Value, cap: usize) -> usize {
    let mut n = shallow_size(v);
    if let Value::Pkg(p) = v {
        for e in p {
            if n > cap {
                break;
            }
            n = n.saturating_add(deep_size(e, cap - n));
        }
    }
    n
}

fn shallow_size(v: &Value) -> usize {
    match v {
        Value::Str(b) | Value::Buf(b) => b.len(),
        Value::Pkg(p) => p.len() * core::mem::size_of::<Value>(),
        _ => 0,
    }
}

fn parse_int(s: &[u8], radix: u64) -> u64 {
    let mut v = 0u64;
    for &c in s.iter().skip_while(|c| c.is_ascii_whitespace()) {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        if u64::from(d) >= radix {
            break;
        }
        v = v.wrapping_mul(radix).wrapping_add(d.into());
    }
    v
}

fn decimal(mut i: u64) -> Vec<u8> {
    let mut v = Vec::new();
    loop {
        v.push(b'0' + (i % 10) as u8);
        i /= 10;
        if i == 0 {
            break;
        }
    }
    v.reverse();
    v
}

fn from_bcd(v: u64) -> u64 {
    (0..16)
        .rev()
        .fold(0, |a, d| a * 10 + ((v >> (4 * d)) & 0xF).min(9))
}

fn to_bcd(mut v: u64) -> u64 {
    let mut r = 0;
    for d in 0..16 {
        r |= (v % 10) << (4 * d);
        v /= 10;
    }
    r
}

/// The lowest stack address `term` ran at (host tests measure the stack a nesting level costs).
#[cfg(test)]
pub(crate) mod stack {
    extern crate std;
    use core::cell::Cell;
    std::thread_local!(pub static LOWEST: Cell<usize> = const { Cell::new(usize::MAX) });
    pub fn note(at: usize) {
        LOWEST.with(|l| l.set(l.get().min(at)));
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    /// The index against a plain scan (the newest node of a key wins) over random pushes and LIFO pops
    /// with few distinct keys, so probe runs are long, keys repeat (shadowing) and the table grows while
    /// nodes it will later lose are alive (the only way entries end up after a removed one in a run).
    #[test]
    fn index_agrees_with_a_scan_over_random_pushes_and_pops() {
        let mut nodes: Vec<Node> = Vec::new();
        let mut index = Index::default();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..40_000 {
            // A random walk of the node count, so the table grows (rehashes) at many depths.
            if nodes.is_empty() || rand(100) < 52 {
                let key = (rand(7) as NodeId, (rand(300) as u32).to_le_bytes());
                nodes.push(Node {
                    seg: key.1,
                    parent: key.0,
                    first: NONE,
                    next: NONE,
                    shadow: NONE,
                    obj: Obj::Scope,
                });
                let id = nodes.len() as NodeId - 1;
                let hidden = index.insert(&nodes, id);
                if let Some(n) = nodes.last_mut() {
                    n.shadow = hidden;
                }
            } else {
                let gone = nodes.len() as NodeId - 1;
                index.remove(&nodes, gone);
                nodes.pop();
            }
            for _ in 0..16 {
                let key = (rand(7) as NodeId, (rand(300) as u32).to_le_bytes());
                let newest = nodes.iter().rposition(|n| (n.parent, n.seg) == key);
                assert_eq!(
                    index.get(&nodes, key),
                    newest.map(|i| i as NodeId),
                    "round {round}, key {key:?}"
                );
            }
        }
    }
}
