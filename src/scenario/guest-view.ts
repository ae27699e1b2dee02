/**
 * What a guest and `virsh dommemstat` see of a VM's memory: the guest's /proc/meminfo and
 * `free -g`, and the balloon statistics libvirt reports.
 *
 * How it works: the guest's MemTotal is its RAM less the balloon's pages unless the balloon
 * negotiated VIRTIO_BALLOON_F_DEFLATE_ON_OOM (virtio_balloon.c adjust_managed_page_count);
 * MemFree counts the 4 KiB data pages the guest has not handed out (the guest model has no page
 * cache, so MemAvailable = MemFree). dommemstat names follow libvirt's
 * VIR_DOMAIN_MEMORY_STAT_* as virsh prints them (actual, swap_in, swap_out, major_fault,
 * minor_fault, unused, available, usable, last_update, disk_caches, rss), in KiB; the guest's
 * own statistics (all but actual and rss) exist only with <memballoon><stats period='N'/>, as
 * QEMU polls them only then. A guest with swap (guest.swap) shows SwapTotal/SwapFree and the
 * Swap line of `free`; the balloon driver reports swap_in/swap_out as bytes
 * (update_balloon_stats: pages_to_bytes(events[PSWPIN])) and libvirt prints KiB; major_fault is
 * PGMAJFAULT and minor_fault is PGFAULT (all faults: the driver sends events[PGFAULT]). The
 * guest reads no files here: disk_caches is 0. Pure: no Node APIs.
 */
import { freeFigures, freeTable } from "../units/free.js";
import type { SimVm } from "./build.js";

const kb = (label: string, kib: number) =>
  `${`${label}:`.padEnd(16)}${String(Math.round(kib)).padStart(8)} kB\n`;

export interface GuestView {
  meminfo: string;
  freeG: string;
  dommemstat: Record<string, number>;
}

export function guestView(sv: SimVm, guestFaults: number, nowMs: number): GuestView | null {
  if (!sv.os || !sv.mm) return null;
  const b = sv.balloon;
  const ramPages = sv.memory / 4096;
  const totalKiB = (b ? b.guestTotalPages : ramPages) * 4;
  const freeKiB = sv.os.free4K * 4;
  const swap = sv.os.swap;
  const swapTotalKiB = swap ? swap.slots * 4 : 0;
  const swapFreeKiB = swap ? (swap.slots - swap.used) * 4 : 0;
  const meminfo =
    kb("MemTotal", totalKiB) +
    kb("MemFree", freeKiB) +
    kb("MemAvailable", freeKiB) +
    kb("Buffers", 0) +
    kb("Cached", 0) +
    kb("SwapTotal", swapTotalKiB) +
    kb("SwapFree", swapFreeKiB);
  const freeG = freeTable(
    freeFigures({
      MemTotal: totalKiB,
      MemFree: freeKiB,
      MemAvailable: freeKiB,
      SwapTotal: swapTotalKiB,
      SwapFree: swapFreeKiB,
    }),
    { unit: "g" },
  );
  const stat: Record<string, number> = {};
  if (b) stat.actual = (ramPages - b.pages.length) * 4;
  const period = sv.domain.memballoon.statsPeriod ?? 0;
  if (b && period > 0) {
    stat.swap_in = (swap?.pswpin ?? 0) * 4;
    stat.swap_out = (swap?.pswpout ?? 0) * 4;
    stat.major_fault = swap?.pgmajfault ?? 0;
    stat.minor_fault = guestFaults;
    stat.unused = freeKiB;
    stat.available = totalKiB;
    stat.usable = freeKiB;
    // the last poll, every `period` seconds of (simulated) time since boot
    stat.last_update = Math.floor(nowMs / 1000 / period) * period;
    stat.disk_caches = 0;
  }
  stat.rss = sv.mm.rss * 4;
  return { meminfo, freeG, dommemstat: stat };
}
