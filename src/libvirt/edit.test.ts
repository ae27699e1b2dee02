/**
 * editDomain changes exactly the nodes asked for. Checked by line diffs (an LCS diff written
 * here) of the original and the edited text, over libvirt's corpus (../shared/corpus, read in
 * place) and over hand-made documents with comments, CRLF line ends, double quotes and the
 * qemu: namespace.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";
import { type EditRequest, editDomain } from "./edit.js";
import { loadSchemas } from "./node.js";
import { parseDomain } from "./parse.js";
import { validateDomain } from "./validate.js";

const CORPUS = corpusSubdir("libvirt-domains");
const have = existsSync(CORPUS);
const files = (sub: string) =>
  have ? readdirSync(CORPUS + sub).filter((f) => f.endsWith(".xml")) : [];
const read = (p: string) => readFileSync(CORPUS + p, "utf8");

/** Lines only in a (removed) and only in b (added), by longest common subsequence. */
function lineDiff(a: string, b: string): { removed: string[]; added: string[] } {
  const x = a.split("\n");
  const y = b.split("\n");
  const n = x.length;
  const m = y.length;
  const L: number[][] = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      i++;
      j++;
    } else if (L[i + 1][j] >= L[i][j + 1]) removed.push(x[i++]);
    else added.push(y[j++]);
  }
  while (i < n) removed.push(x[i++]);
  while (j < m) added.push(y[j++]);
  return { removed, added };
}

const all = ["valid", "invalid", "normalized-output", "other"].flatMap((s) =>
  files(s).map((f) => `${s}/${f}`),
);

describe.skipIf(!have)("editing nothing returns identical bytes", () => {
  it.each(all)("%s", (f) => {
    const text = read(f);
    const r = editDomain(text, {});
    expect(r.text === text).toBe(true);
    expect(r.changes).toEqual([]);
  });
});

describe.skipIf(!have)("each edit changes exactly the intended lines", () => {
  const cases: Array<[string, EditRequest, string[], string[]]> = [
    [
      "valid/mlock-off.xml",
      { memoryKiB: 4194304 },
      ["  <memory unit='KiB'>219136</memory>"],
      ["  <memory unit='KiB'>4194304</memory>"],
    ],
    // the unit is kept when the new size is exact in it
    [
      "valid/memtune.xml",
      { memoryKiB: 4194304 },
      ["  <memory unit='MiB'>214</memory>"],
      ["  <memory unit='MiB'>4096</memory>"],
    ],
    // ... and becomes KiB when it is not
    [
      "valid/memtune.xml",
      { memoryKiB: 219137 },
      ["  <memory unit='MiB'>214</memory>"],
      ["  <memory unit='KiB'>219137</memory>"],
    ],
    [
      "valid/mlock-off.xml",
      { currentKiB: 131072 },
      ["  <currentMemory unit='KiB'>219136</currentMemory>"],
      ["  <currentMemory unit='KiB'>131072</currentMemory>"],
    ],
    [
      "valid/mlock-off.xml",
      { max: { kib: 4194304, slots: 8 } },
      [],
      ["  <maxMemory slots='8' unit='KiB'>4194304</maxMemory>"],
    ],
    [
      "valid/memory-hotplug.xml",
      { max: { kib: 2097152 } },
      ["  <maxMemory slots='16' unit='KiB'>1099511627776</maxMemory>"],
      ["  <maxMemory slots='16' unit='KiB'>2097152</maxMemory>"],
    ],
    [
      "valid/mlock-off.xml",
      { locked: true },
      [],
      ["  <memoryBacking>", "    <locked/>", "  </memoryBacking>"],
    ],
    [
      "valid/mlock-on.xml",
      { locked: false },
      ["  <memoryBacking>", "    <locked/>", "  </memoryBacking>"],
      [],
    ],
    [
      "valid/nosharepages.xml",
      { nosharepages: false },
      ["  <memoryBacking>", "    <nosharepages/>", "  </memoryBacking>"],
      [],
    ],
    [
      "valid/hugepages-default.xml",
      { hugepages: { sizeKiB: 1048576 } },
      ["    <hugepages/>"],
      ["    <hugepages>", "      <page size='1048576' unit='KiB'/>", "    </hugepages>"],
    ],
    [
      "valid/hugepages-default-2M.xml",
      { hugepages: "none" },
      [
        "  <memoryBacking>",
        "    <hugepages>",
        "      <page size='2048' unit='KiB'/>",
        "    </hugepages>",
        "  </memoryBacking>",
      ],
      [],
    ],
    ["valid/memorybacking-set.xml", { nosharepages: true }, [], ["    <nosharepages/>"]],
    [
      "valid/balloon-device.xml",
      { balloon: "none" },
      [
        "    <memballoon model='virtio'>",
        "      <address type='pci' domain='0' bus='0' slot='18' function='0'/>",
        "    </memballoon>",
      ],
      ["    <memballoon model='none'/>"],
    ],
    [
      "valid/balloon-device.xml",
      { balloon: { model: "virtio", statsPeriod: 5 } },
      [],
      ["      <stats period='5'/>"],
    ],
    [
      "valid/balloon-device-deflate.xml",
      { balloon: { model: "virtio", autodeflate: false } },
      ["    <memballoon model='virtio' autodeflate='on'>"],
      ["    <memballoon model='virtio' autodeflate='off'>"],
    ],
  ];
  it.each(cases)("%s %j", (f, req, removed, added) => {
    const text = read(f);
    const r = editDomain(text, req);
    expect(r.problems).toEqual([]);
    expect(lineDiff(text, r.text)).toEqual({ removed, added });
  });

  it("memballoon <memballoon model='virtio'/> gains a stats child without other changes", () => {
    const text = read("valid/memorybacking-set.xml");
    const r = editDomain(text, { balloon: { model: "virtio", statsPeriod: 10 } });
    expect(lineDiff(text, r.text)).toEqual({
      removed: ["    <memballoon model='virtio'/>"],
      added: ["    <memballoon model='virtio'>", "      <stats period='10'/>", "    </memballoon>"],
    });
  });

  const EDITS: EditRequest[] = [
    { memoryKiB: 8388608 },
    { currentKiB: 1024 },
    { hugepages: { sizeKiB: 2048 } },
    { hugepages: "none" },
    { locked: true, nosharepages: true },
    { balloon: { model: "virtio", autodeflate: true, statsPeriod: 3 } },
    { balloon: "none" },
  ];
  const memoryLine =
    /<\/?(memory|currentMemory|maxMemory|memoryBacking|hugepages|page|nosharepages|locked|memballoon|stats)\b|^\s*<address /;
  it.each(files("valid"))("valid/%s: every edit touches only memory lines and reads back", (f) => {
    const text = read(`valid/${f}`);
    const before = parseDomain(text).domain;
    for (const req of EDITS) {
      const r = editDomain(text, req);
      if (req.memoryKiB !== undefined && before.numa.length > 0) {
        // refused: the NUMA cells decide the memory (qemuDomainSetMemoryFlags)
        expect([r.problems.length, r.text === text]).toEqual([1, true]);
        continue;
      }
      expect(r.problems).toEqual([]);
      const { removed, added } = lineDiff(text, r.text);
      for (const l of [...removed, ...added]) expect(l).toMatch(memoryLine);
      const after = parseDomain(r.text);
      expect(after.problems).toEqual([]);
      // what was not asked for is unchanged in the model
      expect(after.domain.numa).toEqual(before.numa);
      expect(after.domain.memoryDevices).toEqual(before.memoryDevices);
      expect(after.domain.name).toEqual(before.name);
      if (req.memoryKiB === undefined) expect(after.domain.memoryKiB).toBe(before.memoryKiB);
    }
  });

  it("edited corpus files still pass libvirt's RelaxNG schema", async () => {
    const schemas = loadSchemas();
    for (const f of [
      "valid/mlock-off.xml",
      "valid/memorybacking-set.xml",
      "valid/hugepages-numa-nodeset.xml",
      "valid/balloon-device.xml",
    ]) {
      const r = editDomain(read(f), {
        locked: true,
        nosharepages: true,
        balloon: { model: "virtio", autodeflate: true, statsPeriod: 3 },
        currentKiB: 65536,
      });
      const v = await validateDomain(r.text, { schemas });
      expect(v.problems.filter((p) => p.rule === "RelaxNG domain.rng")).toEqual([]);
    }
  });
});

describe("what is not asked for stays byte-identical", () => {
  const doc = [
    "<!-- managed by hand -->",
    '<domain type="kvm" xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">',
    "\t<name>guest</name>",
    '\t<memory unit="GiB">2</memory>   <!-- two -->',
    "\t<vcpu>2</vcpu>",
    '\t<os><type arch="x86_64">hvm</type></os>',
    "\t<devices>",
    "\t\t<unknownThing foo='bar'/>",
    "\t</devices>",
    "\t<qemu:commandline>",
    '\t\t<qemu:arg value="-no-hpet"/>',
    "\t</qemu:commandline>",
    "</domain>",
    "",
  ].join("\r\n");

  it("keeps CRLF, tabs, double quotes, comments, namespaces and unknown elements", () => {
    const r = editDomain(doc, {
      memoryKiB: 4 * 1024 * 1024,
      locked: true,
      balloon: { model: "virtio", autodeflate: true },
    });
    expect(r.problems).toEqual([]);
    const { removed, added } = lineDiff(doc, r.text);
    expect(removed).toEqual(['\t<memory unit="GiB">2</memory>   <!-- two -->\r']);
    expect(added).toEqual([
      '\t<memory unit="GiB">4</memory>   <!-- two -->\r',
      "\t<memoryBacking>\r",
      "\t\t<locked/>\r",
      "\t</memoryBacking>\r",
      '\t\t<memballoon model="virtio" autodeflate="on"/>\r',
    ]);
    expect(r.text.replace(/\r\n/g, "")).not.toMatch(/\n/);
  });

  it("a comment inside <memoryBacking> keeps the element when its last child goes", () => {
    const text =
      "<domain type='kvm'>\n  <memory>1048576</memory>\n  <memoryBacking>\n    <!-- pinned for DPDK -->\n    <locked/>\n  </memoryBacking>\n</domain>\n";
    const r = editDomain(text, { locked: false });
    expect(lineDiff(text, r.text)).toEqual({ removed: ["    <locked/>"], added: [] });
  });

  it("refuses --memory on a domain with NUMA cells, as libvirt's setmaxmem does", () => {
    const text =
      "<domain type='kvm'><memory>2048</memory><cpu><numa><cell id='0' cpus='0' memory='2048'/></numa></cpu></domain>";
    const r = editDomain(text, { memoryKiB: 4096 });
    expect(r.problems.map((p) => p.rule)).toEqual(["qemuDomainSetMemoryFlags (qemu_driver.c)"]);
    expect(r.text).toBe(text);
  });

  it("reports unparseable input and changes nothing", () => {
    const r = editDomain("<domain><memory>1</domain>", { memoryKiB: 2 });
    expect(r.problems[0].code).toBe("xml.malformed");
    expect(r.text).toBe("<domain><memory>1</domain>");
  });
});

describe("files as libvirt writes them to /etc/libvirt/qemu", () => {
  // libvirt's virDomainSaveConfig prepends this warning comment (src/conf/domain_conf.c)
  const header = [
    "<!--",
    "WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE",
    "OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:",
    "  virsh edit guest",
    "or other application using the libvirt API.",
    "-->",
    "",
    "<domain type='kvm'>",
    "  <name>guest</name>",
    "  <memory unit='KiB'>2097152</memory>",
    "  <currentMemory unit='KiB'>2097152</currentMemory>",
    "  <os>",
    "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>",
    "  </os>",
    "</domain>",
    "",
  ].join("\n");

  it("keeps the header comment and a byte-order mark", () => {
    for (const text of [header, `\uFEFF${header}`]) {
      const r = editDomain(text, { currentKiB: 1048576 });
      expect(lineDiff(text, r.text)).toEqual({
        removed: ["  <currentMemory unit='KiB'>2097152</currentMemory>"],
        added: ["  <currentMemory unit='KiB'>1048576</currentMemory>"],
      });
      expect(r.text.startsWith(text.slice(0, 200))).toBe(true);
    }
  });

  it("any memory size, in any unit the element had, reads back exactly (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.constantFrom("KiB", "MiB", "GiB", "k", "M", "G", "bytes", "KB", "MB"),
        (kib, unit) => {
          const text = header.replace(
            "<memory unit='KiB'>2097152</memory>",
            `<memory unit='${unit}'>0</memory>`,
          );
          const r = editDomain(text, { memoryKiB: kib });
          expect(r.problems).toEqual([]);
          expect(parseDomain(r.text).domain.memoryKiB).toBe(kib);
          const { removed, added } = lineDiff(text, r.text);
          expect(removed).toEqual([`  <memory unit='${unit}'>0</memory>`]);
          expect(added).toHaveLength(1);
          expect(added[0]).toMatch(/^ {2}<memory unit='[A-Za-z]+'>\d+<\/memory>$/);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("inserting what is missing, in libvirt's order and the document's indentation", () => {
  it("maxMemory, memory, currentMemory and memoryBacking into a domain that has none", () => {
    const text = "<domain type='kvm'>\n  <name>a</name>\n</domain>\n";
    const r = editDomain(text, {
      memoryKiB: 1048576,
      currentKiB: 524288,
      max: { kib: 2097152, slots: 1 },
      locked: true,
    });
    expect(r.text).toBe(
      [
        "<domain type='kvm'>",
        "  <name>a</name>",
        "  <maxMemory slots='1' unit='KiB'>2097152</maxMemory>",
        "  <memory unit='KiB'>1048576</memory>",
        "  <currentMemory unit='KiB'>524288</currentMemory>",
        "  <memoryBacking>",
        "    <locked/>",
        "  </memoryBacking>",
        "</domain>",
        "",
      ].join("\n"),
    );
  });
  it("children into self-closing <memoryBacking/> and <devices/>, one rewrite each", () => {
    const text =
      "<domain type='kvm'>\n  <name>a</name>\n  <memory>1048576</memory>\n  <memoryBacking/>\n  <devices/>\n</domain>\n";
    const r = editDomain(text, {
      hugepages: { sizeKiB: 2048 },
      locked: true,
      balloon: { model: "virtio", statsPeriod: 5 },
    });
    expect(lineDiff(text, r.text)).toEqual({
      removed: ["  <memoryBacking/>", "  <devices/>"],
      added: [
        "  <memoryBacking>",
        "    <hugepages>",
        "      <page size='2048' unit='KiB'/>",
        "    </hugepages>",
        "    <locked/>",
        "  </memoryBacking>",
        "  <devices>",
        "    <memballoon model='virtio'>",
        "      <stats period='5'/>",
        "    </memballoon>",
        "  </devices>",
      ],
    });
  });
  it("a <devices> element when there is none, as the last child", () => {
    const text = "<domain type='kvm'>\n  <name>a</name>\n  <memory>1048576</memory>\n</domain>\n";
    const r = editDomain(text, { balloon: { model: "virtio", statsPeriod: 5 } });
    expect(lineDiff(text, r.text).added).toEqual([
      "  <devices>",
      "    <memballoon model='virtio'>",
      "      <stats period='5'/>",
      "    </memballoon>",
      "  </devices>",
    ]);
  });
});

describe.skipIf(!have)("any combination of edits on any valid corpus file (property)", () => {
  const req = fc.record(
    {
      currentKiB: fc.integer({ min: 1024, max: 65536 }),
      max: fc.record({
        kib: fc.integer({ min: 2 ** 36, max: 2 ** 40 }),
        slots: fc.integer({ min: 0, max: 32 }),
      }),
      hugepages: fc.oneof(
        fc.constant("none" as const),
        fc.record({ sizeKiB: fc.constantFrom(2048, 1048576) }),
      ),
      balloon: fc.oneof(
        fc.constant("none" as const),
        fc.record(
          {
            model: fc.constant("virtio" as const),
            autodeflate: fc.boolean(),
            statsPeriod: fc.integer({ min: 1, max: 60 }),
          },
          { requiredKeys: ["model"] },
        ),
      ),
      nosharepages: fc.boolean(),
      locked: fc.boolean(),
    },
    { requiredKeys: [] },
  );
  const valid = files("valid");
  it("never throws, reads back, touches only memory lines, and a second identical edit changes nothing", () => {
    fc.assert(
      fc.property(fc.constantFrom(...valid), req, (f, r) => {
        const text = read(`valid/${f}`);
        const e = editDomain(text, r);
        expect(e.problems).toEqual([]);
        const { removed, added } = lineDiff(text, e.text);
        for (const l of [...removed, ...added]) {
          expect(l).toMatch(
            /<\/?(currentMemory|maxMemory|memoryBacking|hugepages|page|nosharepages|locked|memballoon|stats|address)\b/,
          );
        }
        expect(parseDomain(e.text).problems).toEqual([]);
        // idempotent: asking again for the same state gives the same bytes
        expect(editDomain(e.text, r).text).toBe(e.text);
      }),
      { numRuns: 300 },
    );
  });
});
