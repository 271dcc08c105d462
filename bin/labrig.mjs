#!/usr/bin/env node
// What bin/labrig runs: loads tsx's loader into this very process (so a signal such as the lab's
// Ctrl-C reaches the CLI itself) and runs cli/main.ts, wherever the current folder is.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
