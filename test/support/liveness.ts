import { Worker } from 'node:worker_threads';

export interface LivenessReport {
  samples: number;
  /** Probes that got no 200 (refused, reset, timed out or another status). */
  failed: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Probes `GET /health/live` every `intervalMs` over a new connection each time, as an orchestrator does,
 * from a worker thread: its event loop is its own, so the test's work cannot delay a probe and make the
 * service look slow. Each probe gives up after 5 s.
 */
export function sampleLiveness(baseUrl: string, intervalMs = 20): { stop(): Promise<LivenessReport> } {
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const http = require('node:http');
    let running = true;
    parentPort.on('message', () => { running = false; });
    const probe = () => new Promise((resolve) => {
      const started = performance.now();
      const request = http.get(workerData.url, { agent: false, timeout: 5000 }, (response) => {
        response.resume();
        response.on('end', () => resolve([performance.now() - started, response.statusCode]));
      });
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', () => resolve([performance.now() - started, 0]));
    });
    (async () => {
      const samples = [];
      while (running) {
        samples.push(await probe());
        await new Promise((resolve) => setTimeout(resolve, workerData.intervalMs));
      }
      parentPort.postMessage(samples);
    })();
    `,
    { eval: true, workerData: { url: `${baseUrl}/health/live`, intervalMs } },
  );
  const result = new Promise<[number, number][]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const samples = await result;
      await worker.terminate();
      const latencies = samples.map(([ms]) => ms).sort((a, b) => a - b);
      const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
      return {
        samples: samples.length,
        failed: samples.filter(([, status]) => status !== 200).length,
        p50Ms: round(at(0.5)),
        p99Ms: round(at(0.99)),
        maxMs: round(latencies.at(-1) ?? 0),
      };
    },
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
