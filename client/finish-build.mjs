// After `tsc -p client/tsconfig.json`: marks dist/client as ES modules (the package itself is CommonJS)
// and drops api-types.js, which tsc emits empty (the types are in api-types.d.ts; index.js imports nothing).
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'client');
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ type: 'module', sideEffects: false }, null, 2)}\n`);
rmSync(join(out, 'api-types.js'), { force: true });
