/**
 * Faults and exits by their architectural numbers and names.
 *
 * How it works: a #PF error code is built from bits the walker sets (Intel SDM vol. 3A 4.7,
 * "Page-Fault Exceptions": P, W/R, U/S, RSVD, I/D, PK); the access kinds the walker takes use the
 * same bit positions so an error code is the access plus P/RSVD. VM-exit basic reasons are the
 * numbers of SDM vol. 3D appendix C; INVEPT and INVVPID types are those of vol. 3C 31.3
 * (VMX instruction reference).
 */

/** #PF error code bits; W, U and I double as the access kind given to the walker. */
export const PF_P = 1 << 0;
export const PF_W = 1 << 1;
export const PF_U = 1 << 2;
export const PF_RSVD = 1 << 3;
export const PF_I = 1 << 4;
export const PF_PK = 1 << 5;

/** Access kinds (combine with PF_U for user mode). */
export const ACCESS_READ = 0;
export const ACCESS_WRITE = PF_W;
export const ACCESS_EXEC = PF_I;

export function pfErrorNames(code: number): string[] {
  const n: string[] = [];
  n.push(code & PF_P ? "protection" : "not-present");
  n.push(code & PF_W ? "write" : code & PF_I ? "fetch" : "read");
  n.push(code & PF_U ? "user" : "supervisor");
  if (code & PF_RSVD) n.push("reserved-bit");
  return n;
}

/** The VM-exit basic reasons kvmem produces (numbers from SDM vol. 3D appendix C). */
export const EXIT_EXCEPTION_NMI = 0;
export const EXIT_EXTERNAL_INTERRUPT = 1;
export const EXIT_INVLPG = 14;
export const EXIT_CR_ACCESS = 28;
export const EXIT_EPT_VIOLATION = 48;
export const EXIT_EPT_MISCONFIG = 49;
export const EXIT_REASON_COUNT = 80;

const EXIT_NAMES: Record<number, string> = {
  [EXIT_EXCEPTION_NMI]: "EXCEPTION_NMI",
  [EXIT_EXTERNAL_INTERRUPT]: "EXTERNAL_INTERRUPT",
  [EXIT_INVLPG]: "INVLPG",
  [EXIT_CR_ACCESS]: "CR_ACCESS",
  [EXIT_EPT_VIOLATION]: "EPT_VIOLATION",
  [EXIT_EPT_MISCONFIG]: "EPT_MISCONFIG",
};

export function exitReasonName(reason: number): string {
  return EXIT_NAMES[reason] ?? `EXIT_${reason}`;
}

/** INVVPID types (SDM vol. 3C, INVVPID). */
export const INVVPID_ADDRESS = 0;
export const INVVPID_SINGLE = 1;
export const INVVPID_ALL = 2;
export const INVVPID_SINGLE_RETAIN_GLOBALS = 3;
/** INVEPT types. */
export const INVEPT_SINGLE = 1;
export const INVEPT_GLOBAL = 2;
