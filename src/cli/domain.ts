/**
 * `kvmem domain`: a libvirt domain's memory configuration explained, validated and edited.
 *
 *   kvmem domain FILE... [--json]                      plain words (or the model as JSON)
 *   kvmem domain validate FILE... [--host [--root DIR]] [--schemas DIR] [--json]
 *   kvmem domain edit FILE [--memory SIZE] [--current SIZE] [--max SIZE,slots=N]
 *       [--hugepages SIZE[,nodeset=LIST]|none] [--balloon virtio[,autodeflate[=on|off]][,stats=S]|none]
 *       [--nosharepages on|off] [--locked on|off] [--in-place] [--schemas DIR]
 *
 * The model, rules and edits live in src/libvirt; this file reads files, turns problems into
 * `file:line:col: message [rule]` lines and writes files atomically (temp file, fsync, `.bak`
 * copy, rename). Sizes take libvirt's units (a bare number is KiB, as in <memory>).
 */
import {
  closeSync,
  copyFileSync,
  fchownSync,
  fsyncSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Command } from "commander";
import { type EditRequest, editDomain } from "../libvirt/edit.js";
import { explainDomain } from "../libvirt/explain.js";
import { readHostFacts } from "../libvirt/host.js";
import type { DomainProblem } from "../libvirt/model.js";
import { diskHostTree, loadSchemas } from "../libvirt/node.js";
import { parseDomain } from "../libvirt/parse.js";
import { parseBitmap } from "../libvirt/scaled.js";
import { checkDomain, validateDomain, validateDomains } from "../libvirt/validate.js";
import { KvmemError } from "../units/errors.js";
import { parseSize } from "../units/size.js";
import { action, usageError } from "./run.js";

function readDomainFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KvmemError({
      code: "E_IO",
      input: file,
      message:
        code === "ENOENT"
          ? "no such file"
          : code === "EISDIR"
            ? "is a directory"
            : `cannot read (${code ?? "error"})`,
      hint: "a libvirt domain XML file, e.g. /etc/libvirt/qemu/NAME.xml",
    });
  }
  try {
    // fatal: a file that is not UTF-8 could not be written back byte for byte
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new KvmemError({
      code: "E_IO",
      input: file,
      message: "not valid UTF-8",
      hint: "libvirt writes domain XML in UTF-8; kvmem reads and edits only UTF-8 files",
    });
  }
}

/** `file:line:col: severity: message [rule]` */
export function problemLine(file: string, p: DomainProblem): string {
  return `${file}:${p.line ?? 1}:${p.column ?? 1}: ${p.severity}: ${p.message} [${p.rule}]`;
}

function toError(file: string, p: DomainProblem, hint: string): KvmemError {
  return new KvmemError({
    code: p.code.startsWith("xml.") ? "E_XML" : p.code.startsWith("unit.") ? "E_UNIT" : "E_RULE",
    input: file,
    place: `${p.line ?? 1}:${p.column ?? 1}`,
    message: `${p.message} [${p.rule}]`,
    hint,
  });
}

const PARSE_HINT = "libvirt would refuse this file; kvmem domain validate lists every problem";

/** JSON keeps every model field: absent values print as null. */
function nullForUndefined(_key: string, v: unknown): unknown {
  return v === undefined ? null : v;
}

function wrap(text: string, width: number, indent: string): string {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.join(`\n${indent}`);
}

function explainCmd(files: string[], opts: { json?: boolean }): number {
  const results = files.map((file) => {
    const text = readDomainFile(file);
    const parsed = parseDomain(text, file);
    const fatal = parsed.problems.find((p) => p.severity === "error");
    if (fatal) throw toError(file, fatal, PARSE_HINT);
    return { file, domain: parsed.domain, verdict: checkDomain(text) };
  });
  if (opts.json) {
    const out = results.map((r) => ({
      file: r.file,
      domain: r.domain,
      problems: r.verdict.problems,
    }));
    process.stdout.write(`${JSON.stringify(out, nullForUndefined, 2)}\n`);
    return 0;
  }
  const blocks = results.map((r) => {
    const lines = [`${r.file}`];
    for (const s of explainDomain(r.domain))
      lines.push(`  ${s.topic.padEnd(10)} ${wrap(s.text, 86, " ".repeat(13))}`);
    const errors = r.verdict.problems.filter((p) => p.severity === "error");
    for (const p of r.verdict.problems)
      lines.push(
        `  ${"note".padEnd(10)} ${wrap(`${p.severity} at ${p.line}:${p.column}: ${p.message}`, 86, " ".repeat(13))}`,
      );
    if (errors.length)
      lines.push(
        `  ${"".padEnd(10)} libvirt would refuse this domain: kvmem domain validate ${r.file}`,
      );
    return lines.join("\n");
  });
  process.stdout.write(`${blocks.join("\n\n")}\n`);
  return 0;
}

async function validateCmd(
  files: string[],
  opts: { json?: boolean; host?: boolean; root?: string; schemas?: string },
): Promise<number> {
  if (opts.root && !opts.host)
    throw usageError(
      "--root",
      "--root needs --host",
      "kvmem domain validate --host --root DIR FILE",
    );
  const schemas = loadSchemas(opts.schemas);
  const host = opts.host ? readHostFacts(diskHostTree(opts.root ?? "/")) : undefined;
  let bad = 0;
  const out: Array<{ file: string; valid: boolean; problems: DomainProblem[] }> = [];
  const verdicts = await validateDomains(
    files.map((f) => readDomainFile(f)),
    { schemas, host },
  );
  verdicts.forEach((v, i) => {
    if (!v.valid) bad++;
    out.push({ file: files[i], valid: v.valid, problems: v.problems });
  });
  if (opts.json) process.stdout.write(`${JSON.stringify(out, nullForUndefined, 2)}\n`);
  else {
    for (const r of out) {
      for (const p of r.problems) process.stdout.write(`${problemLine(r.file, p)}\n`);
      const e = r.problems.filter((p) => p.severity === "error").length;
      const w = r.problems.length - e;
      const checks = `schema${host ? ", libvirt rules, host" : ", libvirt rules"}`;
      process.stdout.write(
        `${r.file}: ${r.valid ? "valid" : "invalid"} (${e} errors, ${w} warnings; ${checks})\n`,
      );
    }
  }
  return bad ? 1 : 0;
}

function sizeKiB(flag: string, text: string): number {
  const bytes = parseSize(text, { input: flag });
  return Math.ceil(bytes / 1024);
}

function onOff(flag: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === "on" || v === "off") return v === "on";
  throw usageError(flag, `'${v}' is not on or off`, `${flag} on|off`);
}

export function parseEditOptions(o: Record<string, string | undefined>): EditRequest {
  const req: EditRequest = {};
  if (o.memory !== undefined) req.memoryKiB = sizeKiB("--memory", o.memory);
  if (o.current !== undefined) req.currentKiB = sizeKiB("--current", o.current);
  if (o.max !== undefined) {
    const [size, ...rest] = o.max.split(",");
    req.max = { kib: sizeKiB("--max", size) };
    for (const r of rest) {
      const m = /^slots=(\d+)$/.exec(r);
      if (!m)
        throw usageError(
          "--max",
          `unknown part '${r}'`,
          "--max SIZE[,slots=N], e.g. --max 16G,slots=8",
        );
      req.max.slots = Number(m[1]);
    }
  }
  if (o.hugepages !== undefined) {
    if (o.hugepages === "none") req.hugepages = "none";
    else {
      const [size, ...rest] = o.hugepages.split(/,(?=nodeset=)/);
      const hp: { sizeKiB: number; nodeset?: number[] } = { sizeKiB: sizeKiB("--hugepages", size) };
      for (const r of rest) {
        const bm = parseBitmap(r.slice("nodeset=".length));
        if (!bm.ok || bm.value.length === 0)
          throw usageError("--hugepages", `bad nodeset '${r}'`, "--hugepages 2M,nodeset=0-1");
        hp.nodeset = bm.value;
      }
      req.hugepages = hp;
    }
  }
  if (o.balloon !== undefined) {
    const [model, ...rest] = o.balloon.split(",");
    const hint = "--balloon virtio[,autodeflate[=on|off]][,stats=SECONDS] or --balloon none";
    if (model === "none" && rest.length === 0) req.balloon = "none";
    else if (model === "virtio") {
      const b: { model: "virtio"; autodeflate?: boolean; statsPeriod?: number } = {
        model: "virtio",
      };
      for (const r of rest) {
        const m = /^(autodeflate)(?:=(on|off))?$|^stats=(\d+)$/.exec(r);
        if (!m) throw usageError("--balloon", `unknown part '${r}'`, hint);
        if (m[1]) b.autodeflate = m[2] !== "off";
        else b.statsPeriod = Number(m[3]);
      }
      req.balloon = b;
    } else throw usageError("--balloon", `unknown balloon '${o.balloon}'`, hint);
  }
  req.nosharepages = onOff("--nosharepages", o.nosharepages);
  req.locked = onOff("--locked", o.locked);
  return req;
}

/**
 * Write `text` to `file` atomically: a temp file next to the real file (symlinks are followed),
 * same mode and owner, fsync, the previous version copied to FILE.bak, then rename over it.
 */
export function writeAtomic(file: string, text: string): void {
  const real = realpathSync(file);
  const st = statSync(real);
  const tmp = join(dirname(real), `.${basename(real)}.kvmem-${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx", st.mode & 0o7777);
    try {
      fchownSync(fd, st.uid, st.gid);
    } catch {
      // not permitted for an unprivileged user: the file keeps the writer's ownership
    }
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    copyFileSync(real, `${file}.bak`);
    renameSync(tmp, real);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // the temp file was never created or is already gone
    }
    throw new KvmemError({
      code: "E_IO",
      input: file,
      message: `cannot replace the file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      hint: "the original is unchanged; check the directory is writable",
    });
  }
}

async function editCmd(
  file: string,
  o: Record<string, string | boolean | undefined>,
): Promise<number> {
  const req = parseEditOptions(o as Record<string, string | undefined>);
  const text = readDomainFile(file);
  const r = editDomain(text, req);
  if (r.problems.length) throw toError(file, r.problems[0], "nothing was written");
  const v = await validateDomain(r.text, { schemas: loadSchemas(o.schemas as string | undefined) });
  const firstError = v.problems.find((p) => p.severity === "error");
  if (firstError) {
    throw new KvmemError({
      code: "E_RULE",
      input: file,
      message: `edit refused: the result would be invalid: ${firstError.message} [${firstError.rule}] at ${firstError.line}:${firstError.column} of the edited text`,
      hint: "the file is unchanged",
    });
  }
  for (const p of v.problems)
    process.stderr.write(`kvmem: ${problemLine(`${file} (edited)`, p)}\n`);
  if (o.inPlace) {
    if (r.text !== text) writeAtomic(file, r.text);
    for (const c of r.changes) process.stdout.write(`${file}: ${c}\n`);
    process.stdout.write(
      r.text === text
        ? `${file}: unchanged\n`
        : `${file}: written (previous version in ${file}.bak)\n`,
    );
  } else process.stdout.write(r.text);
  return 0;
}

export function register(program: Command): void {
  const domain = program
    .command("domain")
    .description("a libvirt domain's memory configuration: explained, validated, edited")
    .argument("[files...]", "libvirt domain XML files")
    .option("--json", "print the memory model as JSON")
    .action(
      action(async (files: string[], opts: { json?: boolean }) => {
        if (files.length === 0)
          throw usageError(
            "kvmem domain",
            "no domain XML file given",
            "kvmem domain FILE... (or: validate, edit)",
          );
        return explainCmd(files, opts);
      }),
    );
  domain
    .command("validate")
    .description("check against libvirt's RelaxNG schema and libvirt's memory rules (and the host)")
    .argument("<files...>", "libvirt domain XML files")
    .option("--host", "also check against this host (hugetlbfs page sizes and pools, NUMA nodes)")
    .option("--root <dir>", "read the host from a captured tree instead of / (with --host)")
    .option(
      "--schemas <dir>",
      "libvirt RelaxNG schema directory (default: the vendored libvirt 11.3.0 copy)",
    )
    .option("--json", "print the problems as JSON")
    // `--json` is also an option of `domain` itself, where commander files it: read both
    .action(
      action((files: string[], opts: Parameters<typeof validateCmd>[1], cmd: Command) =>
        validateCmd(files, { ...opts, json: opts.json || cmd.parent?.opts().json }),
      ),
    );
  domain
    .command("edit")
    .description(
      "change memory settings, keeping every other byte; refuses edits that make the domain invalid",
    )
    .argument("<file>", "libvirt domain XML file")
    .option("--memory <size>", "total memory (<memory>), e.g. 4G; a bare number is KiB")
    .option("--current <size>", "balloon target (<currentMemory>)")
    .option("--max <size,slots=N>", "hotplug ceiling (<maxMemory>) and slots")
    .option(
      "--hugepages <size[,nodeset=list]|none>",
      "back guest RAM with huge pages of this size, or remove <hugepages>",
    )
    .option("--balloon <spec>", "virtio[,autodeflate[=on|off]][,stats=SECONDS] or none")
    .option("--nosharepages <on|off>", "keep KSM from merging guest RAM")
    .option("--locked <on|off>", "mlock guest RAM")
    .option("--in-place", "replace FILE atomically (FILE.bak keeps the previous version)")
    .option("--schemas <dir>", "libvirt RelaxNG schema directory")
    .action(action(editCmd));
}
