/**
 * `kvmem domain` as a user runs it: a child process per call (test/cli.ts), exit statuses, the
 * one-line errors, and the files edit leaves behind. Corpus files are read in place from
 * ../shared/corpus/libvirt-domains (libvirt 11.3.0 test data) or copied to a temp dir for edits.
 */

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { kvmem } from "../../test/cli.js";
import { corpusSubdir } from "../../test/corpus.js";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const CORPUS = corpusSubdir("libvirt-domains");
const have = existsSync(CORPUS);
const tmp = () => mkdtempSync(join(tmpdir(), "kvmem-domain-"));
const oneLine = (s: string) => s.trimEnd().split("\n");

function scratch(text: string, name = "guest.xml"): string {
  const f = join(tmp(), name);
  writeFileSync(f, text);
  return f;
}

describe("one-line errors and exit statuses", () => {
  it("missing file: exit 1, one line naming the file", () => {
    const r = kvmem("domain", "/nonexistent/guest.xml");
    expect(r.status).toBe(1);
    expect(oneLine(r.stderr)).toEqual([
      "kvmem: /nonexistent/guest.xml: no such file (a libvirt domain XML file, e.g. /etc/libvirt/qemu/NAME.xml)",
    ]);
  });
  it("malformed XML: exit 1, one line with line:column", () => {
    const f = scratch("<domain type='kvm'>\n  <memory>1024</memry>\n</domain>\n");
    const r = kvmem("domain", f);
    expect(r.status).toBe(1);
    const lines = oneLine(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^kvmem: ${f}:2:\\d+: malformed XML: `));
  });
  it("unknown unit: exit 1, one line at the unit attribute", () => {
    const f = scratch(
      "<domain type='kvm'>\n  <name>x</name>\n  <memory unit='XB'>4</memory>\n</domain>\n",
    );
    const r = kvmem("domain", f);
    expect(r.status).toBe(1);
    expect(oneLine(r.stderr)).toEqual([
      `kvmem: ${f}:3:11: unknown suffix 'XB' [virDomainDefParseMemory (domain_conf.c)] (libvirt would refuse this file; kvmem domain validate lists every problem)`,
    ]);
  });
  it("usage errors exit 2", () => {
    expect(kvmem("domain").status).toBe(2);
    const f = scratch("<domain type='kvm'><memory>1048576</memory></domain>");
    const r = kvmem("domain", "edit", f, "--locked", "maybe");
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toEqual([
      "kvmem: --locked: 'maybe' is not on or off (--locked on|off)",
    ]);
    expect(kvmem("domain", "edit", f, "--memory", "4 parsecs").status).toBe(1);
  });
});

describe.skipIf(!have)("explain and validate on the corpus", () => {
  it("explain: plain words, exit 0", () => {
    const r = kvmem("domain", `${CORPUS}valid/hugepages-numa-nodeset.xml`);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("swap       No: hugetlbfs pages are never swapped.");
    expect(r.stdout).toContain("2 MiB pages for guest node 1");
  });
  it("--json gives the model", () => {
    const r = kvmem("domain", "--json", `${CORPUS}valid/memtune.xml`);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j[0].domain.memoryKiB).toBe(219136);
    expect(j[0].domain.memtune.swapHardLimit).toBe(1024000);
  });
  it("validate: every valid/ file, exit 0", () => {
    const all = readdirSync(`${CORPUS}valid`).map((f) => `${CORPUS}valid/${f}`);
    const r = kvmem("domain", "validate", ...all);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.match(/: valid \(/g)).toHaveLength(all.length);
  });
  it("validate: an invalid file, exit 1, each problem as file:line:col: severity: message [rule]", () => {
    const f = `${CORPUS}invalid/hugepages-nodeset-nonexist.xml`;
    const r = kvmem("domain", "validate", f);
    expect(r.status).toBe(1);
    expect(oneLine(r.stdout)).toEqual([
      `${f}:8:36: error: hugepages: node 1 not found [virDomainDefMemtuneValidate (domain_validate.c)]`,
      `${f}: invalid (1 errors, 0 warnings; schema, libvirt rules)`,
    ]);
  });
  it("validate --json: the problems as JSON, exit 1 for an invalid file", () => {
    const f = `${CORPUS}invalid/no-memory.xml`;
    const r = kvmem("domain", "validate", "--json", f);
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j[0]).toMatchObject({ file: f, valid: false });
    expect(j[0].problems[0]).toMatchObject({
      code: "memory.missing",
      severity: "error",
      rule: "virDomainDefPostParseMemory (domain_postparse.c)",
    });
  });
  it("validate --host --root: the host-dependent refusal", () => {
    const root = tmp();
    mkdirSync(join(root, "sys/kernel/mm/hugepages/hugepages-2048kB"), { recursive: true });
    mkdirSync(join(root, "sys/devices/system/node/node0"), { recursive: true });
    const f = `${CORPUS}invalid/hugepages-default-5M.xml`;
    expect(kvmem("domain", "validate", f).status).toBe(0);
    const r = kvmem("domain", "validate", "--host", "--root", root, f);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(
      "error: Unable to find any usable hugetlbfs mount for 5120 KiB [qemuGetDomainHupageMemPath (qemu_conf.c)]",
    );
  });
});

describe.skipIf(!have)("edit", () => {
  it("to stdout: only the asked lines change, the file is untouched", () => {
    const f = scratch(readFileSync(`${CORPUS}valid/mlock-off.xml`, "utf8"));
    const before = readFileSync(f, "utf8");
    const r = kvmem("domain", "edit", f, "--memory", "512M");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      before.replace("<memory unit='KiB'>219136</memory>", "<memory unit='KiB'>524288</memory>"),
    );
    expect(readFileSync(f, "utf8")).toBe(before);
  });
  it("nothing asked: identical bytes", () => {
    const f = `${CORPUS}valid/vhost-user-fs-hugepages.xml`;
    const r = kvmem("domain", "edit", f);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(readFileSync(f, "utf8"));
  });
  it("--in-place: atomic replace, .bak keeps the original, no temp file left", () => {
    const dir = tmp();
    const f = join(dir, "g.xml");
    copyFileSync(`${CORPUS}valid/balloon-device.xml`, f);
    const orig = readFileSync(f, "utf8");
    const r = kvmem("domain", "edit", f, "--balloon", "virtio,autodeflate,stats=10", "--in-place");
    expect(r.status).toBe(0);
    expect(readFileSync(`${f}.bak`, "utf8")).toBe(orig);
    expect(readFileSync(f, "utf8")).toContain("<memballoon model='virtio' autodeflate='on'>");
    expect(readFileSync(f, "utf8")).toContain("<stats period='10'/>");
    expect(readdirSync(dir).sort()).toEqual(["g.xml", "g.xml.bak"]);
  });
  it("an edit that would make the domain invalid is refused and the file left untouched", () => {
    const dir = tmp();
    const f = join(dir, "g.xml");
    copyFileSync(`${CORPUS}valid/memory-hotplug.xml`, f);
    const orig = readFileSync(f, "utf8");
    const mtime = statSync(f).mtimeMs;
    const r = kvmem("domain", "edit", f, "--max", "100M", "--in-place"); // memory is 214 MiB
    expect(r.status).toBe(1);
    const lines = oneLine(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      "edit refused: the result would be invalid: maximum memory size must be equal or greater than the actual memory size",
    );
    expect(readFileSync(f, "utf8")).toBe(orig);
    expect(statSync(f).mtimeMs).toBe(mtime);
    expect(readdirSync(dir)).toEqual(["g.xml"]);
  });
  it("hugepages for a guest NUMA node that does not exist is refused", () => {
    const f = `${CORPUS}valid/mlock-off.xml`;
    const r = kvmem("domain", "edit", f, "--hugepages", "2M,nodeset=3");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("hugepages: node 3 not found");
  });
});

describe.skipIf(!have)("edit --in-place through a symlink", () => {
  it("replaces the real file, keeps its mode, leaves the link a link", () => {
    const dir = tmp();
    const real = join(dir, "real.xml");
    copyFileSync(`${CORPUS}valid/mlock-off.xml`, real);
    chmodSync(real, 0o600);
    const link = join(dir, "link.xml");
    symlinkSync(real, link);
    const r = kvmem("domain", "edit", link, "--locked", "on", "--in-place");
    expect(r.status).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(real, "utf8")).toContain("<locked/>");
    expect(statSync(real).mode & 0o777).toBe(0o600);
  });
});

describe("bytes the edit must not damage", () => {
  it("a UTF-8 file with a BOM and non-ASCII comments: identical bytes with no change asked", () => {
    const text =
      "\uFEFF<!-- Größe: 2 GiB — 测试 -->\n<domain type='kvm'>\n  <name>ü</name>\n  <memory unit='KiB'>2097152</memory>\n</domain>\n";
    const f = scratch(text);
    const r = spawnSync(process.execPath, ["--import", "tsx", MAIN, "domain", "edit", f], {
      encoding: "buffer",
    });
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, readFileSync(f))).toBe(0);
  });
  it("a file that is not UTF-8 is refused, not mangled", () => {
    const f = join(tmp(), "latin1.xml");
    writeFileSync(
      f,
      Buffer.from("<domain type='kvm'><name>\xe9</name><memory>1024</memory></domain>", "latin1"),
    );
    const r = kvmem("domain", "edit", f, "--memory", "2M", "--in-place");
    expect(r.status).toBe(1);
    expect(oneLine(r.stderr)).toEqual([
      `kvmem: ${f}: not valid UTF-8 (libvirt writes domain XML in UTF-8; kvmem reads and edits only UTF-8 files)`,
    ]);
  });
  it("--current above memory is refused as virsh setmem refuses it", () => {
    const f = scratch("<domain type='kvm'>\n  <memory unit='KiB'>1048576</memory>\n</domain>\n");
    const r = kvmem("domain", "edit", f, "--current", "2G");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("cannot set memory higher than max memory");
  });
});
