/**
 * The guests' disk I/O through QEMU, in simulated time: what fills the host's page cache.
 *
 * How it works: a workload with `disk: {read, write, image}` reads and writes that many bytes
 * per simulated second, in 4 KiB requests at random pages of an image of `image` bytes, from
 * the VM's boot for as long as its QEMU lives (to the scenario's `duration`, like ksmd). The
 * image is opened as the domain's first <disk device='disk'> says: its <driver cache> mode
 * (libvirt formatdomain "cache"; QEMU's block cache modes: none and directsync are O_DIRECT,
 * writeback is QEMU's default) and its type (a `block` disk's page cache is Buffers). Each
 * request goes through the page cache model (src/sim/pagecache.ts), which allocates, reclaims
 * and counts. A VM killed by the OOM killer does no more I/O. The requests' own latency is not
 * priced: the vCPU does not wait for them in kvmem. Pure: no Node APIs.
 */
import type { CacheMode, DiskImage, PageCache } from "../sim/pagecache.js";
import { Prng } from "../workload/prng.js";
import type { SimVm } from "./build.js";

interface VmDisk {
  sv: SimVm;
  img: DiskImage;
  readOwed: number;
  writeOwed: number;
  rng: Prng;
}

export class DiskIo {
  private readonly disks = new Map<SimVm, VmDisk>();
  /** simulated ms the I/O has caught up to, per VM */
  private readonly doneMs = new Map<SimVm, number>();

  constructor(
    readonly cache: PageCache,
    readonly seed: number,
  ) {}

  /** The VM's disk image (null: it has done no disk I/O). */
  imageOf(sv: SimVm): DiskImage | null {
    return this.disks.get(sv)?.img ?? null;
  }

  private diskOf(sv: SimVm): VmDisk | null {
    const found = this.disks.get(sv);
    if (found) return found;
    const w = sv.workloadConfig.disk;
    if (!w || (w.read === 0 && w.write === 0)) return null;
    const def = sv.domain.disks.find((d) => d.device === "disk");
    const mode: CacheMode = def?.cache ?? "default";
    const img = this.cache.addImage(
      def?.source ?? `/var/lib/libvirt/images/${sv.name}.img`,
      w.image,
      mode,
      def?.type === "block",
    );
    const d: VmDisk = {
      sv,
      img,
      readOwed: 0,
      writeOwed: 0,
      rng: new Prng((this.seed * 7919 + sv.index * 104729 + 17) >>> 0),
    };
    this.disks.set(sv, d);
    return d;
  }

  /** Every booted, living VM does its disk I/O up to simulated time `nowMs`. */
  runUntil(nowMs: number, vms: ReadonlyArray<{ sv: SimVm; startMs: number }>): void {
    for (const { sv, startMs } of vms) {
      if (!sv.mm || sv.mm.killed || startMs > nowMs) continue;
      const from = Math.max(this.doneMs.get(sv) ?? startMs, startMs);
      if (nowMs <= from) continue;
      this.doneMs.set(sv, nowMs);
      const d = this.diskOf(sv);
      const w = sv.workloadConfig.disk;
      if (!d || !w) continue;
      const ms = nowMs - from;
      d.readOwed += (w.read / 4096) * (ms / 1000);
      d.writeOwed += (w.write / 4096) * (ms / 1000);
      const pages = d.img.pages;
      // reads and writes interleaved, as a guest's mixed I/O would be
      while ((d.readOwed >= 1 || d.writeOwed >= 1) && !sv.mm.killed) {
        if (d.readOwed >= 1) {
          d.readOwed--;
          this.cache.read(d.img, d.rng.below(pages));
        }
        if (d.writeOwed >= 1) {
          d.writeOwed--;
          this.cache.write(d.img, d.rng.below(pages));
        }
      }
    }
  }
}
