// POSIX shell quoting: the one place where arguments become shell text (provisioning's remote
// commands, the queue's command template, and commands shown to people).

/** One argument as shell text: left bare when it has nothing the shell would read, else single-quoted. */
export function shq(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A job's command as a person would type it: an argv quoted word by word, a shell string as it is. */
export function commandLine(command: string | readonly string[]): string {
  return typeof command === "string" ? command : command.map(shq).join(" ");
}
