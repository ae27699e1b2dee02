/** `kvmem translate` as a user runs it: a real process, JSON fields, one-line errors. */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function kvmem(...args: string[]) {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "src/cli/main.ts", "translate", ...args],
    {
      cwd: root,
      encoding: "utf8",
    },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

interface Access {
  op: string;
  gva: string;
  gpa: string;
  hva: string;
  hpa: string;
  tlb: string;
  memoryReferences: { total: number; guest: number; ept: number };
  pageSize: { guest: string; ept: string | null; tlb: string };
  exits: Array<{ reason: string }>;
  faults: Array<{ type: string; errorCode: number }>;
  steps: Array<{
    dimension: string;
    level: number;
    tableAddress: string;
    index: number;
    entry: string;
    flags: string[];
  }>;
}

describe("kvmem translate", () => {
  it("--json: a cold 4K/4K walk of 24 references, then a TLB hit, and the kernel direct map", () => {
    const r = kvmem(
      "--json",
      "read",
      "0x7f0000001000",
      "read",
      "0x7f0000001000",
      "write",
      "0xffff888000001000",
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as {
      accesses: Access[];
      summary: { exits: Record<string, number> };
    };
    const [cold, hit, kernel] = j.accesses;
    expect(cold).toMatchObject({ op: "read", gva: "0x7f0000001000", tlb: "miss" });
    expect(cold.memoryReferences).toEqual({ total: 24, guest: 4, ept: 20 });
    expect(cold.pageSize).toMatchObject({ guest: "4K", ept: "4K", tlb: "4K" });
    for (const k of ["gpa", "hva", "hpa"] as const) expect(cold[k]).toMatch(/^0x[0-9a-f]+$/);
    expect(cold.steps).toHaveLength(24);
    expect(cold.steps[0]).toMatchObject({ dimension: "ept", level: 4, index: expect.any(Number) });
    expect(cold.steps[4]).toMatchObject({ dimension: "guest", level: 4 });
    expect(cold.steps[4].flags).toContain("P");
    expect(cold.steps[4].entry).toMatch(/^0x[0-9a-f]{16}$/);
    expect(cold.exits.length).toBeGreaterThan(0);
    expect(cold.exits.every((e) => e.reason === "EPT_VIOLATION")).toBe(true);
    expect(cold.faults).toEqual([]);
    expect(hit).toMatchObject({ tlb: "hit", memoryReferences: { total: 0, guest: 0, ept: 0 } });
    expect(kernel).toMatchObject({ gva: "0xffff888000001000", gpa: "0x1000" });
    expect(j.summary.exits.EPT_VIOLATION).toBeGreaterThan(0);
  });

  it("--ept off: a shadow walk of 4, faults with error codes", () => {
    const r = kvmem(
      "--json",
      "--ept",
      "off",
      "read",
      "0x7f0000001000",
      "user",
      "read",
      "0xffff888000001000",
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { accesses: Access[] };
    expect(j.accesses[0].memoryReferences).toEqual({ total: 4, guest: 4, ept: 0 });
    expect(j.accesses[0].pageSize.ept).toBeNull();
    expect(j.accesses[2].faults).toEqual([
      { type: "#PF", errorCode: 5, meaning: ["protection", "read", "user"] },
    ]);
    expect(j.accesses[2].exits.map((e) => e.reason)).toEqual(["EXCEPTION_NMI"]);
  });

  it("prints a table and the 2D grid", () => {
    const r = kvmem("--guest-page", "2M", "--backing", "2M", "read", "0x7f0000201000");
    expect(r.code).toBe(0);
    expect(r.out).toContain("memory references 15 (guest 3, ept 12)");
    expect(r.out).toMatch(/2D walk/);
    expect(r.out).toMatch(/\n\s+gpa\s+13\s+14\s+15\s+\.\n/);
    for (const line of r.out.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });

  it.each([
    [["read", "0x7g"], /'0x7g' is not an address/, 1],
    [["read", "0x0000800000000000"], /not canonical for 48-bit/, 1],
    [["--ept", "maybe", "read", "0x1000"], /--ept: unknown value 'maybe' \(one of on, off\)/, 2],
    [["--guest-page", "3M", "read", "0x1000"], /--guest-page: unknown value '3M'/, 2],
    [["fly", "0x1000"], /unknown access 'fly'/, 2],
    [["read"], /'read' needs an address/, 2],
  ])("refuses %j on one line", (args, message, code) => {
    const r = kvmem(...(args as string[]));
    expect(r.code).toBe(code);
    expect(r.out).toBe("");
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/^kvmem: /);
    expect(r.err).toMatch(message as RegExp);
  });
});
