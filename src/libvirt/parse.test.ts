/**
 * parseDomain against libvirt's own test data (../shared/corpus/libvirt-domains, libvirt 11.3.0
 * tests/qemuxmlconfdata, read in place; see its README). The strongest check is
 * normalized-output/: libvirt's re-formatted XML after its parser and post-parse ran, so the
 * model of an input must equal the model of libvirt's output for every memory field.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";
import type { Domain } from "./model.js";
import { parseDomain } from "./parse.js";

const CORPUS = corpusSubdir("libvirt-domains");
const have = existsSync(CORPUS);
const files = (sub: string) =>
  have ? readdirSync(CORPUS + sub).filter((f) => f.endsWith(".xml")) : [];
const read = (p: string) => readFileSync(CORPUS + p, "utf8");

describe.skipIf(!have)("every corpus file parses", () => {
  const all = ["valid", "invalid", "normalized-output", "other"].flatMap((s) =>
    files(s).map((f) => `${s}/${f}`),
  );
  it("finds the 85 corpus files", () => expect(all.length).toBe(85));
  it.each(all.filter((f) => !f.startsWith("invalid/")))("%s: no parse problems", (f) => {
    const r = parseDomain(read(f), f);
    expect(r.problems).toEqual([]);
    expect(r.domain.memoryKiB).toBeGreaterThanOrEqual(0);
  });
  it.each(files("invalid"))(
    "invalid/%s: parses to a model (problems are collected, not thrown)",
    (f) => {
      const r = parseDomain(read(`invalid/${f}`), f);
      expect(r.source.root?.name).toBe("domain");
    },
  );
});

/** The memory fields libvirt's formatter writes back. */
function memoryView(d: Domain) {
  return {
    memoryKiB: d.memoryKiB,
    currentMemoryKiB: d.currentMemoryKiB,
    maxMemory: d.maxMemory,
    memoryBacking: d.memoryBacking,
    memtune: d.memtune,
    numatune: d.numatune,
    numa: d.numa,
    memoryDevices: d.memoryDevices,
    balloon: {
      model: d.memballoon.model,
      autodeflate: d.memballoon.autodeflate,
      stats: d.memballoon.statsPeriod,
    },
  };
}

describe.skipIf(!have)("the model equals the model of libvirt's own normalized output", () => {
  it.each(files("normalized-output"))("%s", (f) => {
    const input = f.replace(".x86_64-latest.xml", ".xml");
    const a = parseDomain(read(`valid/${input}`)).domain;
    const b = parseDomain(read(`normalized-output/${f}`)).domain;
    expect(memoryView(a)).toEqual(memoryView(b));
  });
  it("libvirt adds the memballoon the input lacked; the model marks it implicit", () => {
    const a = parseDomain(read("valid/balloon-device-auto.xml")).domain.memballoon;
    const b = parseDomain(read("normalized-output/balloon-device-auto.x86_64-latest.xml")).domain
      .memballoon;
    expect([a.implicit, b.implicit, a.model, b.model]).toEqual([true, false, "virtio", "virtio"]);
  });
});

describe.skipIf(!have)("models of particular files (values read off the XML by hand)", () => {
  const d = (f: string) => parseDomain(read(f)).domain;
  it("memtune.xml: MiB and KB units, memtune limits", () => {
    const m = d("valid/memtune.xml");
    expect(m.memoryKiB).toBe(214 * 1024); // <memory unit='MiB'>214</memory>
    // hard_limit 512000 KiB, soft_limit 0 bytes, swap_hard_limit 1048576 KB = 1024000 KiB
    expect(m.memtune).toEqual({
      hardLimit: 512000,
      softLimit: 0,
      swapHardLimit: 1024000,
      minGuarantee: undefined,
    });
  });
  it("memtune-unlimited.xml: 2^53-1 KiB hard_limit is unlimited", () => {
    expect(d("valid/memtune-unlimited.xml").memtune.hardLimit).toBe("unlimited");
  });
  it("hugepages-numa-nodeset.xml: two page sizes with nodesets, cells in id order", () => {
    const m = d("valid/hugepages-numa-nodeset.xml");
    expect(m.memoryBacking.hugepages).toEqual([
      { sizeKiB: 2048, nodeset: [1] },
      { sizeKiB: 1048576, nodeset: [0, 2, 3] },
    ]);
    expect(m.numa.map((c) => [c.id, c.memoryKiB])).toEqual([
      [0, 1048576],
      [1, 1048576],
      [2, 1048576],
      [3, 1048576],
    ]);
  });
  it("hugepages-nodeset.xml: nodeset '0' without guest NUMA is dropped (virDomainDefPostParseMemtune)", () => {
    expect(d("valid/hugepages-nodeset.xml").memoryBacking.hugepages).toEqual([
      { sizeKiB: 2048, nodeset: undefined },
    ]);
  });
  it("hugepages-default.xml: bare <hugepages/> is one page of the host default size", () => {
    expect(d("valid/hugepages-default.xml").memoryBacking.hugepages).toEqual([
      { sizeKiB: undefined, nodeset: undefined },
    ]);
  });
  it("cpu-numa-no-memory-element.xml: total memory is the sum of the cells", () => {
    const m = d("valid/cpu-numa-no-memory-element.xml");
    expect([m.memoryKiB, m.memoryFromNuma, m.currentMemoryKiB]).toEqual([219100, true, 219100]);
  });
  it("memory-hotplug-virtio-mem.xml: virtio-mem devices with requested, block, address", () => {
    const m = d("valid/memory-hotplug-virtio-mem.xml");
    expect(m.maxMemory).toEqual({ kib: 1099511627776, slots: 0 });
    expect(
      m.memoryDevices.map((x) => [
        x.model,
        x.sizeKiB,
        x.requestedKiB,
        x.blockKiB,
        x.node,
        x.addressBase,
      ]),
    ).toEqual([
      ["virtio-mem", 1048576, 524288, 2048, 0, undefined],
      ["virtio-mem", 2097152, 1048576, 2048, 0, 0x150000000],
    ]);
    expect(m.memoryDevices[1].sourceNodemask).toEqual([1, 2, 3]);
    expect(m.memoryDevices[1].sourcePageSizeKiB).toBe(2048);
  });
  it("memorybacking-set.xml: source, access, allocation", () => {
    const mb = d("valid/memorybacking-set.xml").memoryBacking;
    expect([mb.source, mb.access, mb.allocation]).toEqual(["file", "shared", "immediate"]);
  });
  it("balloon-device-period.xml and freepage reporting", () => {
    expect(d("valid/balloon-device-period.xml").memballoon.statsPeriod).toBe(10);
    expect(
      d("valid/virtio-options-memballoon-freepage-reporting.xml").memballoon.freePageReporting,
    ).toBe(true);
    expect(d("valid/balloon-device-deflate-off.xml").memballoon.autodeflate).toBe(false);
  });
  it("numatune-memnode.xml: memory and memnodes", () => {
    const nt = d("valid/numatune-memnode.xml").numatune;
    expect(nt?.memory).toEqual({ mode: "strict", placement: "static", nodeset: [0, 1, 2, 3] });
    expect(nt?.memnodes).toEqual([
      { cellid: 0, mode: "preferred", nodeset: [3] },
      { cellid: 2, mode: "strict", nodeset: [0, 2] },
    ]);
  });
});

describe("problems are positioned and never thrown", () => {
  it("malformed XML", () => {
    const r = parseDomain("<domain>\n  <memory>1</memry>\n</domain>");
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({ code: "xml.malformed", line: 2, severity: "error" });
  });
  it("unknown unit: at the unit attribute", () => {
    const r = parseDomain("<domain type='kvm'>\n  <memory unit='XB'>1</memory>\n</domain>");
    expect(r.problems[0]).toMatchObject({
      code: "unit.invalid",
      message: "unknown suffix 'XB'",
      line: 2,
      column: 11,
      path: "/domain/memory/@unit",
    });
  });
  it("not a domain", () => {
    expect(parseDomain("<network/>").problems[0].code).toBe("xml.root");
  });
  it("empty input", () => {
    expect(parseDomain("").problems[0].code).toBe("xml.malformed");
  });
});

describe("the implicit memballoon (qemuDomainDefAddDefaultDevices)", () => {
  const balloon = (arch: string, machine: string) =>
    parseDomain(
      `<domain type='kvm'><memory>1024</memory><os><type arch='${arch}' machine='${machine}'>hvm</type></os></domain>`,
    ).domain.memballoon;
  it.each([
    ["x86_64", "q35", "virtio"], // x86: added
    ["x86_64", "microvm", "none"], // ... but not for microvm
    ["aarch64", "virt", "none"], // ARM: never added
    ["s390x", "s390-ccw-virtio", "virtio"], // s390: added
    ["ppc64le", "pseries", "virtio"], // ppc64: added
    ["riscv64", "virt", "none"], // RISC-V: not added
  ])("%s %s -> %s", (arch, machine, model) => {
    expect(balloon(arch, machine)).toMatchObject({ model, implicit: true });
  });
  it("non-QEMU domain types get none", () => {
    expect(
      parseDomain("<domain type='lxc'><memory>1024</memory></domain>").domain.memballoon.model,
    ).toBe("none");
  });
});

describe("virDomainDefParseMemory's own refusals (messages as libvirt words them)", () => {
  const problems = (inner: string) =>
    parseDomain(`<domain type='kvm'><name>t</name>${inner}</domain>`).problems.map(
      (p) => p.message,
    );
  it.each([
    // unknown enum values are CONFIG_UNSUPPORTED with the XPath in the message
    [
      "<memory>1024</memory><memoryBacking><source type='tmpfs'/></memoryBacking>",
      "unknown memoryBacking/source/type 'tmpfs'",
    ],
    [
      "<memory>1024</memory><memoryBacking><access mode='public'/></memoryBacking>",
      "unknown memoryBacking/access/mode 'public'",
    ],
    [
      "<memory>1024</memory><memoryBacking><allocation mode='lazy'/></memoryBacking>",
      "unknown memoryBacking/allocation/mode 'lazy'",
    ],
    [
      "<memory>1024</memory><memoryBacking><allocation threads='many'/></memoryBacking>",
      "Failed to parse memory allocation threads",
    ],
    [
      "<maxMemory slots='-1'>4096</maxMemory><memory>1024</memory>",
      "Failed to parse memory slot count",
    ],
    // two balloons
    [
      "<memory>1024</memory><devices><memballoon model='virtio'/><memballoon model='none'/></devices>",
      "only a single memory balloon device is supported",
    ],
  ])("%s", (inner, message) => {
    expect(problems(inner)).toEqual([message]);
  });
  it("min_guarantee is a plain memory size: 2^53-1 KiB is a size, not 'unlimited'", () => {
    const d = parseDomain(
      "<domain type='kvm'><memory>1024</memory><memtune><min_guarantee>9007199254740991</min_guarantee><hard_limit>9007199254740991</hard_limit></memtune></domain>",
    ).domain;
    expect([d.memtune.minGuarantee, d.memtune.hardLimit]).toEqual([9007199254740991, "unlimited"]);
  });
});
