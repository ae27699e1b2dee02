// Worker entry when kvmem runs from TypeScript sources (tests, `node --import tsx`): register
// tsx's loader in this worker, then load the TypeScript worker. The compiled CLI uses
// dist/cli/sim-worker.js directly.
import { register } from "tsx/esm/api";

register();
await import(new URL("./sim-worker.ts", import.meta.url).href);
