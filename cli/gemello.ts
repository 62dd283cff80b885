#!/usr/bin/env node
// The operator's CLI: `gemello <command>` (cli/commands.ts); `gemello help` lists the commands.
import { keepCompiledCode } from '../runtime/compile-cache.ts';

keepCompiledCode();
await import('./commands.ts');
