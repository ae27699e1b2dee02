/**
 * `kvmem host`: the seed's commands (free -g, /proc/meminfo, dmesg, cpuinfo flags, kvm_intel
 * parameters, hugepage pools, swap, KSM, libvirt domain XML) automated for a real host, with
 * findings and their exact fixes. Reads the live machine or a captured tree (--root); never
 * writes and never needs root.
 */

import { existsSync, statSync } from "node:fs";
import type { Command } from "commander";
import { libvirtDomainReader } from "../inspect/domain-reader.js";
import { DirProcFs } from "../inspect/fs-procfs.js";
import { parseMeminfo } from "../inspect/parse.js";
import { MapProcFs, type ProcFs } from "../inspect/procfs.js";
import { buildHostReport } from "../inspect/report.js";
import { type HostReport, hostReportJsonSchema } from "../inspect/schema.js";
import { runScenario } from "../scenario/index.js";
import { loadScenario } from "../scenario/load.js";
import { setOverrides } from "../scenario/overrides.js";
import { KvmemError } from "../units/errors.js";
import { renderChecks, renderHost } from "./host-render.js";
import { action } from "./run.js";

/** Open the tree to read: "/" or --root DIR (which must be a directory). */
export function openRoot(root: string | undefined): ProcFs {
  const dir = root ?? "/";
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new KvmemError({
      code: "E_IO",
      input: "--root",
      message: `'${dir}' is not a directory`,
      hint: "a captured tree holding proc/, sys/ (and etc/libvirt, run/libvirt)",
      exitCode: 2,
    });
  }
  return new DirProcFs(dir);
}

/** Run a scenario and expose its simulated host's /proc and /sys as a ProcFs. */
export function simHost(file: string | undefined, sets: string[]): ProcFs {
  const loaded = loadScenario(file, setOverrides(sets));
  const result = runScenario(loaded);
  return new MapProcFs(result.procfs, {
    kind: "sim",
    label: `scenario ${result.scenario}`,
    kernelLog: result.kernelLog,
  });
}

/** The whole report for a ProcFs, with the domain XML read by src/libvirt. */
export function hostReport(fs: ProcFs): HostReport {
  const mi = fs.read("/proc/meminfo");
  const def = mi.ok ? (parseMeminfo(mi.text).value.Hugepagesize ?? null) : null;
  return buildHostReport(fs, libvirtDomainReader(def));
}

export function register(program: Command): void {
  program
    .command("host")
    .description(
      "report a KVM host's memory virtualization (the seed's commands), with findings and fixes",
    )
    .option(
      "--root <dir>",
      "read a captured tree (proc/, sys/, etc/libvirt, run/libvirt, dmesg) instead of this machine",
    )
    .option(
      "--sim [scenario]",
      "read the simulated host of a scenario (default: scenarios/default.yaml) after running it",
    )
    .option(
      "--set <key.path=value>",
      "with --sim: override a scenario key (repeatable)",
      (v: string, p: string[]) => [...p, v],
      [] as string[],
    )
    .option("--check", "one PASS/WARN/FAIL line per check, as virt-host-validate; exit 1 on FAIL")
    .option(
      "--json",
      "the whole report as one JSON document (schema: docs/host-report.schema.json)",
    )
    .option("--json-schema", "print the report's JSON schema and exit")
    .action(
      action(
        (opts: {
          root?: string;
          sim?: string | boolean;
          set: string[];
          check?: boolean;
          json?: boolean;
          jsonSchema?: boolean;
        }) => {
          if (opts.jsonSchema) {
            process.stdout.write(`${JSON.stringify(hostReportJsonSchema(), null, 2)}\n`);
            return 0;
          }
          if (opts.sim !== undefined && opts.root !== undefined) {
            throw new KvmemError({
              code: "E_USAGE",
              input: "--sim",
              message: "--sim and --root both name a host",
              hint: "give one of them",
            });
          }
          const fs =
            opts.sim !== undefined
              ? simHost(typeof opts.sim === "string" ? opts.sim : undefined, opts.set)
              : openRoot(opts.root);
          const report = hostReport(fs);
          if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          else if (opts.check) process.stdout.write(renderChecks(report));
          else process.stdout.write(renderHost(report));
          if (opts.check && report.checks.some((c) => c.status === "FAIL")) return 1;
          return 0;
        },
      ),
    );
}
