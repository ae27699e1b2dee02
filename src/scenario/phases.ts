/**
 * What timeline events do to a running scenario (see timeline.ts): boot a VM later, stop it,
 * switch it to another workload phase, change ksmd's knobs or swappiness, set a balloon target. Kept apart from the
 * run loop's hot path. Pure: no Node APIs.
 */
import type { KsmSettings } from "../sim/ksm.js";
import { makeWorkload } from "./build.js";
import type { ScenarioRun } from "./run.js";
import type { TimelineTarget } from "./timeline.js";

export function timelineTarget(run: ScenarioRun): TimelineTarget {
  const built = run.built;
  const s = built.scenario;
  const stopped = new Set<string>();
  const find = (vm: string) => run.states.find((st) => st.sv.name === vm);
  const notRunning = (vm: string) => {
    const sv = built.vms.find((v) => v.name === vm);
    return sv?.state === "failed" ? `${vm} did not start: ${sv.error}` : `no VM '${vm}'`;
  };
  return {
    vmNames: s.vms.map((v) => v.name),
    start(vm) {
      const st = find(vm);
      if (!st) return notRunning(vm);
      if (stopped.delete(vm)) {
        st.done = false; // booted again: it goes on with what is left of its workload
        return null;
      }
      // a VM whose first event is `start` waited for it (startMs)
      return st.startMs > 0 && st.startMs <= run.timeMs ? null : `${vm} is already running`;
    },
    stop(vm) {
      const st = find(vm);
      if (!st) return notRunning(vm);
      if (st.done) return `${vm} had already finished its workload`;
      st.done = true;
      stopped.add(vm);
      return null;
    },
    phase(vm, name) {
      const st = find(vm);
      if (!st) return notRunning(vm);
      const w = s.workloads[name];
      if (!w) return `no workload '${name}'`;
      if (w.pattern === "trace") return "a trace workload cannot be a later phase";
      const os = st.sv.os!;
      const workload = makeWorkload(
        w,
        (s.seed * 31 + st.sv.index * 7 + run.timeline.log.length) >>> 0,
        new Map(),
      );
      for (let p = st.sv.procs.length; p < workload.processes; p++)
        st.sv.procs.push(os.process(`${w.pattern}-${p}`));
      run.totalAccesses += w.accesses;
      st.sv.workload = workload;
      st.sv.workloadConfig = w;
      st.done = false;
      return null;
    },
    setKsm(key, value) {
      // echo value > /sys/kernel/mm/ksm/key: merge_across_nodes and max_page_sharing refuse
      // with EBUSY while KSM pages are shared (Ksm.setKnob)
      return built.ksm.setKnob(key as keyof KsmSettings, value);
    },
    setSwappiness(value) {
      s.host.kernel.swappiness = value;
      return null;
    },
    setmem(vm, targetBytes) {
      const st = find(vm);
      if (!st) return notRunning(vm);
      // virsh setmem -> qemuMonitorSetBalloon; no balloon device: libvirt refuses
      if (!st.sv.balloon) return `${vm} has no balloon device (<memballoon model='none'/>)`;
      if (targetBytes > st.sv.memory) return `${vm}: target above the guest's memory`;
      st.sv.balloon.setTarget(targetBytes, run.timeMs);
      return null;
    },
  };
}
