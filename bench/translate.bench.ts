/**
 * Translation speed, single-threaded: TLB-hit accesses, cold 2D walks, EPT violations handled.
 * Prints figures only; nothing here asserts a timing.
 */
import { TranslateLab } from "../src/sim/lab.js";
import { ACCESS_READ } from "../src/x86/faults.js";
import { WalkOut } from "../src/x86/walk.js";

const now = () => performance.now();
const fmt = (n: number) => `${(n / 1e6).toFixed(2)} M/s`;

function lab() {
  return new TranslateLab({
    ept: true,
    vpid: true,
    levels: 4,
    guestPage: 4096,
    backing: "4K",
    pwc: false,
  });
}

function tlbHits(): string {
  const l = lab();
  const { os, vcpu } = l.main;
  const init = os.process("init");
  const base = 0x40000;
  const n = 64; // fits the 96-entry L1 dTLB
  for (let i = 0; i < n; i++)
    os.map(init, base + i, os.allocData(1), 1, { write: true, user: true, exec: false });
  const rec = l.rec;
  rec.detail = false;
  for (let i = 0; i < n; i++) l.cpu.access(vcpu, base + i, 0, ACCESS_READ, rec);
  const iters = 10_000_000;
  let sink = 0;
  const t0 = now();
  for (let i = 0; i < iters; i++) {
    l.cpu.access(vcpu, base + (i & (n - 1)), 0, ACCESS_READ, rec);
    sink += rec.pfn;
  }
  const dt = (now() - t0) / 1000;
  if (rec.tlb === 0 || sink < 0) throw new Error("expected TLB hits");
  return `TLB-hit accesses:        ${fmt(iters / dt)}  (${iters} accesses over ${n} pages, L1 dTLB hits)`;
}

function coldWalks(): string[] {
  const l = lab();
  const { os, vcpu, vm } = l.main;
  const init = os.process("init");
  const base = 0x40000;
  const n = 8192; // 4x the STLB
  for (let i = 0; i < n; i++)
    os.map(init, base + i, os.allocData(1), 1, { write: true, user: true, exec: false });
  const rec = l.rec;
  rec.detail = false;
  for (let i = 0; i < n; i++) l.cpu.access(vcpu, base + i, 0, ACCESS_READ, rec); // EPT populated
  // the walker alone: a full 24-reference 2D walk per call
  const out = new WalkOut();
  out.setAd = false;
  const iters = 2_000_000;
  let refs = 0;
  let t0 = now();
  for (let i = 0; i < iters; i++) {
    out.reset();
    vm.mmu.hwWalk(vcpu, base + (i & (n - 1)), ACCESS_READ, out);
    refs += out.guestRefs + out.eptRefs;
  }
  let dt = (now() - t0) / 1000;
  if (refs !== iters * 24) throw new Error(`expected 24 references per walk, got ${refs / iters}`);
  const walker = `cold 2D walks (walker):  ${fmt(iters / dt)}  (24 references each, ${(refs / dt / 1e6).toFixed(0)} M refs/s)`;
  // the whole access path with TLB misses: cycling over 4x the STLB's reach
  let misses = 0;
  t0 = now();
  for (let i = 0; i < iters; i++) {
    l.cpu.access(vcpu, base + ((i * 7) & (n - 1)), 0, ACCESS_READ, rec);
    if (rec.tlb === 0) misses++;
  }
  dt = (now() - t0) / 1000;
  const path = `accesses missing the TLB: ${fmt(iters / dt)}  (${((100 * misses) / iters).toFixed(1)}% misses, walk + TLB fill)`;
  return [walker, path];
}

function eptViolations(): string {
  const l = new TranslateLab({
    ept: true,
    vpid: true,
    levels: 4,
    guestPage: 2097152,
    backing: "4K",
    pwc: false,
  });
  const { os, vcpu, vm } = l.main;
  const init = os.process("init");
  const pages = 200;
  const base = 0x40000;
  for (let i = 0; i < pages; i++)
    os.map(init, base + i * 512, os.allocData(2), 2, { write: true, user: true, exec: false });
  const rec = l.rec;
  rec.detail = false;
  l.cpu.access(vcpu, base, 0, ACCESS_READ, rec); // guest tables into EPT
  const before = vm.exitCounts[48];
  const t0 = now();
  for (let i = 0; i < pages * 512; i++) l.cpu.access(vcpu, base + i, 0, ACCESS_READ, rec);
  const dt = (now() - t0) / 1000;
  const handled = vm.exitCounts[48] - before;
  return `EPT violations handled:  ${fmt(handled / dt)}  (${handled} violations, each a host 4K fault + EPT map + retried walk)`;
}

export async function run(): Promise<void> {
  process.stdout.write(`${tlbHits()}\n`);
  for (const line of coldWalks()) process.stdout.write(`${line}\n`);
  process.stdout.write(`${eptViolations()}\n`);
}
