import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** The compiled standalone app (`npm run build`, which `npm test` runs first). */
export const MAIN_JS = join(__dirname, '..', '..', 'dist', 'src', 'app', 'main.js');

const BASE_ENV = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs the app with a bad configuration and returns how it ended. */
export function runToExit(env: Record<string, string>, cwd: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [MAIN_JS], { cwd, env: { ...BASE_ENV, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface RunningApp {
  baseUrl: string;
  output: () => string;
  stop(): Promise<void>;
  /** SIGKILL, as a crash or an OOM kill: no shutdown hook runs. Resolves once the process is gone. */
  kill(): Promise<void>;
}

/** Starts the app as `npm start` would and waits until /health/live answers. */
export function startStandalone(env: Record<string, string>, cwd: string): Promise<RunningApp> {
  return startNodeApp(MAIN_JS, env, cwd, '/health/live');
}

/** Runs `script` with node on a free PORT and waits (20 s at most) until GET `readyPath` answers 2xx. */
export async function startNodeApp(script: string, env: Record<string, string>, cwd: string, readyPath: string): Promise<RunningApp> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [script], {
    cwd,
    env: { ...BASE_ENV, PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`app exited with ${child.exitCode}:\n${output}`);
    try {
      if ((await fetch(`${baseUrl}${readyPath}`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`app did not start within 20 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const end = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  return { baseUrl, output: () => output, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
}
