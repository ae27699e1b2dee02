/**
 * qemuAlignMemorySizes (src/qemu/qemu_domain.c, libvirt 11.3.0) by hand-computed rows: cells and
 * initial memory round up to 1 MiB (256 MiB on ppc64), memory devices to 2 MiB, and a size past
 * 2^53 - 1 KiB after rounding is refused.
 */
import { describe, expect, it } from "vitest";
import { qemuAlignMemorySizes } from "./align.js";
import { parseDomain } from "./parse.js";

const dom = (arch: string, inner: string) =>
  parseDomain(`<domain type='kvm'><os><type arch='${arch}'>hvm</type></os>${inner}</domain>`)
    .domain;

describe("qemuAlignMemorySizes", () => {
  it("no NUMA: initial memory rounds up to 1 MiB", () => {
    // 1000001 KiB -> 977 MiB = 1000448 KiB
    const q = qemuAlignMemorySizes(dom("x86_64", "<memory>1000001</memory>"));
    expect([q.alignKiB, q.initialKiB, q.totalKiB, q.overflow]).toEqual([
      1024,
      1000448,
      1000448,
      undefined,
    ]);
  });
  it("NUMA: each cell rounds up, initial is their sum; dimms round to 2 MiB", () => {
    // cells 109550 -> 107 MiB = 109568 each; dimm 523264 -> 524288; maxMemory 1000000 -> 1000448
    const q = qemuAlignMemorySizes(
      dom(
        "x86_64",
        "<maxMemory slots='2'>1000000</maxMemory><memory>742364</memory><cpu><numa><cell id='0' cpus='0' memory='109550'/><cell id='1' cpus='1' memory='109550'/></numa></cpu><devices><memory model='dimm'><target><size>523264</size><node>0</node></target></memory></devices>",
      ),
    );
    expect([q.cellsKiB, q.initialKiB, q.modulesKiB, q.maxKiB, q.totalKiB]).toEqual([
      [109568, 109568],
      219136,
      [524288],
      1000448,
      219136 + 524288,
    ]);
  });
  it("ppc64 rounds to 256 MiB", () => {
    const q = qemuAlignMemorySizes(dom("ppc64", "<memory>1048577</memory>"));
    expect(q.initialKiB).toBe(1048576 + 262144);
  });
  it("a size past 2^53 - 1 KiB after rounding overflows (memory-align-fail.xml's case)", () => {
    const q = qemuAlignMemorySizes(
      dom(
        "x86_64",
        "<memory>9007199254740991</memory><cpu><numa><cell id='0' cpus='0' memory='9007199254740991'/></numa></cpu>",
      ),
    );
    expect(q.overflow).toEqual({
      what: "cell",
      index: 0,
      message: "memory size of NUMA node '0' overflowed after alignment",
    });
  });
});
