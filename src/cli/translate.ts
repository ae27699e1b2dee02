/**
 * `kvmem translate`: follow accesses through GVA -> GPA -> HVA -> HPA on a simulated VM.
 *
 * Builds a TranslateLab (src/sim/lab.ts): one VM with EPT or shadow paging, VPID on or off,
 * 4- or 5-level paging, the chosen guest page size and host backing, then runs the ACCESS list
 * in order and prints, per access, the chain, the page sizes, TLB result, exits and faults, the
 * table of every entry read and the 2D walk drawn as a grid (rows: guest levels and the final
 * gpa; columns: the EPT levels of each nested walk, then the guest entry). --json prints
 * {config, accesses: [...], summary}; each access object follows sim/report.ts AccessJson.
 */
import type { Command } from "commander";
import {
  type Backing,
  type LabOp,
  type LabOptions,
  type OpJson,
  TranslateLab,
} from "../sim/lab.js";
import type { AccessJson } from "../sim/report.js";
import { formatHex, parseAddress } from "../units/address.js";
import { KvmemError } from "../units/errors.js";
import { GiB, MiB } from "../units/size.js";
import { action, usageError } from "./run.js";
import { scenarioLabOptions } from "./translate-scenario.js";

interface RawOpts {
  ept: string;
  vpid: string;
  levels: string;
  eptLevels?: string;
  guestPage: string;
  backing: string;
  pwc: string;
  dirtyLog: string;
  misalignedSlot?: boolean;
  json?: boolean;
  scenario?: string;
  vm?: string;
}

function choice<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  const v = value.trim();
  const hit = allowed.find((a) => a.toLowerCase() === v.toLowerCase());
  if (!hit) throw usageError(flag, `unknown value '${value}'`, `one of ${allowed.join(", ")}`);
  return hit;
}

export function parseOptions(o: RawOpts): LabOptions {
  const page = choice("--guest-page", o.guestPage, ["4K", "2M", "1G"] as const);
  return {
    ept: choice("--ept", o.ept, ["on", "off"] as const) === "on",
    vpid: choice("--vpid", o.vpid, ["on", "off"] as const) === "on",
    levels: choice("--levels", o.levels, ["4", "5"] as const) === "5" ? 5 : 4,
    eptLevels:
      o.eptLevels === undefined
        ? undefined
        : choice("--ept-levels", o.eptLevels, ["4", "5"] as const) === "5"
          ? 5
          : 4,
    guestPage: page === "1G" ? GiB : page === "2M" ? 2 * MiB : 4096,
    backing: choice("--backing", o.backing, ["4K", "thp", "2M", "1G"] as const) as Backing,
    pwc: choice("--pwc", o.pwc, ["on", "off"] as const) === "on",
    dirtyLog: choice("--dirty-log", o.dirtyLog, ["on", "off"] as const) === "on",
    misalignSlot: o.misalignedSlot ?? false,
  };
}

const WITH_ADDR = new Set(["read", "write", "exec", "invlpg", "unmap"]);
const BARE = new Set(["user", "kernel", "vmexit", "invept", "invvpid", "switch-vm"]);
const ACCEPTED =
  "read|write|exec ADDR, user, kernel, vmexit, cr3 PROCESS, invlpg ADDR, unmap ADDR, invept, invvpid, switch-vm";

/** Parse the ACCESS words into operations; addresses must be canonical for `vaBits`. */
export function parseAccesses(
  words: readonly string[],
  vaBits: 48 | 57,
): Array<{ op: LabOp; text: string }> {
  const ops: Array<{ op: LabOp; text: string }> = [];
  if (words.length === 0)
    throw usageError("ACCESS", "no accesses given", `e.g. 'read 0x7f0000001000'; ${ACCEPTED}`);
  for (let i = 0; i < words.length; i++) {
    const w = words[i].toLowerCase();
    const place = `access ${ops.length + 1}`;
    if (WITH_ADDR.has(w)) {
      const a = words[++i];
      if (a === undefined)
        throw usageError(place, `'${w}' needs an address`, `${w} ADDR, e.g. ${w} 0x7f0000001000`);
      const gva = parseAddress(a, { input: "ACCESS", place });
      const top = gva >> BigInt(vaBits - 1);
      if (top !== 0n && top !== (1n << BigInt(65 - vaBits)) - 1n) {
        throw new KvmemError({
          code: "E_ADDRESS",
          input: "ACCESS",
          place,
          message: `${formatHex(gva)} is not canonical for ${vaBits}-bit virtual addresses`,
          hint: `bits 63..${vaBits - 1} must all equal bit ${vaBits - 1}, e.g. 0xffff888000001000`,
        });
      }
      ops.push({ op: { op: w as "read", gva }, text: `${w} ${formatHex(gva)}` });
    } else if (w === "cr3") {
      const p = words[++i];
      if (p === undefined || !/^[A-Za-z0-9_.-]+$/.test(p)) {
        throw usageError(place, "'cr3' needs a process name", "cr3 NAME, e.g. cr3 bash");
      }
      ops.push({ op: { op: "cr3", process: p }, text: `cr3 ${p}` });
    } else if (BARE.has(w)) {
      ops.push({ op: { op: w as "user" }, text: w });
    } else {
      throw usageError(place, `unknown access '${words[i]}'`, ACCEPTED);
    }
  }
  return ops;
}

const SIZE_OF: Record<number, string> = { 4096: "4K", [2 * MiB]: "2M", [GiB]: "1G" };

function describe(o: LabOptions): string {
  const backing = {
    "4K": "anonymous 4K",
    thp: "anonymous THP",
    "2M": "hugetlbfs 2M",
    "1G": "hugetlbfs 1G",
  }[o.backing];
  return [
    `EPT ${o.ept ? "on" : "off (shadow paging)"}`,
    `VPID ${o.vpid ? "on" : "off"}`,
    `${o.levels}-level paging${o.ept && o.eptLevels && o.eptLevels !== o.levels ? `, ${o.eptLevels}-level EPT` : ""}`,
    `guest pages ${SIZE_OF[o.guestPage]}`,
    `backing ${backing}`,
    `PWC ${o.pwc ? "on" : "off"}`,
    ...(o.dirtyLog ? ["dirty logging"] : []),
    ...(o.misalignSlot ? ["memslot misaligned by 4K"] : []),
  ].join(", ");
}

/** The 2D walk grid: one row per guest level plus the final gpa, one column per EPT level. */
export function drawGrid(a: AccessJson, levels: number, eptLevels = levels): string[] {
  if (a.steps.length === 0) return [];
  const shadow = a.steps.every((s) => s.dimension === "shadow");
  const cell = new Map<string, number>();
  a.steps.forEach((s, i) => {
    const key = s.dimension === "ept" ? `${s.under}:${s.level}` : `${s.level}:g`;
    cell.set(key, i + 1);
  });
  const names = ["gpa", "PT", "PD", "PDPT", "PML4", "PML5"];
  const cols: string[] = [];
  if (!shadow)
    for (let l = eptLevels; l >= 1; l--)
      cols.push(`E${["", "PT", "PD", "PDPT", "PML4", "PML5"][l]}`);
  cols.push(shadow ? "shadow" : "guest");
  const w = 7;
  const lines = [`${"".padEnd(8)}${cols.map((c) => c.padStart(w)).join("")}`];
  const rows = shadow
    ? [levels, levels - 1, levels - 2, levels - 3, levels - 4].filter((l) => l >= 1)
    : [...Array(levels).keys()].map((k) => levels - k).concat([0]);
  for (const r of rows) {
    let line = (r === 0 ? "gpa" : names[r]).padEnd(8);
    let any = false;
    if (!shadow) {
      for (let l = eptLevels; l >= 1; l--) {
        const n = cell.get(`${r}:${l}`);
        if (n !== undefined) any = true;
        line += (n === undefined ? "." : String(n)).padStart(w);
      }
    }
    const g = r === 0 ? undefined : cell.get(`${r}:g`);
    if (g !== undefined) any = true;
    line += (r === 0 ? "" : g === undefined ? "." : String(g)).padStart(w);
    if (any) lines.push(line.trimEnd());
  }
  return lines;
}

function renderAccess(n: number, text: string, r: OpJson, o: LabOptions): string[] {
  const lines = [`#${n} ${text}  (process ${r.process}, ${r.mode} mode)`];
  const a = r.access;
  if (r.flushed !== undefined) lines.push(`  flushed ${r.flushed} TLB entries`);
  const exits = a?.exits ?? r.exits ?? [];
  if (!a) {
    for (const e of exits) lines.push(`  exit ${e.reason} -> ${e.outcome}`);
    return lines;
  }
  const isAccess = /^(read|write|exec) /.test(text);
  const ps = a.pageSize;
  if (isAccess) {
    const chain = [`gva ${a.gva}`];
    if (a.gpa) chain.push(`gpa ${a.gpa}`);
    if (a.memslot !== null) chain.push(`memslot ${a.memslot}`);
    if (a.hva) chain.push(`hva ${a.hva}`);
    if (a.hpa) chain.push(`hpa ${a.hpa}`);
    lines.push(`  ${chain.join(" -> ")}`);
    const mmu = o.ept ? `EPT ${ps.ept ?? "-"}` : `shadow ${ps.shadow ?? "-"}`;
    lines.push(
      `  ${a.status}; TLB ${a.tlb}${a.tlbLevel ? ` (${a.tlbLevel})` : ""}; page size guest ${ps.guest ?? "-"}, ${mmu}, TLB ${ps.tlb ?? "-"}, host ${ps.host ?? "-"}`,
    );
    const aborted = a.abortedReferences ? `, ${a.abortedReferences} more in aborted walks` : "";
    lines.push(
      `  memory references ${a.memoryReferences.total} (guest ${a.memoryReferences.guest}, ept ${a.memoryReferences.ept})${aborted}; ~${a.cycles} cycles`,
    );
  }
  if (a.hostEntry) lines.push(`  host page-table entry ${a.hostEntry} (${ps.host})`);
  for (const e of exits) {
    const lvl = e.level ? ` ${e.level}${e.levelReason ? ` (${e.levelReason})` : ""}` : "";
    const gpa = e.gpa ? ` gpa ${e.gpa}` : "";
    const aborted = e.references ? `; aborted walk ${e.references} refs` : "";
    // for a #PF intercept (EXCEPTION_NMI) the field holds the #PF error code
    const q = e.reason === "EXCEPTION_NMI" ? "error code" : "qual";
    lines.push(`  exit ${e.reason}${gpa} ${q} ${e.qualification} -> ${e.outcome}${lvl}${aborted}`);
  }

  for (const f of a.faults)
    lines.push(`  fault ${f.type} error code ${f.errorCode} (${f.meaning.join(", ")})`);
  if (a.steps.length > 0) {
    lines.push(
      `  ${"step".padEnd(5)}${"dim".padEnd(7)}${"table".padEnd(9)}${"table address".padEnd(20)}${"idx".padStart(4)}  ${"entry".padEnd(19)} flags`,
    );
    a.steps.forEach((s, i) => {
      lines.push(
        `  ${String(i + 1).padEnd(5)}${s.dimension.padEnd(7)}${s.table.padEnd(9)}${s.tableAddress.padEnd(20)}${String(s.index).padStart(4)}  ${s.entry.padEnd(19)} ${s.flags.join(" ")}`,
      );
    });
    const grid = drawGrid(a, o.levels, o.eptLevels ?? o.levels);
    if (grid.length > 0) {
      lines.push(
        `  ${o.ept ? "2D walk" : "shadow walk"} (numbers: order of the memory references)`,
      );
      for (const g of grid) lines.push(`    ${g}`);
    }
  }
  return lines;
}

export function runTranslate(
  words: readonly string[],
  raw: RawOpts,
): { json: unknown; text: string } {
  const o = raw.scenario ? scenarioLabOptions(raw.scenario, raw.vm) : parseOptions(raw);
  const ops = parseAccesses(words, o.levels === 5 ? 57 : 48);
  const lab = new TranslateLab(o);
  lab.prepare(ops.map((x) => x.op));
  const results = ops.map((x) => lab.run(x.op));
  const exitCounts: Record<string, number> = {};
  for (const r of results) {
    for (const e of [...(r.access?.exits ?? []), ...(r.exits ?? [])])
      exitCounts[e.reason] = (exitCounts[e.reason] ?? 0) + 1;
  }
  const tables = lab.tables();
  const json = {
    config: { ...o, guestPage: SIZE_OF[o.guestPage] },
    accesses: results.map((r) => {
      const { access, ...rest } = r;
      return { ...rest, ...(access ?? {}) };
    }),
    summary: { exits: exitCounts, tables },
  };
  const lines = [`kvmem translate: ${describe(o)}`];
  for (const s of lab.vm.memslots.all()) {
    lines.push(
      `memslot ${s.id}: gpa ${formatHex(s.baseGfn * 4096)}-${formatHex((s.baseGfn + s.npages) * 4096 - 1)} -> hva ${formatHex(s.userspaceAddr)}${s.dirtyLogging ? " [dirty logging]" : ""}`,
    );
  }
  results.forEach((r, i) => {
    lines.push("");
    lines.push(...renderAccess(i + 1, ops[i].text, r, o));
  });
  lines.push("");
  const ex = Object.entries(exitCounts).map(([k, v]) => `${k} ${v}`);
  lines.push(`exits: ${ex.length ? ex.join(", ") : "none"}`);
  if (tables.ept !== null) {
    lines.push(`tables: guest ${tables.guest} pages; EPT ${tables.ept} pages for the whole VM`);
  } else {
    const per = Object.entries(tables.shadow ?? {}).map(([k, v]) => `${k} ${v}`);
    lines.push(
      `tables: guest ${tables.guest} pages; shadow pages per guest address space: ${per.join(", ")}`,
    );
  }
  return { json, text: `${lines.join("\n")}\n` };
}

export function register(program: Command): void {
  program
    .command("translate")
    .description("follow guest accesses through GVA -> GPA -> HVA -> HPA with EPT or shadow paging")
    .argument("<access...>", ACCEPTED)
    .option("--ept <on|off>", "EPT (off: shadow paging)", "on")
    .option("--vpid <on|off>", "VPID-tagged TLB entries", "on")
    .option("--levels <4|5>", "paging levels (guest, and EPT unless --ept-levels)", "4")
    .option("--ept-levels <4|5>", "EPT walk length (default: --levels)")
    .option("--guest-page <4K|2M|1G>", "guest page size", "4K")
    .option("--backing <4K|thp|2M|1G>", "host backing of guest RAM", "4K")
    .option("--pwc <on|off>", "paging-structure caches", "off")
    .option("--dirty-log <on|off>", "KVM_MEM_LOG_DIRTY_PAGES on the RAM memslots", "off")
    .option("--misaligned-slot", "memslot userspace_addr 4K past a 2M boundary")
    .option("--json", "print JSON")
    .option("--scenario <file>", "take the VM's configuration from a scenario (with --vm)")
    .option("--vm <name>", "the scenario VM to translate on")
    .action(
      action((words: string[], raw: RawOpts) => {
        const r = runTranslate(words, raw);
        process.stdout.write(raw.json ? `${JSON.stringify(r.json, null, 2)}\n` : r.text);
        return 0;
      }),
    );
}
