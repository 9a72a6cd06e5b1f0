// `npm run bench [name...]`: runs the named benchmarks (all by default).
import { runDeliveryBench } from './delivery.bench.js';
import { runMappingBench } from './mapping.bench.js';
import { runSmtpBench } from './smtp.bench.js';
import { runPolicyBench } from './policy.bench.js';
import { runThrottleBench } from './throttle.bench.js';

const SUITES: Record<string, () => void | Promise<void>> = {
  mapping: runMappingBench,
  policy: runPolicyBench,
  smtp: runSmtpBench,
  delivery: runDeliveryBench,
  throttle: runThrottleBench,
};

const wanted = process.argv.slice(2);
for (const name of wanted.length ? wanted : Object.keys(SUITES)) {
  const suite = SUITES[name];
  if (suite === undefined) {
    console.error(`unknown benchmark ${name}; have: ${Object.keys(SUITES).join(', ')}`);
    process.exitCode = 2;
    break;
  }
  console.log(`# ${name}`);
  await suite();
}
