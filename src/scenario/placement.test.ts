// <numatune> -> mbind ranges over guest RAM, and the preallocation check of bound hugepage RAM,
// over libvirt's own test domain numatune-memnode.xml (../shared/corpus, tests/qemuxmlconfdata).
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { corpusSubdir } from "../../test/corpus.js";
import { parseDomain } from "../libvirt/index.js";
import { Host } from "../sim/host.js";
import { preallocShortfall, vmPlacement } from "./placement.js";

const CORPUS = corpusSubdir("libvirt-domains");
const M2 = 2097152;

describe.skipIf(!existsSync(CORPUS))("numatune-memnode.xml", () => {
  const d = parseDomain(readFileSync(`${CORPUS}valid/numatune-memnode.xml`, "utf8")).domain;
  const ram = (20002 + 660066 + 24002400) * 1024;

  it("gives each guest cell's byte range its backend's policy, cell 0 first", () => {
    const p = vmPlacement(d, ram, 4);
    expect(p.error).toBeNull();
    expect(p.ranges.map((r) => [r.start, r.end, r.policy.mode, r.policy.nodes])).toEqual([
      // memnode cellid 0: preferred, nodeset 3 (QEMU makes it MPOL_PREFERRED_MANY)
      [0, 20002 * 1024, "preferred-many", 0b1000],
      [20002 * 1024, (20002 + 660066) * 1024, "bind", 0b1111], // <memory> strict 0-3
      [(20002 + 660066) * 1024, ram, "bind", 0b0101], // memnode cellid 2: strict 0-2,^1
    ]);
  });

  it("fails as virNumaNodesetIsAvailable does on a host without node 3", () => {
    expect(vmPlacement(d, ram, 2)).toEqual({
      ranges: [],
      error: "unsupported configuration: NUMA node 3 is unavailable",
    });
  });
});

describe("preallocShortfall", () => {
  it("takes pages along the local zonelist within each range's nodes, in order", () => {
    const host = new Host({ memory: 4 * 1073741824, cpus: 2, nodes: 2 });
    host.reserveHugePagesOnNode(M2, 0, 3);
    host.reserveHugePagesOnNode(M2, 1, 2);
    const pool = host.pools.get(M2)!;
    const bind = (start: number, pages: number, nodes: number) => ({
      start,
      end: start + pages * M2,
      policy: { mode: "bind" as const, nodes },
      mode: "strict",
      hostNodes: [],
    });
    // range 1: 4 pages on {0,1} from node 1's zonelist: 2 of node 1, then 2 of node 0;
    // range 2: 2 pages on {0}: node 0 has 1 left -> 1 short
    expect(preallocShortfall(pool, host.mem, [bind(0, 4, 0b11), bind(4 * M2, 2, 0b01)], 1)).toEqual(
      [0, 1],
    );
    // interleave and preferred ranges are not bound: nothing to check
    const inter = { ...bind(0, 9, 0b11), policy: { mode: "interleave" as const, nodes: 0b11 } };
    expect(preallocShortfall(pool, host.mem, [inter], 0)).toEqual([0]);
  });
});
