// The host memory policy of each guest cell's backend (qemuBuildMemoryBackendProps), over
// libvirt's own test domains (../shared/corpus/libvirt-domains, tests/qemuxmlconfdata).
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";
import { backendPolicies, backendPolicy } from "./numatune.js";
import { parseDomain } from "./parse.js";

const CORPUS = corpusSubdir("libvirt-domains");
const dom = (f: string) => parseDomain(readFileSync(`${CORPUS}valid/${f}`, "utf8"), f).domain;

describe.skipIf(!existsSync(CORPUS))("numatune -> QEMU memory backend policy", () => {
  it("numatune-system-memory.xml: strict nodeset 0, no guest cells -> bind to host node 0", () => {
    expect(backendPolicies(dom("numatune-system-memory.xml"))).toEqual([
      { cell: -1, memoryKiB: 219136, policy: { mode: "strict", policy: "bind", hostNodes: [0] } },
    ]);
  });
  it("numatune-memnode.xml: memnodes override <memory> per cell", () => {
    const d = dom("numatune-memnode.xml");
    // cell 0: <memnode cellid='0' mode='preferred' nodeset='3'/>
    expect(backendPolicy(d, 0)).toEqual({ mode: "preferred", policy: "preferred", hostNodes: [3] });
    // cell 1 has no memnode: <memory mode='strict' nodeset='0-3'/>
    expect(backendPolicy(d, 1)).toEqual({
      mode: "strict",
      policy: "bind",
      hostNodes: [0, 1, 2, 3],
    });
    // cell 2: nodeset='0-2,^1' is nodes 0 and 2
    expect(backendPolicy(d, 2)).toEqual({ mode: "strict", policy: "bind", hostNodes: [0, 2] });
    expect(backendPolicies(d).map((p) => p.memoryKiB)).toEqual([20002, 660066, 24002400]);
  });
});

describe("numatune modes", () => {
  const xml = (nt: string) =>
    `<domain type='kvm'><name>t</name><memory unit='GiB'>1</memory>${nt}<os><type arch='x86_64'>hvm</type></os></domain>`;
  it.each([
    ["strict", "bind"],
    ["preferred", "preferred"],
    ["interleave", "interleave"],
    // libvirt restricts cpuset.mems instead of giving QEMU a policy
    ["restrictive", "cpuset"],
  ])("mode='%s' -> %s", (mode, policy) => {
    const d = parseDomain(xml(`<numatune><memory mode='${mode}' nodeset='1'/></numatune>`)).domain;
    expect(backendPolicy(d)).toEqual({ mode, policy, hostNodes: [1] });
  });
  it("no numatune, or placement='auto' (numad), places nothing", () => {
    expect(backendPolicy(parseDomain(xml("")).domain)).toBeNull();
    const auto = parseDomain(xml("<numatune><memory mode='strict' placement='auto'/></numatune>"));
    expect(backendPolicy(auto.domain)).toBeNull();
  });
});
