/** Small text helpers for tables within 100 columns. */

export const WIDTH = 100;

/** Render rows as aligned columns; the last column wraps to fit WIDTH. */
export function table(rows: string[][], opts: { header?: string[]; indent?: number } = {}): string {
  const all = opts.header ? [opts.header, ...rows] : rows;
  if (all.length === 0) return "";
  const n = Math.max(...all.map((r) => r.length));
  const widths: number[] = [];
  for (let i = 0; i < n - 1; i++) widths.push(Math.max(...all.map((r) => (r[i] ?? "").length)));
  const ind = " ".repeat(opts.indent ?? 2);
  const lead = ind.length + widths.reduce((s, w) => s + w + 2, 0);
  const lastWidth = Math.max(20, WIDTH - lead);
  const out: string[] = [];
  for (const r of all) {
    const cells = widths.map((w, i) => (r[i] ?? "").padEnd(w));
    const last = wrap(r[n - 1] ?? "", lastWidth);
    out.push((ind + [...cells, last[0]].join("  ")).trimEnd());
    for (const cont of last.slice(1)) out.push(" ".repeat(lead) + cont);
    if (opts.header && r === opts.header) {
      out.push(
        ind +
          [
            ...widths.map((w) => "-".repeat(w)),
            "-".repeat(Math.min(lastWidth, Math.max(...all.map((x) => (x[n - 1] ?? "").length)))),
          ].join("  "),
      );
    }
  }
  return `${out.join("\n")}\n`;
}

/** Word-wrap text to `width` columns (long words are kept whole). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const para of text.split("\n")) {
    let cur = "";
    for (const w of para.split(/\s+/).filter(Boolean)) {
      if (cur && cur.length + 1 + w.length > width) {
        lines.push(cur);
        cur = w;
      } else cur = cur ? `${cur} ${w}` : w;
    }
    lines.push(cur);
  }
  return lines;
}

export function heading(n: number | string, title: string): string {
  return `\n${n}. ${title}\n${"=".repeat(`${n}. ${title}`.length)}\n`;
}

export function indentBlock(text: string, spaces: number): string {
  const pad = " ".repeat(spaces);
  return text
    .split("\n")
    .map((l) => (l ? pad + l : l))
    .join("\n");
}
