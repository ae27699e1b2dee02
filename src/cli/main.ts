#!/usr/bin/env node
/**
 * The kvmem command line. One file per command under src/cli/; each exports
 * `register(program)` and is listed in commands.ts.
 */
import { Command, CommanderError } from "commander";
import { COMMANDS } from "./commands.js";

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("kvmem")
    .description(
      "KVM memory virtualization: see, simulate and check how guest memory becomes host memory",
    )
    .version("0.1.0")
    .option("--debug", "print stack traces for errors")
    .showHelpAfterError("(kvmem --help lists the commands)")
    .exitOverride();
  for (const register of COMMANDS) register(program);
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its one-line message; usage errors exit 2
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version") return;
      if (e.code === "commander.help") return;
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    throw e;
  }
}

main();
