/**
 * The public API of kvmem's libvirt layer: the domain memory model, its parser, libvirt's
 * semantic and host rules, RelaxNG validation, explanation and byte-preserving edits.
 * Everything here is pure (no Node APIs); the schema check runs libxml2 as WebAssembly through
 * xmllint-wasm (a worker thread in Node, its browser build elsewhere). Reading schema files and
 * host trees from disk is node.ts (`loadSchemas`, `diskHostTree`), exported from there only.
 */

export { type QemuSizes, qemuAlignMemorySizes } from "./align.js";
export { type EditRequest, type EditResult, editDomain } from "./edit.js";
export { bootRamKiB, type ExplainSection, explainDomain, usesHugetlb } from "./explain.js";
export {
  checkHost,
  type HostMemoryFacts,
  type HostTree,
  hugepageDemandKiB,
  readHostFacts,
} from "./host.js";
export type {
  Domain,
  DomainProblem,
  HugePage,
  Memballoon,
  MemLimit,
  MemoryBacking,
  MemoryDevice,
  MemoryModel,
  Memtune,
  NumaCell,
  NumaMode,
  Numatune,
} from "./model.js";
export { type BackendPolicy, backendPolicies, backendPolicy } from "./numatune.js";
export { parseDomain } from "./parse.js";
export { type RamPart, ramParts } from "./ramparts.js";
export type { DomainSource, ParsedDomain } from "./reader.js";
export { checkRules, initialMemoryKiB, memoryAlignmentKiB } from "./rules.js";
export {
  expressKiB,
  formatBitmap,
  kibWords,
  MEMORY_UNLIMITED_KIB,
  parseBitmap,
  parseMemoryKiB,
  parseMemoryLimitKiB,
} from "./scaled.js";
export {
  DOMAIN_SCHEMA_FILES,
  type SchemaFile,
  type SchemaSet,
  validateSchema,
  validateSchemaMany,
} from "./schema.js";
export {
  checkDomain,
  type ValidateOptions,
  type Verdict,
  validateDomain,
  validateDomains,
} from "./validate.js";
