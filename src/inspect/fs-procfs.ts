/**
 * ProcFs over a directory tree: the live machine (root "/") or a captured tree (`--root DIR`,
 * laid out as proc/..., sys/..., etc/libvirt/..., run/libvirt/...; an optional `dmesg` file at
 * its top holds the captured kernel log). Read-only: it never writes and never needs root.
 */
import { execFileSync } from "node:child_process";
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import type { ListResult, ProcFs, ReadResult } from "./procfs.js";

function reasonOf(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return err.message ?? String(e);
  }
}

export class DirProcFs implements ProcFs {
  readonly kind: "live" | "root";
  readonly label: string;

  constructor(private readonly root: string) {
    this.kind = root === "/" ? "live" : "root";
    this.label = root;
  }

  private abs(path: string): string {
    return this.root === "/" ? path : join(this.root, path);
  }

  read(path: string): ReadResult {
    try {
      return { ok: true, text: readFileSync(this.abs(path), "utf8") };
    } catch (e) {
      return { ok: false, reason: `${path}: ${reasonOf(e)}` };
    }
  }

  list(dir: string): ListResult {
    try {
      return { ok: true, names: readdirSync(this.abs(dir)).sort() };
    } catch (e) {
      return { ok: false, reason: `${dir}: ${reasonOf(e)}` };
    }
  }

  exists(path: string): boolean {
    try {
      statSync(this.abs(path));
      return true;
    } catch {
      return existsSync(this.abs(path));
    }
  }

  kernelLog(): ReadResult {
    if (this.kind === "root") {
      const r = this.read("/dmesg");
      if (r.ok) return r;
      return { ok: false, reason: "no captured kernel log (put `dmesg` output in <root>/dmesg)" };
    }
    const kmsg = readKmsg();
    if (kmsg.ok) return kmsg;
    try {
      const text = execFileSync("dmesg", [], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 5000,
      });
      return { ok: true, text };
    } catch (e) {
      const err = e as { stderr?: string; code?: string; message?: string };
      const why =
        err.code === "ENOENT"
          ? "dmesg command not found"
          : (err.stderr ?? err.message ?? "").trim().split("\n")[0];
      return { ok: false, reason: `${kmsg.reason}; dmesg: ${why || "failed"}` };
    }
  }
}

/**
 * Read the kernel ring buffer from /dev/kmsg without blocking (Documentation/ABI/testing/
 * dev-kmsg: one record per read(); EAGAIN at the end with O_NONBLOCK). Records are
 * "prio,seq,usec,flags;message"; they are turned into dmesg-like "[secs] message" lines.
 */
function readKmsg(): ReadResult {
  let fd: number;
  try {
    fd = openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return { ok: false, reason: `/dev/kmsg: ${reasonOf(e)}` };
  }
  const lines: string[] = [];
  const buf = Buffer.alloc(8192);
  try {
    for (let i = 0; i < 1_000_000; i++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") break;
        if (code === "EPIPE") continue; // record overwritten while reading: skip it
        if (lines.length === 0) return { ok: false, reason: `/dev/kmsg: ${reasonOf(e)}` };
        break;
      }
      if (n <= 0) break;
      const rec = buf.toString("utf8", 0, n);
      const semi = rec.indexOf(";");
      if (semi < 0) continue;
      const head = rec.slice(0, semi).split(",");
      const usec = Number(head[2] ?? 0);
      const msg = rec.slice(semi + 1).split("\n")[0];
      lines.push(`[${(usec / 1e6).toFixed(6).padStart(12)}] ${msg}`);
    }
  } finally {
    closeSync(fd);
  }
  if (lines.length === 0) return { ok: false, reason: "/dev/kmsg: empty" };
  return { ok: true, text: `${lines.join("\n")}\n` };
}
