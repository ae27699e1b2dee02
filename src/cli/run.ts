/**
 * Shared CLI plumbing: how a command reports errors and exits.
 * A KvmemError becomes one line on stderr and exit 1 (2 for usage errors); anything else is a bug:
 * one line too, with the stack only under --debug.
 */
import { isKvmemError, KvmemError } from "../units/errors.js";

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

export const processIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

export function isDebug(): boolean {
  return process.argv.includes("--debug") || process.env.KVMEM_DEBUG === "1";
}

/** Print an error the kvmem way and return the exit status. */
export function reportError(e: unknown, io: Io = processIo): number {
  if (isKvmemError(e)) {
    io.err(`kvmem: ${e.oneLine()}\n`);
    if (isDebug() && e.stack) io.err(`${e.stack}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? e.message : String(e);
  io.err(`kvmem: internal error: ${msg.split("\n")[0]} (rerun with --debug for the stack)\n`);
  if (isDebug() && e instanceof Error && e.stack) io.err(`${e.stack}\n`);
  return 1;
}

/** Wrap a command action so that errors are reported on one line with the right exit status. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<number | undefined> | number | undefined,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      if (code) process.exitCode = code;
    } catch (e) {
      process.exitCode = reportError(e);
    }
  };
}

export function usageError(input: string, message: string, hint: string): KvmemError {
  return new KvmemError({ code: "E_USAGE", input, message, hint });
}
