/**
 * The scenario's timeline: events at simulated milliseconds, applied by the run loop when the
 * simulated clock (the furthest CPU) reaches them.
 *   start VM      the VM boots at that time (a VM whose first event is `start` waits for it)
 *   stop VM       the VM stops running (virsh shutdown): its vCPU no longer runs; its memory stays
 *                 allocated (teardown of guest RAM is not modelled)
 *   workload      a new phase: the VM's workload is replaced by the named one from `workloads`
 *   set           a host kernel setting changes at run time: host.kernel.ksm.* (ksmd's sysfs
 *                 knobs, read by ksmd at its next batch; merge_across_nodes and
 *                 max_page_sharing are refused with EBUSY while KSM pages are shared, as
 *                 the kernel's stores refuse them), host.kernel.swappiness
 *   setmem        the balloon target (virsh setmem): the VM's virtio-balloon driver inflates or
 *                 deflates towards it (sim/balloon.ts)
 * Every event is logged with whether it took effect and why not. Pure: no Node APIs.
 */
import type { Scenario } from "./schema.js";

type Event = Scenario["timeline"][number];

export interface TimelineEntry {
  at: number;
  event: string;
  applied: boolean;
  note: string;
}

export interface TimelineTarget {
  /** the VM names the scenario has */
  vmNames: readonly string[];
  start(vm: string): string | null;
  stop(vm: string): string | null;
  phase(vm: string, workload: string): string | null;
  setKsm(key: string, value: number): string | null;
  setSwappiness(value: number): string | null;
  setmem(vm: string, targetBytes: number): string | null;
}

/** Text of an event for the log. */
export function describeEvent(ev: Event): string {
  if ("start" in ev) return `start ${ev.start}`;
  if ("stop" in ev) return `stop ${ev.stop}`;
  if ("workload" in ev) return `workload ${ev.workload.vm} -> ${ev.workload.use}`;
  if ("setmem" in ev) return `setmem ${ev.setmem.vm} ${ev.setmem.target}`;
  return `set ${Object.entries(ev.set)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ")}`;
}

export class Timeline {
  private readonly events: Event[];
  private next = 0;
  readonly log: TimelineEntry[] = [];

  constructor(events: readonly Event[]) {
    // stable by time: events at the same time keep the scenario's order
    this.events = events
      .map((e, i) => ({ e, i }))
      .sort((a, b) => a.e.at - b.e.at || a.i - b.i)
      .map((x) => x.e);
  }

  /** VMs that wait for a `start` event, with its time. */
  startTimes(): Map<string, number> {
    const out = new Map<string, number>();
    const seen = new Set<string>();
    for (const e of this.events) {
      const vm =
        "start" in e
          ? e.start
          : "stop" in e
            ? e.stop
            : "workload" in e
              ? e.workload.vm
              : "setmem" in e
                ? e.setmem.vm
                : undefined;
      if (vm === undefined || seen.has(vm)) continue;
      seen.add(vm);
      if ("start" in e) out.set(vm, e.at);
    }
    return out;
  }

  /** Time of the next event not yet applied, or Infinity. */
  get nextAt(): number {
    return this.next < this.events.length ? this.events[this.next].at : Number.POSITIVE_INFINITY;
  }

  /** Apply every event due at `nowMs`. */
  apply(nowMs: number, t: TimelineTarget): void {
    while (this.next < this.events.length && this.events[this.next].at <= nowMs) {
      const ev = this.events[this.next++];
      const why = applyOne(ev, t);
      this.log.push({
        at: ev.at,
        event: describeEvent(ev),
        applied: why === null,
        note: why ?? "",
      });
    }
  }
}

const KSM_KEYS = new Set([
  "run",
  "pages_to_scan",
  "sleep_millisecs",
  "max_page_sharing",
  "merge_across_nodes",
  "use_zero_pages",
  "smart_scan",
]);

function applyOne(ev: Event, t: TimelineTarget): string | null {
  if ("start" in ev) return t.start(ev.start);
  if ("stop" in ev) return t.stop(ev.stop);
  if ("workload" in ev) return t.phase(ev.workload.vm, ev.workload.use);
  if ("setmem" in ev) return t.setmem(ev.setmem.vm, ev.setmem.target);
  const notes: string[] = [];
  for (const [key, value] of Object.entries(ev.set)) {
    const ksm = /^host\.kernel\.ksm\.(\w+)$/.exec(key);
    let why: string | null;
    if (ksm && KSM_KEYS.has(ksm[1]) && typeof value === "number") why = t.setKsm(ksm[1], value);
    else if (key === "host.kernel.swappiness" && typeof value === "number")
      why = t.setSwappiness(value);
    else
      why = `'${key}' cannot change at run time (host.kernel.ksm.${[...KSM_KEYS].join("|")}, host.kernel.swappiness can)`;
    if (why) notes.push(why);
  }
  return notes.length ? notes.join("; ") : null;
}
