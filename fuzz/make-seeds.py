#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ seed files from the real QEMU 7.2 table dumps kept in the repository
(src/platform/acpi/qemu-7.2-{q35,pc}-tables.dat, a table image at 0x0FFE0000) and a few hand-made inputs.
The corpus is made at run time and not committed. Arguments name the targets to make seeds for (all by
default): `python3 fuzz/make-seeds.py aml` boots no QEMU."""
import os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
DUMPS = os.path.join(HERE, "..", "src", "platform", "acpi")
# The RSDPs QEMU 7.2 + SeaBIOS placed (20 bytes each; the same values the host tests use).
RSDP = {
    "q35": bytes([0x52, 0x53, 0x44, 0x20, 0x50, 0x54, 0x52, 0x20, 0x8c, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20, 0x00, 0x97, 0x22, 0xfe, 0x0f]),
    "pc": bytes([0x52, 0x53, 0x44, 0x20, 0x50, 0x54, 0x52, 0x20, 0x87, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20, 0x00, 0xa4, 0x1a, 0xfe, 0x0f]),
}
DSDT_AT = 0x40  # 0x0FFE0040 in both dumps

ONLY = set(sys.argv[1:])

def put(target, name, data):
    if ONLY and target not in ONLY:
        return
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

for machine in ("q35", "pc"):
    image = open(os.path.join(DUMPS, f"qemu-7.2-{machine}-tables.dat"), "rb").read()
    put("acpi", machine, RSDP[machine] + image)
    length = struct.unpack_from("<I", image, DSDT_AT + 4)[0]
    put("prt", machine, image[DSDT_AT:DSDT_AT + length])
    put("crs", machine, image[DSDT_AT:DSDT_AT + length])
    put("hostbridge", machine, image[DSDT_AT:DSDT_AT + length])
    put("aml", machine, image[DSDT_AT:DSDT_AT + length])

def capture_dsdt(args):
    """Boots QEMU (SeaBIOS or qboot, no guest) with `args`, saves guest RAM below 256 MiB with the monitor's
    pmemsave and returns the last checksummed DSDT in it; None without QEMU."""
    import subprocess, tempfile, time
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ram")
        try:
            q = subprocess.Popen(["qemu-system-x86_64", "-m", "256", "-display", "none", "-serial", "none",
                                  "-monitor", "stdio"] + args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, text=True)
        except FileNotFoundError:
            return None
        time.sleep(3)
        q.communicate(f'pmemsave 0 0x10000000 "{out}"\nquit\n', timeout=30)
        if not os.path.exists(out):
            return None
        ram = open(out, "rb").read()
    # The last checksummed one: SeaBIOS keeps a small DSDT of its own in the F segment, below the tables it
    # loads from QEMU near the top of RAM.
    found, at = None, ram.find(b"DSDT")
    while at >= 0:
        length = struct.unpack_from("<I", ram, at + 4)[0]
        if 36 <= length < 0x100000 and sum(ram[at:at + length]) & 0xFF == 0:
            found = ram[at:at + length]
        at = ram.find(b"DSDT", at + 1)
    return found

# Expander and GPEX host bridges (tests/rootbus.rs boots the same machines).
for name, args in [
    ("q35-pxb-pcie", ["-M", "q35", "-device", "pxb-pcie,id=p1,bus_nr=0x80,bus=pcie.0",
                      "-device", "pcie-root-port,id=rp1,bus=p1,chassis=1", "-device", "edu,bus=rp1",
                      "-device", "pxb-pcie,id=p2,bus_nr=0xa0,bus=pcie.0"]),
    ("pc-pxb", ["-M", "pc", "-device", "pxb,id=p1,bus_nr=0x40,bus=pci.0", "-device", "edu,bus=p1",
                "-device", "pxb,id=p2,bus_nr=0x60,bus=pci.0", "-device", "pci-bridge,id=b1,bus=p2,chassis_nr=3"]),
    ("microvm-gpex", ["-M", "microvm,pcie=on,acpi=on", "-device", "edu"]),
]:
    if ONLY and "hostbridge" not in ONLY:
        break
    dsdt = capture_dsdt(args)
    if dsdt is None:
        print(f"hostbridge seed {name}: no DSDT captured (is qemu-system-x86_64 installed?)")
    else:
        put("hostbridge", name, dsdt)

# The AML evaluator (target `aml`): the real machines' DSDTs and SSDTs beside the project, cut into pieces
# of at most AML_PIECE bytes along term boundaries. A whole 100-600 KB DSDT per run is too slow for a
# million runs; a piece keeps what surrounds its terms (each enclosing Scope, Device, Processor, ...
# header is repeated around it), so it loads on its own with its names where they were.
AML_PIECE = 4096

def pkg_len(t, p):
    """(content end, position after the PkgLength) of the PkgLength at t[p]."""
    lead = t[p]
    n = lead >> 6
    v = lead & (0x0F if n else 0x3F)
    for i in range(n):
        v |= t[p + 1 + i] << (4 + 8 * i)
    return p + v, p + 1 + n

def enc_pkg_len(n):
    """The PkgLength encoding of `n` content bytes (it counts itself)."""
    for extra in range(4):
        t = n + 1 + extra
        if (extra == 0 and t < 0x40) or (extra and t < 1 << (4 + 8 * extra)):
            if extra == 0:
                return bytes([t])
            return bytes([extra << 6 | (t & 0xF)] + [(t >> (4 + 8 * i)) & 0xFF for i in range(extra)])
    raise ValueError(n)

def name_end(t, p):
    if t[p] == 0x5C:
        p += 1
    while t[p] == 0x5E:
        p += 1
    if t[p] == 0:
        return p + 1
    if t[p] == 0x2E:
        return p + 9
    if t[p] == 0x2F:
        return p + 2 + 4 * t[p + 1]
    return p + 4

def data_end(t, p):
    """End of a constant DataRefObject or name at t[p], None for anything else."""
    op = t[p]
    fixed = {0x00: 1, 0x01: 1, 0xFF: 1, 0x0A: 2, 0x0B: 3, 0x0C: 5, 0x0E: 9}
    if op in fixed:
        return p + fixed[op]
    if op == 0x0D:
        return t.index(0, p + 1) + 1
    if op in (0x11, 0x12, 0x13):
        return pkg_len(t, p + 1)[0]
    if op in (0x5C, 0x5E, 0x2E, 0x2F) or op == 0x5F or 0x41 <= op <= 0x5A:
        return name_end(t, p)
    return None

def arg_end(t, p):
    """End of a TermArg or Target at t[p] made of constants, names (not method calls), Locals, Args and
    the common operators; None for anything else."""
    op = t[p]
    e = data_end(t, p)
    if e or op == 0x00:
        return e or p + 1
    if 0x60 <= op <= 0x6E:
        return p + 1
    if t.startswith(b"\x5b\x31", p):
        return p + 2
    arity = {0x70: 2, 0x71: 1, 0x72: 3, 0x73: 3, 0x74: 3, 0x77: 3, 0x79: 3, 0x7A: 3, 0x7B: 3, 0x7C: 3,
             0x7D: 3, 0x7E: 3, 0x7F: 3, 0x80: 2, 0x83: 1, 0x85: 3, 0x87: 1, 0x88: 3, 0x90: 2, 0x91: 2,
             0x92: 1, 0x93: 2, 0x94: 2, 0x95: 2}.get(op)
    if arity is None:
        return None
    p += 1
    for _ in range(arity):
        p = arg_end(t, p)
        if p is None:
            return None
    return p

# Containers: (opcode bytes, fixed bytes after the name).
CONTAINERS = {b"\x10": 0, b"\x5b\x82": 0, b"\x5b\x83": 6, b"\x5b\x84": 3, b"\x5b\x85": 0}

def term_end(t, p):
    """(end, container header (op, name and fixed bytes) or None, body start) of the term at t[p];
    None when its length cannot be told without evaluating it."""
    op2 = bytes(t[p:p + 2])
    for op, fixed in CONTAINERS.items():
        if t.startswith(op, p):
            end, q = pkg_len(t, p + len(op))
            body = name_end(t, q) + fixed
            return end, (op, bytes(t[q:body])), body
    if t[p] in (0x14, 0xA0, 0xA1, 0xA2) or op2 in (b"\x5b\x81", b"\x5b\x86", b"\x5b\x87"):
        return pkg_len(t, p + (2 if t[p] == 0x5B else 1))[0], None, None
    if t[p] == 0x08:
        e = data_end(t, name_end(t, p + 1))
        return (e, None, None) if e else None
    if t[p] == 0x06:
        return name_end(t, name_end(t, p + 1)), None, None
    if t[p] == 0x15:
        return name_end(t, p + 1) + 2, None, None
    if op2 == b"\x5b\x01":
        return name_end(t, p + 2) + 1, None, None
    if op2 == b"\x5b\x02":
        return name_end(t, p + 2), None, None
    if op2 == b"\x5b\x80":
        e = arg_end(t, name_end(t, p + 2) + 1)
        e = e and arg_end(t, e)
        return (e, None, None) if e else None
    if t[p] in (0x8A, 0x8B, 0x8C, 0x8D, 0x8F):
        e = arg_end(t, p + 1)
        e = e and arg_end(t, e)
        return (name_end(t, e), None, None) if e else None
    e = arg_end(t, p) if t[p] in (0x70, 0x72, 0x74, 0x77, 0x79, 0x7A, 0x7B, 0x7D) else None
    return (e, None, None) if e else None

def wrap(chain, inner):
    for op, head in reversed(chain):
        inner = op + enc_pkg_len(len(head) + len(inner)) + head + inner
    return inner

def pieces(t, start, end, chain, out):
    """Cuts t[start:end], a TermList inside `chain`, into pieces of at most AML_PIECE bytes."""
    group, p = b"", start
    def flush():
        nonlocal group
        if group:
            out.append(wrap(chain, group))
            group = b""
    while p < end:
        try:
            r = term_end(t, p)
        except (IndexError, ValueError):
            r = None
        if r is None or not p < r[0] <= end:
            flush()
            out.append(wrap(chain, bytes(t[p:end])))  # the rest, uncut
            return
        e, container, body = r
        if e - p + len(group) <= AML_PIECE:
            group += bytes(t[p:e])
        elif container and e - p > AML_PIECE:
            flush()
            pieces(t, body, e, chain + [container], out)
        else:
            flush()
            group = bytes(t[p:e])
        p = e
    flush()

def aml_seeds(table):
    out = []
    pieces(table, 36, min(len(table), int.from_bytes(table[4:8], "little")), [], out)
    return out

CORPUS = os.path.join(HERE, "..", "..", "shared", "acpi-corpus")
if os.path.isdir(CORPUS):
    for machine in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, machine)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f == "dsdt.dat" or (f.startswith("ssdt") and f.endswith(".dat")):
                for i, piece in enumerate(aml_seeds(open(os.path.join(d, f), "rb").read())):
                    put("aml", f"{machine}-{f[:-4]}-{i}", piece)
else:
    print(f"aml seeds: {CORPUS} absent")

for i, line in enumerate(["", "nomsi", "nomsix irq.00:03.0=intx x2apic=off rounds=5", "scenario=all soak=1000",
                          "irq.zz:00.0=msi rounds=0 bogus"]):
    put("cmdline", f"line{i}", line.encode())

# An e1000e-like function: MSI-X at 0xA0 (5 entries in BAR3), MSI at 0xD0, PCIe at 0xE0, AER at 0x100.
cfg = bytearray(4096)
struct.pack_into("<HHHH", cfg, 0, 0x8086, 0x10D3, 0x0006, 0x0010)
cfg[0x34] = 0xA0
cfg[0xA0:0xA4] = bytes([0x11, 0xD0, 0x04, 0x00]); struct.pack_into("<II", cfg, 0xA4, 3, 0x2003)
cfg[0xD0:0xD4] = bytes([0x05, 0xE0, 0x80, 0x00])
cfg[0xE0:0xE2] = bytes([0x10, 0x00])
struct.pack_into("<I", cfg, 0x100, 0x0001 | 1 << 16)
masks = struct.pack("<6I", 0xFFFE0000, 0xFFFE0000, 0xFFFFFFE1, 0xFFFFC000, 0, 0)
struct.pack_into("<4I", cfg, 0x10, 0xFEA00000, 0xFEA20000, 0xC001, 0xFEA40000)
put("pci_function", "e1000e", bytes(cfg) + masks)

# hvm_start_info at 0x1000 with a command line at 0x1100 and two memory-map entries at 0x1200.
low = bytearray(0x400)
struct.pack_into("<IIII", low, 0, 0x336EC578, 1, 0, 0)
struct.pack_into("<QQQI", low, 0x18, 0x1100, 0xF59E0, 0x1200, 2)
low[0x100:0x106] = b"nomsi\0"
struct.pack_into("<QQI", low, 0x200, 0, 0x9FC00, 1)
struct.pack_into("<QQI", low, 0x218, 0x100000, 0xFF00000, 1)
put("boot_info", "pvh", bytes(low))
put("write_order", "empty", b"")
# MP tables (fuzz target `mptable`: memory from 0xF0000): SeaBIOS's on pc as QEMU 7.2 builds it (one CPU, PCI
# bus 0, ISA bus 1, IOAPIC 0, PCI entries for 02/03/04 and a bridge at 05, the ISA IRQs), and qboot's shape
# (ISA bus only, entry count 0).
def mp_image(entries, count):
    t = bytearray(b"PCMP" + struct.pack("<HBB", 44 + len(entries), 4, 0) + b"BOCHSCPU0.1         " + bytes(6)
                  + struct.pack("<HIHBB", count, 0xFEE00000, 0, 0, 0) + entries)
    t[7] = (-sum(t)) & 0xFF
    fp = bytearray(b"_MP_" + struct.pack("<IBBBB", 0xF5BA0, 1, 4, 0, 0) + bytes(4))
    fp[10] = (-sum(fp)) & 0xFF
    img = bytearray(0x10000)
    img[0x5B90:0x5BA0] = fp
    img[0x5BA0:0x5BA0 + len(t)] = t
    return bytes(img)

cpu = bytes([0, 0, 0x14, 3]) + struct.pack("<II", 0x663, 0x078BFBFF) + bytes(8)
def bus(i, name): return bytes([1, i]) + name
def intsrc(flags, b, irq, dst): return struct.pack("<BBHBBBB", 3, 0, flags, b, irq, 0, dst)
isa = b"".join(intsrc(0, 1, i, 2 if i == 0 else i) for i in range(16) if i not in (2, 5, 9, 10, 11))
lint = struct.pack("<BBHBBBB", 4, 3, 0, 1, 0, 0, 0) + struct.pack("<BBHBBBB", 4, 1, 0, 1, 0, 0xFF, 1)
seabios = (cpu + bus(0, b"PCI   ") + bus(1, b"ISA   ") + bytes([2, 0, 0x11, 1]) + struct.pack("<I", 0xFEC00000)
           + b"".join(intsrc(1, 0, d << 2, l) for d, l in ((2, 10), (3, 11), (4, 11), (5, 10))) + isa + lint)
put("mptable", "seabios-pc", mp_image(seabios, len(seabios) // 8 - 1))
qboot = cpu + bus(0, b"ISA   ") + bytes([2, 2, 0x14, 1]) + struct.pack("<I", 0xFEC00000) + isa + lint
put("mptable", "qboot", mp_image(qboot, 0))
print("seeds written to", os.path.join(HERE, "corpus"))
