#!/usr/bin/env node
// The `labrig` command on PATH: loads tsx's loader into this very process (so a signal such as
// the lab's Ctrl-C reaches the CLI itself) and runs cli/main.ts. Node resolves a symlink to this
// file to its real place, so a link from any bin folder finds the checkout and its node_modules.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
