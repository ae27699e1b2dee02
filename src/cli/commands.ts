/** Every command's register function, in the order `kvmem --help` lists them. */
import type { Command } from "commander";
import { register as domain } from "./domain.js";
import { register as exporter } from "./exporter.js";
import { register as host } from "./host.js";
import { register as sim } from "./sim.js";
import { register as translate } from "./translate.js";

export const COMMANDS: Array<(program: Command) => void> = [host, domain, exporter, sim, translate];
