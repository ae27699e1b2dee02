/**
 * Warm-up: before a workload is measured, every one of its processes writes its whole footprint
 * once (the program initialised its memory), mapping guest pages as the guest kernel does and
 * faulting the host and EPT mappings in; nothing of it is counted. Pages whose workload names
 * their content (an image, zeros, a constant) keep that content after the write. Pure.
 */
import type { WalkRecord } from "../sim/record.js";
import { ACCESS_WRITE } from "../x86/faults.js";
import { LEVEL_PAGES } from "../x86/paging.js";
import type { BuiltHost } from "./build.js";
import { allocGuest, restoreContent } from "./guest-life.js";
import type { VmRunState } from "./run-state.js";

export function warmup(built: BuiltHost, st: VmRunState, rec: WalkRecord): void {
  const { cpu, vcpu, os } = st.sv;
  const w = st.sv.workloadConfig;
  const level = st.sv.guestLevel;
  const pages = LEVEL_PAGES[level];
  const keep = w.content.kind !== "unique";
  for (const p of st.sv.procs) {
    cpu!.movCr3(vcpu!, p.root, p.pcid, false, rec);
    const first = Math.floor(w.base / 4096);
    const last = Math.floor((w.base + w.footprint - 1) / 4096);
    // memset of the footprint: map each guest page, write every 4 KiB of it
    for (let vpn = first - (first % pages); vpn <= last; vpn++) {
      if (vpn % pages === 0 && !os!.lookup(p, vpn)) {
        os!.map(p, vpn, allocGuest(st.sv, level), level, {
          write: true,
          user: true,
          exec: true,
        });
      }
      cpu!.access(vcpu!, vpn, 0, ACCESS_WRITE, rec);
      // the program filled the page with its content (an image, zeros, a constant): the
      // write leaves the content the workload names rather than a fresh one
      if (keep) restoreContent(built.host.mem, st.sv, p, vpn, rec.pfn);
    }
  }
  // the warm-up's exits and walks are not the workload's
}
