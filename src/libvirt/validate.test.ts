/**
 * validateDomain against libvirt's verdicts (../shared/corpus/libvirt-domains, libvirt 11.3.0):
 * every valid/ input passes; every invalid/ input is refused with the message in its
 * `.x86_64-latest.err` file (libvirt's own words, prefix such as "XML error: " aside). The two
 * refusals that depend on the host are checked with --host against host trees built here.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";
import { type HostTree, readHostFacts } from "./host.js";
import { diskHostTree, loadSchemas } from "./node.js";
import { checkDomain, type Verdict, validateDomain, validateDomains } from "./validate.js";
import { lineCol, parseXml } from "./xml.js";

const CORPUS = corpusSubdir("libvirt-domains");
const have = existsSync(CORPUS);
const files = (sub: string) =>
  have ? readdirSync(CORPUS + sub).filter((f) => f.endsWith(".xml")) : [];
const read = (p: string) => readFileSync(CORPUS + p, "utf8");
const schemas = loadSchemas();

// one run of the schema engine for the whole corpus (compiling domain.rng dominates the cost)
const corpusFiles = [
  ...files("valid").map((f) => `valid/${f}`),
  ...files("invalid").map((f) => `invalid/${f}`),
];
const verdicts = new Map<string, Verdict>();
const corpusVerdicts = await validateDomains(corpusFiles.map(read), { schemas });
for (const [i, v] of corpusVerdicts.entries()) verdicts.set(corpusFiles[i], v);

/** libvirt prefixes messages with the error class (virerror.c); the text after it is the rule's. */
const expected = (f: string) =>
  read(`invalid/${f.replace(/\.xml$/, ".x86_64-latest.err")}`)
    .trim()
    .replace(/^(XML error|unsupported configuration|internal error): /, "");

/** A host tree on disk, as `--root DIR` reads it. */
function hostDir(o: {
  hugepagesKiB: number[];
  nodes: number;
  nr?: number;
  mounts?: string;
}): string {
  const dir = mkdtempSync(join(tmpdir(), "kvmem-host-"));
  for (const s of o.hugepagesKiB) {
    mkdirSync(join(dir, `sys/kernel/mm/hugepages/hugepages-${s}kB`), { recursive: true });
    writeFileSync(
      join(dir, `sys/kernel/mm/hugepages/hugepages-${s}kB/nr_hugepages`),
      `${o.nr ?? 4096}\n`,
    );
  }
  for (let n = 0; n < o.nodes; n++)
    mkdirSync(join(dir, `sys/devices/system/node/node${n}`), { recursive: true });
  mkdirSync(join(dir, "proc"), { recursive: true });
  writeFileSync(
    join(dir, "proc/meminfo"),
    "MemTotal:       65536000 kB\nHugepagesize:       2048 kB\n",
  );
  if (o.mounts !== undefined) writeFileSync(join(dir, "proc/mounts"), o.mounts);
  return dir;
}

describe.skipIf(!have)("valid/: libvirt accepts, so does kvmem (schema + rules)", () => {
  it.each(files("valid"))("%s", (f) => {
    const v = verdicts.get(`valid/${f}`)!;
    expect(v.problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(v.valid).toBe(true);
  });
});

const HOST_DEPENDENT = ["hugepages-default-5M.xml", "numatune-static-nodeset-exceed-hostnode.xml"];

describe.skipIf(!have)("invalid/: refused for the reason libvirt gives", () => {
  it.each(files("invalid").filter((f) => !HOST_DEPENDENT.includes(f)))("%s", (f) => {
    const v = verdicts.get(`invalid/${f}`)!;
    expect(v.valid).toBe(false);
    const errors = v.problems.filter((p) => p.severity === "error");
    expect(errors.map((e) => e.message)).toContain(expected(f));
    for (const e of errors) {
      expect(e.line).toBeGreaterThan(0);
      expect(e.column).toBeGreaterThan(0);
      expect(e.rule).not.toBe("");
    }
  });

  it("hugepages-memaccess-invalid.xml is the only one the RelaxNG schema refuses (as virschematest says)", () => {
    const bySchema = corpusFiles.filter((f) =>
      verdicts.get(f)!.problems.some((p) => p.rule === "RelaxNG domain.rng"),
    );
    expect(bySchema).toEqual(["invalid/hugepages-memaccess-invalid.xml"]);
    const v = verdicts.get("invalid/hugepages-memaccess-invalid.xml")!;
    expect(v.problems.some((p) => p.rule === "RelaxNG domain.rng")).toBe(true);
  });

  it.each(HOST_DEPENDENT)("%s passes without the host: its refusal needs the host", (f) => {
    expect(verdicts.get(`invalid/${f}`)!.valid).toBe(true);
  });

  it("hugepages-default-5M.xml with --host: no hugetlbfs of 5 MiB on a 2M+1G host", async () => {
    const host = readHostFacts(diskHostTree(hostDir({ hugepagesKiB: [2048, 1048576], nodes: 1 })));
    const v = await validateDomain(read("invalid/hugepages-default-5M.xml"), { schemas, host });
    expect(v.problems.filter((p) => p.severity === "error").map((p) => p.message)).toEqual([
      expected("hugepages-default-5M.xml"),
    ]);
  });

  it("numatune-static-nodeset-exceed-hostnode.xml with --host: host nodes 0-3, so node 4 is first missing", async () => {
    const host = readHostFacts(diskHostTree(hostDir({ hugepagesKiB: [2048], nodes: 4 })));
    const v = await validateDomain(read("invalid/numatune-static-nodeset-exceed-hostnode.xml"), {
      schemas,
      host,
    });
    expect(v.problems.filter((p) => p.severity === "error").map((p) => p.message)).toEqual([
      expected("numatune-static-nodeset-exceed-hostnode.xml"),
    ]);
  });

  it("positions are the offending attribute's (hugepages-nodeset-nonexist.xml: nodeset='1')", () => {
    const text = read("invalid/hugepages-nodeset-nonexist.xml");
    const v = checkDomain(text);
    const doc = parseXml(text);
    expect(v.problems[0]).toMatchObject(lineCol(doc, text.indexOf("nodeset='1'")));
    expect(v.problems[0].path).toBe("/domain/memoryBacking/hugepages/page/@nodeset");
  });
});

describe.skipIf(!have)("host checks on valid domains", () => {
  const mem = (files: Record<string, string>): HostTree => ({
    read: (p) => files[p],
    list: (p) => {
      const pre = `${p}/`;
      const names = Object.keys(files)
        .filter((k) => k.startsWith(pre))
        .map((k) => k.slice(pre.length).split("/")[0]);
      return names.length ? [...new Set(names)] : undefined;
    },
  });
  it("hugepages-default-2M.xml passes on a host with 2 MiB pages, fails on a 1 GiB-only host", () => {
    const text = read("valid/hugepages-default-2M.xml");
    const ok = readHostFacts(diskHostTree(hostDir({ hugepagesKiB: [2048, 1048576], nodes: 1 })));
    const bad = readHostFacts(diskHostTree(hostDir({ hugepagesKiB: [1048576], nodes: 1 })));
    expect(checkDomain(text, ok).valid).toBe(true);
    expect(checkDomain(text, bad).problems.map((p) => p.message)).toEqual([
      "Unable to find any usable hugetlbfs mount for 2048 KiB",
    ]);
  });
  it("/proc/mounts decides when present: pagesize= option, else the default huge page size", () => {
    const facts = readHostFacts(
      mem({
        "proc/meminfo": "Hugepagesize:       2048 kB\n",
        "proc/mounts":
          "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=1G 0 0\nnone /mnt hugetlbfs rw 0 0\nproc /proc proc rw 0 0\n",
        "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages": "0\n",
      }),
    );
    expect([facts.hugetlbfsFrom, facts.hugetlbfsSizesKiB.sort()]).toEqual([
      "proc/mounts",
      [1048576, 2048],
    ]);
  });
  it("a hugepage pool smaller than the guest memory it backs is an error", () => {
    const host = readHostFacts(diskHostTree(hostDir({ hugepagesKiB: [2048], nodes: 1, nr: 100 })));
    const v = checkDomain(read("valid/hugepages-default-2M.xml"), host);
    expect(v.problems.map((p) => p.code)).toEqual(["host.hugepage-pool"]);
  });
  it("the system page size needs no hugetlbfs (hugepages-default-system-size.xml)", () => {
    const host = readHostFacts(mem({}));
    expect(checkDomain(read("valid/hugepages-default-system-size.xml"), host).valid).toBe(true);
  });
});

describe("libvirt's rules on small domains (one rule per row)", () => {
  const dom = (inner: string, type = "kvm") =>
    `<domain type='${type}'>\n  <name>t</name>\n${inner}\n  <os><type arch='x86_64'>hvm</type></os>\n</domain>\n`;
  it.each([
    // virDomainDefPostParseMemory
    ["<memory>1048576</memory><maxMemory slots='2'>524288</maxMemory>", "max.below-total"],
    [
      "<memory>1048576</memory><maxMemory slots='2' unit='KiB'>0</maxMemory>",
      "max.slots-without-max",
    ],
    ["<memory>0</memory>", "memory.missing"],
    // qemuDomainDefValidateMemoryHotplug: devices beyond maxMemory
    [
      "<maxMemory slots='4'>1572864</maxMemory><memory>1048576</memory><cpu><numa><cell id='0' cpus='0' memory='524288'/></numa></cpu><devices><memory model='dimm'><target><size>1048576</size><node>0</node></target></memory><memory model='dimm'><target><size>524288</size><node>0</node></target></memory></devices>",
      "hotplug.space",
    ],
    [
      "<maxMemory slots='1'>8388608</maxMemory><memory>2097152</memory><cpu><numa><cell id='0' cpus='0' memory='1048576'/></numa></cpu><devices><memory model='dimm'><target><size>524288</size><node>0</node></target></memory><memory model='dimm'><target><size>524288</size><node>0</node></target></memory></devices>",
      "hotplug.slots",
    ],
    [
      "<memory>1048576</memory><devices><memory model='dimm'><target><size>524288</size></target></memory></devices>",
      "hotplug.no-max",
    ],
    // virDomainDefMemtuneValidate
    [
      "<memory>1048576</memory><memoryBacking><hugepages><page size='2048' nodeset='0'/><page size='1048576' nodeset='0'/></hugepages></memoryBacking><cpu><numa><cell id='0' cpus='0' memory='1048576'/></numa></cpu>",
      "hugepages.nodeset-intersect",
    ],
    // virDomainNumaDefParseXML
    [
      "<memory>1048576</memory><cpu><numa><cell id='0' cpus='0-1' memory='524288'/><cell id='1' cpus='1' memory='524288'/></numa></cpu>",
      "numa.cpus-overlap",
    ],
    // qemuDomainDefValidateMemoryHotplugDevice: dimm slot beyond maxMemory slots
    [
      "<maxMemory slots='2'>8388608</maxMemory><memory>2097152</memory><cpu><numa><cell id='0' cpus='0' memory='1048576'/></numa></cpu><devices><memory model='dimm'><target><size>524288</size><node>0</node></target><address type='dimm' slot='2'/></memory></devices>",
      "hotplug.slot",
    ],
    // qemuDomainDefValidateMemoryHotplugDevice: with guest NUMA a dimm needs <node>
    [
      "<maxMemory slots='2'>8388608</maxMemory><memory>2097152</memory><cpu><numa><cell id='0' cpus='0' memory='1048576'/></numa></cpu><devices><memory model='dimm'><target><size>524288</size></target></memory></devices>",
      "hotplug.node",
    ],
    // virDomainMemoryDefValidate
    [
      "<maxMemory slots='1'>8388608</maxMemory><memory>2097152</memory><cpu><numa><cell id='0' cpus='0' memory='1048576'/></numa></cpu><devices><memory model='virtio-mem'><target><size>1048576</size><node>0</node><block>1024</block><requested>0</requested></target></memory></devices>",
      "memdev.block",
    ],
  ])("%s -> %s", (inner, code) => {
    const v = checkDomain(dom(inner));
    expect(v.problems.filter((p) => p.severity === "error").map((p) => p.code)).toContain(code);
    expect(v.valid).toBe(false);
  });

  it("currentMemory above memory: a warning, and the model holds the clamped value", () => {
    const v = checkDomain(dom("<memory>1048576</memory><currentMemory>2097152</currentMemory>"));
    expect(v.valid).toBe(true);
    expect(v.problems.map((p) => [p.severity, p.code, p.line])).toEqual([
      ["warning", "current.above-memory", 3],
    ]);
    expect(v.domain.currentMemoryKiB).toBe(1048576);
  });
});

describe.skipIf(!have)(
  "memfd-backed huge pages need the kernel's page size, not a hugetlbfs mount",
  () => {
    const text = () => read("valid/memfd-memory-numa.xml");
    const tree = (files: Record<string, string>): HostTree => ({
      read: (p) => files[p],
      list: (p) =>
        p === "sys/kernel/mm/hugepages"
          ? Object.keys(files)
              .filter((k) => k.startsWith(`${p}/`))
              .map((k) => k.split("/")[4])
          : undefined,
    });
    it("no mounts but a 2 MiB pool: fine", () => {
      const host = readHostFacts(
        tree({
          "proc/mounts": "proc /proc proc rw 0 0\n",
          "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages": "8192\n",
        }),
      );
      expect(checkDomain(text(), host).problems.filter((p) => p.severity === "error")).toEqual([]);
    });
    it("a kernel without 2 MiB pages: refused", () => {
      const host = readHostFacts(
        tree({ "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages": "16\n" }),
      );
      const errors = checkDomain(text(), host).problems.filter((p) => p.severity === "error");
      expect(errors.map((p) => p.code)).toEqual(["host.memfd-hugepage-size"]);
    });
  },
);

describe("hugepage pools per host node under a strict numatune binding", () => {
  const text =
    "<domain type='kvm'><name>t</name><memory unit='GiB'>1</memory><memoryBacking><hugepages><page size='2048'/></hugepages></memoryBacking><numatune><memory mode='strict' nodeset='1'/></numatune><os><type arch='x86_64'>hvm</type></os></domain>";
  const host = (node1Pages: number): HostTree => {
    const files: Record<string, string> = {
      "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages": "1024\n",
      "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages": `${1024 - node1Pages}\n`,
      "sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages": `${node1Pages}\n`,
    };
    return {
      read: (p) => files[p],
      list: (p) =>
        p === "sys/kernel/mm/hugepages"
          ? ["hugepages-2048kB"]
          : p === "sys/devices/system/node"
            ? ["node0", "node1", "possible"]
            : undefined,
    };
  };
  it("enough pages on the host but not on the bound node: refused", () => {
    // 1 GiB needs 512 pages of 2 MiB; node 1 has 100 (the host 1024)
    const v = checkDomain(text, readHostFacts(host(100)));
    expect(v.problems.map((p) => p.message)).toEqual([
      "host node 1 (strict numatune) has 100 huge pages of 2048 KiB (204800 KiB) but this domain needs 1048576 KiB of them",
    ]);
  });
  it("enough on the bound node: fine", () => {
    expect(checkDomain(text, readHostFacts(host(600))).valid).toBe(true);
  });
});

describe.skipIf(!have)(
  "host trees from the inspector's builder (test/hosttree.ts) read the same way",
  () => {
    it("2 MiB pool and mounts, no 1 GiB pages: 2M domains pass, 1G domains are refused", async () => {
      const { buildTree, writeTree } = await import("../../test/hosttree.js");
      const dir = writeTree(
        buildTree({
          hugepages: { 2048: { nr: 1024, free: 1024 }, 1048576: { nr: 0, free: 0 } },
          hugetlbfsMounts: [
            { path: "/dev/hugepages" },
            { path: "/dev/hugepages1G", pagesize: "1G" },
          ],
          numaNodes: 2,
        }),
      );
      const host = readHostFacts(diskHostTree(dir));
      expect(checkDomain(read("valid/hugepages-default-2M.xml"), host).valid).toBe(true);
      // hugepages-numa-nodeset-part.xml backs guest node 1 (768 MiB) with 1 GiB pages
      expect(
        checkDomain(read("valid/hugepages-numa-nodeset-part.xml"), host).problems.map(
          (p) => p.code,
        ),
      ).toEqual(["host.hugepage-pool"]);
    });
  },
);
