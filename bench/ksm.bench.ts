/**
 * KSM speed: ksmd over 4 VMs x 4 GiB of THP-backed guest RAM holding a shared disk image (90% of
 * pages), every page present. Prints pages scanned per second of wall time, the wall time of
 * each full scan (with the process's CPU time, which other load on the machine disturbs less),
 * and the wall time until ksmd reaches a steady state (a full scan that changes
 * neither pages_shared nor pages_sharing). Prints figures only; nothing here asserts a timing.
 */
import { GuestContent, ImageRegistry } from "../src/scenario/content.js";
import { Host } from "../src/sim/host.js";
import { HostPtes, VmStat } from "../src/sim/hostpte.js";
import { Ksm } from "../src/sim/ksm.js";

const G = 1073741824;
const now = () => performance.now();

export async function run(): Promise<void> {
  const vms = 4;
  const ram = 4 * G;
  const t0 = now();
  const host = new Host({ memory: 20 * G, cpus: 4 });
  const ksm = new Ksm(new HostPtes(host, new VmStat()), {
    run: 1,
    pages_to_scan: 100000,
  });
  const images = new ImageRegistry();
  for (let i = 0; i < vms; i++) {
    const mm = host.createProcess(`qemu-system-x86_64 (vm${i})`);
    const hva = mm.mmap(ram, { thp: true, name: `vm${i}-ram` });
    mm.content = new GuestContent(
      { kind: "image", image: "debian-12", shared: 0.9 },
      host.mem,
      images,
    );
    const vm = host.createVm(mm, { name: `vm${i}`, ept: true, vpid: true, guestLevels: 4 });
    vm.setUserMemoryRegion({
      slot: 0,
      flags: 0,
      guestPhysAddr: 0,
      memorySize: ram,
      userspaceAddr: hva,
    });
    for (let a = hva; a < hva + ram; a += 2097152) mm.fault(a, true);
    ksm.madvise(mm, mm.vmas[0]);
  }
  const pages = (vms * ram) / 4096;
  process.stdout.write(
    `setup: ${vms} VMs x ${ram / G} GiB THP-backed, ${pages} pages present, ${((now() - t0) / 1000).toFixed(2)} s\n`,
  );
  const start = now();
  let scanStart = start;
  let cpuStart = process.cpuUsage();
  let prev = { shared: -1, sharing: -1 };
  let steadyMs = -1;
  for (let scans = 0; scans < 6 && steadyMs < 0; ) {
    ksm.scan(100000);
    const c = ksm.counters();
    if (c.full_scans > scans) {
      scans = c.full_scans;
      const t = now();
      const cpu = process.cpuUsage(cpuStart);
      cpuStart = process.cpuUsage();
      process.stdout.write(
        `full scan ${scans}: ${((t - scanStart) / 1000).toFixed(2)} s wall (${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU), pages_shared ${c.pages_shared}, pages_sharing ${c.pages_sharing}, pages_unshared ${c.pages_unshared}, pages_volatile ${c.pages_volatile}\n`,
      );
      scanStart = t;
      if (scans >= 2 && c.pages_shared === prev.shared && c.pages_sharing === prev.sharing)
        steadyMs = t - start;
      prev = { shared: c.pages_shared, sharing: c.pages_sharing };
    }
  }
  const c = ksm.counters();
  const wall = (now() - start) / 1000;
  process.stdout.write(
    `${c.pages_scanned} pages scanned in ${wall.toFixed(2)} s: ${(c.pages_scanned / wall / 1e6).toFixed(2)} M pages/s; ` +
      `steady state after ${(steadyMs / 1000).toFixed(2)} s (${c.full_scans} full scans); ` +
      `${ksm.ptes.vmstat.thp_split_page} THPs split; general_profit ${(c.general_profit / G).toFixed(2)} GiB\n`,
  );
}
