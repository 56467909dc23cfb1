// After `tsc -p client/tsconfig.json` (which emits into dist/.client-build): moves the files the package
// ships into dist/client one by one with rename, so a reader (the browser suite, while `npm pack` in the
// package suite rebuilds) never sees a missing or half-written file; marks dist/client as ES modules (the
// package itself is CommonJS); drops api-types.js, which tsc emits empty (the types are in api-types.d.ts
// and index.js imports nothing).
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const built = join(dist, '.client-build');
const out = join(dist, 'client');
mkdirSync(out, { recursive: true });
writeFileSync(join(built, 'package.json'), `${JSON.stringify({ type: 'module', sideEffects: false }, null, 2)}\n`);
for (const file of ['index.js', 'index.d.ts', 'api-types.d.ts', 'package.json']) renameSync(join(built, file), join(out, file));
rmSync(join(out, 'api-types.js'), { force: true });
rmSync(built, { recursive: true, force: true });
