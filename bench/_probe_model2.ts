import { fork } from 'node:child_process';
import { createOpenAIReplyModel } from '../models/openai-reply.ts';
const child = fork(new URL('./gateway.ts', import.meta.url).pathname, ['--fake-openai'], { execArgv: ['--disable-warning=TimeoutNegativeWarning'] });
const url = await new Promise<string>((r) => child.on('message', (m: any) => r(m.url)));
const m = createOpenAIReplyModel({ apiKey: 'x', baseURL: url });
const twin = { id: 't', name: 'T', systemPrompt: 'You are Warren.', model: 'gpt', voiceId: 'alloy' };
const pct = (xs: number[], q: number) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length * q)]!.toFixed(2);
const sdk: number[] = [];
const history = [] as { seq: number; role: 'user' | 'assistant'; content: string }[];
for (let i = 0; i < 200; i++) {
  history.push({ seq: i, role: 'user', content: `question ${i} about the long term` });
  const t = performance.now();
  await m.reply({ twin, history, confirmedData: {} });
  if (i >= 20) sdk.push(performance.now() - t);
  await new Promise((r) => setTimeout(r, Number(process.env.GAP ?? 0)));
}
console.log(`cross-process sdk p50 ${pct(sdk, 0.5)} p99 ${pct(sdk, 0.99)}`);
child.kill();
