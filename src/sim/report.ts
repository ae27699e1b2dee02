/**
 * WalkRecord -> plain JSON (the `kvmem translate --json` schema, also what the lab draws).
 *
 * How it works: addresses become 0x-hex strings (a gva through BigInt, at this edge only),
 * numeric codes become the names the SDM and KVM use, and page sizes become "4K"/"2M"/"1G".
 * Schema per access: gva, gpa, hva, hpa, memslot, status, tlb ("hit"|"miss"), tlbLevel,
 * memoryReferences {total, guest, ept} (the walk that completed the access), abortedReferences
 * (walks cut short by exits), pageSize {guest, ept, shadow, tlb, host}, exits [{reason,
 * qualification, gpa, outcome, level, levelReason, references}], faults [{type, errorCode,
 * meaning}], steps [{dimension, level, table, tableAddress, hostTableAddress, index, entry,
 * flags, under}], hostEntry, cycles.
 */
import { formatHex } from "../units/address.js";
import { eptFlagNames } from "../x86/ept.js";
import { exitReasonName, pfErrorNames } from "../x86/faults.js";
import { EPT_4LEVEL, GUEST_4LEVEL, tableName } from "../x86/paging.js";
import { pteFlagNames } from "../x86/pte.js";
import { DIM_EPT, DIM_GUEST } from "../x86/walk.js";
import {
  FAULT_NAMES,
  FAULT_PF,
  LEVEL_REASON_NAMES,
  OUTCOME_NAMES,
  STATUS_NAMES,
  TLB_HIT_L1,
  TLB_MISS,
  type WalkRecord,
} from "./record.js";

export interface StepJson {
  dimension: "guest" | "ept" | "shadow";
  level: number;
  table: string;
  tableAddress: string;
  hostTableAddress: string;
  index: number;
  entry: string;
  flags: string[];
  /** for EPT steps: the guest level whose table gpa they translate (0: the final gpa) */
  under: number | null;
}

export interface ExitJson {
  reason: string;
  /** EPT_VIOLATION: the exit qualification; EXCEPTION_NMI (#PF): the #PF error code */
  qualification: string;
  gpa: string | null;
  outcome: string;
  level: string | null;
  levelReason: string | null;
  references: number;
}

export interface FaultJson {
  type: string;
  errorCode: number;
  meaning: string[];
}

export interface AccessJson {
  gva: string;
  gpa: string | null;
  hva: string | null;
  hpa: string | null;
  memslot: number | null;
  status: string;
  tlb: "hit" | "miss";
  tlbLevel: "L1" | "STLB" | null;
  memoryReferences: { total: number; guest: number; ept: number };
  abortedReferences: number;
  pageSize: {
    guest: string | null;
    ept: string | null;
    shadow: string | null;
    tlb: string | null;
    host: string | null;
  };
  exits: ExitJson[];
  faults: FaultJson[];
  steps: StepJson[];
  hostEntry: string | null;
  cycles: number;
}

const SIZE = [null, "4K", "2M", "1G"] as const;

export function entryHex(lo: number, hi: number): string {
  return `0x${hi.toString(16).padStart(8, "0")}${lo.toString(16).padStart(8, "0")}`;
}

export function recordToJson(rec: WalkRecord, gva: bigint, ept: boolean): AccessJson {
  const out = rec.out;
  const steps: StepJson[] = [];
  for (let s = 0; s < out.n; s++) {
    const dim = out.dimOf(s);
    const level = out.levelOf(s);
    const lo = out.lo[s];
    const hi = out.hi[s];
    const leaf = level === 1 || (lo & 0x80) !== 0;
    const isEpt = dim === DIM_EPT;
    steps.push({
      dimension: isEpt ? "ept" : dim === DIM_GUEST ? "guest" : "shadow",
      level,
      table: tableName(isEpt ? EPT_4LEVEL : GUEST_4LEVEL, level),
      tableAddress: formatHex(out.table[s] * 4096),
      hostTableAddress: formatHex(out.tablePfn[s] * 4096),
      index: out.indexOf(s),
      entry: entryHex(lo, hi),
      flags: isEpt ? eptFlagNames(lo, hi, leaf) : pteFlagNames(lo, hi, leaf),
      under: isEpt ? out.underOf(s) : null,
    });
  }
  const exits: ExitJson[] = [];
  for (let i = 0; i < rec.nExits; i++) {
    exits.push({
      reason: exitReasonName(rec.exitReason[i]),
      qualification: formatHex(rec.exitQual[i] >>> 0),
      gpa: rec.exitGfn[i] >= 0 ? formatHex(rec.exitGfn[i] * 4096) : null,
      outcome: OUTCOME_NAMES[rec.exitOutcome[i]],
      level: SIZE[rec.exitLevel[i]] ?? null,
      levelReason: LEVEL_REASON_NAMES[rec.exitLevelReason[i]] || null,
      references: rec.exitRefs[i],
    });
  }
  const faults: FaultJson[] = [];
  for (let i = 0; i < rec.nFaults; i++) {
    const code = rec.faultCode[i];
    faults.push({
      type: FAULT_NAMES[rec.faultType[i]],
      errorCode: code,
      meaning: rec.faultType[i] === FAULT_PF ? pfErrorNames(code) : [],
    });
  }
  const off = rec.offset;
  const completed = rec.status === 0 && rec.tlb === TLB_MISS;
  const pageOf = (frame: number) => (frame >= 0 ? formatHex(frame * 4096 + off) : null);
  return {
    gva: formatHex(gva),
    gpa: pageOf(rec.gfn),
    hva: rec.hva >= 0 ? formatHex(rec.hva + off) : null,
    hpa: pageOf(rec.pfn),
    memslot: rec.memslot >= 0 ? rec.memslot : null,
    status: STATUS_NAMES[rec.status],
    tlb: rec.tlb === TLB_MISS ? "miss" : "hit",
    tlbLevel: rec.tlb === TLB_MISS ? null : rec.tlb === TLB_HIT_L1 ? "L1" : "STLB",
    memoryReferences: completed
      ? { total: out.guestRefs + out.eptRefs, guest: out.guestRefs, ept: out.eptRefs }
      : { total: 0, guest: 0, ept: 0 },
    abortedReferences: rec.abortedRefs,
    pageSize: {
      guest: SIZE[rec.guestLevel] ?? null,
      ept: ept ? (SIZE[rec.mmuLevel] ?? null) : null,
      shadow: ept ? null : (SIZE[rec.mmuLevel] ?? null),
      tlb: SIZE[rec.tlbLevel] ?? null,
      host: SIZE[rec.hostLevel] ?? null,
    },
    exits,
    faults,
    steps,
    hostEntry: rec.hostLevel > 0 ? entryHex(rec.hostLo, rec.hostHi) : null,
    cycles: rec.cycles,
  };
}
