// kvmem host / kvmem host --check / --json as a user runs them: a child process over a --root tree.
import { describe, expect, it } from "vitest";
import { HostReportSchema } from "../src/inspect/schema.js";
import { kvmem } from "./cli.js";
import { buildTree, domainXml, writeTree } from "./hosttree.js";

describe("kvmem host (CLI)", () => {
  const good = writeTree(
    buildTree({
      ksm: { run: 1, pages_sharing: 100, full_scans: 3, general_profit: 100 * 4096 - 200 * 64 },
      swaps: [{ file: "/dev/sda2", sizeKiB: 4194304, usedKiB: 0 }],
      domains: {
        vm1: domainXml({
          name: "vm1",
          balloon: "<memballoon model='virtio'><stats period='10'/></memballoon>",
        }),
      },
    }),
  );
  const bad = writeTree(
    buildTree({ modules: { kvm_intel: { ept: "N", vpid: "Y" } }, thp: "never" }),
  );

  it("prints the five sections and findings within 100 columns", () => {
    const r = kvmem("host", "--root", good);
    expect(r.status).toBe(0);
    for (const h of [
      "1. Memory",
      "2. EPT and VPID",
      "3. Huge pages",
      "4. Overcommit",
      "5. Domains",
      "Findings",
    ])
      expect(r.stdout).toContain(h);
    expect(r.stdout).toContain("$ free -g");
    expect(r.stdout).toContain("vm1");
    expect(r.stdout.split("\n").filter((l) => l.length > 100)).toEqual([]);
  });

  it("--check: PASS lines and exit 0 on a good host, FAIL and exit 1 on a bad one", () => {
    const ok = kvmem("host", "--root", good, "--check");
    expect(ok.status).toBe(0);
    expect(
      ok.stdout
        .trim()
        .split("\n")
        .every((l) => / : PASS$/.test(l)),
    ).toBe(true);
    const nok = kvmem("host", "--root", bad, "--check");
    expect(nok.status).toBe(1);
    expect(nok.stdout).toMatch(
      /Checking if two-dimensional paging \(EPT\/NPT\) is in effect\s+: FAIL \(/,
    );
    expect(nok.stdout).toMatch(/Checking transparent huge pages\s+: WARN \(/);
  });

  it("--json is one document that satisfies the schema", () => {
    const r = kvmem("host", "--root", bad, "--json");
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(HostReportSchema.safeParse(doc).success).toBe(true);
    expect(doc.findings.map((f: { id: string }) => f.id)).toEqual(
      expect.arrayContaining(["tdp-off", "thp-never"]),
    );
  });

  it("--json-schema prints the JSON schema", () => {
    const r = kvmem("host", "--json-schema");
    expect(JSON.parse(r.stdout).type).toBe("object");
  });

  it("a bad --root is one line on stderr and exit 2", () => {
    const r = kvmem("host", "--root", "/nonexistent/tree");
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^kvmem: --root: '\/nonexistent\/tree' is not a directory \(/);
  });

  it("an unknown option is a usage error (exit 2)", () => {
    expect(kvmem("host", "--frobnicate").status).toBe(2);
  });
});
