/** Every command's register function, in the order `kvmem --help` lists them. */
import type { Command } from "commander";

export const COMMANDS: Array<(program: Command) => void> = [];
