/**
 * What guest pages hold, as a content token per page (equal tokens = identical 4 KiB pages): the
 * part of the workload KSM sees. Kinds: `zero` (all pages empty: the zero page), `constant` (every
 * page the same non-zero bytes), `unique` (no two pages alike), `image` (a named disk image: VMs
 * that name the same image hold identical pages at the same guest frame, for the image's `shared`
 * fraction of pages; the rest unique). A write gives a page new unique content.
 * Token 0 is the zero page; every other token is non-zero.
 */
import { hash2, hash32 } from "./prng.js";

export type ContentSpec =
  | { kind: "zero" }
  | { kind: "constant"; value: number }
  | { kind: "unique" }
  | { kind: "image"; image: string; shared: number };

export function stringHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const nonzero = (x: number) => x || 1;

/** The content token of guest frame `gfn` of VM `vmSalt` at boot. */
export function initialContent(spec: ContentSpec, vmSalt: number, gfn: number): number {
  switch (spec.kind) {
    case "zero":
      return 0;
    case "constant":
      return nonzero(hash32(spec.value ^ 0x5bd1e995));
    case "unique":
      return nonzero(hash2(vmSalt * 2 + 1, gfn));
    case "image": {
      const img = stringHash(spec.image);
      // a page is from the image when its hash falls under the shared fraction
      if (hash2(img, gfn) / 4294967296 < spec.shared) return nonzero(hash2(img ^ 0xa5a5a5a5, gfn));
      return nonzero(hash2(vmSalt * 2 + 1, gfn));
    }
  }
}

/** New content after a write: unique to this VM, frame and write generation. */
export function writtenContent(vmSalt: number, gfn: number, generation: number): number {
  return nonzero(hash2(hash2(vmSalt, generation) ^ 0x9e3779b9, gfn));
}
