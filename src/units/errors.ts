/**
 * One error type for the whole toolkit.
 *
 * Every problem with external input (a file, a flag, a /proc line) becomes a KvmemError with:
 *   code    a stable machine-readable code ("E_UNIT", "E_XML", ...)
 *   input   what was being read (a file path, "--memory", "/proc/meminfo")
 *   place   where in it (a line:column, a key path, a field name), may be empty
 *   message what is wrong, naming the offending value
 *   hint    what would have been accepted
 * The CLI prints `kvmem: <input>[:<place>]: <message> (<hint>)` on one line and exits non-zero.
 */
export type ErrorCode =
  | "E_USAGE"
  | "E_UNIT"
  | "E_NUMBER"
  | "E_ADDRESS"
  | "E_IO"
  | "E_PARSE"
  | "E_XML"
  | "E_SCHEMA"
  | "E_RULE"
  | "E_NET"
  | "E_SCENARIO"
  | "E_INTERNAL";

export interface Problem {
  code: ErrorCode;
  input: string;
  place: string;
  message: string;
  hint: string;
}

export class KvmemError extends Error implements Problem {
  readonly code: ErrorCode;
  readonly input: string;
  readonly place: string;
  readonly hint: string;
  /** exit status the CLI uses: 2 for usage errors, 1 otherwise */
  readonly exitCode: number;

  constructor(p: {
    code: ErrorCode;
    input: string;
    place?: string;
    message: string;
    hint?: string;
    exitCode?: number;
  }) {
    super(p.message);
    this.name = "KvmemError";
    this.code = p.code;
    this.input = p.input;
    this.place = p.place ?? "";
    this.hint = p.hint ?? "";
    this.exitCode = p.exitCode ?? (p.code === "E_USAGE" ? 2 : 1);
  }

  /** The one line the CLI prints. */
  oneLine(): string {
    return formatProblem(this);
  }

  toProblem(): Problem {
    return {
      code: this.code,
      input: this.input,
      place: this.place,
      message: this.message,
      hint: this.hint,
    };
  }
}

export function formatProblem(p: Problem): string {
  const where = p.place ? `${p.input}:${p.place}` : p.input;
  const hint = p.hint ? ` (${p.hint})` : "";
  return `${where}: ${p.message}${hint}`.replace(/\s*\n\s*/g, " ");
}

export function isKvmemError(e: unknown): e is KvmemError {
  return e instanceof KvmemError;
}
