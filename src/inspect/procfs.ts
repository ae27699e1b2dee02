/**
 * The ProcFs interface: how the inspector reads a host. It never touches the disk itself.
 * Three implementations read the same paths: the live machine ("/"), a captured tree
 * (`--root DIR`, see fs-procfs.ts) and a simulated host (the simulator's procfs text).
 * Reads are synchronous: every file involved is small.
 */

export type ReadResult = { ok: true; text: string } | { ok: false; reason: string };
export type ListResult = { ok: true; names: string[] } | { ok: false; reason: string };

export interface ProcFs {
  /** what this is, for the report: "live", "root", "sim" */
  readonly kind: "live" | "root" | "sim";
  /** a human label: "/", the --root dir, the scenario name */
  readonly label: string;
  /** Read a file by its absolute path on the host (e.g. "/proc/meminfo"). */
  read(path: string): ReadResult;
  /** List a directory's entries (names only, sorted). */
  list(dir: string): ListResult;
  /** Does the path exist (file, directory or device)? */
  exists(path: string): boolean;
  /**
   * The kernel log (what `dmesg` prints), when it can be read: from /dev/kmsg or the dmesg
   * command on the live machine, from a captured `dmesg` file under a root, from the simulator.
   */
  kernelLog(): ReadResult;
}

/** Read a file, returning its text trimmed of the final newline, or undefined. */
export function readOr(fs: ProcFs, path: string): string | undefined {
  const r = fs.read(path);
  return r.ok ? r.text : undefined;
}

/** A ProcFs over an in-memory map of path -> text (tests, the simulator). */
export class MapProcFs implements ProcFs {
  readonly kind: "root" | "sim";
  readonly label: string;
  private readonly files: Map<string, string>;
  private readonly log: string | undefined;

  constructor(
    files: Record<string, string>,
    opts: { kind?: "root" | "sim"; label?: string; kernelLog?: string } = {},
  ) {
    this.files = new Map(Object.entries(files));
    this.kind = opts.kind ?? "sim";
    this.label = opts.label ?? "memory";
    this.log = opts.kernelLog;
  }

  read(path: string): ReadResult {
    const t = this.files.get(path);
    if (t !== undefined) return { ok: true, text: t };
    return { ok: false, reason: `${path}: no such file` };
  }

  list(dir: string): ListResult {
    const prefix = dir.endsWith("/") ? dir : `${dir}/`;
    const names = new Set<string>();
    for (const p of this.files.keys()) {
      if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split("/")[0]);
    }
    if (names.size === 0) return { ok: false, reason: `${dir}: no such directory` };
    return { ok: true, names: [...names].sort() };
  }

  exists(path: string): boolean {
    if (this.files.has(path)) return true;
    return this.list(path).ok;
  }

  kernelLog(): ReadResult {
    if (this.log === undefined) return { ok: false, reason: "no kernel log in this host" };
    return { ok: true, text: this.log };
  }
}
