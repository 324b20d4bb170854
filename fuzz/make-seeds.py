#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ seed files from the real QEMU 7.2 table dumps kept in the repository
(src/platform/acpi/qemu-7.2-{q35,pc}-tables.dat, a table image at 0x0FFE0000) and a few hand-made inputs.
The corpus is made at run time and not committed."""
import os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
DUMPS = os.path.join(HERE, "..", "src", "platform", "acpi")
# The RSDPs QEMU 7.2 + SeaBIOS placed (20 bytes each; the same values the host tests use).
RSDP = {
    "q35": bytes([0x52, 0x53, 0x44, 0x20, 0x50, 0x54, 0x52, 0x20, 0x8c, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20, 0x00, 0x97, 0x22, 0xfe, 0x0f]),
    "pc": bytes([0x52, 0x53, 0x44, 0x20, 0x50, 0x54, 0x52, 0x20, 0x87, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20, 0x00, 0xa4, 0x1a, 0xfe, 0x0f]),
}
DSDT_AT = 0x40  # 0x0FFE0040 in both dumps

def put(target, name, data):
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
    dsdt = capture_dsdt(args)
    if dsdt is None:
        print(f"hostbridge seed {name}: no DSDT captured (is qemu-system-x86_64 installed?)")
    else:
        put("hostbridge", name, dsdt)

# The AML evaluator (target `aml`): every DSDT of the real machines beside the project.
CORPUS = os.path.join(HERE, "..", "..", "shared", "acpi-corpus")
if os.path.isdir(CORPUS):
    for machine in sorted(os.listdir(CORPUS)):
        f = os.path.join(CORPUS, machine, "dsdt.dat")
        if os.path.exists(f):
            put("aml", machine, open(f, "rb").read())
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
