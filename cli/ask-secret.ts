// Asks for a secret once (the sudo password for --ask-sudo-pass): on a terminal without echo, else
// the first line of stdin (scripts and tests pipe it in). The value stays in this process's memory.
import { createInterface } from "node:readline";
import { InputError } from "../core/errors.js";

export async function askSecret(prompt: string, flag: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  const secret = input.isTTY ? await fromTerminal(prompt, input, output) : await firstLine(input);
  if (secret === undefined || secret === "") throw new InputError(flag, "no password given (type it at the prompt, or pipe it in on stdin)");
  return secret;
}

function firstLine(input: NodeJS.ReadStream): Promise<string | undefined> {
  return new Promise((resolve) => {
    const rl = createInterface({ input, terminal: false });
    let got: string | undefined;
    rl.once("line", (line) => {
      got = line;
      rl.close();
    });
    rl.once("close", () => {
      input.pause();
      resolve(got);
    });
  });
}

function fromTerminal(prompt: string, input: NodeJS.ReadStream, output: NodeJS.WriteStream): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    output.write(prompt);
    input.setRawMode(true);
    input.resume();
    let typed = "";
    const done = (value: string | undefined, err?: Error) => {
      input.off("data", onData);
      input.setRawMode(false);
      input.pause();
      output.write("\n");
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done(typed);
        if (ch === "\u0003") return done(undefined, new InputError("--ask-sudo-pass", "interrupted"));
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    input.on("data", onData);
  });
}
