/**
 * Guest RAM content as the host sees it: the content token each page of a VM's RAM gets when
 * the host first backs it (Mm.content), from the workload's `content` (workload/content.ts).
 *
 * How it works: tokens live in PhysMem and KSM merges frames whose tokens are equal, so a token
 * must be equal exactly when two pages would be byte-identical. The 32-bit space is split so
 * that no two kinds collide and nothing collides by chance: 0 is the zero page; [1, 2^30) are
 * `constant` pages (a hash of the value: the same value, the same page, in every VM);
 * [2^30, 2^31) are disk-image pages, 0x40000000 | image << 27 | page (up to 8 images of up to
 * 512 GiB each, numbered in the order VMs name them); [2^31, 2^32) are unique contents handed
 * out by PhysMem.freshToken(), which every write also takes (PhysMem.written). A page belongs to
 * its image for the image's `shared` fraction of pages (chosen by a hash of image and page, so
 * every VM naming the image agrees), else it holds unique data. Page numbers count 4 KiB pages
 * from the start of the VM's RAM mapping, so two VMs with the same image hold identical pages
 * at the same guest frames. Pure: no Node APIs.
 */
import type { PhysMem } from "../sim/memory.js";
import type { PageContent, Vma } from "../sim/mm.js";
import type { ContentSpec } from "../workload/content.js";
import { stringHash } from "../workload/content.js";
import { hash2, hash32 } from "../workload/prng.js";

export const MAX_IMAGES = 8;
const IMAGE_PAGES = 1 << 27;

/** The image numbers of one scenario (image name -> 0..7, in order of first use). */
export class ImageRegistry {
  readonly byName = new Map<string, number>();
  index(name: string): number {
    let i = this.byName.get(name);
    if (i === undefined) {
      if (this.byName.size >= MAX_IMAGES)
        throw new RangeError(`at most ${MAX_IMAGES} disk images per scenario`);
      i = this.byName.size;
      this.byName.set(name, i);
    }
    return i;
  }
}

export class GuestContent implements PageContent {
  private readonly constant: number;
  private readonly image: number;
  private readonly imageHash: number;

  constructor(
    readonly spec: ContentSpec,
    private readonly mem: PhysMem,
    images: ImageRegistry,
  ) {
    this.constant =
      spec.kind === "constant" ? hash32(spec.value ^ 0x5bd1e995) & 0x3fffffff || 1 : 0;
    this.image = spec.kind === "image" ? images.index(spec.image) : -1;
    this.imageHash = spec.kind === "image" ? stringHash(spec.image) : 0;
  }

  token(_vma: Vma, page: number): number {
    const s = this.spec;
    switch (s.kind) {
      case "zero":
        return 0;
      case "constant":
        return this.constant;
      case "unique":
        return this.mem.freshToken();
      case "image":
        if (page < IMAGE_PAGES && hash2(this.imageHash, page) / 4294967296 < s.shared)
          return (0x40000000 | (this.image << 27) | page) >>> 0;
        return this.mem.freshToken();
    }
  }
}
