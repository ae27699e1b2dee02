/**
 * <disk> as libvirt reads it for the simulator's page cache: type, device (disk by default),
 * target, source file or dev, and <driver cache> (virDomainDiskCache: absent is "default",
 * which QEMU runs as writeback; an unknown mode is a problem, as virDomainDiskDefDriverParseXML
 * reports it).
 */
import { describe, expect, it } from "vitest";
import { parseDomain } from "./parse.js";

const dom = (devices: string) =>
  `<domain type='kvm'><name>d</name><memory>1048576</memory><os><type>hvm</type></os><devices>${devices}</devices></domain>`;

describe("<disk>", () => {
  it("reads type, device, target, source and the cache mode", () => {
    const { domain, problems } = parseDomain(
      dom(`<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>
             <source file='/var/lib/libvirt/images/a.qcow2'/><target dev='vda' bus='virtio'/></disk>
           <disk type='block'><source dev='/dev/vg/b'/><target dev='vdb'/></disk>
           <disk type='file' device='cdrom'><driver name='qemu' cache='writethrough'/><target dev='sda'/></disk>`),
    );
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(domain.disks).toEqual([
      {
        type: "file",
        device: "disk",
        cache: "none",
        target: "vda",
        source: "/var/lib/libvirt/images/a.qcow2",
      },
      { type: "block", device: "disk", cache: "default", target: "vdb", source: "/dev/vg/b" },
      { type: "file", device: "cdrom", cache: "writethrough", target: "sda", source: undefined },
    ]);
  });

  it("an unknown cache mode is reported and read as the default", () => {
    const { domain, problems } = parseDomain(
      dom(`<disk type='file'><driver name='qemu' cache='fast'/><target dev='vda'/></disk>`),
    );
    expect(domain.disks[0].cache).toBe("default");
    expect(problems.some((p) => p.message.includes("fast"))).toBe(true);
  });
});
