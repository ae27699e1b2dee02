/**
 * A ready-made host with one VM (and a neighbour VM) for `kvmem translate` and the lab.
 *
 * How it works: build() makes a host with enough RAM, a VMM process whose guest RAM is anonymous
 * 4K memory, THP-backed anonymous memory, or hugetlbfs 2M/1G pages, memslots laid out as QEMU's
 * q35 machine does (RAM above 2 GiB moves to 4 GiB, leaving the PCI hole below 4 GiB as MMIO),
 * a VM with EPT or shadow paging and VPID on or off, one vCPU, and a guest OS with a process
 * "init". Before running, prepare() maps every page an access list touches, as a guest would
 * have: user addresses in the current process (RWX, user), the direct map at PAGE_OFFSET to
 * gpa = gva - PAGE_OFFSET (RW, NX, global), kernel text at 0xffffffff80000000 up (RO, X,
 * global), other kernel addresses to fresh frames (RW, NX, global), all with the chosen guest
 * page size. run() performs one operation and returns its JSON record.
 */
import { canonicalize, isCanonical, splitVa } from "../units/address.js";
import { GiB, MiB } from "../units/size.js";
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  EXIT_EXTERNAL_INTERRUPT,
  INVEPT_SINGLE,
  INVVPID_SINGLE,
} from "../x86/faults.js";
import { LEVEL_PAGES } from "../x86/paging.js";
import type { Cpu } from "./cpu/cpu.js";
import { GuestOs, type GuestProcess } from "./guest/os.js";
import { Host } from "./host.js";
import { KVM_MEM_LOG_DIRTY_PAGES } from "./kvm/memslots.js";
import type { Vcpu } from "./kvm/vcpu.js";
import type { Vm } from "./kvm/vm.js";
import type { Mm } from "./mm.js";
import { WalkRecord } from "./record.js";
import { type AccessJson, recordToJson } from "./report.js";

export type Backing = "4K" | "thp" | "2M" | "1G";

export interface LabOptions {
  ept: boolean;
  vpid: boolean;
  levels: 4 | 5;
  /** EPT walk length (default: `levels`); a 5-level guest over 4-level EPT is common */
  eptLevels?: 4 | 5;
  /** guest page size in bytes: 4096, 2 MiB or 1 GiB */
  guestPage: number;
  backing: Backing;
  pwc: boolean;
  /** memslot userspace_addr 4 KiB past a 2 MiB boundary */
  misalignSlot?: boolean;
  /** KVM_MEM_LOG_DIRTY_PAGES on the RAM slots */
  dirtyLog?: boolean;
  /** guest RAM in bytes (default 4 GiB) */
  memory?: number;
}

export type LabOp =
  | { op: "read" | "write" | "exec"; gva: bigint }
  | { op: "invlpg" | "unmap"; gva: bigint }
  | { op: "user" | "kernel" | "vmexit" | "invept" | "invvpid" | "switch-vm" }
  | { op: "cr3"; process: string };

export interface OpJson {
  op: string;
  process: string;
  mode: "user" | "kernel";
  access?: AccessJson;
  exits?: AccessJson["exits"];
  flushed?: number;
}

const PAGE_OFFSET_L4 = 0xffff888000000000n;
const PAGE_OFFSET_L5 = 0xff11000000000000n;
const DIRECT_MAP_SPAN = 1n << 46n;
const KERNEL_TEXT = 0xffffffff80000000n;

interface Machine {
  vm: Vm;
  vcpu: Vcpu;
  os: GuestOs;
  mm: Mm;
}

export class TranslateLab {
  readonly host: Host;
  readonly main: Machine;
  /** the neighbour that `switch-vm` runs on the same CPU */
  readonly other: Machine;
  readonly cpu: Cpu;
  readonly rec = new WalkRecord();
  private current: GuestProcess;
  private readonly otherVpn: number;

  constructor(readonly options: LabOptions) {
    const o = options;
    const memory = o.memory ?? 4 * GiB;
    const hostMemory = Math.ceil((memory * 2 + 2 * GiB) / GiB) * GiB;
    this.host = new Host({ memory: hostMemory, pwc: o.pwc });
    this.cpu = this.host.cpus[0];
    const extra = o.misalignSlot ? 1 : 0;
    if (o.backing === "1G") this.host.reserveHugePages(1073741824, memory / GiB + extra);
    if (o.backing === "2M") this.host.reserveHugePages(2097152, memory / (2 * MiB) + extra);
    this.main = this.machine(
      "vm0",
      memory,
      o.backing,
      o.ept,
      o.misalignSlot ?? false,
      o.dirtyLog ?? false,
    );
    this.other = this.machine("vm1", GiB, "4K", o.ept, false, false);
    this.rec.detail = true;
    // the neighbour VM touches one page of its own when it runs
    const otherInit = this.other.os.process("init");
    this.otherVpn = 0x400000 / 4096;
    this.other.os.map(otherInit, this.otherVpn, this.other.os.allocData(1), 1, {
      write: true,
      user: true,
      exec: false,
    });
    this.cpu.movCr3(this.other.vcpu, otherInit.root, otherInit.pcid, false, this.rec);
    this.current = this.main.os.process("init");
    this.cpu.movCr3(this.main.vcpu, this.current.root, this.current.pcid, false, this.rec);
    this.cpu.enter(this.main.vcpu);
  }

  private machine(
    name: string,
    memory: number,
    backing: Backing,
    ept: boolean,
    misalign: boolean,
    dirtyLog: boolean,
  ): Machine {
    const o = this.options;
    const mm = this.host.createProcess(`qemu-system-x86_64 (${name})`);
    const pad = misalign ? 2 * MiB : 0;
    const hva =
      backing === "2M" || backing === "1G"
        ? mm.mmap(memory + (misalign ? (backing === "1G" ? GiB : 2 * MiB) : 0), {
            kind: "hugetlb",
            pageSize: backing === "1G" ? GiB : 2 * MiB,
            name: `/dev/hugepages${backing === "1G" ? "1G" : ""}/${name}-ram`,
          })
        : mm.mmap(memory + pad, { kind: "anon", thp: backing === "thp", name: `${name}-ram` });
    const base = hva + (misalign ? 4096 : 0);
    const vm = this.host.createVm(mm, {
      name,
      ept,
      vpid: o.vpid,
      guestLevels: o.levels,
      eptLevels: o.eptLevels,
    });
    const flags = dirtyLog ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    const low = Math.min(memory, 2 * GiB);
    vm.setUserMemoryRegion({
      slot: 0,
      flags,
      guestPhysAddr: 0,
      memorySize: low,
      userspaceAddr: base,
    });
    const ranges: Array<[number, number]> = [[0, low / 4096]];
    if (memory > low) {
      vm.setUserMemoryRegion({
        slot: 1,
        flags,
        guestPhysAddr: 4 * GiB,
        memorySize: memory - low,
        userspaceAddr: base + low,
      });
      ranges.push([(4 * GiB) / 4096, (memory - low) / 4096]);
    }
    const vcpu = vm.addVcpu();
    const os = new GuestOs(vm, { ranges });
    return { vm, vcpu, os, mm };
  }

  get vm(): Vm {
    return this.main.vm;
  }
  get vcpu(): Vcpu {
    return this.main.vcpu;
  }
  get os(): GuestOs {
    return this.main.os;
  }

  private vaBits(): 48 | 57 {
    return this.options.levels === 5 ? 57 : 48;
  }

  /** Map the pages an access list touches (in the process current at each access). */
  prepare(ops: readonly LabOp[]): void {
    let proc = this.current;
    for (const op of ops) {
      if (op.op === "cr3") proc = this.main.os.process(op.process);
      else if (op.op === "read" || op.op === "write" || op.op === "exec")
        this.ensureMapped(proc, op.gva);
    }
  }

  ensureMapped(proc: GuestProcess, gva: bigint): void {
    if (!isCanonical(gva, this.vaBits())) return;
    const os = this.main.os;
    const level = this.options.guestPage === GiB ? 3 : this.options.guestPage === 2 * MiB ? 2 : 1;
    const pages = LEVEL_PAGES[level];
    const { vpn } = splitVa(gva);
    const head = vpn - (vpn % pages);
    if (os.lookup(proc, vpn)) return;
    const kernel = gva >= 1n << 63n;
    const pageOffset = this.options.levels === 5 ? PAGE_OFFSET_L5 : PAGE_OFFSET_L4;
    if (kernel && gva >= pageOffset && gva < pageOffset + DIRECT_MAP_SPAN) {
      const gfn = Number((gva - pageOffset) >> 12n);
      os.map(proc, head, gfn - (gfn % pages), level, {
        write: true,
        user: false,
        exec: false,
        global: true,
      });
    } else if (kernel && gva >= KERNEL_TEXT) {
      os.map(proc, head, os.allocData(level), level, {
        write: false,
        user: false,
        exec: true,
        global: true,
      });
    } else {
      os.map(proc, head, os.allocData(level), level, {
        write: true,
        user: !kernel,
        exec: !kernel,
        global: kernel,
      });
    }
  }

  /** Run one operation on the main VM's vCPU. */
  run(op: LabOp): OpJson {
    const { vcpu, vm } = this.main;
    const cpu = this.cpu;
    const rec = this.rec;
    const base = (): OpJson => ({
      op: op.op,
      process: this.current.name,
      mode: vcpu.user ? "user" : "kernel",
    });
    switch (op.op) {
      case "read":
      case "write":
      case "exec": {
        const kind =
          op.op === "read" ? ACCESS_READ : op.op === "write" ? ACCESS_WRITE : ACCESS_EXEC;
        cpu.accessGva(vcpu, op.gva, kind, rec);
        return { ...base(), access: recordToJson(rec, op.gva, vm.config.ept) };
      }
      case "user":
        vcpu.user = true;
        return base();
      case "kernel":
        vcpu.user = false;
        return base();
      case "vmexit":
        cpu.vmexit(vcpu, rec);
        return { ...base(), access: recordToJson(rec, 0n, vm.config.ept) };
      case "cr3": {
        this.current = this.main.os.process(op.process);
        cpu.movCr3(vcpu, this.current.root, this.current.pcid, true, rec);
        return { ...base(), access: recordToJson(rec, 0n, vm.config.ept) };
      }
      case "invlpg": {
        cpu.invlpg(vcpu, splitVa(canonicalize(op.gva, this.vaBits())).vpn, rec);
        return { ...base(), access: recordToJson(rec, op.gva, vm.config.ept) };
      }
      case "unmap": {
        const { vpn } = splitVa(op.gva);
        this.main.os.unmap(this.current, vpn);
        cpu.invlpg(vcpu, vpn, rec);
        return { ...base(), access: recordToJson(rec, op.gva, vm.config.ept) };
      }
      case "invept":
        return { ...base(), flushed: cpu.invept(vm, INVEPT_SINGLE) };
      case "invvpid":
        return { ...base(), flushed: cpu.invvpid(INVVPID_SINGLE, vcpu.vpid) };
      case "switch-vm": {
        // this vCPU is descheduled, the neighbour VM's vCPU runs here and touches its memory
        cpu.vmexit(vcpu, rec);
        const exits = recordToJson(rec, 0n, vm.config.ept).exits;
        const o = this.other;
        cpu.enter(o.vcpu);
        cpu.access(o.vcpu, this.otherVpn, 0, ACCESS_READ, rec);
        cpu.exit(o.vcpu, EXIT_EXTERNAL_INTERRUPT);
        cpu.enter(vcpu);
        return { ...base(), exits };
      }
    }
  }

  /** Tables KVM keeps: EPT pages for the VM, or shadow pages per guest address space. */
  tables(): { ept: number | null; shadow: Record<string, number> | null; guest: number } {
    const mmu = this.main.vm.mmu;
    if (mmu.kind === "ept")
      return { ept: mmu.tablePages(), shadow: null, guest: this.main.os.tables };
    const per: Record<string, number> = {};
    const roots = (mmu as import("./kvm/shadow.js").ShadowMmu).tablesPerRoot();
    for (const p of this.main.os.processes.values()) per[p.name] = roots.get(p.root) ?? 0;
    return { ept: null, shadow: per, guest: this.main.os.tables };
  }
}
