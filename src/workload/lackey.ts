/**
 * Valgrind lackey traces (`valgrind --tool=lackey --trace-mem=yes PROG`), a real program's
 * accesses. Format (lackey/lk_main.c, trace_instr/trace_load/trace_store/trace_modify):
 *   "I  04010173,3"   instruction fetch: 'I' in column 0, two spaces, hex address, size
 *   " L 04222cac,8"   data load: a space, 'L', a space
 *   " S 04222cb0,4"   data store
 *   " M 0421e600,8"   modify (load then store of the same location)
 * Other lines (valgrind's "==PID==" messages, the program's output) are skipped and counted.
 * Addresses of a user-space trace are below 2^47 and parse exactly into numbers.
 * An access is replayed at its start address (one that straddles a page boundary touches only the
 * first page: a simplification).
 */
import { ACC_EXEC, ACC_READ, ACC_WRITE, type EventBatch, type Workload } from "./batch.js";

export interface LackeyTrace {
  count: number;
  addr: Float64Array;
  kind: Uint8Array;
  size: Uint8Array;
  /** lines that were not trace records (valgrind messages, program output) */
  skipped: number;
  problems: Array<{ code: "E_PARSE"; path: string; message: string }>;
}

const LINE = /^(I |\sL|\sS|\sM) ?\s*([0-9a-fA-F]{1,16}),(\d+)\s*$/;

/** Parse a lackey trace. Malformed record lines (a known tag with a bad address) are problems. */
export function parseLackey(text: string, path = "trace"): LackeyTrace {
  const lines = text.split("\n");
  let cap = 1024;
  let addr = new Float64Array(cap);
  let kind = new Uint8Array(cap);
  let size = new Uint8Array(cap);
  let count = 0;
  let skipped = 0;
  const problems: LackeyTrace["problems"] = [];
  const push = (a: number, k: number, s: number) => {
    if (count === cap) {
      cap *= 2;
      const na = new Float64Array(cap);
      na.set(addr);
      addr = na;
      const nk = new Uint8Array(cap);
      nk.set(kind);
      kind = nk;
      const ns = new Uint8Array(cap);
      ns.set(size);
      size = ns;
    }
    addr[count] = a;
    kind[count] = k;
    size[count] = s;
    count++;
  };
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l === "") continue;
    const m = LINE.exec(l);
    if (!m) {
      if (/^(I |\s[LSM] )/.test(l)) {
        problems.push({
          code: "E_PARSE",
          path: `${path}:${i + 1}`,
          message: `bad lackey record '${l.trim()}' (expected e.g. ' L 04222cac,8')`,
        });
      } else skipped++;
      continue;
    }
    const a = Number.parseInt(m[2], 16);
    if (a > Number.MAX_SAFE_INTEGER) {
      problems.push({
        code: "E_PARSE",
        path: `${path}:${i + 1}`,
        message: `address ${m[2]} beyond 2^53 (kernel addresses are not replayed)`,
      });
      continue;
    }
    const s = Math.min(255, Number(m[3]));
    switch (m[1].trim()) {
      case "I":
        push(a, ACC_EXEC, s);
        break;
      case "L":
        push(a, ACC_READ, s);
        break;
      case "S":
        push(a, ACC_WRITE, s);
        break;
      default: // M: a load then a store
        push(a, ACC_READ, s);
        push(a, ACC_WRITE, s);
    }
  }
  return {
    count,
    addr: addr.subarray(0, count),
    kind: kind.subarray(0, count),
    size: size.subarray(0, count),
    skipped,
    problems,
  };
}

/** Replays a trace (optionally only data accesses), looping until `accesses` have been issued. */
export class TraceWorkload implements Workload {
  readonly name = "trace";
  readonly processes = 1;
  private i = 0;
  private done = 0;

  constructor(
    private readonly trace: LackeyTrace,
    private readonly accesses: number,
    private readonly includeInstructions: boolean,
  ) {}

  fill(batch: EventBatch, max: number): number {
    const t = this.trace;
    const start = batch.count;
    const limit = Math.min(batch.capacity, start + max);
    if (t.count === 0) return 0;
    let guard = 0;
    while (batch.count < limit && this.done < this.accesses) {
      const k = t.kind[this.i];
      const a = t.addr[this.i];
      this.i = this.i + 1 === t.count ? 0 : this.i + 1;
      if (k === ACC_EXEC && !this.includeInstructions) {
        if (++guard > t.count) break; // a trace of instructions only
        continue;
      }
      guard = 0;
      batch.push(k, a, 0);
      this.done++;
    }
    return batch.count - start;
  }
}
